// Text utilities and corpus BLEU: see text.h.
#include "datasets/text.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"

namespace dtrain::data {

std::string detokenize(const std::vector<int64_t>& ids, const std::vector<std::string>& vocab,
                       const std::string& tokens) {
  DT_CHECK(tokens == "words" || tokens == "chars", "detokenize: tokens '", tokens,
           "' is not a token mode; choose 'words' or 'chars'");
  const bool words = tokens == "words";
  std::string out;
  bool first = true;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    DT_CHECK(id >= 0 && id < static_cast<int64_t>(vocab.size()), "detokenize: token id ", id, " at position ", i,
             " is outside the vocabulary [0, ", vocab.size(), "); are the ids from another vocabulary?");
    if (id == 2) break;             // </s>
    if (id == 0 || id == 1) continue;  // <pad>, <s>
    if (words && !first) out += ' ';
    out += id == 3 ? std::string("<unk>") : vocab[static_cast<size_t>(id)];
    first = false;
  }
  return out;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

namespace {

using NgramCounts = std::map<std::vector<std::string>, int64_t>;

NgramCounts ngrams(const std::vector<std::string>& words, size_t n) {
  NgramCounts counts;
  for (size_t i = 0; i + n <= words.size(); ++i) {
    counts[std::vector<std::string>(words.begin() + static_cast<std::ptrdiff_t>(i),
                                    words.begin() + static_cast<std::ptrdiff_t>(i + n))]++;
  }
  return counts;
}

}  // namespace

void BleuStats::add(const std::vector<std::string>& hyp, const std::vector<std::string>& ref) {
  for (size_t n = 1; n <= 4; ++n) {
    NgramCounts h = ngrams(hyp, n), r = ngrams(ref, n);
    for (const auto& [gram, count] : h) {
      auto it = r.find(gram);
      if (it != r.end()) matches[n - 1] += std::min(count, it->second);  // clipped by the reference count
    }
    if (hyp.size() >= n) totals[n - 1] += static_cast<int64_t>(hyp.size() - n + 1);
  }
  hyp_len += static_cast<int64_t>(hyp.size());
  ref_len += static_cast<int64_t>(ref.size());
}

void BleuStats::merge(const BleuStats& other) {
  for (int n = 0; n < 4; ++n) {
    matches[n] += other.matches[n];
    totals[n] += other.totals[n];
  }
  hyp_len += other.hyp_len;
  ref_len += other.ref_len;
}

std::vector<double> BleuStats::to_vector() const {
  std::vector<double> v;
  for (int64_t m : matches) v.push_back(static_cast<double>(m));
  for (int64_t t : totals) v.push_back(static_cast<double>(t));
  v.push_back(static_cast<double>(hyp_len));
  v.push_back(static_cast<double>(ref_len));
  return v;
}

BleuStats BleuStats::from_vector(const std::vector<double>& v) {
  DT_CHECK(v.size() == 10, "BleuStats::from_vector: expected 10 counts (4 matches, 4 totals, hypothesis and ",
           "reference length), got ", v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    DT_CHECK(v[i] >= 0 && v[i] == std::floor(v[i]) && v[i] < 9.0e15, "BleuStats::from_vector: count ", i, " is ",
             v[i], ", not a non-negative whole number");
  }
  BleuStats s;
  for (int n = 0; n < 4; ++n) {
    s.matches[n] = static_cast<int64_t>(v[static_cast<size_t>(n)]);
    s.totals[n] = static_cast<int64_t>(v[static_cast<size_t>(n + 4)]);
  }
  s.hyp_len = static_cast<int64_t>(v[8]);
  s.ref_len = static_cast<int64_t>(v[9]);
  return s;
}

double BleuStats::precision(int n) const {
  DT_CHECK(n >= 1 && n <= 4, "BleuStats::precision: n is ", n, "; BLEU-4 has precisions for n = 1..4");
  const int64_t t = totals[n - 1];
  return t > 0 ? static_cast<double>(matches[n - 1]) / static_cast<double>(t) : 0.0;
}

double BleuStats::brevity_penalty() const {
  if (hyp_len == 0) return 0.0;
  if (hyp_len >= ref_len) return 1.0;
  return std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(hyp_len));
}

double BleuStats::score() const {
  double log_sum = 0;
  for (int n = 1; n <= 4; ++n) {
    if (matches[n - 1] == 0) return 0.0;  // no smoothing: one empty precision zeroes the score
    log_sum += std::log(precision(n));
  }
  return brevity_penalty() * std::exp(log_sum / 4.0);
}

}  // namespace dtrain::data
