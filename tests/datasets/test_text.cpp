// Text utilities and corpus BLEU, against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "datasets/schema.h"
#include "datasets/text.h"

namespace dtrain::data {
namespace {

BleuStats corpus(const std::vector<std::pair<std::string, std::string>>& pairs) {
  BleuStats s;
  for (const auto& [hyp, ref] : pairs) s.add(split_words(hyp), split_words(ref));
  return s;
}

// Two sentences with every precision non-zero and a hypothesis shorter than its reference.
const std::vector<std::pair<std::string, std::string>> kWorked = {
    {"the quick brown fox jumps over the dog", "the quick brown fox jumped over the lazy dog"},
    {"it is raining today", "it is raining hard today"}};

TEST(Text, SplitWords) {
  EXPECT_EQ(split_words("  a  b\tc\n"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_words(" \t ").empty());
  EXPECT_EQ(split_words("grüße,  köln"), (std::vector<std::string>{"grüße,", "köln"}));
}

TEST(Text, DetokenizeWordsAndChars) {
  std::vector<std::string> words = kSpecialTokens;
  for (const char* w : {"hello", "world"}) words.emplace_back(w);  // ids 4, 5
  // <s> hello <unk> <pad> world </s> hello: stops at </s>, skips <s> and <pad>.
  EXPECT_EQ(detokenize({1, 4, 3, 0, 5, 2, 4}, words, "words"), "hello <unk> world");
  EXPECT_EQ(detokenize({4, 5}, words, "words"), "hello world");  // no </s>: all of it
  EXPECT_EQ(detokenize({2, 4}, words, "words"), "");

  std::vector<std::string> chars = kSpecialTokens;
  for (const char* c : {" ", "a", "ä", "b"}) chars.emplace_back(c);  // ids 4..7
  EXPECT_EQ(detokenize({1, 6, 5, 4, 7, 3, 2, 5, 5}, chars, "chars"), "äa b<unk>");
  EXPECT_EQ(detokenize({5, 0, 0}, chars, "chars"), "a");

  try {
    detokenize({4, 9, 2}, words, "words");
    ADD_FAILURE() << "no error for an id outside the vocabulary";
  } catch (const ValueError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("token id 9"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[0, 6)"), std::string::npos) << msg;
  }
  EXPECT_THROW(detokenize({-1}, words, "words"), ValueError);
  EXPECT_THROW(detokenize({4}, words, "bytes"), ValueError);
}

TEST(Bleu, IdenticalCorpusIsOne) {
  BleuStats s = corpus({{"a b c d e", "a b c d e"}, {"the cat sat on the mat", "the cat sat on the mat"}});
  EXPECT_DOUBLE_EQ(s.score(), 1.0);
  for (int n = 1; n <= 4; ++n) EXPECT_DOUBLE_EQ(s.precision(n), 1.0);
  EXPECT_EQ(s.hyp_len, 11);
  EXPECT_EQ(s.ref_len, 11);
  EXPECT_DOUBLE_EQ(s.brevity_penalty(), 1.0);
}

TEST(Bleu, WorkedExample) {
  // Sentence 1: hyp "the quick brown fox jumps over the dog" (8 words),
  //             ref "the quick brown fox jumped over the lazy dog" (9 words).
  //   1-grams: the x2, quick, brown, fox, over, dog match; jumps does not  -> 7 / 8
  //   2-grams: the quick, quick brown, brown fox, over the (of 7)          -> 4 / 7
  //   3-grams: the quick brown, quick brown fox (of 6)                     -> 2 / 6
  //   4-grams: the quick brown fox (of 5)                                  -> 1 / 5
  // Sentence 2: hyp "it is raining today" (4), ref "it is raining hard today" (5).
  //   1-grams 4 / 4; 2-grams it is, is raining -> 2 / 3; 3-grams it is raining -> 1 / 2;
  //   4-grams 0 / 1.
  // Corpus: p1 = 11/12, p2 = 6/10, p3 = 3/8, p4 = 1/6; c = 12, r = 14.
  //   geometric mean = (11*6*3*1 / (12*10*8*6))^(1/4) = (198/5760)^(1/4) ~ 0.430587
  //   brevity penalty = exp(1 - 14/12) = exp(-1/6) ~ 0.846482
  //   BLEU ~ 0.364484
  BleuStats s = corpus(kWorked);
  EXPECT_EQ(std::vector<int64_t>(s.matches, s.matches + 4), (std::vector<int64_t>{11, 6, 3, 1}));
  EXPECT_EQ(std::vector<int64_t>(s.totals, s.totals + 4), (std::vector<int64_t>{12, 10, 8, 6}));
  EXPECT_EQ(s.hyp_len, 12);
  EXPECT_EQ(s.ref_len, 14);
  EXPECT_DOUBLE_EQ(s.precision(1), 11.0 / 12.0);
  EXPECT_DOUBLE_EQ(s.precision(2), 0.6);
  EXPECT_DOUBLE_EQ(s.precision(3), 0.375);
  EXPECT_DOUBLE_EQ(s.precision(4), 1.0 / 6.0);
  EXPECT_DOUBLE_EQ(s.brevity_penalty(), std::exp(-1.0 / 6.0));
  EXPECT_NEAR(s.score(), std::exp(-1.0 / 6.0) * std::pow(198.0 / 5760.0, 0.25), 1e-12);
  EXPECT_NEAR(s.score(), 0.364484, 1e-6);
  EXPECT_THROW(s.precision(0), ValueError);
  EXPECT_THROW(s.precision(5), ValueError);
}

TEST(Bleu, ClippedCounts) {
  // "the" occurs once in the reference, so only one of the four hypothesis "the"s counts.
  BleuStats s = corpus({{"the the the the", "the cat"}});
  EXPECT_EQ(s.matches[0], 1);
  EXPECT_EQ(s.totals[0], 4);
  EXPECT_DOUBLE_EQ(s.precision(1), 0.25);
  EXPECT_EQ(s.matches[1], 0);  // "the the" x3 against "the cat"
  EXPECT_EQ(s.totals[1], 3);
  EXPECT_DOUBLE_EQ(s.score(), 0.0);
}

TEST(Bleu, BrevityPenalty) {
  // Every n-gram of the 6-word hypothesis is in the 8-word reference: all precisions 1,
  // BLEU = exp(1 - 8/6) = exp(-1/3).
  BleuStats s = corpus({{"a b c d e f", "a b c d e f g h"}});
  for (int n = 1; n <= 4; ++n) EXPECT_DOUBLE_EQ(s.precision(n), 1.0);
  EXPECT_DOUBLE_EQ(s.score(), std::exp(-1.0 / 3.0));
  // A longer hypothesis is not penalized for length (only through its precisions):
  // p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2, product 1/5.
  BleuStats longer = corpus({{"a b c d x", "a b c d"}});
  EXPECT_DOUBLE_EQ(longer.brevity_penalty(), 1.0);
  EXPECT_NEAR(longer.score(), std::pow(0.2, 0.25), 1e-12);
}

TEST(Bleu, MergeOfHalvesEqualsWholeAndVectorRoundTrip) {
  BleuStats a = corpus({kWorked[0]}), b = corpus({kWorked[1]}), whole = corpus(kWorked);
  BleuStats merged = a;
  merged.merge(b);
  EXPECT_EQ(merged.to_vector(), whole.to_vector());
  EXPECT_DOUBLE_EQ(merged.score(), whole.score());
  // Sum of the two vectors (what an all-reduce does) scores the whole corpus.
  std::vector<double> va = a.to_vector(), vb = b.to_vector();
  ASSERT_EQ(va.size(), 10u);
  for (size_t i = 0; i < va.size(); ++i) va[i] += vb[i];
  BleuStats summed = BleuStats::from_vector(va);
  EXPECT_EQ(summed.to_vector(), whole.to_vector());
  EXPECT_DOUBLE_EQ(summed.score(), whole.score());
  EXPECT_THROW(BleuStats::from_vector({1, 2, 3}), ValueError);
  std::vector<double> bad = whole.to_vector();
  bad[3] = 0.5;
  EXPECT_THROW(BleuStats::from_vector(bad), ValueError);
  bad[3] = -1;
  EXPECT_THROW(BleuStats::from_vector(bad), ValueError);
}

TEST(Bleu, ZeroFourGramMatchesAndEmptyCorpus) {
  // 1-grams 5/6, 2-grams 3/5, 3-grams 1/4 ("on the mat"), but no 4-gram in common.
  BleuStats s = corpus({{"the cat sat on the mat", "the cat is on the mat"}});
  EXPECT_DOUBLE_EQ(s.precision(1), 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(s.precision(2), 0.6);
  EXPECT_DOUBLE_EQ(s.precision(3), 0.25);
  EXPECT_EQ(s.matches[3], 0);
  EXPECT_EQ(s.totals[3], 3);
  EXPECT_DOUBLE_EQ(s.score(), 0.0);
  // Hypotheses under 4 words have no 4-grams at all.
  EXPECT_DOUBLE_EQ(corpus({{"a b c", "a b c"}}).score(), 0.0);
  BleuStats empty;
  EXPECT_DOUBLE_EQ(empty.score(), 0.0);
  EXPECT_DOUBLE_EQ(corpus({{"", "a b c d"}}).score(), 0.0);
}

}  // namespace
}  // namespace dtrain::data
