// Losses on CUDA (mean reduction), the twins of ops/cpu/loss.cpp.
//   softmax_xent: probs = softmax(logits) row-wise, loss[0] = mean_r (lse_r - x[r, label_r]);
//                 glogits = (probs - onehot) g[0] / N (=)
//                 logits, probs, glogits: (N, C); labels: (N); loss, g: (1)
//   mse:          loss[0] = mean (a - b)^2; ga = 2 (a - b) g[0] / n, gb = -ga   (n)
//   bce_logits:   loss[0] = mean max(x,0) - x y + log1p(exp(-|x|));
//                 gx = (sigmoid(x) - y) g[0] / n, gy = -x g[0] / n           (n)
// Every forward is one block of kReduceThreads threads: each thread accumulates a fixed
// strided subset in double, then a fixed shared-memory tree (detail::block_sum), so the
// result is bitwise reproducible for a given n. A mean over nothing is NaN (0/0), as on
// the CPU. softmax_xent_forward gives each row to one warp of that block.
//
// Labels are not checked on the host (that would need a device-to-host copy): a label
// outside [0, C) makes the loss NaN in the forward and its row of glogits NaN in the
// backward, where the CPU twin throws.
#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

// <<<1, kReduceThreads>>>: warp w handles rows w, w + 32, ...; its lanes stride the
// classes. The xor butterflies leave the same value in every lane (a + b == b + a), so
// all lanes agree on the row's max and sum. Lane 0 of each warp adds its rows' losses in
// row order; block_sum then combines the warps in a fixed tree.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    softmax_xent_forward_kernel(const T* logits, const int64_t* labels, T* probs, T* loss, int64_t rows,
                                int64_t classes) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  constexpr int kWarps = kReduceThreads / kWarp;
  double warp_total = 0.0;
  for (int64_t r = warp; r < rows; r += kWarps) {
    const T* x = logits + r * classes;
    T* p = probs + r * classes;
    const RowSoftmax sm = warp_row_softmax(x, p, classes, lane);
    const double m = sm.max, s = sm.sum;
    if (lane == 0) {
      const int64_t label = labels[r];
      const double row_loss =
          (label >= 0 && label < classes) ? log(s) - (static_cast<double>(x[label]) - m) : quiet_nan();
      warp_total += row_loss;
    }
  }
  const double total = block_sum<kReduceThreads>(lane == 0 ? warp_total : 0.0);
  if (threadIdx.x == 0) loss[0] = static_cast<T>(total / static_cast<double>(rows));
}

// glogits[r, c] = (probs[r, c] - [c == label_r]) * g[0] / rows; NaN for a bad label.
template <typename T>
__global__ void softmax_xent_backward_kernel(const T* probs, const int64_t* labels, const T* g, T* glogits,
                                             int64_t rows, int64_t classes) {
  const T scale = g[0] / static_cast<T>(rows);
  for (int64_t i = grid_start(); i < rows * classes; i += grid_stride()) {
    const int64_t label = labels[i / classes];
    const int64_t c = i % classes;
    if (label < 0 || label >= classes) {
      glogits[i] = static_cast<T>(quiet_nan());
    } else {
      glogits[i] = (probs[i] - (c == label ? T(1) : T(0))) * scale;
    }
  }
}

// loss[0] = mean (a - b)^2; <<<1, kReduceThreads>>>.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    mse_forward_kernel(const T* a, const T* b, T* loss, int64_t n) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    acc += d * d;
  }
  const double total = block_sum<kReduceThreads>(acc);
  if (threadIdx.x == 0) loss[0] = static_cast<T>(total / static_cast<double>(n));
}

// ga = 2 (a - b) g[0] / n, gb = -ga; either may be null.
template <typename T>
__global__ void mse_backward_kernel(const T* a, const T* b, const T* g, T* ga, T* gb, int64_t n) {
  const T scale = T(2) * g[0] / static_cast<T>(n);
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    const T d = (a[i] - b[i]) * scale;
    if (ga != nullptr) ga[i] = d;
    if (gb != nullptr) gb[i] = -d;
  }
}

// loss[0] = mean max(x, 0) - x y + log1p(exp(-|x|)); <<<1, kReduceThreads>>>.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    bce_logits_forward_kernel(const T* x, const T* y, T* loss, int64_t n) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) {
    const double xi = static_cast<double>(x[i]);
    const double yi = static_cast<double>(y[i]);
    acc += fmax(xi, 0.0) - xi * yi + log1p(exp(-fabs(xi)));
  }
  const double total = block_sum<kReduceThreads>(acc);
  if (threadIdx.x == 0) loss[0] = static_cast<T>(total / static_cast<double>(n));
}

