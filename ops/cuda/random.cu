// Philox4x32-10 fills on CUDA, producing the CPU twin's numbers (ops/cpu/random.cpp;
// formulas in ops/common/random_math.h). One thread per counter block:
//   uniform: thread b writes elements 4b .. 4b+3 from block offset + b  (lane i % 4)
//   normal:  thread b writes elements 2b, 2b+1 from block offset + b    (lanes 0,1 / 2,3)
// A fill of n elements uses ceil(n/4) resp. ceil(n/2) blocks (ops/philox.h).  out: (n)
#include "ops/common/instantiate.h"
#include "ops/common/random_math.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

template <typename T>
__global__ void philox_uniform_kernel(T* out, int64_t n, int64_t blocks, uint64_t seed, uint64_t offset, T low,
                                      T high) {
  for (int64_t b = grid_start(); b < blocks; b += grid_stride()) {
    const philox::Block blk = philox::generate(seed, offset + static_cast<uint64_t>(b));
    const int64_t first = 4 * b;
    for (int lane = 0; lane < 4 && first + lane < n; ++lane) {
      out[first + lane] = philox::uniform_value<T>(blk.v[lane], low, high);
    }
  }
}

template <typename T>
__global__ void philox_normal_kernel(T* out, int64_t n, int64_t blocks, uint64_t seed, uint64_t offset, T mean,
                                     T stddev) {
  for (int64_t b = grid_start(); b < blocks; b += grid_stride()) {
    const philox::Block blk = philox::generate(seed, offset + static_cast<uint64_t>(b));
    const int64_t first = 2 * b;
    out[first] = philox::normal_value<T>(blk.v[0], blk.v[1], mean, stddev);
    if (first + 1 < n) out[first + 1] = philox::normal_value<T>(blk.v[2], blk.v[3], mean, stddev);
  }
}

}  // namespace

template <typename T>
void philox_uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, T low, T high, Exec ex) {
  check_size("cuda::philox_uniform", "n", n);
  check_ptr("cuda::philox_uniform", "out", out, n);
  if (n == 0) return;
  const int64_t blocks = (n + 3) / 4;
  DT_LAUNCH(blocks_for(blocks), kThreads, 0, stream_of(ex), philox_uniform_kernel)(
      out, n, blocks, seed, offset, low, high);
  check_launch("cuda::philox_uniform");
}

template <typename T>
void philox_normal(T* out, int64_t n, uint64_t seed, uint64_t offset, T mean, T stddev, Exec ex) {
  check_size("cuda::philox_normal", "n", n);
  check_ptr("cuda::philox_normal", "out", out, n);
  if (n == 0) return;
  const int64_t blocks = (n + 1) / 2;
  DT_LAUNCH(blocks_for(blocks), kThreads, 0, stream_of(ex), philox_normal_kernel)(
      out, n, blocks, seed, offset, mean, stddev);
  check_launch("cuda::philox_normal");
}

DT_INSTANTIATE_KERNELS(DT_RANDOM_KERNELS)

}  // namespace dtrain::ops::cuda
