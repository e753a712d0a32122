// Seeded synthetic datasets: see convert.h.
#include <algorithm>
#include <sstream>

#include "core/rng.h"
#include "datasets/convert.h"
#include "datasets/schema.h"
#include "ops/philox.h"

namespace dtrain::data {

std::string synth_images(const std::string& out, int64_t n, int64_t h, int64_t w, int64_t c, int64_t classes,
                         uint64_t seed, const WriteOptions& options) {
  DT_CHECK(classes >= 1 && classes <= 256, "synth_images: classes must be in [1, 256], got ", classes);
  std::vector<std::string> names;
  for (int64_t k = 0; k < classes; ++k) names.push_back(std::string("class").append(std::to_string(k)));
  ImageWriter writer(out, n, h, w, c, names, options);
  Generator labels_gen = Generator::derive(seed, 0, "synth.labels");
  const uint64_t key = Generator::derive(seed, 0, "synth.pixels").seed();
  const int64_t sample = h * w * c, blocks_per_sample = (sample + 15) / 16;
  const int64_t step = std::max<int64_t>(1, (int64_t{64} << 20) / sample);  // ~64 MiB per write
  for (int64_t start = 0; start < n; start += step) {
    int64_t k = std::min(step, n - start);
    std::vector<uint8_t> px(static_cast<size_t>(k * sample));
    std::vector<int64_t> lb(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
      int64_t label = static_cast<int64_t>(labels_gen.next_below(static_cast<uint64_t>(classes)));
      lb[static_cast<size_t>(i)] = label;
      // Noise in [0, 128) plus a class offset in [0, 128): brightness encodes the class.
      uint8_t offset = static_cast<uint8_t>(classes > 1 ? label * 127 / (classes - 1) : 64);
      uint8_t* p = px.data() + i * sample;
      uint64_t counter = static_cast<uint64_t>(start + i) * static_cast<uint64_t>(blocks_per_sample);
      for (int64_t j = 0; j < sample; j += 16) {
        ops::philox::Block b = ops::philox::generate(key, counter++);
        for (int64_t t = 0; t < 16 && j + t < sample; ++t) {
          p[j + t] = static_cast<uint8_t>(((b.v[t / 4] >> (8 * (t % 4))) & 0x7f) + offset);
        }
      }
    }
    writer.append(Tensor::from_vector(px, {k, h, w, c}), Tensor::from_vector(lb, {k}));
  }
  writer.finish();
  std::ostringstream os;
  os << "wrote " << out << ": " << n << " synthetic images " << h << "x" << w << "x" << c << ", " << classes
     << " classes, seed " << seed;
  return os.str();
}

std::string synth_pairs(const std::string& out, int64_t n, int64_t max_len, int64_t vocab, uint64_t seed,
                        const WriteOptions& options) {
  DT_CHECK(n > 0, "synth_pairs: n must be positive");
  DT_CHECK(max_len >= 1, "synth_pairs: max_len must be at least 1");
  const int64_t specials = static_cast<int64_t>(kSpecialTokens.size());
  DT_CHECK(vocab > specials, "synth_pairs: vocab must exceed the ", specials, " special tokens");
  std::vector<std::string> words = kSpecialTokens;
  for (int64_t i = specials; i < vocab; ++i) words.push_back(std::string("w").append(std::to_string(i)));
  Generator g = Generator::derive(seed, 0, "synth.pairs");
  const int64_t src_l = max_len + 1, tgt_l = max_len + 2;
  std::vector<int32_t> src(static_cast<size_t>(n * src_l), 0), tgt(static_cast<size_t>(n * tgt_l), 0);
  std::vector<int32_t> src_len(static_cast<size_t>(n)), tgt_len(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t len = 1 + static_cast<int64_t>(g.next_below(static_cast<uint64_t>(max_len)));
    std::vector<int32_t> words_i(static_cast<size_t>(len));
    for (auto& t : words_i) t = static_cast<int32_t>(specials + static_cast<int64_t>(g.next_below(static_cast<uint64_t>(vocab - specials))));
    int32_t* s = src.data() + i * src_l;
    int32_t* t = tgt.data() + i * tgt_l;
    std::copy(words_i.begin(), words_i.end(), s);
    s[len] = 2;  // </s>
    t[0] = 1;    // <s>
    std::reverse_copy(words_i.begin(), words_i.end(), t + 1);
    t[len + 1] = 2;
    src_len[static_cast<size_t>(i)] = static_cast<int32_t>(len + 1);
    tgt_len[static_cast<size_t>(i)] = static_cast<int32_t>(len + 2);
  }
  io::H5File f = io::H5File::create(out);
  io::CreateOptions co{options.chunk_rows, options.gzip_level, false, options.checksum};
  f.create_dataset("/src", {n, src_l}, DType::I32, co);
  f.write_rows("/src", 0, Tensor::from_vector(src, {n, src_l}));
  f.create_dataset("/tgt", {n, tgt_l}, DType::I32, co);
  f.write_rows("/tgt", 0, Tensor::from_vector(tgt, {n, tgt_l}));
  f.create_dataset("/src_len", {n}, DType::I32, co);
  f.write_rows("/src_len", 0, Tensor::from_vector(src_len, {n}));
  f.create_dataset("/tgt_len", {n}, DType::I32, co);
  f.write_rows("/tgt_len", 0, Tensor::from_vector(tgt_len, {n}));
  f.write_strings("/src_vocab", words);
  f.write_strings("/tgt_vocab", words);
  f.set_attribute("/", "format", std::string("dtrain sequence-pair dataset v1 (synthetic: tgt reverses src)"));
  f.set_attribute("/", "tokens", std::string("words"));
  f.close();
  std::ostringstream os;
  os << "wrote " << out << ": " << n << " synthetic pairs (target = reversed source), up to " << max_len
     << " words, vocabulary " << vocab << ", seed " << seed;
  return os.str();
}

}  // namespace dtrain::data
