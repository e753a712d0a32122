// Differentiable functions of the convolution stack: convolution, transposed
// convolution, pooling, batch normalization, dropout, flatten (declared in
// core/functional.h). Forward through the ops kernels; backward recorded on the tape and
// written once, in terms of the same kernels, so it runs on either device.
#include <cmath>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/functional.h"
#include "core/rng.h"
#include "ops/geometry.h"

namespace dtrain::fn {

namespace {

using autograd::record;
using autograd::should_record;
using Grads = std::vector<Tensor>;

bool needs(const Tensor& t) { return t.defined() && t.requires_grad(); }

// Same device and dtype as x (the reference input of op).
void check_like(const char* op, const char* what, const Tensor& x, const Tensor& t) {
  DT_CHECK(t.device() == x.device(), op, ": ", what, " ", t.str(), " is on another device than x ", x.str(),
           "; move one with .to(device)");
  DT_CHECK(t.dtype() == x.dtype(), op, ": ", what, " ", t.str(), " has another dtype than x ", x.str());
}

void check_nchw(const char* op, const Tensor& x) {
  DT_CHECK(x.defined(), op, ": undefined input");
  DT_CHECK(x.ndim() == 4, op, ": expected x of shape (N, C, H, W), got ", x.str());
}

void check_positive(const char* op, const char* what, fn::Size2 s) {
  DT_CHECK(s.h > 0 && s.w > 0, op, ": ", what, " must be positive, got (", s.h, ", ", s.w, ")");
}

void check_non_negative(const char* op, const char* what, fn::Size2 s) {
  DT_CHECK(s.h >= 0 && s.w >= 0, op, ": ", what, " must not be negative, got (", s.h, ", ", s.w, ")");
}

Tensor new_tensor(const Shape& shape, const Tensor& like) { return Tensor::empty(shape, like.dtype(), like.device()); }

// ---- raw kernels (never recorded) -------------------------------------------------------

// y (N, C_out, Ho, Wo) = x (*) w.
Tensor conv_forward_raw(const ops::Conv2dGeom& g, const Tensor& x, const Tensor& w) {
  Tensor y = new_tensor({g.n, g.c_out, g.h_out(), g.w_out()}, x);
  dispatch_float(x.dtype(), "conv2d", [&]<typename T>() {
    DT_KERNEL(x.device(), conv2d_forward<T>)(g, x.data<T>(), w.data<T>(), y.data<T>(), exec_for(x.device()));
  });
  return y;
}

// gx (N, C_in, H, W) from w and gy (N, C_out, Ho, Wo).
Tensor conv_backward_data_raw(const ops::Conv2dGeom& g, const Tensor& w, const Tensor& gy) {
  Tensor gx = new_tensor({g.n, g.c_in, g.h, g.w}, gy);
  dispatch_float(gy.dtype(), "conv2d backward (data)", [&]<typename T>() {
    DT_KERNEL(gy.device(), conv2d_backward_data<T>)(g, w.data<T>(), gy.data<T>(), gx.data<T>(),
                                                    exec_for(gy.device()));
  });
  return gx;
}

// gw (C_out, C_in, KH, KW) from x and gy, summed over the batch.
Tensor conv_backward_weight_raw(const ops::Conv2dGeom& g, const Tensor& x, const Tensor& gy) {
  Tensor gw = new_tensor({g.c_out, g.c_in, g.kh, g.kw}, x);
  dispatch_float(x.dtype(), "conv2d backward (weight)", [&]<typename T>() {
    DT_KERNEL(x.device(), conv2d_backward_weight<T>)(g, x.data<T>(), gy.data<T>(), gw.data<T>(),
                                                     exec_for(x.device()));
  });
  return gw;
}

Tensor maybe_bias(const Tensor& y, const Tensor& b) { return b.defined() ? bias_add(y, b) : y; }

void check_bias(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, int64_t channels) {
  if (!b.defined()) return;
  check_like(op, "bias", x, b);
  DT_CHECK(b.ndim() == 1 && b.size(0) == channels, op, ": bias ", b.str(), " must have shape ",
           shape_str({channels}), " for weight ", w.str());
}

ops::Pool2dGeom pool_geom(const char* op, const Tensor& x, fn::Size2 kernel, fn::Size2 stride, fn::Size2 padding) {
  check_nchw(op, x);
  check_positive(op, "kernel size", kernel);
  check_positive(op, "stride", stride);
  check_non_negative(op, "padding", padding);
  DT_CHECK(2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w, op, ": padding (", padding.h, ", ", padding.w,
           ") must be at most half the kernel size (", kernel.h, ", ", kernel.w, ")");
  ops::Pool2dGeom g;
  g.n = x.size(0);
  g.c = x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.kh = kernel.h;
  g.kw = kernel.w;
  g.stride_h = stride.h;
  g.stride_w = stride.w;
  g.pad_h = padding.h;
  g.pad_w = padding.w;
  DT_CHECK(g.h + 2 * g.pad_h >= g.kh && g.w + 2 * g.pad_w >= g.kw, op, ": input ", x.str(),
           " (with padding (", g.pad_h, ", ", g.pad_w, ")) is smaller than the kernel (", g.kh, ", ", g.kw, ")");
  return g;
}

}  // namespace

// ---- convolution --------------------------------------------------------------------------

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride, Size2 padding) {
  const char* op = "conv2d";
  check_nchw(op, x);
  DT_CHECK(w.defined() && w.ndim() == 4, op, ": expected weight of shape (C_out, C_in, KH, KW), got ",
           w.defined() ? w.str() : "undefined");
  check_like(op, "weight", x, w);
  DT_CHECK(x.size(1) == w.size(1), op, ": input ", x.str(), " has ", x.size(1), " channels but weight ", w.str(),
           " expects C_in = ", w.size(1));
  check_bias(op, x, w, b, w.size(0));
  check_positive(op, "stride", stride);
  check_non_negative(op, "padding", padding);
  ops::Conv2dGeom g;
  g.n = x.size(0);
  g.c_in = x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.c_out = w.size(0);
  g.kh = w.size(2);
  g.kw = w.size(3);
  g.stride_h = stride.h;
  g.stride_w = stride.w;
  g.pad_h = padding.h;
  g.pad_w = padding.w;
  DT_CHECK(g.kh > 0 && g.kw > 0, op, ": empty kernel in weight ", w.str());
  DT_CHECK(g.h + 2 * g.pad_h >= g.kh && g.w + 2 * g.pad_w >= g.kw, op, ": input ", x.str(), " (with padding (",
           g.pad_h, ", ", g.pad_w, ")) is smaller than the kernel of weight ", w.str());

  Tensor y = conv_forward_raw(g, x, w);
  if (should_record({&x, &w})) {
    record(op, {x, w}, {y}, [g, x, w](const Grads& gr) {
      return Grads{needs(x) ? conv_backward_data_raw(g, w, gr[0]) : Tensor(),
                   needs(w) ? conv_backward_weight_raw(g, x, gr[0]) : Tensor()};
    });
  }
  return maybe_bias(y, b);
}

