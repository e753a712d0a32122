#pragma once
// One element of convert<S, D>, shared by ops/cpu/convert.cpp and ops/cuda/convert.cu.
// bf16 goes through float (float_to_bf16 / bf16_to_float, round to nearest even, NaN kept);
// everything else is static_cast, so floating -> integer truncates toward zero and a value
// outside D's range (or a NaN) has no defined result.
#include <type_traits>

#include "ops/bf16.h"

namespace dtrain::ops::detail {

template <typename S, typename D>
DT_HD inline D convert_value(S x) {
  if constexpr (std::is_same_v<S, bf16>) {
    return convert_value<float, D>(bf16_to_float(x));
  } else if constexpr (std::is_same_v<D, bf16>) {
    return float_to_bf16(static_cast<float>(x));
  } else {
    return static_cast<D>(x);
  }
}

}  // namespace dtrain::ops::detail

