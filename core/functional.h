#pragma once
// Differentiable functions. Each runs the ops kernel for its inputs' device and dtype
// (f32 or f64) and, when a GradRecorder is active and an input requires grad, records
// its backward on the tape. Backwards are written once, in terms of these same
// functions, so they run on whichever device the tensors live on.
//
// All inputs of one call must share device and dtype (labels are i64).
#include "core/tensor.h"

namespace dtrain {
class Generator;  // core/rng.h
}

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

// ---- convolution stack (NCHW; core/functional_conv.cpp) ----
// A (height, width) pair; an integer means the same value for both, as in PyTorch.
struct Size2 {
  int64_t h = 0, w = 0;
  Size2(int64_t both = 0) : h(both), w(both) {}  // NOLINT: implicit, so `1` reads as {1, 1}
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  bool operator==(const Size2&) const = default;
};

// x (N, C_in, H, W) (*) w (C_out, C_in, KH, KW) + b (C_out, may be undefined), as
// torch.nn.functional.conv2d (cross-correlation, dilation 1, one group).
// y: (N, C_out, (H + 2 pad_h - KH) / stride_h + 1, likewise W).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride = 1, Size2 padding = 0);
// The transposed convolution (the gradient of conv2d w.r.t. its input), as
// torch.nn.functional.conv_transpose2d: x (N, C_in, H, W), w (C_in, C_out, KH, KW),
// b (C_out) or undefined; y: (N, C_out, (H - 1) stride - 2 pad + KH + output_padding, ...).
// output_padding must be smaller than stride.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride = 1, Size2 padding = 0,
                        Size2 output_padding = 0);
// Pooling over (kernel) windows moved by stride; padding at most half the kernel. Max
// pooling treats padding as -inf and routes the gradient to the (first) maximum; average
// pooling counts padding as zeros in the divisor KH * KW (PyTorch's defaults).
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding = 0);
Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding = 0);
// Average pooling to a fixed (out_h, out_w) grid (torch's adaptive_avg_pool2d).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
// Batch normalization of x (N, C, H, W) per channel; gamma, beta, running_mean and
// running_var are (C). Training: normalizes with the batch statistics and updates the
// running statistics in place (momentum, unbiased variance), as torch does. Evaluation:
// normalizes with the running statistics (not updated). Differentiable in x, gamma,
// beta in both modes; the running statistics are buffers and receive no gradient.
// gamma/beta may be undefined (no affine transform); running stats may be undefined in
// training only.
Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// Inverted dropout: in training each element is zeroed with probability p and the rest
// scaled by 1 / (1 - p), with the mask drawn from `gen` (which advances); identity
// (the same tensor) when !training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
// (N, d1, d2, ...) -> (N, d1 * d2 * ...), as torch.flatten(x, 1).
Tensor flatten(const Tensor& x);
// Gram matrices of feature maps, the style representation of Gatys et al.: for x (N, C, H, W)
// with F = x.reshape(N, C, H * W), G = F F^T / (C * H * W), shape (N, C, C) (the
// normalisation of PyTorch's neural style tutorial, so loss weights carry over). Composed
// of reshape and bmm, so it runs on any device and is differentiable in x.
Tensor gram_matrix(const Tensor& x);

// ---- sequences (core/functional_seq.cpp) ----
// Batch-first throughout: sequences are (B, T, D); lengths are i64 (B) on the tensors'
// device, a sample's steps t >= lengths[b] being padding.

// table[ids]: ids i64 of any shape, table (V, D); out: ids.shape + (D). The row
// padding_idx (-1: none) receives no gradient, as torch.nn.functional.embedding. An id
// outside [0, V) throws on the CPU and gives a NaN row on CUDA.
Tensor embedding(const Tensor& ids, const Tensor& table, int64_t padding_idx = -1);
// Softmax cross-entropy over logits (N, C) and targets i64 (N), averaged over the rows
// whose target is not ignore_index (torch's cross_entropy(ignore_index=...)); NaN when
// every row is ignored.
Tensor cross_entropy_masked(const Tensor& logits, const Tensor& targets, int64_t ignore_index);

