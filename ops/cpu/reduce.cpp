// Bias and reduction CPU kernels.
//   bias_add:  out[o, c, i] = x[o, c, i] + b[c]     x, out: (outer, C, inner); b: (C)
//   bias_grad: gb[c] = sum_{o,i} gy[o, c, i]  (=)   gy: (outer, C, inner); gb: (C)
//   sum_all:   out[0] = sum_i x[i]            (=)   x: (n); out: (1)
// Sums accumulate in double in index order, so they are deterministic and float inputs
// do not lose precision over long reductions.
#include "ops/cpu.h"
#include "ops/cpu/checks.h"

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
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t base = (o * channels + c) * inner;
      const T bias = b[c];
      for (int64_t i = 0; i < inner; ++i) out[base + i] = x[base + i] + bias;
    }
  }
}

template <typename T>
void bias_grad(const T* gy, T* gb, int64_t outer, int64_t channels, int64_t inner, Exec) {
  check_bias_shape("cpu::bias_grad", outer, channels, inner);
  check_ptr("cpu::bias_grad", "gy", gy, outer * channels * inner);
  check_ptr("cpu::bias_grad", "gb", gb, channels);
  for (int64_t c = 0; c < channels; ++c) {
    double acc = 0.0;
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = gy + (o * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) acc += static_cast<double>(row[i]);
    }
    gb[c] = static_cast<T>(acc);
  }
}

template <typename T>
void sum_all(const T* x, T* out, int64_t n, Exec) {
  check_size("cpu::sum_all", "n", n);
  check_ptr("cpu::sum_all", "x", x, n);
  check_ptr("cpu::sum_all", "out", out, 1);
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]);
  out[0] = static_cast<T>(acc);
}

#define DT_INSTANTIATE(T)                                                               \
  template void bias_add<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, Exec);   \
  template void bias_grad<T>(const T*, T*, int64_t, int64_t, int64_t, Exec);            \
  template void sum_all<T>(const T*, T*, int64_t, Exec);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dtrain::ops::cpu
