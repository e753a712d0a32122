#pragma once
// Scalar math shared by the CPU kernels.
#include <cmath>

namespace dtrain::ops::detail {

// tanh. For float, glibc's tanhf goes through expm1f and dominated the LSTM kernels'
// time (profiled: 23% of a seq2seq training step), so floats take a cheaper route with
// about the same accuracy: an odd Taylor polynomial near 0 (|x| < 0.3, truncation error
// below 2e-8 relative), and 1 - 2 / (exp(2|x|) + 1) with the sign restored elsewhere
// (within 3 ulp of tanh(x) rounded from double; tests/ops/test_cpu_math.cpp measures it
// over [-20, 20]). Doubles, which the gradient checks use, keep std::tanh.
inline float tanh_fast(float x) {
  const float a = std::fabs(x);
  if (a < 0.3f) {
    const float x2 = x * x;
    // x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835
    return x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315 + x2 * (62.0f / 2835)))));
  }
  const float t = 1.0f - 2.0f / (std::exp(2.0f * a) + 1.0f);
  return std::copysign(t, x);
}
inline double tanh_fast(double x) { return std::tanh(x); }

}  // namespace dtrain::ops::detail
