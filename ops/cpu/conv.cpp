// 2-D convolution on the CPU (NCHW, dilation 1, one group; ops/geometry.h).
//   conv2d_forward:         y  = x (*) w                 x: (N, C_in, H, W); w: (C_out, C_in, KH, KW)
//   conv2d_backward_data:   gx = d(sum gy . y)/dx  (=)   gy, y: (N, C_out, Ho, Wo)
//   conv2d_backward_weight: gw = d(sum gy . y)/dw  (=), summed over the batch
//
// Two implementations (ops/cpu/conv_paths.h):
// - im2col + gemm, one image at a time: cols (C_in KH KW, Ho Wo) gathers every input
//   patch, y[n] = w @ cols; gx[n] = col2im(w^T @ gy[n]); gw = sum_n gy[n] @ cols[n]^T in
//   image order. This is the reference path, and the only one for double.
// - oneDNN (float): convolution forward / backward-data / backward-weights primitives,
//   created once per (thread, geometry, layout) and cached. See Note [oneDNN layouts]
//   for which layouts float uses and why.
// A float geometry oneDNN cannot handle (it reports "unimplemented") takes the im2col path;
// nothing is ever computed half on one path.
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"
#include "ops/cpu/conv_paths.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::detail {

namespace {

// ---- im2col path ------------------------------------------------------------------------

// A per-thread buffer of at least `count` elements, kept between calls (the column
// matrices are megabytes; allocating them per call costs page faults every step).
template <typename T>
T* thread_buffer(int64_t count) {
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < count) buf.resize(static_cast<size_t>(count));
  return buf.data();
}

// f(p) for p in [0, planes) on the calling thread. The im2col path runs its gathers
// serially: the gemm between them runs on OpenBLAS's own threads, and OpenMP workers
// spinning after a parallel gather would compete with those for the same cores.
template <typename F>
void for_each_plane(int64_t planes, F f) {
  for (int64_t p = 0; p < planes; ++p) f(p);
}

// Output positions o in [0, out) whose input coordinate o * stride - pad + k lies in
// [0, in): the range [lo, hi).
inline void valid_range(int64_t out, int64_t in, int64_t stride, int64_t pad, int64_t k, int64_t& lo,
                        int64_t& hi) {
  const int64_t first = pad - k;  // need o * stride >= first
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int64_t last = in - 1 + pad - k;  // need o * stride <= last
  hi = last < 0 ? 0 : last / stride + 1;
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
}

// cols (C_in KH KW, Ho Wo): row (c, ki, kj), column (oh, ow) = x[c, oh sh - ph + ki,
// ow sw - pw + kj], 0 in the padding.                                   x: (C_in, H, W)
template <typename T>
void im2col(const Conv2dGeom& g, const T* x, T* cols) {
  const int64_t ho = g.h_out(), wo = g.w_out(), p = ho * wo;
  for_each_plane(g.c_in * g.kh * g.kw, [&](int64_t r) {
    const int64_t kj = r % g.kw, ki = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const T* plane = x + c * g.h * g.w;
    T* out = cols + r * p;
    int64_t ow_lo, ow_hi;
    valid_range(wo, g.w, g.stride_w, g.pad_w, kj, ow_lo, ow_hi);
    for (int64_t oh = 0; oh < ho; ++oh) {
      T* orow = out + oh * wo;
      const int64_t ih = oh * g.stride_h - g.pad_h + ki;
      if (ih < 0 || ih >= g.h) {
        for (int64_t ow = 0; ow < wo; ++ow) orow[ow] = T(0);
        continue;
      }
      const T* irow = plane + ih * g.w - g.pad_w + kj;  // irow[ow * sw] = x[c, ih, ow sw - pw + kj]
      for (int64_t ow = 0; ow < ow_lo; ++ow) orow[ow] = T(0);
      if (g.stride_w == 1) {
        std::memcpy(orow + ow_lo, irow + ow_lo, static_cast<size_t>(ow_hi - ow_lo) * sizeof(T));
      } else {
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) orow[ow] = irow[ow * g.stride_w];
      }
      for (int64_t ow = ow_hi; ow < wo; ++ow) orow[ow] = T(0);
    }
  });
}

