// Bias and reduction CPU kernels.
//   bias_add:  out[o, c, i] = x[o, c, i] + b[c]     x, out: (outer, C, inner); b: (C)
//   bias_grad: gb[c] = sum_{o,i} gy[o, c, i]  (=)   gy: (outer, C, inner); gb: (C)
//   sum_all:   out[0] = sum_i x[i]            (=)   x: (n); out: (1)
// Sums accumulate in double, so float inputs do not lose precision over long reductions,
// and in an order fixed by the sizes alone (Note [Deterministic parallel sums] in
// ops/cpu/parallel.h): bias_grad sums each channel on one thread, row by row, sum_all
// sums fixed chunks and then the chunk sums in order. The thread count never changes a bit.
#include <algorithm>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::cpu {

using detail::check_ptr;
using detail::check_size;

namespace {

void check_bias_shape(const char* kernel, int64_t outer, int64_t channels, int64_t inner) {
  check_size(kernel, "outer", outer);
  check_size(kernel, "channels", channels);
  check_size(kernel, "inner", inner);
}

}  // namespace

template <typename T>
void bias_add(const T* x, const T* b, T* out, int64_t outer, int64_t channels, int64_t inner, Exec) {
  check_bias_shape("cpu::bias_add", outer, channels, inner);
  const int64_t total = outer * channels * inner;
  check_ptr("cpu::bias_add", "x", x, total);
  check_ptr("cpu::bias_add", "b", b, total > 0 ? channels : 0);
  check_ptr("cpu::bias_add", "out", out, total);
  if (inner == 1) {
    // (N, C): one plane per row.
    detail::parallel_planes(outer, channels, [&](int64_t o) {
      const int64_t base = o * channels;
      for (int64_t c = 0; c < channels; ++c) out[base + c] = x[base + c] + b[c];
    });
    return;
  }
  detail::parallel_planes(outer * channels, inner, [&](int64_t plane) {
    const int64_t base = plane * inner;
    const T bias = b[plane % channels];
    for (int64_t i = 0; i < inner; ++i) out[base + i] = x[base + i] + bias;
  });
}

template <typename T>
void bias_grad(const T* gy, T* gb, int64_t outer, int64_t channels, int64_t inner, Exec) {
  check_bias_shape("cpu::bias_grad", outer, channels, inner);
  check_ptr("cpu::bias_grad", "gy", gy, outer * channels * inner);
  check_ptr("cpu::bias_grad", "gb", gb, channels);
  if (inner == 1 && outer > 1) {
    // (N, C), a Linear's bias: blocks of channels, each summed row by row into its own
    // accumulators, so every read is contiguous (a channel per task would stride by C).
    // Each channel still sums its rows in order on one thread.
    constexpr int64_t kBlock = 64;
    detail::parallel_planes((channels + kBlock - 1) / kBlock, kBlock * outer, [&](int64_t blk) {
      const int64_t c0 = blk * kBlock, n = std::min(kBlock, channels - c0);
      double acc[kBlock] = {};
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = gy + o * channels + c0;
        for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(row[j]);
      }
      for (int64_t j = 0; j < n; ++j) gb[c0 + j] = static_cast<T>(acc[j]);
    });
    return;
  }
  detail::parallel_planes(channels, outer * inner, [&](int64_t c) {
    double acc = 0.0;
    for (int64_t o = 0; o < outer; ++o) acc += detail::sum_run(gy + (o * channels + c) * inner, inner);
    gb[c] = static_cast<T>(acc);
  });
}

template <typename T>
void sum_all(const T* x, T* out, int64_t n, Exec) {
  check_size("cpu::sum_all", "n", n);
  check_ptr("cpu::sum_all", "x", x, n);
  check_ptr("cpu::sum_all", "out", out, 1);
  out[0] = static_cast<T>(detail::chunked_sum(n, [x](int64_t i) { return static_cast<double>(x[i]); }));
}

DT_INSTANTIATE_KERNELS(DT_REDUCE_KERNELS)

}  // namespace dtrain::ops::cpu
