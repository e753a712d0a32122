// Loss CPU kernels, mean reduction. Forward sums accumulate in double in an order fixed by
// the sizes alone (per-row losses added in row order; elementwise terms by Note
// [Deterministic parallel sums] in ops/cpu/parallel.h), so the thread count never changes
// a bit; a mean over zero elements is NaN (0/0), as in PyTorch. Gradients are
// written with `=` and scaled by the upstream scalar g[0].
//   softmax_xent: logits, probs, glogits: (N, C); labels: (N); loss, g: (1)
//   mse:          a, b, ga, gb: (n); loss, g: (1)
//   bce_logits:   x, y, gx, gy: (n); loss, g: (1)
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::cpu {

using detail::check_ptr;
using detail::check_size;

namespace {

void check_label(const char* kernel, int64_t row, int64_t label, int64_t classes) {
  if (label < 0 || label >= classes) {
    detail::invalid(kernel, "labels[" + std::to_string(row) + "] = " + std::to_string(label) +
                                " is outside [0, " + std::to_string(classes) + ")");
  }
}

}  // namespace

// Per row: m = max, s = sum exp(x - m), probs = exp(x - m) / s and the row's loss is
// log(s) - (x[label] - m): log-sum-exp, finite even where probs[label] underflows to 0.
template <typename T>
void softmax_xent_forward(const T* logits, const int64_t* labels, T* probs, T* loss, int64_t rows, int64_t classes,
                          Exec) {
  const char* kernel = "cpu::softmax_xent_forward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "logits", logits, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "loss", loss, 1);
  for (int64_t r = 0; r < rows; ++r) check_label(kernel, r, labels[r], classes);
  std::vector<double> row_loss(static_cast<size_t>(rows));
  detail::parallel_planes(rows, classes, [&](int64_t r) {
    const T* x = logits + r * classes;
    T* p = probs + r * classes;
    double m = static_cast<double>(x[0]);
    for (int64_t c = 1; c < classes; ++c) m = std::max(m, static_cast<double>(x[c]));
    double s = 0.0;
    for (int64_t c = 0; c < classes; ++c) s += std::exp(static_cast<double>(x[c]) - m);
    for (int64_t c = 0; c < classes; ++c) p[c] = static_cast<T>(std::exp(static_cast<double>(x[c]) - m) / s);
    row_loss[static_cast<size_t>(r)] = std::log(s) - (static_cast<double>(x[labels[r]]) - m);
  });
  double total = 0.0;
  for (double l : row_loss) total += l;
  loss[0] = static_cast<T>(total / static_cast<double>(rows));
}

template <typename T>
void softmax_xent_backward(const T* probs, const int64_t* labels, const T* g, T* glogits, int64_t rows,
                           int64_t classes, Exec) {
  const char* kernel = "cpu::softmax_xent_backward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "g", g, rows * classes);
  check_ptr(kernel, "glogits", glogits, rows * classes);
  for (int64_t r = 0; r < rows; ++r) check_label(kernel, r, labels[r], classes);
  if (rows * classes == 0) return;
  const T scale = g[0] / static_cast<T>(rows);
  detail::parallel_planes(rows, classes, [&](int64_t r) {
    for (int64_t c = 0; c < classes; ++c) {
      const T onehot = c == labels[r] ? T(1) : T(0);
      glogits[r * classes + c] = (probs[r * classes + c] - onehot) * scale;
    }
  });
}

template <typename T>
void mse_forward(const T* a, const T* b, T* loss, int64_t n, Exec) {
  const char* kernel = "cpu::mse_forward";
  check_size(kernel, "n", n);
  check_ptr(kernel, "a", a, n);
  check_ptr(kernel, "b", b, n);
  check_ptr(kernel, "loss", loss, 1);
  const double total = detail::chunked_sum(n, [a, b](int64_t i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    return d * d;
  });
  loss[0] = static_cast<T>(total / static_cast<double>(n));
}

template <typename T>
void mse_backward(const T* a, const T* b, const T* g, T* ga, T* gb, int64_t n, Exec) {
  const char* kernel = "cpu::mse_backward";
  check_size(kernel, "n", n);
  check_ptr(kernel, "a", a, n);
  check_ptr(kernel, "b", b, n);
  check_ptr(kernel, "g", g, n);
  if (n == 0) return;
  const T scale = T(2) * g[0] / static_cast<T>(n);
  detail::parallel_for(n, [&](int64_t i) {
    const T d = (a[i] - b[i]) * scale;
    if (ga != nullptr) ga[i] = d;
    if (gb != nullptr) gb[i] = -d;
  });
}

template <typename T>
void bce_logits_forward(const T* x, const T* y, T* loss, int64_t n, Exec) {
  const char* kernel = "cpu::bce_logits_forward";
  check_size(kernel, "n", n);
  check_ptr(kernel, "x", x, n);
  check_ptr(kernel, "y", y, n);
  check_ptr(kernel, "loss", loss, 1);
  const double total = detail::chunked_sum(n, [x, y](int64_t i) {
    const double xi = static_cast<double>(x[i]);
    const double yi = static_cast<double>(y[i]);
    return std::max(xi, 0.0) - xi * yi + std::log1p(std::exp(-std::fabs(xi)));
  });
  loss[0] = static_cast<T>(total / static_cast<double>(n));
}

template <typename T>
void bce_logits_backward(const T* x, const T* y, const T* g, T* gx, T* gy, int64_t n, Exec) {
  const char* kernel = "cpu::bce_logits_backward";
  check_size(kernel, "n", n);
  check_ptr(kernel, "x", x, n);
  check_ptr(kernel, "y", y, n);
  check_ptr(kernel, "g", g, n);
  if (n == 0) return;
  const T scale = g[0] / static_cast<T>(n);
  detail::parallel_for(n, [&](int64_t i) {
    if (gx != nullptr) {
      // Stable sigmoid: exp() only sees a non-positive argument.
      const T e = std::exp(-std::fabs(x[i]));
      const T s = x[i] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      gx[i] = (s - y[i]) * scale;
    }
    if (gy != nullptr) gy[i] = -x[i] * scale;
  });
}

DT_INSTANTIATE_KERNELS(DT_LOSS_KERNELS)

}  // namespace dtrain::ops::cpu
