// 2-D pooling on CUDA (NCHW; ops/geometry.h).        x, gx: (N, C, H, W); y, gy, argmax: (N, C, Ho, Wo)
//   max_pool2d:          y = max over the window (padding is -inf); argmax = ih * W + iw
//                        within the (n, c) plane, first maximum in row-major window order,
//                        -1 for a window entirely in padding. gx (=) = sum of gy over the
//                        windows whose argmax is the element.
//   avg_pool2d:          y = sum over the window / (KH KW) (padding counts as 0);
//                        gx (=) = sum of gy over the windows containing the element / (KH KW)
//   adaptive_avg_pool2d: y = mean over the cell rows [floor(i H / Ho), ceil((i+1) H / Ho)),
//                        columns likewise; gx (=) = sum over cells containing the element
//                        of gy / cell size.
// Every kernel is one thread per written element (grid-stride). The backwards are gathers:
// an input element visits the outputs whose windows can contain it, in row-major output
// order, so there are no atomics and results are bitwise reproducible. They add in T, in
// that order, the same terms as the CPU twin's scatter-adds (gy, or gy / window size),
// so they agree with it bit for bit; the forward window sums accumulate in double.
#include <cmath>

#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

// Output positions o in [0, out) whose window [o s - p, o s - p + k) contains input
// position i: [lo, hi] (empty when lo > hi).
__device__ inline void windows_containing(int64_t i, int64_t out, int64_t s, int64_t p, int64_t k, int64_t& lo,
                                          int64_t& hi) {
  const int64_t first = i + p - k + 1;  // o s >= first
  lo = first <= 0 ? 0 : (first + s - 1) / s;
  hi = (i + p) / s;  // o s <= i + p (i + p >= 0)
  if (hi > out - 1) hi = out - 1;
}

// Start and end (exclusive) of adaptive cell `o` of `out` over `in` positions.
__device__ inline int64_t cell_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
__device__ inline int64_t cell_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

template <typename T>
__global__ void max_pool_forward_kernel(Pool2dGeom g, const T* x, T* y, int32_t* argmax, int64_t total) {
  const int64_t ho = g.h_out(), wo = g.w_out();
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t ow = i % wo;
    const int64_t oh = (i / wo) % ho;
    const T* plane = x + (i / (wo * ho)) * g.h * g.w;
    const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    T best = T(0);
    int64_t arg = -1;
    for (int64_t ih = max(h0, int64_t{0}); ih < min(h0 + g.kh, g.h); ++ih) {
      for (int64_t iw = max(w0, int64_t{0}); iw < min(w0 + g.kw, g.w); ++iw) {
        const T v = plane[ih * g.w + iw];
        // As the CPU twin (and PyTorch): the first in-window element until a larger one
        // or a NaN comes, so a window of -inf still points into the plane.
        if (arg < 0 || v > best || isnan(v)) {
          best = v;
          arg = ih * g.w + iw;
        }
      }
    }
    y[i] = arg < 0 ? T(-INFINITY) : best;
    argmax[i] = static_cast<int32_t>(arg);
  }
}

// One thread per input element: sums gy over the windows that can contain it and chose it.
template <typename T>
__global__ void max_pool_backward_kernel(Pool2dGeom g, const T* gy, const int32_t* argmax, T* gx, int64_t total) {
  const int64_t ho = g.h_out(), wo = g.w_out();
  for (int64_t j = grid_start(); j < total; j += grid_stride()) {
    const int64_t iw = j % g.w;
    const int64_t ih = (j / g.w) % g.h;
    const int64_t out_plane = (j / (g.w * g.h)) * ho * wo;
    const int32_t self = static_cast<int32_t>(ih * g.w + iw);
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    windows_containing(ih, ho, g.stride_h, g.pad_h, g.kh, oh_lo, oh_hi);
    windows_containing(iw, wo, g.stride_w, g.pad_w, g.kw, ow_lo, ow_hi);
    T acc = T(0);
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        const int64_t o = out_plane + oh * wo + ow;
        if (argmax[o] == self) acc += gy[o];
      }
    }
    gx[j] = acc;
  }
}