// gx (=) = the adjoint of im2col: every column entry added back to the input element it
// was gathered from, per channel in a fixed order.          cols as above; gx: (C_in, H, W)
template <typename T>
void col2im(const Conv2dGeom& g, const T* cols, T* gx) {
  const int64_t ho = g.h_out(), wo = g.w_out(), p = ho * wo;
  for_each_plane(g.c_in, [&](int64_t c) {
    T* plane = gx + c * g.h * g.w;
    for (int64_t i = 0; i < g.h * g.w; ++i) plane[i] = T(0);
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const T* in = cols + ((c * g.kh + ki) * g.kw + kj) * p;
        int64_t ow_lo, ow_hi;
        valid_range(wo, g.w, g.stride_w, g.pad_w, kj, ow_lo, ow_hi);
        for (int64_t oh = 0; oh < ho; ++oh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + ki;
          if (ih < 0 || ih >= g.h) continue;
          T* prow = plane + ih * g.w - g.pad_w + kj;
          const T* crow = in + oh * wo;
          for (int64_t ow = ow_lo; ow < ow_hi; ++ow) prow[ow * g.stride_w] += crow[ow];
        }
      }
    }
  });
}

// A 1x1 kernel with stride 1 and no padding needs no column matrix: cols = x[n].
bool is_pointwise(const Conv2dGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

}  // namespace

template <typename T>
void conv2d_forward_im2col(const Conv2dGeom& g, const T* x, const T* w, T* y) {
  const int64_t k = g.c_in * g.kh * g.kw, p = g.h_out() * g.w_out();
  const bool pointwise = is_pointwise(g);
  T* cols = pointwise ? nullptr : thread_buffer<T>(k * p);
  for (int64_t i = 0; i < g.n; ++i) {
    const T* xi = x + i * g.c_in * g.h * g.w;
    if (!pointwise) im2col(g, xi, cols);
    // y[i] (C_out, P) = w (C_out, K) @ cols (K, P)
    cpu::gemm<T>(false, false, g.c_out, p, k, T(1), w, k, pointwise ? xi : cols, p, T(0), y + i * g.c_out * p, p, Exec{});
  }
}

template <typename T>
void conv2d_backward_data_im2col(const Conv2dGeom& g, const T* w, const T* gy, T* gx) {
  const int64_t k = g.c_in * g.kh * g.kw, p = g.h_out() * g.w_out();
  const bool pointwise = is_pointwise(g);
  T* cols = pointwise ? nullptr : thread_buffer<T>(k * p);
  for (int64_t i = 0; i < g.n; ++i) {
    T* gxi = gx + i * g.c_in * g.h * g.w;
    // cols (K, P) = w^T (K, C_out) @ gy[i] (C_out, P)
    cpu::gemm<T>(true, false, k, p, g.c_out, T(1), w, k, gy + i * g.c_out * p, p, T(0), pointwise ? gxi : cols, p, Exec{});
    if (!pointwise) col2im(g, cols, gxi);
  }
}

template <typename T>
void conv2d_backward_weight_im2col(const Conv2dGeom& g, const T* x, const T* gy, T* gw) {
  const int64_t k = g.c_in * g.kh * g.kw, p = g.h_out() * g.w_out();
  if (g.n == 0) {
    for (int64_t i = 0; i < g.c_out * k; ++i) gw[i] = T(0);
    return;
  }
  const bool pointwise = is_pointwise(g);
  T* cols = pointwise ? nullptr : thread_buffer<T>(k * p);
  for (int64_t i = 0; i < g.n; ++i) {
    const T* xi = x + i * g.c_in * g.h * g.w;
    if (!pointwise) im2col(g, xi, cols);
    // gw (C_out, K) (+)= gy[i] (C_out, P) @ cols^T (P, K), images in order.
    cpu::gemm<T>(false, true, g.c_out, k, p, T(1), gy + i * g.c_out * p, p, pointwise ? xi : cols, p,
            i == 0 ? T(0) : T(1), gw, k, Exec{});
  }
}

// ---- oneDNN path ----------------------------------------------------------------------
//
// Note [oneDNN layouts]
// The user's buffers are plain NCHW / OIHW. oneDNN 2.6's fast AVX-512 kernels
// (jit:avx512_core) work on channel-blocked layouts (nChw16c activations, OIhw16i16o-like
// weights); on plain NCHW it picks its gemm-based convolution (gemm:jit).
// DnnlLayout::kBlocked creates the primitives with format_tag::any and reorders each
// argument in and out around the call (what PyTorch's mkldnn path does too); kPlain binds
// the user's buffers directly. Measured on the small VGG's 3x3 convolutions at batch 64
// (fwd + bwd data + bwd weights, all five layers, one thread, ms): blocked 190, plain 287,
// im2col + OpenBLAS sgemm 406; two threads: blocked 98, plain 168, im2col 346. The
// reorders cost far less than the blocked kernels gain, except for the RGB input layer
// (C_in = 3, padded to a 16-block), where plain wins forward (1.6 vs 2.2) and data
// gradient (2.2 vs 6.3): see forward_layout().

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

