#pragma once
// The two CPU implementations behind conv2d_forward / conv2d_backward_data /
// conv2d_backward_weight (ops/kernels.inc), exposed so tests and benchmarks can run each
// one directly. Kernels choose for themselves: double always takes im2col + BLAS (the
// reference path); float takes oneDNN and falls back to im2col only when oneDNN has no
// implementation for the shape (see ops/cpu/conv.cpp).
//                x: (N, C_in, H, W); w: (C_out, C_in, KH, KW); y: (N, C_out, Ho, Wo)
#include "ops/geometry.h"

namespace dtrain::ops::detail {

// im2col + gemm (col2im for the data gradient), one image at a time.
template <typename T> void conv2d_forward_im2col(const Conv2dGeom& g, const T* x, const T* w, T* y);
template <typename T> void conv2d_backward_data_im2col(const Conv2dGeom& g, const T* w, const T* gy, T* gx);
template <typename T> void conv2d_backward_weight_im2col(const Conv2dGeom& g, const T* x, const T* gy, T* gw);

// oneDNN primitives, cached per thread and geometry. kPlain creates them on the user's
// NCHW / OIHW buffers; kBlocked lets oneDNN pick its layouts (format_tag::any) and
// reorders in and out. Each returns false, having written nothing, when oneDNN has no
// implementation for the geometry.
enum class DnnlLayout { kPlain, kBlocked };
bool conv2d_forward_dnnl(const Conv2dGeom& g, const float* x, const float* w, float* y, DnnlLayout layout);
bool conv2d_backward_data_dnnl(const Conv2dGeom& g, const float* w, const float* gy, float* gx, DnnlLayout layout);
bool conv2d_backward_weight_dnnl(const Conv2dGeom& g, const float* x, const float* gy, float* gw,
                                 DnnlLayout layout);

}  // namespace dtrain::ops::detail