// The transposed convolution is conv2d's input gradient. With the conv geometry that maps
// y (N, C_out, Ho, Wo) to x (N, C_in, H, W) through the weight read as a conv weight
// (c_out = C_in, c_in = C_out), forward = conv2d_backward_data, input gradient =
// conv2d_forward, weight gradient = conv2d_backward_weight with x and gy swapped
// (ops/kernels.inc).
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride, Size2 padding,
                        Size2 output_padding) {
  const char* op = "conv_transpose2d";
  check_nchw(op, x);
  DT_CHECK(w.defined() && w.ndim() == 4, op, ": expected weight of shape (C_in, C_out, KH, KW), got ",
           w.defined() ? w.str() : "undefined");
  check_like(op, "weight", x, w);
  DT_CHECK(x.size(1) == w.size(0), op, ": input ", x.str(), " has ", x.size(1), " channels but weight ", w.str(),
           " expects C_in = ", w.size(0));
  check_bias(op, x, w, b, w.size(1));
  check_positive(op, "stride", stride);
  check_non_negative(op, "padding", padding);
  check_non_negative(op, "output_padding", output_padding);
  DT_CHECK(output_padding.h < stride.h && output_padding.w < stride.w, op, ": output_padding (", output_padding.h,
           ", ", output_padding.w, ") must be smaller than the stride (", stride.h, ", ", stride.w, ")");
  ops::Conv2dGeom g;
  g.n = x.size(0);
  g.c_out = x.size(1);  // the transposed op's input is the conv's output
  g.c_in = w.size(1);
  g.kh = w.size(2);
  g.kw = w.size(3);
  g.stride_h = stride.h;
  g.stride_w = stride.w;
  g.pad_h = padding.h;
  g.pad_w = padding.w;
  g.h = (x.size(2) - 1) * stride.h - 2 * padding.h + g.kh + output_padding.h;
  g.w = (x.size(3) - 1) * stride.w - 2 * padding.w + g.kw + output_padding.w;
  DT_CHECK(g.kh > 0 && g.kw > 0, op, ": empty kernel in weight ", w.str());
  DT_CHECK(g.h > 0 && g.w > 0, op, ": input ", x.str(), " with weight ", w.str(), ", stride (", stride.h, ", ",
           stride.w, ") and padding (", padding.h, ", ", padding.w, ") gives an empty output (", g.h, ", ", g.w, ")");
  DT_CHECK(g.h_out() == x.size(2) && g.w_out() == x.size(3), op, ": inconsistent geometry for input ", x.str(),
           " and weight ", w.str());

  Tensor y = conv_backward_data_raw(g, w, x);  // (N, C_out, H_out, W_out)
  if (should_record({&x, &w})) {
    record(op, {x, w}, {y}, [g, x, w](const Grads& gr) {
      return Grads{needs(x) ? conv_forward_raw(g, gr[0], w) : Tensor(),
                   needs(w) ? conv_backward_weight_raw(g, gr[0], x) : Tensor()};
    });
  }
  return maybe_bias(y, b);
}

