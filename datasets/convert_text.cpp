// Shared helpers of the text converters: see convert_text.h.
#include "datasets/convert_text.h"

#include <algorithm>

#include "core/tensor.h"
#include "datasets/schema.h"

namespace dtrain::data::detail {

int64_t utf8_chars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

Vocab build_vocab(const std::vector<std::vector<std::string>>& sentences, int64_t min_count) {
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& s : sentences) {
    for (const auto& w : s) counts[w]++;
  }
  std::vector<std::pair<std::string, int64_t>> sorted;
  for (auto& [w, c] : counts) {
    if (c >= min_count && std::find(kSpecialTokens.begin(), kSpecialTokens.end(), w) == kSpecialTokens.end()) {
      sorted.emplace_back(w, c);
    }
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  Vocab v;
  v.words = kSpecialTokens;
  for (auto& [w, c] : sorted) v.words.push_back(w);
  for (size_t i = 0; i < v.words.size(); ++i) v.ids[v.words[i]] = static_cast<int32_t>(i);
  return v;
}

void write_padded(io::H5File& f, const char* data, const char* len, const std::vector<std::vector<int32_t>>& seqs,
                  int64_t lmax, const io::CreateOptions& co) {
  const int64_t n = static_cast<int64_t>(seqs.size());
  std::vector<int32_t> flat(static_cast<size_t>(n * lmax), 0), lens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto& s = seqs[static_cast<size_t>(i)];
    std::copy(s.begin(), s.end(), flat.begin() + i * lmax);
    lens[static_cast<size_t>(i)] = static_cast<int32_t>(s.size());
  }
  f.create_dataset(data, {n, lmax}, DType::I32, co);
  f.write_rows(data, 0, Tensor::from_vector(flat, {n, lmax}));
  f.create_dataset(len, {n}, DType::I32, co);
  f.write_rows(len, 0, Tensor::from_vector(lens, {n}));
}

}  // namespace dtrain::data::detail
