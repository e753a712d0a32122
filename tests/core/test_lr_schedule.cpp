// Learning-rate schedules: values at the boundaries of each phase and argument checks.
#include <cmath>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/optim/lr_schedule.h"

namespace dtrain::testing {
namespace {

using optim::ConstantLr;
using optim::CosineWarmupLr;
using optim::StepLr;

TEST(ConstantLr, SameValueAtEveryStep) {
  ConstantLr s(0.125);
  for (int64_t step : {0, 1, 17, 1000000}) EXPECT_DOUBLE_EQ(s.lr_at(step), 0.125) << "step " << step;
  EXPECT_NE(s.describe().find("0.125"), std::string::npos) << s.describe();
  EXPECT_THROW(ConstantLr(-0.1), ValueError);
  EXPECT_NO_THROW(ConstantLr(0.0));
}

TEST(StepLr, DecaysByGammaEveryStepSize) {
  const double lr = 0.2, gamma = 0.5;
  const int64_t k = 10;
  StepLr s(lr, k, gamma);
  EXPECT_DOUBLE_EQ(s.lr_at(0), lr);
  EXPECT_DOUBLE_EQ(s.lr_at(k - 1), lr);
  EXPECT_DOUBLE_EQ(s.lr_at(k), lr * gamma);
  EXPECT_DOUBLE_EQ(s.lr_at(2 * k - 1), lr * gamma);
  EXPECT_DOUBLE_EQ(s.lr_at(3 * k), lr * gamma * gamma * gamma);
  EXPECT_DOUBLE_EQ(s.lr_at(3 * k + k / 2), lr * gamma * gamma * gamma);
}

TEST(StepLr, InvalidArgumentsThrow) {
  EXPECT_THROW(StepLr(-0.1, 10, 0.5), ValueError);
  EXPECT_THROW(StepLr(0.1, 0, 0.5), ValueError);
  EXPECT_THROW(StepLr(0.1, -3, 0.5), ValueError);
  EXPECT_THROW(StepLr(0.1, 10, 0.0), ValueError);
  EXPECT_THROW(StepLr(0.1, 10, -0.5), ValueError);
}

TEST(CosineWarmupLr, LinearWarmup) {
  const double lr = 0.4;
  const int64_t warmup = 8, total = 108;
  CosineWarmupLr s(lr, warmup, total, 0.01);
  for (int64_t step = 0; step < warmup; ++step) {
    EXPECT_DOUBLE_EQ(s.lr_at(step), lr * static_cast<double>(step + 1) / static_cast<double>(warmup))
        << "step " << step;
  }
  // The last warm-up step reaches lr, and so does the first cosine step.
  EXPECT_DOUBLE_EQ(s.lr_at(warmup - 1), lr);
  EXPECT_DOUBLE_EQ(s.lr_at(warmup), lr);
}

TEST(CosineWarmupLr, CosinePhaseEndpointsAndMidpoint) {
  const double lr = 0.4, min_lr = 0.04;
  const int64_t warmup = 8, total = 108;  // cosine over 100 steps
  CosineWarmupLr s(lr, warmup, total, min_lr);
  EXPECT_NEAR(s.lr_at(warmup + 50), (lr + min_lr) / 2, 1e-15);
  // A quarter of the way: min + (lr - min) * (1 + cos(pi/4)) / 2.
  EXPECT_NEAR(s.lr_at(warmup + 25), min_lr + (lr - min_lr) * (1 + std::sqrt(0.5)) / 2, 1e-15);
  EXPECT_NEAR(s.lr_at(total), min_lr, 1e-15);
  EXPECT_DOUBLE_EQ(s.lr_at(total + 1), min_lr);
  EXPECT_DOUBLE_EQ(s.lr_at(total * 10), min_lr);
}

TEST(CosineWarmupLr, MonotoneNonIncreasingAfterWarmup) {
  const double lr = 1.0, min_lr = 0.1;
  const int64_t warmup = 5, total = 77;
  CosineWarmupLr s(lr, warmup, total, min_lr);
  double prev = s.lr_at(warmup);
  int strict_decreases = 0;
  for (int64_t step = warmup + 1; step <= total + 20; ++step) {
    double cur = s.lr_at(step);
    EXPECT_LE(cur, prev) << "step " << step;
    EXPECT_GE(cur, min_lr - 1e-15) << "step " << step;
    if (cur < prev) ++strict_decreases;
    prev = cur;
  }
  EXPECT_EQ(strict_decreases, total - warmup) << "must decrease at every cosine step";
}

TEST(CosineWarmupLr, NoWarmupStartsAtLrAndDefaultMinIsZero) {
  CosineWarmupLr s(0.3, 0, 10);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.3);
  EXPECT_NEAR(s.lr_at(5), 0.15, 1e-15);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 0.0);
}

TEST(CosineWarmupLr, InvalidArgumentsThrow) {
  EXPECT_THROW(CosineWarmupLr(0.1, -1, 10), ValueError);
  EXPECT_THROW(CosineWarmupLr(0.1, 10, 10), ValueError);  // total must exceed warmup
  EXPECT_THROW(CosineWarmupLr(0.1, 20, 10), ValueError);
  EXPECT_THROW(CosineWarmupLr(0.1, 0, 10, -0.01), ValueError);
  EXPECT_THROW(CosineWarmupLr(0.1, 0, 10, 0.2), ValueError);  // min_lr above lr
  EXPECT_NO_THROW(CosineWarmupLr(0.1, 0, 10, 0.1));
}

}  // namespace
}  // namespace dtrain::testing
