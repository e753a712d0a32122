#pragma once
// bfloat16 storage type: the top 16 bits of an IEEE float32. Conversions round to nearest
// even and keep NaN a NaN. Usable from host and device code.
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DT_HD __host__ __device__
#else
#define DT_HD
#endif

namespace dtrain::ops {

struct bf16 {
  uint16_t bits = 0;
};

DT_HD inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

DT_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

DT_HD inline bf16 float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};  // quiet NaN
  }
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>((u + rounding) >> 16)};
}

DT_HD inline float bf16_to_float(bf16 h) { return bits_float(static_cast<uint32_t>(h.bits) << 16); }

}  // namespace dtrain::ops
