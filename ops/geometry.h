#pragma once
// Shapes of the spatial kernels (NCHW), shared by the CPU and CUDA twins.
// Output sizes use floor division, as PyTorch does by default (ceil_mode = false).
#include <cstdint>

#include "ops/bf16.h"  // DT_HD

namespace dtrain::ops {

// Convolution of x (N, C_in, H, W) with w (C_out, C_in, KH, KW), giving
// y (N, C_out, H_out, W_out). Dilation 1, one group.
struct Conv2dGeom {
  int64_t n = 0, c_in = 0, h = 0, w = 0;
  int64_t c_out = 0, kh = 0, kw = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;

  DT_HD int64_t h_out() const { return (h + 2 * pad_h - kh) / stride_h + 1; }
  DT_HD int64_t w_out() const { return (w + 2 * pad_w - kw) / stride_w + 1; }
  DT_HD int64_t x_numel() const { return n * c_in * h * w; }
  DT_HD int64_t w_numel() const { return c_out * c_in * kh * kw; }
  DT_HD int64_t y_numel() const { return n * c_out * h_out() * w_out(); }
};

// Pooling window over x (N, C, H, W), giving y (N, C, H_out, W_out). Padding counts as
// -inf for max pooling and as 0 (included in the divisor) for average pooling, the
// PyTorch defaults.
struct Pool2dGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t kh = 0, kw = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;

  DT_HD int64_t h_out() const { return (h + 2 * pad_h - kh) / stride_h + 1; }
  DT_HD int64_t w_out() const { return (w + 2 * pad_w - kw) / stride_w + 1; }
  DT_HD int64_t x_numel() const { return n * c * h * w; }
  DT_HD int64_t y_numel() const { return n * c * h_out() * w_out(); }
};

// Adaptive average pooling of x (N, C, H, W) to y (N, C, H_out, W_out): output cell
// (i, j) averages rows [floor(i H / H_out), ceil((i + 1) H / H_out)) and likewise columns.
struct AdaptivePoolGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t h_out = 1, w_out = 1;

  DT_HD int64_t x_numel() const { return n * c * h * w; }
  DT_HD int64_t y_numel() const { return n * c * h_out * w_out; }
};

}  // namespace dtrain::ops
