#pragma once
// The element formulas of the Philox fills, shared by ops/cpu/random.cpp and
// ops/cuda/random.cu so both backends compute the same numbers. Stream layout: see
// ops/philox.h. The arithmetic runs in double without FMA contraction, so uniform fills
// agree bit for bit; normal fills may differ in the last ulp of the double log/cos (CUDA's
// are within 1-2 ulp of glibc's), which rarely survives the rounding to float.
#include <cmath>
#include <cstdint>

#include "ops/philox.h"

namespace dtrain::ops::philox {

// a * b + c rounded twice, never fused: nvcc contracts to FMA by default, the host
// compiler (ISO C++ mode) does not, and the fills must agree bit for bit.
DT_HD inline double mul_add_rn(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(__dmul_rn(a, b), c);
#else
  return a * b + c;
#endif
}

// A uniform in (0, 1] of T's resolution: to_unit_float for float, to_unit_double else.
template <typename T>
DT_HD inline double unit(uint32_t lane) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return static_cast<double>(to_unit_float(lane));
  } else {
    return to_unit_double(lane);
  }
}

// low + (high - low) * r with r = 1 - unit in [0, 1): half-open [low, high). A value
// that rounds up to high is pulled back below it.
template <typename T>
DT_HD inline T uniform_value(uint32_t lane, T low, T high) {
  const double r = 1.0 - unit<T>(lane);  // exact
  const double lo = static_cast<double>(low);
  T value = static_cast<T>(mul_add_rn(static_cast<double>(high) - lo, r, lo));
  if (value >= high && high > low) {
    if constexpr (sizeof(T) == sizeof(float)) {
      value = ::nextafterf(high, low);
    } else {
      value = ::nextafter(high, low);
    }
  }
  return value;
}

// Box-Muller, cosine branch: mean + stddev * sqrt(-2 ln u1) cos(2 pi u2), in double.
template <typename T>
DT_HD inline T normal_value(uint32_t lane1, uint32_t lane2, T mean, T stddev) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const double u1 = unit<T>(lane1);
  const double u2 = unit<T>(lane2);
  const double z = ::sqrt(-2.0 * ::log(u1)) * ::cos(kTwoPi * u2);
  return static_cast<T>(mul_add_rn(static_cast<double>(stddev), z, static_cast<double>(mean)));
}

}  // namespace dtrain::ops::philox
