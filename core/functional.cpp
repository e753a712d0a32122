// Differentiable functions: forward through ops kernels, backward recorded on the tape.
#include "core/functional.h"

#include "core/autograd.h"
#include "core/dispatch.h"

namespace dtrain::fn {

namespace {

using autograd::record;
using autograd::should_record;
using Grads = std::vector<Tensor>;

void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  DT_CHECK(a.defined() && b.defined(), op, ": undefined input");
  DT_CHECK(a.device() == b.device(), op, ": inputs on different devices, ", a.str(), " and ", b.str(),
           "; move one with .to(device)");
  DT_CHECK(a.dtype() == b.dtype(), op, ": inputs of different dtypes, ", a.str(), " and ", b.str());
}

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  check_pair(op, a, b);
  DT_CHECK(a.shape() == b.shape(), op, ": shapes differ, ", a.str(), " and ", b.str());
}

Tensor empty_like(const Tensor& x) { return Tensor::empty(x.shape(), x.dtype(), x.device()); }
Tensor empty_scalar_like(const Tensor& x) { return Tensor::empty({}, x.dtype(), x.device()); }

bool needs(const Tensor& t) { return t.defined() && t.requires_grad(); }

// out = kernel(a, b) elementwise, without recording.
template <typename Select>
Tensor binary_raw(const char* op, const Tensor& a, const Tensor& b, Select select) {
  check_same(op, a, b);
  Tensor out = empty_like(a);
  dispatch_float(a.dtype(), op, [&]<typename T>() {
    select.template operator()<T>(a.device())(a.data<T>(), b.data<T>(), out.data<T>(), a.numel(), exec_for(a.device()));
  });
  return out;
}

#define DT_BINARY_SELECT(kernel) \
  []<typename T>(Device d) { return DT_KERNEL(d, kernel<T>); }

// y = kernel(x) elementwise (activations).
template <typename Select>
Tensor unary_raw(const char* op, const Tensor& x, Select select) {
  Tensor out = empty_like(x);
  dispatch_float(x.dtype(), op, [&]<typename T>() {
    select.template operator()<T>(x.device())(x.data<T>(), out.data<T>(), x.numel(), exec_for(x.device()));
  });
  return out;
}

// gx = kernel(saved, gy) elementwise (activation backwards).
template <typename Select>
Tensor unary_backward_raw(const char* op, const Tensor& saved, const Tensor& gy, Select select) {
  Tensor gx = empty_like(saved);
  dispatch_float(saved.dtype(), op, [&]<typename T>() {
    select.template operator()<T>(saved.device())(saved.data<T>(), gy.data<T>(), gx.data<T>(), saved.numel(),
                                                  exec_for(saved.device()));
  });
  return gx;
}

// x * g where g is a one-element tensor on the same device (no host sync).
Tensor scale_by_raw(const Tensor& x, const Tensor& g) {
  check_pair("scale_by", x, g);
  DT_CHECK(g.numel() == 1, "scale_by: expected a one-element tensor, got ", g.str());
  Tensor out = empty_like(x);
  dispatch_float(x.dtype(), "scale_by", [&]<typename T>() {
    DT_KERNEL(x.device(), scale_by<T>)(x.data<T>(), g.data<T>(), out.data<T>(), x.numel(), exec_for(x.device()));
  });
  return out;
}

}  // namespace

