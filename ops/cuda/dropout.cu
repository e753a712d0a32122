// Dropout on CUDA.                                                  x, y, gy, gx, mask: (n)
//   forward:  u_i = the Philox uniform of element i in [0, 1) (philox_uniform's layout:
//             lane i % 4 of counter block offset + i / 4, ops/philox.h); kept = u_i >= p;
//             y = kept ? x / (1 - p) : 0; mask[i] = kept. Uses ceil(n/4) counter blocks.
//   backward: gx = mask ? gy / (1 - p) : 0 (=).
// u_i comes from philox::uniform_value (ops/common/random_math.h), the formula the CPU twin
// uses, so the masks agree bit for bit. One thread per counter block, like random.cu.
#include <cmath>

#include "ops/common/instantiate.h"
#include "ops/common/random_math.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

template <typename T>
__global__ void dropout_forward_kernel(const T* x, T* y, uint8_t* mask, int64_t n, int64_t blocks, T p,
                                       uint64_t seed, uint64_t offset) {
  const T keep = T(1) - p;
  for (int64_t b = grid_start(); b < blocks; b += grid_stride()) {
    const philox::Block blk = philox::generate(seed, offset + static_cast<uint64_t>(b));
    const int64_t first = 4 * b;
    for (int lane = 0; lane < 4 && first + lane < n; ++lane) {
      const int64_t i = first + lane;
      const bool kept = philox::uniform_value<T>(blk.v[lane], T(0), T(1)) >= p;
      y[i] = kept ? x[i] / keep : T(0);
      mask[i] = kept ? 1 : 0;
    }
  }
}

template <typename T>
__global__ void dropout_backward_kernel(const T* gy, const uint8_t* mask, T* gx, int64_t n, T p) {
  const T keep = T(1) - p;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) gx[i] = mask[i] ? gy[i] / keep : T(0);
}

template <typename T>
void check_p(const char* kernel, T p) {
  if (!(p >= T(0) && p <= T(1))) invalid(kernel, "p must be in [0, 1], got " + std::to_string(p));
}

}  // namespace

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, T p, uint64_t seed, uint64_t offset, Exec ex) {
  const char* kernel = "cuda::dropout_forward";
  check_size(kernel, "n", n);
  check_p(kernel, p);
  check_ptr(kernel, "x", x, n);
  check_ptr(kernel, "y", y, n);
  check_ptr(kernel, "mask", mask, n);
  if (n == 0) return;
  const int64_t blocks = (n + 3) / 4;
  DT_LAUNCH(blocks_for(blocks), kThreads, 0, stream_of(ex), dropout_forward_kernel)(
      x, y, mask, n, blocks, p, seed, offset);
  check_launch(kernel);
}

template <typename T>
void dropout_backward(const T* gy, const uint8_t* mask, T* gx, int64_t n, T p, Exec ex) {
  const char* kernel = "cuda::dropout_backward";
  check_size(kernel, "n", n);
  check_p(kernel, p);
  check_ptr(kernel, "gy", gy, n);
  check_ptr(kernel, "mask", mask, n);
  check_ptr(kernel, "gx", gx, n);
  if (n == 0) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), dropout_backward_kernel)(gy, mask, gx, n, p);
  check_launch(kernel);
}

DT_INSTANTIATE_KERNELS(DT_DROPOUT_KERNELS)

}  // namespace dtrain::ops::cuda