// gx = (sigmoid(x) - y) g[0] / n, gy = -x g[0] / n; either may be null.
template <typename T>
__global__ void bce_logits_backward_kernel(const T* x, const T* y, const T* g, T* gx, T* gy, int64_t n) {
  const T scale = g[0] / static_cast<T>(n);
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    const T xi = x[i];
    if (gx != nullptr) {
      const T e = exp(-fabs(xi));  // stable sigmoid: exp of a non-positive argument
      const T s = xi >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      gx[i] = (s - y[i]) * scale;
    }
    if (gy != nullptr) gy[i] = -xi * scale;
  }
}

}  // namespace

template <typename T>
void softmax_xent_forward(const T* logits, const int64_t* labels, T* probs, T* loss, int64_t rows, int64_t classes,
                          Exec ex) {
  const char* kernel = "cuda::softmax_xent_forward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "logits", logits, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "loss", loss, 1);
  // rows == 0 still launches: loss[0] = NaN, the mean of nothing.
  DT_LAUNCH(1, kReduceThreads, 0, stream_of(ex), softmax_xent_forward_kernel)(
      logits, labels, probs, loss, rows, classes);
  check_launch(kernel);
}

template <typename T>
void softmax_xent_backward(const T* probs, const int64_t* labels, const T* g, T* glogits, int64_t rows,
                           int64_t classes, Exec ex) {
  const char* kernel = "cuda::softmax_xent_backward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "g", g, rows * classes);
  check_ptr(kernel, "glogits", glogits, rows * classes);
  if (rows * classes == 0) return;
  DT_LAUNCH(blocks_for(rows * classes), kThreads, 0, stream_of(ex), softmax_xent_backward_kernel)(
      probs, labels, g, glogits, rows, classes);
  check_launch(kernel);
}

template <typename T>
void mse_forward(const T* a, const T* b, T* loss, int64_t n, Exec ex) {
  check_size("cuda::mse_forward", "n", n);
  check_ptr("cuda::mse_forward", "a", a, n);
  check_ptr("cuda::mse_forward", "b", b, n);
  check_ptr("cuda::mse_forward", "loss", loss, 1);
  // n == 0 still launches: loss[0] = NaN.
  DT_LAUNCH(1, kReduceThreads, 0, stream_of(ex), mse_forward_kernel)(a, b, loss, n);
  check_launch("cuda::mse_forward");
}

template <typename T>
void mse_backward(const T* a, const T* b, const T* g, T* ga, T* gb, int64_t n, Exec ex) {
  check_size("cuda::mse_backward", "n", n);
  check_ptr("cuda::mse_backward", "a", a, n);
  check_ptr("cuda::mse_backward", "b", b, n);
  check_ptr("cuda::mse_backward", "g", g, n);
  if (n == 0 || (ga == nullptr && gb == nullptr)) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), mse_backward_kernel)(a, b, g, ga, gb, n);
  check_launch("cuda::mse_backward");
}

template <typename T>
void bce_logits_forward(const T* x, const T* y, T* loss, int64_t n, Exec ex) {
  check_size("cuda::bce_logits_forward", "n", n);
  check_ptr("cuda::bce_logits_forward", "x", x, n);
  check_ptr("cuda::bce_logits_forward", "y", y, n);
  check_ptr("cuda::bce_logits_forward", "loss", loss, 1);
  // n == 0 still launches: loss[0] = NaN.
  DT_LAUNCH(1, kReduceThreads, 0, stream_of(ex), bce_logits_forward_kernel)(x, y, loss, n);
  check_launch("cuda::bce_logits_forward");
}

template <typename T>
void bce_logits_backward(const T* x, const T* y, const T* g, T* gx, T* gy, int64_t n, Exec ex) {
  check_size("cuda::bce_logits_backward", "n", n);
  check_ptr("cuda::bce_logits_backward", "x", x, n);
  check_ptr("cuda::bce_logits_backward", "y", y, n);
  check_ptr("cuda::bce_logits_backward", "g", g, n);
  if (n == 0 || (gx == nullptr && gy == nullptr)) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), bce_logits_backward_kernel)(x, y, g, gx, gy, n);
  check_launch("cuda::bce_logits_backward");
}

DT_INSTANTIATE_KERNELS(DT_LOSS_KERNELS)

}  // namespace dtrain::ops::cuda