// ---- elementwise --------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("add", a, b, DT_BINARY_SELECT(add));
  if (should_record({&a, &b})) {
    record("add", {a, b}, {out}, [a, b](const Grads& g) {
      return Grads{needs(a) ? g[0] : Tensor(), needs(b) ? g[0] : Tensor()};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("sub", a, b, DT_BINARY_SELECT(sub));
  if (should_record({&a, &b})) {
    record("sub", {a, b}, {out}, [a, b](const Grads& g) {
      return Grads{needs(a) ? g[0] : Tensor(), needs(b) ? neg(g[0]) : Tensor()};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("mul", a, b, DT_BINARY_SELECT(mul));
  if (should_record({&a, &b})) {
    record("mul", {a, b}, {out}, [a, b](const Grads& g) {
      return Grads{needs(a) ? mul(g[0], b) : Tensor(), needs(b) ? mul(g[0], a) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("div", a, b, DT_BINARY_SELECT(div));
  if (should_record({&a, &b})) {
    record("div", {a, b}, {out}, [a, b, out](const Grads& g) {
      Tensor ga = div(g[0], b);  // d(a/b)/da = 1/b
      // d(a/b)/db = -a/b^2 = -(a/b) * (1/b)
      return Grads{needs(a) ? ga : Tensor(), needs(b) ? neg(mul(ga, out.detach())) : Tensor()};
    });
  }
  return out;
}

Tensor affine(const Tensor& x, double alpha, double beta) {
  Tensor out = empty_like(x);
  dispatch_float(x.dtype(), "affine", [&]<typename T>() {
    DT_KERNEL(x.device(), affine<T>)(x.data<T>(), out.data<T>(), static_cast<T>(alpha), static_cast<T>(beta),
                                     x.numel(), exec_for(x.device()));
  });
  if (should_record({&x})) {
    record("affine", {x}, {out}, [alpha](const Grads& g) { return Grads{affine(g[0], alpha, 0.0)}; });
  }
  return out;
}

Tensor mul_scalar_tensor(const Tensor& x, const Tensor& s) {
  Tensor out = scale_by_raw(x, s);
  if (should_record({&x, &s})) {
    record("mul_scalar_tensor", {x, s}, {out}, [x, s](const Grads& g) {
      Tensor gx = needs(x) ? scale_by_raw(g[0], s) : Tensor();
      Tensor gs = needs(s) ? reshape(sum(mul(g[0], x)), s.shape()) : Tensor();
      return Grads{gx, gs};
    });
  }
  return out;
}

void add_(const Tensor& a, const Tensor& b) {
  check_same("add_", a, b);
  dispatch_float(a.dtype(), "add_", [&]<typename T>() {
    DT_KERNEL(a.device(), axpby<T>)(b.data<T>(), a.data<T>(), T(1), T(1), a.numel(), exec_for(a.device()));
  });
}

void axpby_(const Tensor& y, const Tensor& x, double alpha, double beta) {
  check_same("axpby_", y, x);
  dispatch_float(y.dtype(), "axpby_", [&]<typename T>() {
    DT_KERNEL(y.device(), axpby<T>)(x.data<T>(), y.data<T>(), static_cast<T>(alpha), static_cast<T>(beta), y.numel(),
                                    exec_for(y.device()));
  });
}

// ---- linear algebra -----------------------------------------------------------------

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_pair("matmul", a, b);
  DT_CHECK(a.ndim() == 2 && b.ndim() == 2, "matmul: expected 2-D tensors, got ", a.str(), " and ", b.str());
  int64_t m = trans_a ? a.size(1) : a.size(0);
  int64_t k = trans_a ? a.size(0) : a.size(1);
  int64_t kb = trans_b ? b.size(1) : b.size(0);
  int64_t n = trans_b ? b.size(0) : b.size(1);
  DT_CHECK(k == kb, "matmul: inner dimensions differ, ", a.str(), (trans_a ? "^T" : ""), " @ ", b.str(),
           (trans_b ? "^T" : ""));
  Tensor out = Tensor::empty({m, n}, a.dtype(), a.device());
  dispatch_float(a.dtype(), "matmul", [&]<typename T>() {
    DT_KERNEL(a.device(), gemm<T>)(trans_a, trans_b, m, n, k, T(1), a.data<T>(), a.size(1), b.data<T>(), b.size(1),
                                   T(0), out.data<T>(), n, exec_for(a.device()));
  });
  if (should_record({&a, &b})) {
    record("matmul", {a, b}, {out}, [a, b, trans_a, trans_b](const Grads& g) {
      // C = op(A) op(B): d op(A) = G op(B)^T, d op(B) = op(A)^T G, transposed back to
      // the stored layout of A and B.
      Tensor ga, gb;
      if (needs(a)) ga = trans_a ? matmul(b, g[0], trans_b, true) : matmul(g[0], b, false, !trans_b);
      if (needs(b)) gb = trans_b ? matmul(g[0], a, true, trans_a) : matmul(a, g[0], !trans_a, false);
      return Grads{ga, gb};
    });
  }
  return out;
}

Tensor bias_add(const Tensor& x, const Tensor& b) {
  check_pair("bias_add", x, b);
  DT_CHECK(x.ndim() >= 2, "bias_add: expected x of shape (N, C, ...), got ", x.str());
  int64_t outer = x.size(0), channels = x.size(1);
  int64_t inner = (outer * channels != 0) ? x.numel() / (outer * channels) : 0;
  DT_CHECK(b.numel() == channels, "bias_add: bias ", b.str(), " does not have C = ", channels, " elements for x ",
           x.str());
  Tensor out = empty_like(x);
  dispatch_float(x.dtype(), "bias_add", [&]<typename T>() {
    DT_KERNEL(x.device(), bias_add<T>)(x.data<T>(), b.data<T>(), out.data<T>(), outer, channels, inner,
                                       exec_for(x.device()));
  });
  if (should_record({&x, &b})) {
    record("bias_add", {x, b}, {out}, [x, b, outer, channels, inner](const Grads& g) {
      Tensor gb;
      if (needs(b)) {
        gb = Tensor::empty(b.shape(), b.dtype(), b.device());
        dispatch_float(b.dtype(), "bias_add backward", [&]<typename T>() {
          DT_KERNEL(b.device(), bias_grad<T>)(g[0].data<T>(), gb.data<T>(), outer, channels, inner,
                                              exec_for(b.device()));
        });
      }
      return Grads{needs(x) ? g[0] : Tensor(), gb};
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  DT_CHECK(x.ndim() == 2 && w.ndim() == 2, "linear: expected x (N, in) and w (out, in), got ", x.str(), " and ",
           w.str());
  DT_CHECK(x.size(1) == w.size(1), "linear: x ", x.str(), " has ", x.size(1), " features but w ", w.str(),
           " expects ", w.size(1));
  Tensor y = matmul(x, w, false, true);
  return b.defined() ? bias_add(y, b) : y;
}

// ---- activations --------------------------------------------------------------------

Tensor sigmoid(const Tensor& x) {
  Tensor y = unary_raw("sigmoid", x, []<typename T>(Device d) { return DT_KERNEL(d, sigmoid_forward<T>); });
  if (should_record({&x})) {
    record("sigmoid", {x}, {y}, [y](const Grads& g) {
      return Grads{unary_backward_raw("sigmoid backward", y, g[0],
                                      []<typename T>(Device d) { return DT_KERNEL(d, sigmoid_backward<T>); })};
    });
  }
  return y;
}

Tensor tanh(const Tensor& x) {
  Tensor y = unary_raw("tanh", x, []<typename T>(Device d) { return DT_KERNEL(d, tanh_forward<T>); });
  if (should_record({&x})) {
    record("tanh", {x}, {y}, [y](const Grads& g) {
      return Grads{unary_backward_raw("tanh backward", y, g[0],
                                      []<typename T>(Device d) { return DT_KERNEL(d, tanh_backward<T>); })};
    });
  }
  return y;
}

Tensor relu(const Tensor& x) {
  Tensor y = unary_raw("relu", x, []<typename T>(Device d) { return DT_KERNEL(d, relu_forward<T>); });
  if (should_record({&x})) {
    record("relu", {x}, {y}, [x](const Grads& g) {
      return Grads{unary_backward_raw("relu backward", x, g[0],
                                      []<typename T>(Device d) { return DT_KERNEL(d, relu_backward<T>); })};
    });
  }
  return y;
}

Tensor leaky_relu(const Tensor& x, double slope) {
  Tensor y = empty_like(x);
  dispatch_float(x.dtype(), "leaky_relu", [&]<typename T>() {
    DT_KERNEL(x.device(), leaky_relu_forward<T>)(x.data<T>(), y.data<T>(), static_cast<T>(slope), x.numel(),
                                                 exec_for(x.device()));
  });
  if (should_record({&x})) {
    record("leaky_relu", {x}, {y}, [x, slope](const Grads& g) {
      Tensor gx = empty_like(x);
      dispatch_float(x.dtype(), "leaky_relu backward", [&]<typename T>() {
        DT_KERNEL(x.device(), leaky_relu_backward<T>)(x.data<T>(), g[0].data<T>(), gx.data<T>(),
                                                      static_cast<T>(slope), x.numel(), exec_for(x.device()));
      });
      return Grads{gx};
    });
  }
  return y;
}

Tensor step(const Tensor& x) {
  return unary_raw("step", x, []<typename T>(Device d) { return DT_KERNEL(d, step_forward<T>); });
}

// ---- reductions and shape -------------------------------------------------------------

Tensor sum(const Tensor& x) {
  Tensor out = empty_scalar_like(x);
  dispatch_float(x.dtype(), "sum", [&]<typename T>() {
    DT_KERNEL(x.device(), sum_all<T>)(x.data<T>(), out.data<T>(), x.numel(), exec_for(x.device()));
  });
  if (should_record({&x})) {
    record("sum", {x}, {out}, [x](const Grads& g) {
      return Grads{scale_by_raw(Tensor::ones(x.shape(), x.dtype(), x.device()), g[0])};
    });
  }
  return out;
}

Tensor mean(const Tensor& x) {
  DT_CHECK(x.numel() > 0, "mean: empty tensor ", x.str());
  return affine(sum(x), 1.0 / static_cast<double>(x.numel()), 0.0);
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DT_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      DT_CHECK(s[i] >= 0, "reshape: negative dimension in ", shape_str(shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DT_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot infer -1 in ", shape_str(shape), " for ", x.str());
    s[static_cast<size_t>(infer)] = x.numel() / known;
  }
  DT_CHECK(shape_numel(s) == x.numel(), "reshape: ", x.str(), " cannot be viewed as ", shape_str(s));
  Tensor out = x.detach();
  out.impl().shape = s;
  if (should_record({&x})) {
    Shape in_shape = x.shape();
    record("reshape", {x}, {out}, [in_shape](const Grads& g) { return Grads{reshape(g[0], in_shape)}; });
  }
  return out;
}

// ---- losses -----------------------------------------------------------------------------

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels) {
  DT_CHECK(logits.ndim() == 2, "softmax_cross_entropy: logits must be (N, C), got ", logits.str());
  DT_CHECK(labels.dtype() == DType::I64 && labels.ndim() == 1 && labels.size(0) == logits.size(0),
           "softmax_cross_entropy: labels must be i64 (N) with N = ", logits.size(0), ", got ", labels.str());
  DT_CHECK(labels.device() == logits.device(), "softmax_cross_entropy: labels on ", labels.device().str(),
           " but logits on ", logits.device().str());
  int64_t rows = logits.size(0), classes = logits.size(1);
  DT_CHECK(rows > 0 && classes > 0, "softmax_cross_entropy: empty logits ", logits.str());
  Tensor probs = empty_like(logits);
  Tensor loss = empty_scalar_like(logits);
  dispatch_float(logits.dtype(), "softmax_cross_entropy", [&]<typename T>() {
    DT_KERNEL(logits.device(), softmax_xent_forward<T>)(logits.data<T>(), labels.data<int64_t>(), probs.data<T>(),
                                                        loss.data<T>(), rows, classes, exec_for(logits.device()));
  });
  if (should_record({&logits})) {
    record("softmax_cross_entropy", {logits}, {loss}, [probs, labels, rows, classes](const Grads& g) {
      Tensor gl = empty_like(probs);
      dispatch_float(probs.dtype(), "softmax_cross_entropy backward", [&]<typename T>() {
        DT_KERNEL(probs.device(), softmax_xent_backward<T>)(probs.data<T>(), labels.data<int64_t>(), g[0].data<T>(),
                                                            gl.data<T>(), rows, classes, exec_for(probs.device()));
      });
      return Grads{gl};
    });
  }
  return loss;
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  check_same("mse_loss", prediction, target);
  DT_CHECK(prediction.numel() > 0, "mse_loss: empty input");
  Tensor loss = empty_scalar_like(prediction);
  dispatch_float(prediction.dtype(), "mse_loss", [&]<typename T>() {
    DT_KERNEL(prediction.device(), mse_forward<T>)(prediction.data<T>(), target.data<T>(), loss.data<T>(),
                                                   prediction.numel(), exec_for(prediction.device()));
  });
  if (should_record({&prediction, &target})) {
    record("mse_loss", {prediction, target}, {loss}, [prediction, target](const Grads& g) {
      Tensor ga = needs(prediction) ? empty_like(prediction) : Tensor();
      Tensor gb = needs(target) ? empty_like(target) : Tensor();
      dispatch_float(prediction.dtype(), "mse_loss backward", [&]<typename T>() {
        DT_KERNEL(prediction.device(), mse_backward<T>)(prediction.data<T>(), target.data<T>(), g[0].data<T>(),
                                                        ga.defined() ? ga.data<T>() : nullptr,
                                                        gb.defined() ? gb.data<T>() : nullptr, prediction.numel(),
                                                        exec_for(prediction.device()));
      });
      return Grads{ga, gb};
    });
  }
  return loss;
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& targets) {
  check_same("bce_with_logits", logits, targets);
  DT_CHECK(logits.numel() > 0, "bce_with_logits: empty input");
  Tensor loss = empty_scalar_like(logits);
  dispatch_float(logits.dtype(), "bce_with_logits", [&]<typename T>() {
    DT_KERNEL(logits.device(), bce_logits_forward<T>)(logits.data<T>(), targets.data<T>(), loss.data<T>(),
                                                      logits.numel(), exec_for(logits.device()));
  });
  if (should_record({&logits, &targets})) {
    record("bce_with_logits", {logits, targets}, {loss}, [logits, targets](const Grads& g) {
      Tensor gx = needs(logits) ? empty_like(logits) : Tensor();
      Tensor gy = needs(targets) ? empty_like(targets) : Tensor();
      dispatch_float(logits.dtype(), "bce_with_logits backward", [&]<typename T>() {
        DT_KERNEL(logits.device(), bce_logits_backward<T>)(logits.data<T>(), targets.data<T>(), g[0].data<T>(),
                                                           gx.defined() ? gx.data<T>() : nullptr,
                                                           gy.defined() ? gy.data<T>() : nullptr, logits.numel(),
                                                           exec_for(logits.device()));
      });
      return Grads{gx, gy};
    });
  }
  return loss;
}

}  // namespace dtrain::fn