enum class ConvOp { kForward, kBackwardData, kBackwardWeight };

// Per-thread engine and stream: oneDNN objects are not shared across threads here, so
// threads-as-ranks never contend on them.
struct DnnlContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

// One tensor argument of a primitive: the user's layout and the primitive's, with a
// reorder when they differ (user -> primitive for inputs, primitive -> user for the
// output) through a slice of the thread's staging arena (DnnlCache::staging).
struct DnnlArg {
  memory::desc user;
  memory::desc prim;
  bool reordered = false;
  dnnl::reorder reorder;
  size_t staged_bytes = 0;  // the arena slice it needs, rounded up to 64 bytes

  void init(const dnnl::engine& eng, const memory::desc& user_md, const memory::desc& prim_md, bool is_input) {
    user = user_md;
    prim = prim_md;
    reordered = user_md != prim_md;
    if (!reordered) return;
    staged_bytes = (prim_md.get_size() + 63) / 64 * 64;
    reorder = is_input ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, user_md, eng, prim_md))
                       : dnnl::reorder(dnnl::reorder::primitive_desc(eng, prim_md, eng, user_md));
  }
};

// A cached primitive with its two inputs and one output (forward: src, weights -> dst;
// backward data: diff_dst, weights -> diff_src; backward weights: src, diff_dst ->
// diff_weights). supported = false records that oneDNN has no implementation.
struct DnnlConv {
  bool supported = false;
  dnnl::primitive prim;
  DnnlArg in0, in1, out;
  int in0_id = 0, in1_id = 0, out_id = 0;
};

using ConvKey = std::array<int64_t, 13>;

ConvKey make_key(const Conv2dGeom& g, ConvOp op, DnnlLayout layout) {
  return {g.n,  g.c_in,     g.h,        g.w,     g.c_out, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
          static_cast<int64_t>(op), static_cast<int64_t>(layout)};
}

// Blocked copies live only for the duration of one call, so all primitives of a thread
// share one staging arena (sized by the largest call) instead of each keeping its own:
// a few tens of MB instead of several hundred for a VGG.
struct StagingArena {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data;
  size_t bytes = 0;

  char* reserve(size_t need) {
    if (need > bytes) {
      data.reset();
      data.reset(std::aligned_alloc(64, need));
      if (!data) throw std::bad_alloc();
      bytes = need;
    }
    return static_cast<char*>(data.get());
  }
};

struct DnnlCache {
  DnnlContext ctx;
  std::map<ConvKey, std::unique_ptr<DnnlConv>> convs;
  StagingArena staging;
};

DnnlCache& dnnl_cache() {
  thread_local DnnlCache cache;
  return cache;
}

