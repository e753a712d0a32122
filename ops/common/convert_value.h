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

// The instantiated pairs: every S != D of float, double, bf16, int32_t, int64_t, uint8_t.
// X(S, D) is called once per pair.
#define DT_CONVERT_PAIRS(X)                                                                        \
  X(float, double) X(float, ::dtrain::ops::bf16) X(float, int32_t) X(float, int64_t) X(float, uint8_t) \
  X(double, float) X(double, ::dtrain::ops::bf16) X(double, int32_t) X(double, int64_t)                \
  X(double, uint8_t) X(::dtrain::ops::bf16, float) X(::dtrain::ops::bf16, double)                      \
  X(::dtrain::ops::bf16, int32_t) X(::dtrain::ops::bf16, int64_t) X(::dtrain::ops::bf16, uint8_t)      \
  X(int32_t, float) X(int32_t, double) X(int32_t, ::dtrain::ops::bf16) X(int32_t, int64_t)             \
  X(int32_t, uint8_t) X(int64_t, float) X(int64_t, double) X(int64_t, ::dtrain::ops::bf16)             \
  X(int64_t, int32_t) X(int64_t, uint8_t) X(uint8_t, float) X(uint8_t, double)                         \
  X(uint8_t, ::dtrain::ops::bf16) X(uint8_t, int32_t) X(uint8_t, int64_t)
