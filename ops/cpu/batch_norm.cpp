// Batch normalization on the CPU, per channel c over the M = N * HW values x[n, c, :].
//   forward_train: mean, biased var over M; y = (x - mean) invstd gamma + beta;
//                  saves mean, invstd; running stats updated (running_var with the
//                  unbiased var M / (M - 1) var), as PyTorch does
//   forward_eval:  y = (x - running_mean) / sqrt(running_var + eps) gamma + beta
//   backward:      ggamma = sum gy xhat, gbeta = sum gy,
//                  gx = gamma invstd / M (M gy - gbeta - xhat ggamma)          (all =)
//                                  x, y, gy, gx: (N, C, HW); every other buffer: (C)
// Statistics are computed in double (two passes: mean, then squared deviations), one
// channel per OpenMP iteration, each in index order: the thread count never changes a bit.
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::cpu {

using detail::check_ptr;
using detail::check_size;

namespace {

void check_bn_sizes(const char* kernel, int64_t n, int64_t channels, int64_t hw) {
  check_size(kernel, "n", n);
  check_size(kernel, "channels", channels);
  check_size(kernel, "hw", hw);
}

// sum over the channel's values of f(value) in double, images then positions in order.
template <typename T, typename F>
double channel_sum(const T* x, int64_t n, int64_t channels, int64_t hw, int64_t c, F f) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + (i * channels + c) * hw;
    for (int64_t j = 0; j < hw; ++j) acc += f(static_cast<double>(row[j]));
  }
  return acc;
}

}  // namespace

template <typename T>
void batch_norm_forward_train(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                              T* running_mean, T* running_var, int64_t n, int64_t channels, int64_t hw, T momentum,
                              T eps, Exec) {
  const char* kernel = "cpu::batch_norm_forward_train";
  check_bn_sizes(kernel, n, channels, hw);
  const int64_t total = n * channels * hw;
  check_ptr(kernel, "x", x, total);
  check_ptr(kernel, "y", y, total);
  for (auto [name, p] : {std::pair<const char*, const T*>{"gamma", gamma}, {"beta", beta}, {"save_mean", save_mean},
                         {"save_invstd", save_invstd}, {"running_mean", running_mean}, {"running_var", running_var}}) {
    check_ptr(kernel, name, p, channels);
  }
  const int64_t m = n * hw;
  if (channels > 0 && m <= 1) {
    // PyTorch: "Expected more than 1 value per channel when training".
    detail::invalid(kernel, "training needs more than 1 value per channel, got n * hw = " + std::to_string(m));
  }
  const double inv_m = 1.0 / static_cast<double>(m);
  const double mom = static_cast<double>(momentum);
  detail::parallel_planes(channels, m, [&](int64_t c) {
    const double mean = channel_sum(x, n, channels, hw, c, [](double v) { return v; }) * inv_m;
    const double var = channel_sum(x, n, channels, hw, c, [mean](double v) { return (v - mean) * (v - mean); }) * inv_m;
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    const double unbiased = var * static_cast<double>(m) / static_cast<double>(m - 1);
    running_mean[c] = static_cast<T>((1.0 - mom) * static_cast<double>(running_mean[c]) + mom * mean);
    running_var[c] = static_cast<T>((1.0 - mom) * static_cast<double>(running_var[c]) + mom * unbiased);
    const double scale = invstd * static_cast<double>(gamma[c]);
    const double shift = static_cast<double>(beta[c]);
    for (int64_t i = 0; i < n; ++i) {
      const T* xr = x + (i * channels + c) * hw;
      T* yr = y + (i * channels + c) * hw;
      for (int64_t j = 0; j < hw; ++j) yr[j] = static_cast<T>((static_cast<double>(xr[j]) - mean) * scale + shift);
    }
  });
}

