// Philox4x32-10 fills on the CPU. Element i of a uniform fill takes lane i % 4 of counter
// block offset + i / 4; element i of a normal fill takes lanes 2 (i % 2) and 2 (i % 2) + 1
// of block offset + i / 2 (ops/philox.h). The formulas live in ops/common/random_math.h,
// shared with the CUDA twin.                                                  out: (n)
#include <cmath>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/common/random_math.h"
#include "ops/cpu.h"

namespace dtrain::ops::cpu {

using detail::check_ptr;
using detail::check_size;

template <typename T>
void philox_uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, T low, T high, Exec) {
  check_size("cpu::philox_uniform", "n", n);
  check_ptr("cpu::philox_uniform", "out", out, n);
  for (int64_t i = 0; i < n; i += 4) {
    const philox::Block blk = philox::generate(seed, offset + static_cast<uint64_t>(i / 4));
    for (int64_t lane = 0; lane < 4 && i + lane < n; ++lane) {
      out[i + lane] = philox::uniform_value<T>(blk.v[lane], low, high);
    }
  }
}

template <typename T>
void philox_normal(T* out, int64_t n, uint64_t seed, uint64_t offset, T mean, T stddev, Exec) {
  check_size("cpu::philox_normal", "n", n);
  check_ptr("cpu::philox_normal", "out", out, n);
  for (int64_t i = 0; i < n; i += 2) {
    const philox::Block blk = philox::generate(seed, offset + static_cast<uint64_t>(i / 2));
    out[i] = philox::normal_value<T>(blk.v[0], blk.v[1], mean, stddev);
    if (i + 1 < n) out[i + 1] = philox::normal_value<T>(blk.v[2], blk.v[3], mean, stddev);
  }
}

DT_INSTANTIATE_KERNELS(DT_RANDOM_KERNELS)

}  // namespace dtrain::ops::cpu
