#pragma once
// Helpers shared by the CUDA launchers: the launch macro, the stream of an Exec, launch
// geometry for grid-stride kernels, the launch check, and a deterministic block-wide
// double sum.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ops/common/checks.h"
#include "ops/cuda.h"

// Every kernel launch is written
//     DT_LAUNCH(grid, block, shared_bytes, stream, kernel)(arguments);
// (template arguments may follow the kernel's name). Under nvcc it is the `<<< >>>`
// launch; compiled for the CPU grid emulator (tests/emu/, docs/EMULATOR.md: the .cu
// files built by the host compiler against shim headers) it runs the grid there.
// Dynamic shared memory is declared DT_DYNAMIC_SHARED(T, name) (a T* named `name`).
#if defined(DTRAIN_CUDA_EMULATOR)
#define DT_LAUNCH(grid, block, smem, stream, ...)                                                  \
  ::dtrain::emu::make_launch(#__VA_ARGS__, __FILE__, __LINE__, ::dtrain::emu::to_dim3(grid),       \
                             ::dtrain::emu::to_dim3(block), static_cast<size_t>(smem), (stream), \
                             [](auto... dt_args_) { __VA_ARGS__(dt_args_...); })
#define DT_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::dtrain::emu::dynamic_shared())
#else
#define DT_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define DT_DYNAMIC_SHARED(T, name)                                  \
  extern __shared__ __align__(16) unsigned char dt_dynamic_shared_[]; \
  T* name = reinterpret_cast<T*>(dt_dynamic_shared_)
#endif

namespace dtrain::ops::cuda::detail {

using ::dtrain::ops::detail::check_ptr;
using ::dtrain::ops::detail::check_size;
using ::dtrain::ops::detail::invalid;

constexpr int kThreads = 256;         // elementwise block size
constexpr int kReduceThreads = 1024;  // single-block reductions
constexpr int64_t kMaxBlocks = 4096;  // grid-stride loops cover the rest

inline cudaStream_t stream_of(Exec ex) { return static_cast<cudaStream_t>(ex.stream); }

// Blocks for `work` independent items, one per thread, capped (the kernels stride).
inline unsigned blocks_for(int64_t work) {
  return static_cast<unsigned>(std::clamp<int64_t>((work + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

// Throws std::runtime_error naming the kernel if its launch failed.
inline void check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("dtrain::ops::") + kernel + ": launch failed: " + cudaGetErrorString(err));
  }
}

// c[r, col] = beta == 0 ? 0 : beta * c[r, col] for an (m, n) matrix of row stride ldc
// (gemm's k == 0 case; defined in ops/cuda/elementwise.cu, apart from the cuBLAS calls).
template <typename T>
void scale_matrix(T* c, int64_t m, int64_t n, int64_t ldc, T beta, Exec ex);

// Start and stride of a 1-D grid-stride loop, in 64 bits.
__device__ inline int64_t grid_start() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// Sum of `v` over a block of exactly kBlock threads (a power of two), by a fixed
// shared-memory tree: the result depends only on the per-thread values, never on
// scheduling. Every thread of the block must call it; all of them get the sum. It may be
// called repeatedly (the leading barrier keeps a new call from overwriting partial[0]
// before every thread has read the previous result).
template <int kBlock>
__device__ double block_sum(double v) {
  static_assert((kBlock & (kBlock - 1)) == 0, "block_sum needs a power-of-two block");
  __shared__ double partial[kBlock];
  __syncthreads();
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  return partial[0];
}

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline double quiet_nan() { return __longlong_as_double(0x7ff8000000000000LL); }

// Softmax of one row x (classes) into p by one warp: lanes stride the classes, xor
// butterflies leave the row's max m and sum s = sum exp(x - m) in every lane (so all
// lanes agree). Returns {m, s}; log(s) - (x[c] - m) is the row's cross-entropy at c.
struct RowSoftmax {
  double max, sum;
};
template <typename T>
__device__ RowSoftmax warp_row_softmax(const T* x, T* p, int64_t classes, int lane) {
  double m = -INFINITY;
  for (int64_t c = lane; c < classes; c += kWarp) m = fmax(m, static_cast<double>(x[c]));
  for (int offset = kWarp / 2; offset > 0; offset /= 2) m = fmax(m, __shfl_xor_sync(kFullMask, m, offset));
  double s = 0.0;
  for (int64_t c = lane; c < classes; c += kWarp) s += exp(static_cast<double>(x[c]) - m);
  for (int offset = kWarp / 2; offset > 0; offset /= 2) s += __shfl_xor_sync(kFullMask, s, offset);
  for (int64_t c = lane; c < classes; c += kWarp) p[c] = static_cast<T>(exp(static_cast<double>(x[c]) - m) / s);
  return {m, s};
}

}  // namespace dtrain::ops::cuda::detail

// ---- generic elementwise maps -----------------------------------------------------
// Op is a functor with a __device__ operator(); the launchers below check, return early
// on n == 0, launch on ex.stream and check the launch.
namespace dtrain::ops::cuda::detail {

// out[i] = op(x[i])                                                       x, out: (n)
template <typename T, typename Op>
__global__ void map1_kernel(const T* x, T* out, int64_t n, Op op) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = op(x[i]);
}

// out[i] = op(a[i], b[i])                                              a, b, out: (n)
template <typename T, typename Op>
__global__ void map2_kernel(const T* a, const T* b, T* out, int64_t n, Op op) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = op(a[i], b[i]);
}

template <typename T, typename Op>
void launch_map1(const char* kernel, const char* x_name, const T* x, T* out, int64_t n, Exec ex, Op op) {
  check_size(kernel, "n", n);
  check_ptr(kernel, x_name, x, n);
  check_ptr(kernel, "out", out, n);
  if (n == 0) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), map1_kernel)(x, out, n, op);
  check_launch(kernel);
}

template <typename T, typename Op>
void launch_map2(const char* kernel, const char* a_name, const T* a, const char* b_name, const T* b, T* out,
                 int64_t n, Exec ex, Op op) {
  check_size(kernel, "n", n);
  check_ptr(kernel, a_name, a, n);
  check_ptr(kernel, b_name, b, n);
  check_ptr(kernel, "out", out, n);
  if (n == 0) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), map2_kernel)(a, b, out, n, op);
  check_launch(kernel);
}

}  // namespace dtrain::ops::cuda::detail