template <typename T>
__global__ void avg_pool_forward_kernel(Pool2dGeom g, const T* x, T* y, int64_t total) {
  const int64_t ho = g.h_out(), wo = g.w_out();
  const double divisor = static_cast<double>(g.kh * g.kw);
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t ow = i % wo;
    const int64_t oh = (i / wo) % ho;
    const T* plane = x + (i / (wo * ho)) * g.h * g.w;
    const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    double acc = 0.0;
    for (int64_t ih = max(h0, int64_t{0}); ih < min(h0 + g.kh, g.h); ++ih) {
      for (int64_t iw = max(w0, int64_t{0}); iw < min(w0 + g.kw, g.w); ++iw) {
        acc += static_cast<double>(plane[ih * g.w + iw]);
      }
    }
    y[i] = static_cast<T>(acc / divisor);
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(Pool2dGeom g, const T* gy, T* gx, int64_t total) {
  const int64_t ho = g.h_out(), wo = g.w_out();
  const T divisor = static_cast<T>(g.kh * g.kw);
  for (int64_t j = grid_start(); j < total; j += grid_stride()) {
    const int64_t iw = j % g.w;
    const int64_t ih = (j / g.w) % g.h;
    const T* plane = gy + (j / (g.w * g.h)) * ho * wo;
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    windows_containing(ih, ho, g.stride_h, g.pad_h, g.kh, oh_lo, oh_hi);
    windows_containing(iw, wo, g.stride_w, g.pad_w, g.kw, ow_lo, ow_hi);
    T acc = T(0);
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) acc += plane[oh * wo + ow] / divisor;
    }
    gx[j] = acc;
  }
}

template <typename T>
__global__ void adaptive_avg_forward_kernel(AdaptivePoolGeom g, const T* x, T* y, int64_t total) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t ow = i % g.w_out;
    const int64_t oh = (i / g.w_out) % g.h_out;
    const T* plane = x + (i / (g.w_out * g.h_out)) * g.h * g.w;
    const int64_t hs = cell_start(oh, g.h, g.h_out), he = cell_end(oh, g.h, g.h_out);
    const int64_t ws = cell_start(ow, g.w, g.w_out), we = cell_end(ow, g.w, g.w_out);
    double acc = 0.0;
    for (int64_t ih = hs; ih < he; ++ih) {
      for (int64_t iw = ws; iw < we; ++iw) acc += static_cast<double>(plane[ih * g.w + iw]);
    }
    y[i] = static_cast<T>(acc / static_cast<double>((he - hs) * (we - ws)));
  }
}

// Cells containing row ih: from floor(ih Ho / H) (the first whose end exceeds ih) to
// floor(((ih + 1) Ho - 1) / H) (the last whose start is <= ih); the loop re-checks both
// bounds, so the range only has to cover them.
template <typename T>
__global__ void adaptive_avg_backward_kernel(AdaptivePoolGeom g, const T* gy, T* gx, int64_t total) {
  for (int64_t j = grid_start(); j < total; j += grid_stride()) {
    const int64_t iw = j % g.w;
    const int64_t ih = (j / g.w) % g.h;
    const T* plane = gy + (j / (g.w * g.h)) * g.h_out * g.w_out;
    const int64_t oh_lo = (ih * g.h_out) / g.h, oh_hi = min(g.h_out - 1, ((ih + 1) * g.h_out - 1) / g.h);
    const int64_t ow_lo = (iw * g.w_out) / g.w, ow_hi = min(g.w_out - 1, ((iw + 1) * g.w_out - 1) / g.w);
    T acc = T(0);
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      const int64_t hs = cell_start(oh, g.h, g.h_out), he = cell_end(oh, g.h, g.h_out);
      if (ih < hs || ih >= he) continue;
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        const int64_t ws = cell_start(ow, g.w, g.w_out), we = cell_end(ow, g.w, g.w_out);
        if (iw < ws || iw >= we) continue;
        acc += plane[oh * g.w_out + ow] / static_cast<T>((he - hs) * (we - ws));
      }
    }
    gx[j] = acc;
  }
}

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dGeom& g, const T* x, T* y, int32_t* argmax, Exec ex) {
  const char* kernel = "cuda::max_pool2d_forward";
  ::dtrain::ops::detail::check_pool_geom(kernel, g);
  check_ptr(kernel, "x", x, g.x_numel());
  check_ptr(kernel, "y", y, g.y_numel());
  check_ptr(kernel, "argmax", argmax, g.y_numel());
  if (g.h * g.w > INT32_MAX) invalid(kernel, "an (H, W) plane above 2^31 - 1 elements does not fit int32 argmax");
  const int64_t total = g.y_numel();
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), max_pool_forward_kernel)(g, x, y, argmax, total);
  check_launch(kernel);
}