template <typename T>
void batch_norm_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var,
                             T* y, int64_t n, int64_t channels, int64_t hw, T eps, Exec) {
  const char* kernel = "cpu::batch_norm_forward_eval";
  check_bn_sizes(kernel, n, channels, hw);
  const int64_t total = n * channels * hw;
  check_ptr(kernel, "x", x, total);
  check_ptr(kernel, "y", y, total);
  for (auto [name, p] : {std::pair<const char*, const T*>{"gamma", gamma}, {"beta", beta},
                         {"running_mean", running_mean}, {"running_var", running_var}}) {
    check_ptr(kernel, name, p, channels);
  }
  detail::parallel_planes(n * channels, hw, [&](int64_t plane) {
    const int64_t c = plane % channels;
    const double mean = static_cast<double>(running_mean[c]);
    const double scale =
        static_cast<double>(gamma[c]) / std::sqrt(static_cast<double>(running_var[c]) + static_cast<double>(eps));
    const double shift = static_cast<double>(beta[c]);
    const T* xr = x + plane * hw;
    T* yr = y + plane * hw;
    for (int64_t j = 0; j < hw; ++j) yr[j] = static_cast<T>((static_cast<double>(xr[j]) - mean) * scale + shift);
  });
}

template <typename T>
void batch_norm_backward(const T* x, const T* gy, const T* gamma, const T* save_mean, const T* save_invstd, T* gx,
                         T* ggamma, T* gbeta, int64_t n, int64_t channels, int64_t hw, Exec) {
  const char* kernel = "cpu::batch_norm_backward";
  check_bn_sizes(kernel, n, channels, hw);
  const int64_t total = n * channels * hw;
  check_ptr(kernel, "x", x, total);
  check_ptr(kernel, "gy", gy, total);
  check_ptr(kernel, "gx", gx, total);
  for (auto [name, p] : {std::pair<const char*, const T*>{"gamma", gamma}, {"save_mean", save_mean},
                         {"save_invstd", save_invstd}, {"ggamma", ggamma}, {"gbeta", gbeta}}) {
    check_ptr(kernel, name, p, channels);
  }
  const int64_t m = n * hw;
  detail::parallel_planes(channels, m, [&](int64_t c) {
    const double mean = static_cast<double>(save_mean[c]);
    const double invstd = static_cast<double>(save_invstd[c]);
    double sum_gy = 0.0, sum_gy_xc = 0.0;  // sum gy, sum gy (x - mean)
    for (int64_t i = 0; i < n; ++i) {
      const T* xr = x + (i * channels + c) * hw;
      const T* gr = gy + (i * channels + c) * hw;
      for (int64_t j = 0; j < hw; ++j) {
        const double g = static_cast<double>(gr[j]);
        sum_gy += g;
        sum_gy_xc += g * (static_cast<double>(xr[j]) - mean);
      }
    }
    const double gg = sum_gy_xc * invstd;  // sum gy xhat
    ggamma[c] = static_cast<T>(gg);
    gbeta[c] = static_cast<T>(sum_gy);
    if (m == 0) return;
    // gx = gamma invstd (gy - gbeta / M - xhat ggamma / M), xhat = (x - mean) invstd.
    const double k = static_cast<double>(gamma[c]) * invstd;
    const double mean_gy = sum_gy / static_cast<double>(m);
    const double xc_coef = gg * invstd / static_cast<double>(m);  // multiplies (x - mean)
    for (int64_t i = 0; i < n; ++i) {
      const T* xr = x + (i * channels + c) * hw;
      const T* gr = gy + (i * channels + c) * hw;
      T* gxr = gx + (i * channels + c) * hw;
      for (int64_t j = 0; j < hw; ++j) {
        const double xc = static_cast<double>(xr[j]) - mean;
        gxr[j] = static_cast<T>(k * (static_cast<double>(gr[j]) - mean_gy - xc * xc_coef));
      }
    }
  });
}

DT_INSTANTIATE_KERNELS(DT_BATCH_NORM_KERNELS)

}  // namespace dtrain::ops::cpu
