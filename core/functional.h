#pragma once
// Differentiable functions. Each runs the ops kernel for its inputs' device and dtype
// (f32 or f64) and, when a GradRecorder is active and an input requires grad, records
// its backward on the tape. Backwards are written once, in terms of these same
// functions, so they run on whichever device the tensors live on.
//
// All inputs of one call must share device and dtype (labels are i64).
#include "core/tensor.h"

namespace dtrain::fn {

// ---- elementwise (same shapes) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// alpha * x + beta
Tensor affine(const Tensor& x, double alpha, double beta = 0.0);
inline Tensor scale(const Tensor& x, double alpha) { return affine(x, alpha, 0.0); }
inline Tensor neg(const Tensor& x) { return affine(x, -1.0, 0.0); }
// x * s where s is a one-element tensor (differentiable in both).
Tensor mul_scalar_tensor(const Tensor& x, const Tensor& s);

// In place, never recorded: a += b; a = alpha * b + beta * a.
void add_(const Tensor& a, const Tensor& b);
void axpby_(const Tensor& y, const Tensor& x, double alpha, double beta);

// ---- linear algebra ----
// op(a) @ op(b) for 2-D tensors, op = transpose when the flag is set.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x (N, in) @ w^T (in, out) + b (out): the Linear layer, w (out, in) as in PyTorch.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
// x (N, C, ...) + b (C) broadcast over dim 0 and the trailing dims.
Tensor bias_add(const Tensor& x, const Tensor& b);

// ---- activations ----
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double slope = 0.01);
// Heaviside step, x >= 0 -> 1 else 0. Not differentiable: never recorded, and its output
// does not require grad.
Tensor step(const Tensor& x);

// ---- reductions and shape ----
Tensor sum(const Tensor& x);   // 0-dim
Tensor mean(const Tensor& x);  // 0-dim
Tensor reshape(const Tensor& x, const Shape& shape);

// ---- losses (mean over elements / rows), each a 0-dim tensor ----
// logits (N, C), labels i64 (N) with values in [0, C).
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels);
Tensor mse_loss(const Tensor& prediction, const Tensor& target);
// Numerically stable binary cross-entropy on logits; targets in [0, 1].
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets);

}  // namespace dtrain::fn

namespace dtrain {
inline Tensor operator+(const Tensor& a, const Tensor& b) { return fn::add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return fn::sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return fn::mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return fn::div(a, b); }
}  // namespace dtrain