// ---- pooling ------------------------------------------------------------------------------

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  ops::Pool2dGeom g = pool_geom("max_pool2d", x, kernel, stride, padding);
  DT_CHECK(g.h * g.w <= INT32_MAX, "max_pool2d: input plane of ", x.str(), " is too large for int32 argmax indices");
  Tensor y = new_tensor({g.n, g.c, g.h_out(), g.w_out()}, x);
  // The argmax is saved for the backward; the gradient goes to the first maximum.
  Tensor argmax = Tensor::empty(y.shape(), DType::I32, x.device());
  dispatch_float(x.dtype(), "max_pool2d", [&]<typename T>() {
    DT_KERNEL(x.device(), max_pool2d_forward<T>)(g, x.data<T>(), y.data<T>(), argmax.data<int32_t>(),
                                                 exec_for(x.device()));
  });
  if (should_record({&x})) {
    record("max_pool2d", {x}, {y}, [g, x, argmax](const Grads& gr) {
      Tensor gx = new_tensor(x.shape(), x);
      dispatch_float(x.dtype(), "max_pool2d backward", [&]<typename T>() {
        DT_KERNEL(x.device(), max_pool2d_backward<T>)(g, gr[0].data<T>(), argmax.data<int32_t>(), gx.data<T>(),
                                                      exec_for(x.device()));
      });
      return Grads{gx};
    });
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  ops::Pool2dGeom g = pool_geom("avg_pool2d", x, kernel, stride, padding);
  Tensor y = new_tensor({g.n, g.c, g.h_out(), g.w_out()}, x);
  dispatch_float(x.dtype(), "avg_pool2d", [&]<typename T>() {
    DT_KERNEL(x.device(), avg_pool2d_forward<T>)(g, x.data<T>(), y.data<T>(), exec_for(x.device()));
  });
  if (should_record({&x})) {
    record("avg_pool2d", {x}, {y}, [g, x](const Grads& gr) {
      Tensor gx = new_tensor(x.shape(), x);
      dispatch_float(x.dtype(), "avg_pool2d backward", [&]<typename T>() {
        DT_KERNEL(x.device(), avg_pool2d_backward<T>)(g, gr[0].data<T>(), gx.data<T>(), exec_for(x.device()));
      });
      return Grads{gx};
    });
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_nchw("adaptive_avg_pool2d", x);
  DT_CHECK(out_h > 0 && out_w > 0, "adaptive_avg_pool2d: output size must be positive, got (", out_h, ", ", out_w,
           ")");
  DT_CHECK(x.size(2) > 0 && x.size(3) > 0, "adaptive_avg_pool2d: empty input plane in ", x.str());
  ops::AdaptivePoolGeom g;
  g.n = x.size(0);
  g.c = x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.h_out = out_h;
  g.w_out = out_w;
  Tensor y = new_tensor({g.n, g.c, out_h, out_w}, x);
  dispatch_float(x.dtype(), "adaptive_avg_pool2d", [&]<typename T>() {
    DT_KERNEL(x.device(), adaptive_avg_pool2d_forward<T>)(g, x.data<T>(), y.data<T>(), exec_for(x.device()));
  });
  if (should_record({&x})) {
    record("adaptive_avg_pool2d", {x}, {y}, [g, x](const Grads& gr) {
      Tensor gx = new_tensor(x.shape(), x);
      dispatch_float(x.dtype(), "adaptive_avg_pool2d backward", [&]<typename T>() {
        DT_KERNEL(x.device(), adaptive_avg_pool2d_backward<T>)(g, gr[0].data<T>(), gx.data<T>(),
                                                               exec_for(x.device()));
      });
      return Grads{gx};
    });
  }
  return y;
}

// ---- batch normalization --------------------------------------------------------------------

namespace {

// y = (x - mean) / sqrt(var + eps) * gamma + beta per channel, with the given vectors.
Tensor bn_eval_raw(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean, const Tensor& var,
                   double eps) {
  int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  Tensor y = new_tensor(x.shape(), x);
  dispatch_float(x.dtype(), "batch_norm2d (eval)", [&]<typename T>() {
    DT_KERNEL(x.device(), batch_norm_forward_eval<T>)(x.data<T>(), gamma.data<T>(), beta.data<T>(), mean.data<T>(),
                                                      var.data<T>(), y.data<T>(), n, c, hw, static_cast<T>(eps),
                                                      exec_for(x.device()));
  });
  return y;
}

// Per-channel sum over N and HW of t (N, C, H, W): (C).
Tensor channel_sum(const Tensor& t) {
  int64_t n = t.size(0), c = t.size(1), hw = t.size(2) * t.size(3);
  Tensor out = new_tensor({c}, t);
  dispatch_float(t.dtype(), "batch_norm2d backward", [&]<typename T>() {
    DT_KERNEL(t.device(), bias_grad<T>)(t.data<T>(), out.data<T>(), n, c, hw, exec_for(t.device()));
  });
  return out;
}

void check_channel_vector(const Tensor& x, const Tensor& v, const char* what) {
  check_like("batch_norm2d", what, x, v);
  DT_CHECK(v.ndim() == 1 && v.size(0) == x.size(1), "batch_norm2d: ", what, " ", v.str(), " must have shape ",
           shape_str({x.size(1)}), " for input ", x.str());
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, bool training, double momentum, double eps) {
  check_nchw("batch_norm2d", x);
  int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  DT_CHECK(eps > 0, "batch_norm2d: eps must be positive, got ", eps);
  // Without an affine transform gamma = 1, beta = 0 (constants, no gradient).
  Tensor g = gamma.defined() ? gamma : Tensor::ones({c}, x.dtype(), x.device());
  Tensor bt = beta.defined() ? beta : Tensor::zeros({c}, x.dtype(), x.device());
  check_channel_vector(x, g, "weight (gamma)");
  check_channel_vector(x, bt, "bias (beta)");
  DT_CHECK(running_mean.defined() == running_var.defined(),
           "batch_norm2d: pass both running_mean and running_var, or neither");
  if (running_mean.defined()) {
    check_channel_vector(x, running_mean, "running_mean");
    check_channel_vector(x, running_var, "running_var");
  }

  if (!training) {
    DT_CHECK(running_mean.defined(), "batch_norm2d: evaluation mode needs running_mean and running_var");
    Tensor y = bn_eval_raw(x, g, bt, running_mean, running_var, eps);
    if (should_record({&x, &gamma, &beta})) {
      // The statistics are constants here: y = xhat * gamma + beta with
      // xhat = (x - running_mean) * invstd, so gx = gy * gamma * invstd,
      // ggamma = sum gy * xhat, gbeta = sum gy. Both per-channel products are the eval
      // kernel itself with neutral vectors. Copies of the running statistics keep the
      // backward right even if the buffers change before it runs.
      Tensor rm = running_mean.clone(), rv = running_var.clone();
      record("batch_norm2d (eval)", {x, gamma, beta}, {y}, [x, g, gamma, beta, rm, rv, eps](const Grads& gr) {
        Tensor zeros = Tensor::zeros(rm.shape(), rm.dtype(), rm.device());
        Tensor gx, ggamma, gbeta;
        if (needs(x)) gx = bn_eval_raw(gr[0], g, zeros, zeros, rv, eps);
        if (needs(gamma)) {
          Tensor ones = Tensor::ones(rm.shape(), rm.dtype(), rm.device());
          Tensor xhat = bn_eval_raw(x, ones, zeros, rm, rv, eps);
          ggamma = channel_sum(mul(gr[0], xhat));
        }
        if (needs(beta)) gbeta = channel_sum(gr[0]);
        return Grads{gx, ggamma, gbeta};
      });
    }
    return y;
  }

  DT_CHECK(n * hw > 1, "batch_norm2d: training needs more than one value per channel, got input ", x.str());
  Tensor rm = running_mean.defined() ? running_mean : Tensor::zeros({c}, x.dtype(), x.device());
  Tensor rv = running_var.defined() ? running_var : Tensor::ones({c}, x.dtype(), x.device());
  Tensor y = new_tensor(x.shape(), x);
  Tensor save_mean = new_tensor({c}, x), save_invstd = new_tensor({c}, x);
  dispatch_float(x.dtype(), "batch_norm2d (train)", [&]<typename T>() {
    DT_KERNEL(x.device(), batch_norm_forward_train<T>)(x.data<T>(), g.data<T>(), bt.data<T>(), y.data<T>(),
                                                       save_mean.data<T>(), save_invstd.data<T>(), rm.data<T>(),
                                                       rv.data<T>(), n, c, hw, static_cast<T>(momentum),
                                                       static_cast<T>(eps), exec_for(x.device()));
  });
  if (should_record({&x, &gamma, &beta})) {
    record("batch_norm2d (train)", {x, gamma, beta}, {y},
           [x, g, gamma, beta, save_mean, save_invstd, n, c, hw](const Grads& gr) {
             Tensor gx = new_tensor(x.shape(), x), ggamma = new_tensor({c}, x), gbeta = new_tensor({c}, x);
             dispatch_float(x.dtype(), "batch_norm2d backward", [&]<typename T>() {
               DT_KERNEL(x.device(), batch_norm_backward<T>)(x.data<T>(), gr[0].data<T>(), g.data<T>(),
                                                             save_mean.data<T>(), save_invstd.data<T>(), gx.data<T>(),
                                                             ggamma.data<T>(), gbeta.data<T>(), n, c, hw,
                                                             exec_for(x.device()));
             });
             return Grads{needs(x) ? gx : Tensor(), needs(gamma) ? ggamma : Tensor(),
                          needs(beta) ? gbeta : Tensor()};
           });
  }
  return y;
}

// ---- dropout and flatten ----------------------------------------------------------------------

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  DT_CHECK(x.defined(), "dropout: undefined input");
  DT_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  int64_t n = x.numel();
  if (p == 1.0) {
    // Everything dropped: y = 0 and no gradient reaches x (avoids 1 / (1 - p)).
    return mul(x, Tensor::zeros(x.shape(), x.dtype(), x.device()));
  }
  Tensor y = new_tensor(x.shape(), x);
  Tensor mask = Tensor::empty(x.shape(), DType::U8, x.device());  // kept = 1
  Generator::State s = gen.state();
  dispatch_float(x.dtype(), "dropout", [&]<typename T>() {
    DT_KERNEL(x.device(), dropout_forward<T>)(x.data<T>(), y.data<T>(), mask.data<uint8_t>(), n, static_cast<T>(p),
                                              s.seed, s.offset, exec_for(x.device()));
  });
  s.offset += static_cast<uint64_t>((n + 3) / 4);  // the blocks the kernel consumed
  gen.set_state(s);
  if (should_record({&x})) {
    record("dropout", {x}, {y}, [x, mask, p, n](const Grads& gr) {
      Tensor gx = new_tensor(x.shape(), x);
      dispatch_float(x.dtype(), "dropout backward", [&]<typename T>() {
        DT_KERNEL(x.device(), dropout_backward<T>)(gr[0].data<T>(), mask.data<uint8_t>(), gx.data<T>(), n,
                                                   static_cast<T>(p), exec_for(x.device()));
      });
      return Grads{gx};
    });
  }
  return y;
}

Tensor flatten(const Tensor& x) {
  DT_CHECK(x.defined() && x.ndim() >= 1, "flatten: expected x of shape (N, ...), got ",
           x.defined() ? x.str() : "undefined");
  int64_t rest = 1;
  for (int64_t d = 1; d < x.ndim(); ++d) rest *= x.size(d);
  return reshape(x, {x.size(0), rest});
}

Tensor gram_matrix(const Tensor& x) {
  DT_CHECK(x.defined() && x.ndim() == 4, "gram_matrix: expected feature maps of shape (N, C, H, W), got ",
           x.defined() ? x.str() : "undefined");
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  DT_CHECK(n > 0 && c > 0 && hw > 0, "gram_matrix: empty feature maps ", x.str());
  Tensor f = reshape(x, {n, c, hw});  // (N, C, HW)
  return scale(bmm(f, f, false, true), 1.0 / static_cast<double>(c * hw));
}

}  // namespace dtrain::fn
