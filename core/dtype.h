#pragma once
// Element types of a Tensor. Compute kernels exist for F32 and F64 (F64 is what the
// gradient checker runs in); BF16, I32, I64 and U8 are storage types (labels, token ids,
// images, reduced-precision copies) with conversions to and from the float types.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ops/bf16.h"

namespace dtrain {

enum class DType : uint8_t { F32, F64, BF16, I32, I64, U8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

inline std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::BF16; }

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<ops::bf16> { static constexpr DType value = DType::BF16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::U8; };
template <typename T> inline constexpr DType dtype_of = DTypeOf<T>::value;

}  // namespace dtrain