DnnlConv make_conv(const dnnl::engine& eng, const Conv2dGeom& g, ConvOp op, DnnlLayout layout) {
  const memory::dims src_dims{g.n, g.c_in, g.h, g.w};
  const memory::dims wei_dims{g.c_out, g.c_in, g.kh, g.kw};
  const memory::dims dst_dims{g.n, g.c_out, g.h_out(), g.w_out()};
  const memory::dims strides{g.stride_h, g.stride_w};
  const memory::dims pad_l{g.pad_h, g.pad_w};
  // Right/bottom padding that makes the output size exact (floor division drops the rest).
  const memory::dims pad_r{(g.h_out() - 1) * g.stride_h + g.kh - g.h - g.pad_h,
                           (g.w_out() - 1) * g.stride_w + g.kw - g.w - g.pad_w};
  const auto f32 = memory::data_type::f32;
  const memory::desc user_src(src_dims, f32, Tag::nchw), user_wei(wei_dims, f32, Tag::oihw),
      user_dst(dst_dims, f32, Tag::nchw);
  const bool plain = layout == DnnlLayout::kPlain;
  const memory::desc src_md = plain ? user_src : memory::desc(src_dims, f32, Tag::any);
  const memory::desc wei_md = plain ? user_wei : memory::desc(wei_dims, f32, Tag::any);
  const memory::desc dst_md = plain ? user_dst : memory::desc(dst_dims, f32, Tag::any);

  DnnlConv c;
  try {
    const dnnl::convolution_forward::primitive_desc fwd_pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                        src_md, wei_md, dst_md, strides, pad_l, pad_r),
        eng);
    switch (op) {
      case ConvOp::kForward:
        c.prim = dnnl::convolution_forward(fwd_pd);
        c.in0.init(eng, user_src, fwd_pd.src_desc(), true);
        c.in1.init(eng, user_wei, fwd_pd.weights_desc(), true);
        c.out.init(eng, user_dst, fwd_pd.dst_desc(), false);
        c.in0_id = DNNL_ARG_SRC, c.in1_id = DNNL_ARG_WEIGHTS, c.out_id = DNNL_ARG_DST;
        break;
      case ConvOp::kBackwardData: {
        const dnnl::convolution_backward_data::primitive_desc pd(
            dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, src_md, wei_md, dst_md,
                                                  strides, pad_l, pad_r),
            eng, fwd_pd);
        c.prim = dnnl::convolution_backward_data(pd);
        c.in0.init(eng, user_dst, pd.diff_dst_desc(), true);
        c.in1.init(eng, user_wei, pd.weights_desc(), true);
        c.out.init(eng, user_src, pd.diff_src_desc(), false);
        c.in0_id = DNNL_ARG_DIFF_DST, c.in1_id = DNNL_ARG_WEIGHTS, c.out_id = DNNL_ARG_DIFF_SRC;
        break;
      }
      case ConvOp::kBackwardWeight: {
        const dnnl::convolution_backward_weights::primitive_desc pd(
            dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_md, wei_md, dst_md,
                                                     strides, pad_l, pad_r),
            eng, fwd_pd);
        c.prim = dnnl::convolution_backward_weights(pd);
        c.in0.init(eng, user_src, pd.src_desc(), true);
        c.in1.init(eng, user_dst, pd.diff_dst_desc(), true);
        c.out.init(eng, user_wei, pd.diff_weights_desc(), false);
        c.in0_id = DNNL_ARG_SRC, c.in1_id = DNNL_ARG_DIFF_DST, c.out_id = DNNL_ARG_DIFF_WEIGHTS;
        break;
      }
    }
    c.supported = true;
  } catch (const dnnl::error&) {
    c = DnnlConv{};  // unimplemented for this geometry: the caller takes the im2col path
  }
  return c;
}

// Runs the cached primitive for (g, op, layout) on the user's buffers. False when oneDNN
// has no implementation; the output is then untouched.
bool run_dnnl(const Conv2dGeom& g, ConvOp op, DnnlLayout layout, const float* in0, const float* in1, float* out) {
  DnnlCache& cache = dnnl_cache();
  std::unique_ptr<DnnlConv>& slot = cache.convs[make_key(g, op, layout)];
  if (!slot) slot = std::make_unique<DnnlConv>(make_conv(cache.ctx.engine, g, op, layout));
  DnnlConv& c = *slot;
  if (!c.supported) return false;

  const dnnl::engine& eng = cache.ctx.engine;
  dnnl::stream& strm = cache.ctx.stream;
  char* staging = cache.staging.reserve(c.in0.staged_bytes + c.in1.staged_bytes + c.out.staged_bytes);
  auto input = [&](DnnlArg& a, const float* ptr) {
    memory user(a.user, eng, const_cast<float*>(ptr));
    if (!a.reordered) return user;
    memory staged(a.prim, eng, staging);
    staging += a.staged_bytes;
    a.reorder.execute(strm, user, staged);
    return staged;
  };
  memory m0 = input(c.in0, in0);
  memory m1 = input(c.in1, in1);
  memory user_out(c.out.user, eng, out);
  memory m_out = c.out.reordered ? memory(c.out.prim, eng, staging) : user_out;
  c.prim.execute(strm, {{c.in0_id, m0}, {c.in1_id, m1}, {c.out_id, m_out}});
  if (c.out.reordered) c.out.reorder.execute(strm, m_out, user_out);
  strm.wait();
  return true;
}

}  // namespace

bool conv2d_forward_dnnl(const Conv2dGeom& g, const float* x, const float* w, float* y, DnnlLayout layout) {
  return run_dnnl(g, ConvOp::kForward, layout, x, w, y);
}

