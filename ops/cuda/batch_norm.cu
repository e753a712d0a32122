// Batch normalization on CUDA, per channel c over the N * HW values x[n, c, :].
//                                     x, y, gy, gx: (N, C, HW); gamma, beta, stats: (C)
//   forward_train: mean, biased var (M = N HW values); invstd = 1 / sqrt(var + eps);
//                  y = (x - mean) invstd gamma + beta; save_mean, save_invstd written;
//                  running_mean = (1 - momentum) running_mean + momentum mean,
//                  running_var likewise with the unbiased variance M / (M - 1) var.
//   forward_eval:  y = (x - running_mean) / sqrt(running_var + eps) gamma + beta.
//   backward (=):  xhat = (x - mean) invstd, gbeta = sum gy, ggamma = sum gy xhat,
//                  gx = gamma invstd / M (M gy - gbeta - xhat ggamma).
// Reductions are deterministic: one block per channel (strided when C exceeds the grid),
// each thread sums a fixed strided subset in double, then a fixed shared-memory tree
// (detail::block_sum). The training forward keeps the statistics in double within its
// block and writes y there too (a third pass over the channel, mostly from L2). The
// backward's sums are one such kernel and gx an elementwise kernel over all of x; the
// sums reach it in double through ex.scratch (the T-rounded ggamma, gbeta when an Exec
// has no scratch), so gx keeps the CPU twin's precision when gamma invstd is large.
// The arithmetic follows the CPU twin's expressions (ops/cpu/batch_norm.cpp), term for
// term, so results differ only by the order of the double sums.
#include <initializer_list>
#include <string>
#include <utility>

#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

constexpr int kChannelThreads = 512;
constexpr int64_t kMaxChannelBlocks = 65535;

// Element j of channel c's M = n * hw values: x[o, c, i] with o = j / hw, i = j % hw.
__device__ inline int64_t channel_index(int64_t j, int64_t c, int64_t channels, int64_t hw) {
  const int64_t o = j / hw;
  return (o * channels + c) * hw + (j - o * hw);
}

template <typename T>
__global__ void __launch_bounds__(kChannelThreads)
    bn_forward_train_kernel(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                            T* running_mean, T* running_var, int64_t n, int64_t channels, int64_t hw, double momentum,
                            double eps) {
  const int64_t count = n * hw;
  const double m = static_cast<double>(count);
  const double inv_m = 1.0 / m;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += kChannelThreads) {
      acc += static_cast<double>(x[channel_index(j, c, channels, hw)]);
    }
    const double mean = block_sum<kChannelThreads>(acc) * inv_m;
    // Two passes: the sum of squared deviations does not cancel like E[x^2] - mean^2.
    acc = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += kChannelThreads) {
      const double d = static_cast<double>(x[channel_index(j, c, channels, hw)]) - mean;
      acc += d * d;
    }
    const double var = block_sum<kChannelThreads>(acc) * inv_m;
    const double invstd = 1.0 / sqrt(var + eps);
    const double scale = invstd * static_cast<double>(gamma[c]);
    const double shift = static_cast<double>(beta[c]);
    for (int64_t j = threadIdx.x; j < count; j += kChannelThreads) {
      const int64_t k = channel_index(j, c, channels, hw);
      y[k] = static_cast<T>((static_cast<double>(x[k]) - mean) * scale + shift);
    }
    if (threadIdx.x == 0) {
      save_mean[c] = static_cast<T>(mean);
      save_invstd[c] = static_cast<T>(invstd);
      const double unbiased = var * m / (m - 1.0);
      running_mean[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[c]) + momentum * mean);
      running_var[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[c]) + momentum * unbiased);
    }
  }
}

template <typename T>
__global__ void bn_forward_eval_kernel(const T* x, const T* gamma, const T* beta, const T* running_mean,
                                       const T* running_var, T* y, int64_t total, int64_t channels, int64_t hw,
                                       double eps) {
  for (int64_t k = grid_start(); k < total; k += grid_stride()) {
    const int64_t c = (k / hw) % channels;
    const double scale = static_cast<double>(gamma[c]) / sqrt(static_cast<double>(running_var[c]) + eps);
    y[k] = static_cast<T>((static_cast<double>(x[k]) - static_cast<double>(running_mean[c])) * scale +
                          static_cast<double>(beta[c]));
  }
}

// gbeta[c] = sum gy, ggamma[c] = sum gy xhat = invstd sum gy (x - mean) over channel c
// (one block per channel). When `sums` is not null it also gets both in double:
// sums[2c] = gbeta, sums[2c + 1] = ggamma.                                 sums: (C, 2)
template <typename T>
__global__ void __launch_bounds__(kChannelThreads)
    bn_backward_sums_kernel(const T* x, const T* gy, const T* save_mean, const T* save_invstd, T* ggamma, T* gbeta,
                            double* sums, int64_t n, int64_t channels, int64_t hw) {
  const int64_t count = n * hw;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    const double mean = static_cast<double>(save_mean[c]);
    double sum_gy = 0.0, sum_gy_xc = 0.0;  // sum gy, sum gy (x - mean)
    for (int64_t j = threadIdx.x; j < count; j += kChannelThreads) {
      const int64_t k = channel_index(j, c, channels, hw);
      const double g = static_cast<double>(gy[k]);
      sum_gy += g;
      sum_gy_xc += g * (static_cast<double>(x[k]) - mean);
    }
    const double total_gy = block_sum<kChannelThreads>(sum_gy);
    const double total_gy_xhat = block_sum<kChannelThreads>(sum_gy_xc) * static_cast<double>(save_invstd[c]);
    if (threadIdx.x == 0) {
      gbeta[c] = static_cast<T>(total_gy);
      ggamma[c] = static_cast<T>(total_gy_xhat);
      if (sums != nullptr) {
        sums[2 * c] = total_gy;
        sums[2 * c + 1] = total_gy_xhat;
      }
    }
  }
}