template <typename T>
void max_pool2d_backward(const Pool2dGeom& g, const T* gy, const int32_t* argmax, T* gx, Exec ex) {
  const char* kernel = "cuda::max_pool2d_backward";
  ::dtrain::ops::detail::check_pool_geom(kernel, g);
  check_ptr(kernel, "gy", gy, g.y_numel());
  check_ptr(kernel, "argmax", argmax, g.y_numel());
  check_ptr(kernel, "gx", gx, g.x_numel());
  const int64_t total = g.x_numel();
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), max_pool_backward_kernel)(g, gy, argmax, gx, total);
  check_launch(kernel);
}

template <typename T>
void avg_pool2d_forward(const Pool2dGeom& g, const T* x, T* y, Exec ex) {
  const char* kernel = "cuda::avg_pool2d_forward";
  ::dtrain::ops::detail::check_pool_geom(kernel, g);
  check_ptr(kernel, "x", x, g.x_numel());
  check_ptr(kernel, "y", y, g.y_numel());
  const int64_t total = g.y_numel();
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), avg_pool_forward_kernel)(g, x, y, total);
  check_launch(kernel);
}

template <typename T>
void avg_pool2d_backward(const Pool2dGeom& g, const T* gy, T* gx, Exec ex) {
  const char* kernel = "cuda::avg_pool2d_backward";
  ::dtrain::ops::detail::check_pool_geom(kernel, g);
  check_ptr(kernel, "gy", gy, g.y_numel());
  check_ptr(kernel, "gx", gx, g.x_numel());
  const int64_t total = g.x_numel();
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), avg_pool_backward_kernel)(g, gy, gx, total);
  check_launch(kernel);
}

template <typename T>
void adaptive_avg_pool2d_forward(const AdaptivePoolGeom& g, const T* x, T* y, Exec ex) {
  const char* kernel = "cuda::adaptive_avg_pool2d_forward";
  ::dtrain::ops::detail::check_adaptive_geom(kernel, g);
  check_ptr(kernel, "x", x, g.x_numel());
  check_ptr(kernel, "y", y, g.y_numel());
  const int64_t total = g.y_numel();
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), adaptive_avg_forward_kernel)(g, x, y, total);
  check_launch(kernel);
}

template <typename T>
void adaptive_avg_pool2d_backward(const AdaptivePoolGeom& g, const T* gy, T* gx, Exec ex) {
  const char* kernel = "cuda::adaptive_avg_pool2d_backward";
  ::dtrain::ops::detail::check_adaptive_geom(kernel, g);
  check_ptr(kernel, "gy", gy, g.y_numel());
  check_ptr(kernel, "gx", gx, g.x_numel());
  const int64_t total = g.x_numel();
  if (total == 0) return;
  DT_LAUNCH(blocks_for(total), kThreads, 0, stream_of(ex), adaptive_avg_backward_kernel)(g, gy, gx, total);
  check_launch(kernel);
}

DT_INSTANTIATE_KERNELS(DT_POOL_KERNELS)

}  // namespace dtrain::ops::cuda
