// Bias and reduction kernels on CUDA, the twins of ops/cpu/reduce.cpp.
//   bias_add:  out[o, c, i] = x[o, c, i] + b[c]  x, out: (outer, C, inner); b: (C)
//   bias_grad: gb[c] = sum_{o,i} gy[o, c, i] (=) gy: (outer, C, inner); gb: (C)
//   sum_all:   out[0] = sum x                (=) x: (n); out: (1)
// Both sums are deterministic: each thread sums a fixed strided subset in double, then a
// fixed shared-memory tree (detail::block_sum) combines the threads. bias_grad gives one
// block to each channel; sum_all is one block of kReduceThreads threads.
#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

constexpr int kBiasGradThreads = 256;
constexpr int64_t kMaxChannelBlocks = 65535;

// out[o, c, i] = x[o, c, i] + b[c]; channel of flat index j is (j / inner) % C.
template <typename T>
__global__ void bias_add_kernel(const T* x, const T* b, T* out, int64_t total, int64_t channels, int64_t inner) {
  for (int64_t j = grid_start(); j < total; j += grid_stride()) out[j] = x[j] + b[(j / inner) % channels];
}

// Block per channel (strided when channels > gridDim.x); thread t sums elements
// t, t + blockDim, ... of the channel's outer * inner values in double.
template <typename T>
__global__ void __launch_bounds__(kBiasGradThreads)
    bias_grad_kernel(const T* gy, T* gb, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t count = outer * inner;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += kBiasGradThreads) {
      const int64_t o = j / inner;
      const int64_t i = j - o * inner;
      acc += static_cast<double>(gy[(o * channels + c) * inner + i]);
    }
    const double total = block_sum<kBiasGradThreads>(acc);
    if (threadIdx.x == 0) gb[c] = static_cast<T>(total);
  }
}

// out[0] = sum of x; <<<1, kReduceThreads>>>.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    sum_all_kernel(const T* x, T* out, int64_t n) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) acc += static_cast<double>(x[i]);
  const double total = block_sum<kReduceThreads>(acc);
  if (threadIdx.x == 0) out[0] = static_cast<T>(total);
}

}  // namespace

template <typename T>
void bias_add(const T* x, const T* b, T* out, int64_t outer, int64_t channels, int64_t inner, Exec ex) {
  const char* kernel = "cuda::bias_add";
  check_size(kernel, "outer", outer);
  check_size(kernel, "channels", channels);
  check_size(kernel, "inner", inner);
  const int64_t total = outer * channels * inner;
  check_ptr(kernel, "x", x, total);
  check_ptr(kernel, "b", b, total > 0 ? channels : 0);
  check_ptr(kernel, "out", out, total);
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), bias_add_kernel)(x, b, out, total, channels, inner);
  check_launch(kernel);
}

template <typename T>
void bias_grad(const T* gy, T* gb, int64_t outer, int64_t channels, int64_t inner, Exec ex) {
  const char* kernel = "cuda::bias_grad";
  check_size(kernel, "outer", outer);
  check_size(kernel, "channels", channels);
  check_size(kernel, "inner", inner);
  check_ptr(kernel, "gy", gy, outer * channels * inner);
  check_ptr(kernel, "gb", gb, channels);
  if (channels == 0) return;  // outer * inner == 0 still writes gb = 0
  const auto blocks = static_cast<unsigned>(std::min(channels, kMaxChannelBlocks));
  DT_LAUNCH(blocks, kBiasGradThreads, 0, stream_of(ex), bias_grad_kernel)(gy, gb, outer, channels, inner);
  check_launch(kernel);
}

template <typename T>
void sum_all(const T* x, T* out, int64_t n, Exec ex) {
  check_size("cuda::sum_all", "n", n);
  check_ptr("cuda::sum_all", "x", x, n);
  check_ptr("cuda::sum_all", "out", out, 1);
  // n == 0 still launches: out[0] = 0.
  DT_LAUNCH(1, kReduceThreads, 0, stream_of(ex), sum_all_kernel)(x, out, n);
  check_launch("cuda::sum_all");
}

DT_INSTANTIATE_KERNELS(DT_REDUCE_KERNELS)

}  // namespace dtrain::ops::cuda
