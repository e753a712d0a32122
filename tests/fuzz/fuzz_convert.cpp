// Fuzz target: the converters' parsers (datasets/convert.h) on arbitrary input files: the
// IDX pair (images and labels, gzip-compressed or not), a CIFAR binary batch, a
// tab-separated phrase-pair file, a FreeDict index, and the tokenizers on their own. The
// first byte picks the converter; for IDX the next byte says where the images end.
#include <filesystem>

#include "datasets/convert.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (dtrain::fuzz::empty_input_among_seeds(size)) return 0;
  namespace fs = std::filesystem;
  namespace D = dtrain::data;
  if (size < 2) return 0;
  static const std::string dir = [] {
    std::string d = dtrain::fuzz::scratch_path("convert");
    fs::create_directories(d);
    return d;
  }();
  const uint8_t which = data[0] % 5;
  const uint8_t* body = data + 1;
  const size_t n = size - 1;
  D::WriteOptions write;
  write.chunk_rows = 4;
  dtrain::fuzz::refuse_cleanly([&] {
    switch (which) {
      case 0: {  // IDX images + labels: a byte says where the images end, then both files
        if (n < 1) return;
        const uint8_t* files = body + 1;
        const size_t m = n - 1, cut = static_cast<size_t>(body[0]) * m / 256;
        dtrain::fuzz::write_file(dir + "/images.idx", files, cut);
        dtrain::fuzz::write_file(dir + "/labels.idx", files + cut, m - cut);
        D::convert_idx(dir + "/images.idx", dir + "/labels.idx", dir + "/out.h5", {}, write);
        break;
      }
      case 1:  // CIFAR-10 binary batch
        dtrain::fuzz::write_file(dir + "/batch.bin", body, n);
        D::convert_cifar({dir + "/batch.bin"}, dir + "/out.h5", {}, write);
        break;
      case 2: {  // phrase pairs, words or characters
        dtrain::fuzz::write_file(dir + "/pairs.tsv", body, n);
        D::PairsOptions o;
        o.tokens = n % 2 ? "chars" : "words";
        o.test_fraction = 0.5;
        D::convert_pairs(dir + "/pairs.tsv", dir + "/train.h5", dir + "/test.h5", o, write);
        break;
      }
      case 3: {  // a FreeDict index, beside a fixed valid one (identification needs two languages)
        fs::create_directories(dir + "/dict");
        dtrain::fuzz::write_file(dir + "/dict/freedict-deu-eng.index", body, n);
        static const std::string fra = "chat\tA\tB\nchien\tC\tD\nmaison\tE\tF\npomme\tG\tH\n";
        dtrain::fuzz::write_file(dir + "/dict/freedict-fra-eng.index", reinterpret_cast<const uint8_t*>(fra.data()),
                                 fra.size());
        D::WordsOptions o;
        o.languages = {"deu", "fra"};
        o.dict_dir = dir + "/dict";
        o.test_fraction = 0.5;
        D::convert_words(dir + "/train.h5", dir + "/test.h5", o, write);
        break;
      }
      default: {  // the tokenizers and the lower-casing on arbitrary text
        const std::string text(reinterpret_cast<const char*>(body), n);
        D::tokenize(text);
        D::tokenize_chars(text);
        D::lowercase_utf8(text);
        break;
      }
    }
  });
  return 0;
}
