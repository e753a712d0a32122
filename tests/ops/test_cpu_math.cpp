// The CPU kernels' scalar tanh (ops/cpu/math.h) against tanh computed in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "ops/cpu/math.h"

namespace {

using dtrain::ops::detail::tanh_fast;

// Distance in units in the last place of float between a and b.
double ulps(float a, float b) {
  const double ulp = std::nextafter(std::fabs(b), std::numeric_limits<float>::infinity()) - std::fabs(b);
  return std::fabs(static_cast<double>(a) - static_cast<double>(b)) / ulp;
}

TEST(CpuMath, FloatTanhIsWithinThreeUlpOfTheDoubleResultOverItsRange) {
  double worst = 0, worst_x = 0;
  for (int64_t i = -2'000'000; i <= 2'000'000; ++i) {
    const float x = static_cast<float>(i) * 1e-5f;  // [-20, 20] in steps of 1e-5
    const float want = static_cast<float>(std::tanh(static_cast<double>(x)));
    const double u = ulps(tanh_fast(x), want);
    if (u > worst) {
      worst = u;
      worst_x = x;
    }
  }
  std::printf("tanh_fast(float): worst %.2f ulp at x = %.5f\n", worst, worst_x);
  EXPECT_LE(worst, 3.0) << "at x = " << worst_x;
}

TEST(CpuMath, FloatTanhKeepsTheEdgeCases) {
  EXPECT_EQ(tanh_fast(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(tanh_fast(-0.0f)));
  EXPECT_EQ(tanh_fast(1e-30f), 1e-30f);  // tanh(x) = x below float resolution
  EXPECT_EQ(tanh_fast(100.0f), 1.0f);
  EXPECT_EQ(tanh_fast(-100.0f), -1.0f);
  EXPECT_EQ(tanh_fast(std::numeric_limits<float>::infinity()), 1.0f);
  EXPECT_TRUE(std::isnan(tanh_fast(std::numeric_limits<float>::quiet_NaN())));
  for (float x : {0.29999f, 0.3f, 0.30001f}) {  // both sides of the switch
    EXPECT_LE(ulps(tanh_fast(x), static_cast<float>(std::tanh(static_cast<double>(x)))), 3.0) << x;
  }
}

TEST(CpuMath, DoubleTanhIsTheLibraryOne) {
  for (double x : {-3.0, -0.1, 0.0, 0.2, 5.0}) EXPECT_EQ(tanh_fast(x), std::tanh(x));
}

}  // namespace
