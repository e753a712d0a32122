#pragma once
// What the text converters share (convert_pairs.cpp: sentence pairs; convert_words.cpp:
// dictionary headwords): UTF-8 helpers, the vocabulary rule, the seeded shuffle and the
// padded int32 sequence datasets they write. Internal to dtrain_datasets.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/io/h5.h"
#include "core/rng.h"

namespace dtrain::data::detail {

// Number of UTF-8 code points (continuation bytes not counted).
int64_t utf8_chars(const std::string& s);
// Without leading and trailing ASCII whitespace.
std::string trim(const std::string& s);

struct Vocab {
  std::vector<std::string> words;
  std::unordered_map<std::string, int32_t> ids;
};
// kSpecialTokens first (ids 0-3), then tokens seen at least min_count times, by descending
// count, ties by byte order.
Vocab build_vocab(const std::vector<std::vector<std::string>>& sentences, int64_t min_count);

// Fisher-Yates with the stream g (the converters' seeded splits).
template <class T>
void shuffle(std::vector<T>& v, Generator& g) {
  for (size_t i = v.size(); i-- > 1;) std::swap(v[i], v[static_cast<size_t>(g.next_below(i + 1))]);
}

// Writes `data` i32 (N, lmax), each sequence padded with <pad> (0), and `len` i32 (N,).
void write_padded(io::H5File& f, const char* data, const char* len, const std::vector<std::vector<int32_t>>& seqs,
                  int64_t lmax, const io::CreateOptions& co);

}  // namespace dtrain::data::detail
