#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator. The output for (key, counter) is a pure function, so any
// element of a random stream can be computed independently, on the CPU or on the GPU,
// and a stream's whole state is (key, counter): two 64-bit integers to checkpoint.
//
// Stream layout used by the fill kernels (ops/kernels.inc):
//   uniform: element i takes lane i % 4 of block (offset + i / 4)
//   normal:  element i takes lanes 2*(i % 2), 2*(i % 2)+1 of block (offset + i / 2)
//            (Box-Muller, cosine branch)
// so a fill of n elements consumes ceil(n/4) resp. ceil(n/2) counter blocks.
#include <cstdint>

#include "ops/bf16.h"  // DT_HD

namespace dtrain::ops::philox {

struct Block {
  uint32_t v[4];
};

DT_HD inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// One 128-bit block for a 64-bit key (the seed) and a 64-bit counter (the high half of the
// 128-bit counter is 0).
DT_HD inline Block generate(uint64_t key, uint64_t counter) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, hi0, lo0);
    mulhilo(kM1, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    uint32_t n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return Block{{c0, c1, c2, c3}};
}

// Uniform in (0, 1]: never 0, so log() in Box-Muller is finite.
DT_HD inline float to_unit_float(uint32_t x) { return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }
DT_HD inline double to_unit_double(uint32_t x) { return (static_cast<double>(x) + 1.0) * (1.0 / 4294967296.0); }

}  // namespace dtrain::ops::philox
