#pragma once
// Text from token ids, and corpus BLEU for evaluating translations.
//
// BleuStats is corpus BLEU-4 (Papineni et al. 2002) with one reference per hypothesis:
// clipped n-gram matches and hypothesis n-gram totals (n = 1..4) are summed over the
// corpus, and the score is the geometric mean of the four precisions times the brevity
// penalty exp(1 - r/c) when c < r (c: total hypothesis length, r: total reference
// length; 1 otherwise). There is no smoothing: the score is 0 when any precision has no
// match (in particular when no hypothesis has 4 words), and 0 for an empty corpus. The
// counts are integers; to_vector / from_vector carry them as 10 doubles so that ranks
// can all-reduce them with Sum and score the whole corpus.
#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::data {

// The text of one sequence of ids: stops at the first </s> (id 2), skips <pad> (0) and
// <s> (1), writes <unk> (3) as "<unk>". `tokens` "words" joins tokens with single spaces,
// "chars" concatenates them. Throws ValueError for an id outside the vocabulary or an
// unknown token mode.
std::string detokenize(const std::vector<int64_t>& ids, const std::vector<std::string>& vocab,
                       const std::string& tokens);

// The whitespace-separated words of a text (no empty words).
std::vector<std::string> split_words(const std::string& text);

struct BleuStats {
  int64_t matches[4] = {0, 0, 0, 0};  // clipped n-gram matches, n = 1..4
  int64_t totals[4] = {0, 0, 0, 0};   // hypothesis n-grams, n = 1..4
  int64_t hyp_len = 0, ref_len = 0;   // words

  // Adds one hypothesis and its reference.
  void add(const std::vector<std::string>& hyp, const std::vector<std::string>& ref);
  void merge(const BleuStats& other);
  // matches[0..3], totals[0..3], hyp_len, ref_len.
  std::vector<double> to_vector() const;
  // The inverse of to_vector (e.g. after a Sum all-reduce); ValueError unless it holds 10
  // non-negative whole numbers.
  static BleuStats from_vector(const std::vector<double>& v);
  // The corpus n-gram precision matches/totals for n in 1..4 (0 when there are no
  // n-grams); ValueError for another n.
  double precision(int n) const;
  // exp(1 - r/c) when c < r, else 1 (0 when c = 0).
  double brevity_penalty() const;
  // BLEU-4 in [0, 1].
  double score() const;
};

}  // namespace dtrain::data
