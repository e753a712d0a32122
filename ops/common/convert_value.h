#pragma once
// One element of convert<S, D>, shared by ops/cpu/convert.cpp and ops/cuda/convert.cu.
// bf16 goes through float (float_to_bf16 / bf16_to_float, round to nearest even, NaN kept).
// Floating -> integer truncates toward zero and saturates: a value below D's range gives
// D's lowest value, above it D's highest, and NaN gives 0. (A plain static_cast of a value
// outside the range is undefined behaviour in C++, and the two twins would differ on it:
// x86 wraps float -> uint8 through a 32-bit integer, -1.0 -> 255, while a GPU's
// conversion saturates, -1.0 -> 0.) Integer -> integer keeps the low bits (modular, as
// C++20 defines it), and everything else is static_cast.
#include <limits>
#include <type_traits>

#include "ops/bf16.h"

namespace dtrain::ops::detail {

template <typename S, typename D>
DT_HD inline D convert_value(S x) {
  if constexpr (std::is_same_v<S, bf16>) {
    return convert_value<float, D>(bf16_to_float(x));
  } else if constexpr (std::is_same_v<D, bf16>) {
    return float_to_bf16(static_cast<float>(x));
  } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D> && !std::is_same_v<D, bool>) {
    if (!(x == x)) return D(0);  // NaN
    // D's bounds as S: exact for the lowest (0 or -2^k); the highest rounds up to 2^k for
    // the wide types, so ">=" catches every value that does not fit.
    if (x <= static_cast<S>(std::numeric_limits<D>::lowest())) return std::numeric_limits<D>::lowest();
    if (x >= static_cast<S>(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
    return static_cast<D>(x);
  } else {
    return static_cast<D>(x);
  }
}

}  // namespace dtrain::ops::detail