// (B, T, D) -> T tensors (B, D), recorded as one function; and back.
std::vector<Tensor> unbind_time(const Tensor& x);
Tensor stack_time(const std::vector<Tensor>& steps);
// Rows of a where t < lengths[b], of b elsewhere. a, b: (B, D).
Tensor length_select(const Tensor& lengths, int64_t t, const Tensor& a, const Tensor& b);
// (N, D1) and (N, D2)... of equal D: concatenation along the last dim (bidirectional outputs).
Tensor concat_last(const Tensor& a, const Tensor& b);

struct LstmState {
  Tensor h, c;  // (B, H) each
};
// The fused pointwise LSTM step from gate pre-activations (B, 4H) in PyTorch's order
// i, f, g, o and c_prev (B, H): c = f c_prev + i g, h = o tanh(c).
LstmState lstm_pointwise(const Tensor& gates, const Tensor& c_prev);
// One LSTM step as torch.nn.LSTMCell: x (B, In), h, c (B, H), w_ih (4H, In), w_hh (4H, H),
// b_ih, b_hh (4H) (either bias may be undefined).
LstmState lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& b_ih, const Tensor& b_hh);
struct LstmSequence {
  Tensor output;  // (B, T, H): h_t, zero at padded steps
  LstmState final;  // each sample's state after its last valid step
};
// One LSTM layer in one direction over x (B, T, In). lengths (i64 (B)) may be undefined
// (every sample is T long); h0, c0 may be undefined (zeros). A sample's h, c do not change
// at its padded steps. reverse runs t = T-1 .. 0, so each sample's reverse pass starts at
// its own last valid step, as PyTorch's packed sequences do.
LstmSequence lstm(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                  const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh, bool reverse = false);

// Batched matrix-vector product: a (B, M, K) @ x (B, K) -> (B, M); with trans,
// a^T (B, K, M) @ x (B, M) -> (B, K).
Tensor bmv(const Tensor& a, const Tensor& x, bool trans = false);
// Batched matrix product: out[b] = op(a[b]) op(b[b]), op = transpose when requested, with
// the gemm kernel per batch item.     a: (B, M, K) or (B, K, M); b: (B, K, N) or (B, N, K)
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// Softmax over the first lengths[r] entries of each row of x (R, S); 0 elsewhere.
Tensor masked_softmax(const Tensor& x, const Tensor& lengths);
struct Attention {
  Tensor context;  // (B, Hv); attention_seq: (B, T, Hv)
  Tensor weights;  // (B, T), 0 beyond each source length; attention_seq: (B, T, S)
};
// Luong attention of query (B, H) over keys (B, T, H) and values (B, T, Hv), masked by
// src_lengths (i64 (B), undefined: all T). Score: dot (w undefined), q . k_t; general
// (w (H, Hk)), q^T W k_t with keys (B, T, Hk).
Attention attention(const Tensor& query, const Tensor& keys, const Tensor& values, const Tensor& src_lengths,
                    const Tensor& w = Tensor());
// The same for every decoder step at once: queries (B, T, H) over keys (B, S, Hk) and
// values (B, S, Hv); context (B, T, Hv), weights (B, T, S), every row (b, t) masked by
// src_lengths[b]. Two batched gemms in place of T matrix-vector products, which a decoder
// without input feeding can use for all its steps (core/models/seq2seq.h).
Attention attention_seq(const Tensor& queries, const Tensor& keys, const Tensor& values, const Tensor& src_lengths,
                        const Tensor& w = Tensor());
// The same over the positions of a feature map (a captioning decoder attending to a
// convolutional encoder's output, core/models/captioner.h): queries (B, T, H) over
// features (B, C, Y, X), each of the P = Y * X positions one key and one value (its C
// channels), none masked. context (B, T, C); weights (B, T, P), position p = y * X + x.
// General scoring with w (H, C). No copy of the map: the gemms read it channel-major.
Attention attention_map(const Tensor& queries, const Tensor& features, const Tensor& w = Tensor());

}  // namespace dtrain::fn

namespace dtrain {
inline Tensor operator+(const Tensor& a, const Tensor& b) { return fn::add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return fn::sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return fn::mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return fn::div(a, b); }
}  // namespace dtrain