// gx = gamma invstd (gy - gbeta / M - (x - mean) ggamma invstd / M), the CPU twin's
// form of gamma invstd / M (M gy - gbeta - xhat ggamma), elementwise over (N, C, HW).
// gbeta, ggamma come from `sums` (double) when it is not null.
template <typename T>
__global__ void bn_backward_input_kernel(const T* x, const T* gy, const T* gamma, const T* save_mean,
                                         const T* save_invstd, const T* ggamma, const T* gbeta, const double* sums,
                                         T* gx, int64_t total, int64_t channels, int64_t hw, double m) {
  for (int64_t k = grid_start(); k < total; k += grid_stride()) {
    const int64_t c = (k / hw) % channels;
    const double invstd = static_cast<double>(save_invstd[c]);
    const double sum_gy = sums ? sums[2 * c] : static_cast<double>(gbeta[c]);
    const double gg = sums ? sums[2 * c + 1] : static_cast<double>(ggamma[c]);
    const double scale = static_cast<double>(gamma[c]) * invstd;
    const double xc = static_cast<double>(x[k]) - static_cast<double>(save_mean[c]);
    gx[k] = static_cast<T>(scale * (static_cast<double>(gy[k]) - sum_gy / m - xc * (gg * invstd / m)));
  }
}

void check_dims(const char* kernel, int64_t n, int64_t channels, int64_t hw) {
  check_size(kernel, "n", n);
  check_size(kernel, "channels", channels);
  check_size(kernel, "hw", hw);
}

// Per-channel vectors (C) must not be null when channels > 0.
void check_channel_ptrs(const char* kernel, int64_t channels,
                        std::initializer_list<std::pair<const char*, const void*>> vectors) {
  for (const auto& [name, p] : vectors) check_ptr(kernel, name, p, channels);
}

unsigned channel_blocks(int64_t channels) { return static_cast<unsigned>(std::min(channels, kMaxChannelBlocks)); }

}  // namespace

template <typename T>
void batch_norm_forward_train(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                              T* running_mean, T* running_var, int64_t n, int64_t channels, int64_t hw, T momentum,
                              T eps, Exec ex) {
  const char* kernel = "cuda::batch_norm_forward_train";
  check_dims(kernel, n, channels, hw);
  const int64_t total = n * channels * hw;
  check_ptr(kernel, "x", x, total);
  check_ptr(kernel, "y", y, total);
  check_channel_ptrs(kernel, channels,
                     {{"gamma", gamma}, {"beta", beta}, {"save_mean", save_mean}, {"save_invstd", save_invstd},
                      {"running_mean", running_mean}, {"running_var", running_var}});
  const int64_t m = n * hw;
  if (channels > 0 && m <= 1) {
    // PyTorch: "Expected more than 1 value per channel when training".
    invalid(kernel, "training needs more than 1 value per channel, got n * hw = " + std::to_string(m));
  }
  if (channels == 0) return;
  DT_LAUNCH(channel_blocks(channels), kChannelThreads, 0, stream_of(ex), bn_forward_train_kernel)(
      x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, n, channels, hw,
      static_cast<double>(momentum), static_cast<double>(eps));
  check_launch(kernel);
}

template <typename T>
void batch_norm_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var,
                             T* y, int64_t n, int64_t channels, int64_t hw, T eps, Exec ex) {
  const char* kernel = "cuda::batch_norm_forward_eval";
  check_dims(kernel, n, channels, hw);
  const int64_t total = n * channels * hw;
  check_ptr(kernel, "x", x, total);
  check_ptr(kernel, "y", y, total);
  check_channel_ptrs(kernel, channels,
                     {{"gamma", gamma}, {"beta", beta}, {"running_mean", running_mean}, {"running_var", running_var}});
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), bn_forward_eval_kernel)(
      x, gamma, beta, running_mean, running_var, y, total, channels, hw, static_cast<double>(eps));
  check_launch(kernel);
}

template <typename T>
void batch_norm_backward(const T* x, const T* gy, const T* gamma, const T* save_mean, const T* save_invstd, T* gx,
                         T* ggamma, T* gbeta, int64_t n, int64_t channels, int64_t hw, Exec ex) {
  const char* kernel = "cuda::batch_norm_backward";
  check_dims(kernel, n, channels, hw);
  const int64_t total = n * channels * hw;
  check_ptr(kernel, "x", x, total);
  check_ptr(kernel, "gy", gy, total);
  check_ptr(kernel, "gx", gx, total);
  check_channel_ptrs(kernel, channels,
                     {{"gamma", gamma}, {"save_mean", save_mean}, {"save_invstd", save_invstd}, {"ggamma", ggamma},
                      {"gbeta", gbeta}});
  if (channels == 0) return;  // M == 0 still writes ggamma = gbeta = 0
  // The double sums for gx; null when there is no gx to write or no scratch.
  auto* sums = total > 0 ? static_cast<double*>(ex.scratch(static_cast<size_t>(2 * channels) * sizeof(double)))
                         : nullptr;
  DT_LAUNCH(channel_blocks(channels), kChannelThreads, 0, stream_of(ex), bn_backward_sums_kernel)(
      x, gy, save_mean, save_invstd, ggamma, gbeta, sums, n, channels, hw);
  check_launch(kernel);
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), bn_backward_input_kernel)(
      x, gy, gamma, save_mean, save_invstd, ggamma, gbeta, sums, gx, total, channels, hw,
      static_cast<double>(n * hw));
  check_launch(kernel);
}

DT_INSTANTIATE_KERNELS(DT_BATCH_NORM_KERNELS)

}  // namespace dtrain::ops::cuda
