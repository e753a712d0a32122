// Generator: reproducibility, exact save/restore, counter-offset accounting, derived
// streams and loose statistical sanity of the distributions.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/rng.h"

namespace dtrain::testing {
namespace {

std::vector<double> uniform(Generator& g, int64_t n, double lo = 0.0, double hi = 1.0) {
  Tensor t = Tensor::empty({n}, DType::F64);
  g.uniform_(t, lo, hi);
  return t.to_vector<double>();
}

std::vector<double> normal(Generator& g, int64_t n, double mean = 0.0, double stddev = 1.0) {
  Tensor t = Tensor::empty({n}, DType::F64);
  g.normal_(t, mean, stddev);
  return t.to_vector<double>();
}

TEST(Generator, SameSeedSameNumbers) {
  Generator a(1234), b(1234), c(1235);
  std::vector<double> ua = uniform(a, 37), ub = uniform(b, 37), uc = uniform(c, 37);
  EXPECT_EQ(ua, ub);
  EXPECT_NE(ua, uc);
  EXPECT_EQ(normal(a, 11), normal(b, 11));
  EXPECT_EQ(a.next_below(1000), b.next_below(1000));
  EXPECT_EQ(a.next_double(), b.next_double());
  EXPECT_EQ(a.state(), b.state());
  EXPECT_EQ(a.seed(), 1234u);
  // Consecutive fills continue the stream rather than repeating it.
  EXPECT_NE(uniform(a, 8), std::vector<double>(ua.begin(), ua.begin() + 8));
}

TEST(Generator, SaveAndRestoreReproducesTheContinuation) {
  Generator g(99);
  uniform(g, 10);
  normal(g, 3);
  Generator::State saved = g.state();
  std::vector<double> u1 = uniform(g, 25);
  std::vector<double> n1 = normal(g, 7);
  uint64_t k1 = g.next_below(17);
  double d1 = g.next_double();
  Generator::State after = g.state();

  g.set_state(saved);
  EXPECT_EQ(uniform(g, 25), u1);
  EXPECT_EQ(normal(g, 7), n1);
  EXPECT_EQ(g.next_below(17), k1);
  EXPECT_EQ(g.next_double(), d1);
  EXPECT_EQ(g.state(), after);

  // A fresh generator given the saved state continues the same way.
  Generator h(0);
  h.set_state(saved);
  EXPECT_EQ(uniform(h, 25), u1);
}

TEST(Generator, OffsetsAdvanceByConsumedBlocks) {
  Generator g(5);
  EXPECT_EQ(g.state().offset, 0u);
  const std::vector<std::pair<int64_t, uint64_t>> uniform_cases = {{1, 1}, {4, 1}, {5, 2}, {8, 2}, {9, 3}};
  for (auto [n, blocks] : uniform_cases) {
    uint64_t before = g.state().offset;
    uniform(g, n);
    EXPECT_EQ(g.state().offset - before, blocks) << "uniform_ of " << n;
  }
  const std::vector<std::pair<int64_t, uint64_t>> normal_cases = {{1, 1}, {2, 1}, {3, 2}, {7, 4}};
  for (auto [n, blocks] : normal_cases) {
    uint64_t before = g.state().offset;
    normal(g, n);
    EXPECT_EQ(g.state().offset - before, blocks) << "normal_ of " << n;
  }
  uint64_t before = g.state().offset;
  uniform(g, 0);
  EXPECT_EQ(g.state().offset, before) << "an empty fill consumes nothing";
  g.next_double();
  EXPECT_EQ(g.state().offset, before + 1);
  EXPECT_EQ(g.state().seed, 5u);
}

TEST(Generator, SplitFillsMatchOneFillAtBlockBoundaries) {
  // Fills whose sizes are multiples of the block width continue exactly where one big
  // fill would be: the stream is a function of (seed, offset) only.
  Generator a(7), b(7);
  std::vector<double> whole = uniform(a, 12);
  std::vector<double> part1 = uniform(b, 4), part2 = uniform(b, 8);
  part1.insert(part1.end(), part2.begin(), part2.end());
  EXPECT_EQ(part1, whole);

  Generator c(7), d(7);
  std::vector<double> nwhole = normal(c, 6);
  std::vector<double> n1 = normal(d, 2), n2 = normal(d, 4);
  n1.insert(n1.end(), n2.begin(), n2.end());
  EXPECT_EQ(n1, nwhole);

  // Starting at an offset reproduces the tail of the big fill.
  Generator e(7);
  e.set_state({7, 1});
  std::vector<double> tail = uniform(e, 8);
  EXPECT_EQ(tail, std::vector<double>(whole.begin() + 4, whole.end()));
}

TEST(Generator, UniformRespectsTheRange) {
  Generator g(3);
  for (double v : uniform(g, 10000, -2.0, 5.0)) {
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 5.0);
  }
  Tensor f = Tensor::empty({10000});
  g.uniform_(f, 0.25, 0.5);
  for (float v : f.to_vector<float>()) {
    ASSERT_GE(v, 0.25f);
    ASSERT_LT(v, 0.5f);
  }
  for (int i = 0; i < 10000; ++i) {
    double d = g.next_double();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
}

TEST(Generator, FillsRejectIntegerTensors) {
  Generator g(1);
  Tensor t = Tensor::empty({4}, DType::I64);
  EXPECT_THROW(g.uniform_(t), Error);
  EXPECT_THROW(g.normal_(t), Error);
}

TEST(Generator, DeriveSeparatesRanksAndPurposes) {
  Generator base = Generator::derive(42, 0, "init");
  EXPECT_EQ(Generator::derive(42, 0, "init").seed(), base.seed());
  EXPECT_NE(Generator::derive(42, 1, "init").seed(), base.seed());
  EXPECT_NE(Generator::derive(42, 0, "dropout").seed(), base.seed());
  EXPECT_NE(Generator::derive(43, 0, "init").seed(), base.seed());
  EXPECT_NE(Generator::derive(42, 0, "").seed(), base.seed());
  EXPECT_EQ(base.state().offset, 0u);

  Generator same = Generator::derive(42, 0, "init");
  Generator other_rank = Generator::derive(42, 1, "init");
  Generator other_purpose = Generator::derive(42, 0, "data");
  std::vector<double> u = uniform(base, 16);
  EXPECT_EQ(uniform(same, 16), u);
  EXPECT_NE(uniform(other_rank, 16), u);
  EXPECT_NE(uniform(other_purpose, 16), u);

  // Many ranks: all distinct seeds.
  std::vector<uint64_t> seeds;
  for (uint64_t r = 0; r < 64; ++r) seeds.push_back(Generator::derive(7, r, "data").seed());
  std::sort(seeds.begin(), seeds.end());
  EXPECT_EQ(std::adjacent_find(seeds.begin(), seeds.end()), seeds.end());
}

TEST(Generator, NextBelowIsInRangeAndRoughlyUniform) {
  Generator g(2024);
  constexpr int kN = 6, kDraws = 60000;
  std::vector<int> counts(kN, 0);
  for (int i = 0; i < kDraws; ++i) {
    uint64_t k = g.next_below(kN);
    ASSERT_LT(k, static_cast<uint64_t>(kN));
    ++counts[k];
  }
  // Chi-square with 5 degrees of freedom: P(X > 30) < 2e-5 for a uniform source.
  const double expected = static_cast<double>(kDraws) / kN;
  double chi2 = 0;
  for (int c : counts) chi2 += (c - expected) * (c - expected) / expected;
  EXPECT_LT(chi2, 30.0);
  for (int c : counts) EXPECT_GT(c, 0);

  EXPECT_EQ(g.next_below(1), 0u);
  EXPECT_THROW(g.next_below(0), ValueError);
  // Large n: values spread over the whole range.
  uint64_t big = uint64_t{1} << 62, max_seen = 0;
  for (int i = 0; i < 1000; ++i) max_seen = std::max(max_seen, g.next_below(big));
  EXPECT_GT(max_seen, big / 2);
}

TEST(Generator, NormalMomentsAndUniformMean) {
  Generator g(77);
  const int64_t n = 200000;
  for (auto [mu, sigma] : {std::pair{0.0, 1.0}, std::pair{2.0, 3.0}}) {
    std::vector<double> v = normal(g, n, mu, sigma);
    double sum = 0, sq = 0;
    int64_t beyond_2sigma = 0;
    for (double x : v) {
      ASSERT_TRUE(std::isfinite(x));
      sum += x;
      if (std::abs(x - mu) > 2 * sigma) ++beyond_2sigma;
    }
    double mean = sum / n;
    for (double x : v) sq += (x - mean) * (x - mean);
    double sd = std::sqrt(sq / (n - 1));
    // Standard error of the mean is sigma/sqrt(n) ~ 0.0022 sigma; allow ~5 of them.
    EXPECT_NEAR(mean, mu, 0.012 * sigma);
    EXPECT_NEAR(sd, sigma, 0.01 * sigma);
    // About 4.55% of a normal lies beyond 2 sigma.
    EXPECT_NEAR(static_cast<double>(beyond_2sigma) / n, 0.0455, 0.004);
  }
  std::vector<double> u = uniform(g, n);
  double s = 0;
  for (double x : u) s += x;
  EXPECT_NEAR(s / n, 0.5, 0.004);  // sd of the mean ~ 0.00065
}

}  // namespace
}  // namespace dtrain::testing