bool conv2d_backward_data_dnnl(const Conv2dGeom& g, const float* w, const float* gy, float* gx, DnnlLayout layout) {
  return run_dnnl(g, ConvOp::kBackwardData, layout, gy, w, gx);
}

bool conv2d_backward_weight_dnnl(const Conv2dGeom& g, const float* x, const float* gy, float* gw,
                                 DnnlLayout layout) {
  return run_dnnl(g, ConvOp::kBackwardWeight, layout, x, gy, gw);
}

template void conv2d_forward_im2col<float>(const Conv2dGeom&, const float*, const float*, float*);
template void conv2d_forward_im2col<double>(const Conv2dGeom&, const double*, const double*, double*);
template void conv2d_backward_data_im2col<float>(const Conv2dGeom&, const float*, const float*, float*);
template void conv2d_backward_data_im2col<double>(const Conv2dGeom&, const double*, const double*, double*);
template void conv2d_backward_weight_im2col<float>(const Conv2dGeom&, const float*, const float*, float*);
template void conv2d_backward_weight_im2col<double>(const Conv2dGeom&, const double*, const double*, double*);

}  // namespace dtrain::ops::detail

namespace dtrain::ops::cpu {

// ---- the kernels ------------------------------------------------------------------------

namespace {

// The float layout for oneDNN (Note [oneDNN layouts]): blocked, except that a layer with
// fewer input channels than one 16-channel block (the RGB input layer) runs its forward
// and data gradient faster on the plain layouts.
detail::DnnlLayout forward_layout(const Conv2dGeom& g) {
  return g.c_in < 16 ? detail::DnnlLayout::kPlain : detail::DnnlLayout::kBlocked;
}
detail::DnnlLayout backward_data_layout(const Conv2dGeom& g) { return forward_layout(g); }
constexpr detail::DnnlLayout kBackwardWeightLayout = detail::DnnlLayout::kBlocked;

// oneDNN takes the float geometries with something to compute; empty or channel-less
// ones (all-zero outputs) are left to the im2col path.
bool dnnl_eligible(const Conv2dGeom& g) { return g.x_numel() > 0 && g.w_numel() > 0 && g.y_numel() > 0; }

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dGeom& g, const T* x, const T* w, T* y, Exec) {
  const char* kernel = "cpu::conv2d_forward";
  detail::check_conv_geom(kernel, g);  // first: the sizes below divide by the strides
  detail::check_ptr(kernel, "x", x, g.x_numel());
  detail::check_ptr(kernel, "w", w, g.w_numel());
  detail::check_ptr(kernel, "y", y, g.y_numel());
  if (g.y_numel() == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_eligible(g) && detail::conv2d_forward_dnnl(g, x, w, y, forward_layout(g))) return;
  }
  detail::conv2d_forward_im2col(g, x, w, y);
}

template <typename T>
void conv2d_backward_data(const Conv2dGeom& g, const T* w, const T* gy, T* gx, Exec) {
  const char* kernel = "cpu::conv2d_backward_data";
  detail::check_conv_geom(kernel, g);
  detail::check_ptr(kernel, "w", w, g.w_numel());
  detail::check_ptr(kernel, "gy", gy, g.y_numel());
  detail::check_ptr(kernel, "gx", gx, g.x_numel());
  if (g.x_numel() == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_eligible(g) && detail::conv2d_backward_data_dnnl(g, w, gy, gx, backward_data_layout(g))) return;
  }
  detail::conv2d_backward_data_im2col(g, w, gy, gx);
}

template <typename T>
void conv2d_backward_weight(const Conv2dGeom& g, const T* x, const T* gy, T* gw, Exec) {
  const char* kernel = "cpu::conv2d_backward_weight";
  detail::check_conv_geom(kernel, g);
  detail::check_ptr(kernel, "x", x, g.x_numel());
  detail::check_ptr(kernel, "gy", gy, g.y_numel());
  detail::check_ptr(kernel, "gw", gw, g.w_numel());
  if (g.w_numel() == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_eligible(g) && detail::conv2d_backward_weight_dnnl(g, x, gy, gw, kBackwardWeightLayout)) return;
  }
  detail::conv2d_backward_weight_im2col(g, x, gy, gw);
}

DT_INSTANTIATE_KERNELS(DT_CONV_KERNELS)

}  // namespace dtrain::ops::cpu
