#pragma once
// One table of every differentiable function and its inputs, shared by the gradient
// checks (f64, CPU) and the device agreement tests (f32 on each device against the f64
// CPU reference), so an op added here is checked both ways.
#include <cmath>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/functional.h"
#include "core/rng.h"
#include "tests/support/gradcheck.h"

namespace dtrain::testing {

enum class InputKind { Normal, Positive, Unit, Labels };

struct InputSpec {
  Shape shape;
  InputKind kind = InputKind::Normal;
  int64_t classes = 0;  // for Labels
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  bool differentiable = true;
  std::optional<double> kink = std::nullopt;
  // Element-specific kinks (see GradCheckOptions::at_kink).
  std::function<bool(size_t, int64_t, const std::vector<Tensor>&, double)> at_kink = nullptr;
};

inline bool is_differentiable_input(const InputSpec& s) { return s.kind != InputKind::Labels; }

// Inputs for a case: floating inputs in `dtype` on `device`, made in f64 on the CPU from
// `seed` so every dtype/device sees the same values.
inline std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device, uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> out;
  for (const InputSpec& s : c.inputs) {
    if (s.kind == InputKind::Labels) {
      std::vector<int64_t> labels(static_cast<size_t>(shape_numel(s.shape)));
      for (auto& l : labels) l = static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(s.classes)));
      out.push_back(Tensor::from_vector(labels, s.shape).to(device));
      continue;
    }
    Tensor t = Tensor::empty(s.shape, DType::F64);
    if (s.kind == InputKind::Normal) gen.normal_(t);
    if (s.kind == InputKind::Positive) gen.uniform_(t, 0.5, 2.0);
    if (s.kind == InputKind::Unit) gen.uniform_(t, 0.0, 1.0);
    out.push_back(t.to(dtype).to(device));
  }
  return out;
}

// A fixed i64 tensor (ids, targets, lengths) on `like`'s device.
inline Tensor seq_ids(const std::vector<int64_t>& values, const Shape& shape, const Tensor& like) {
  return Tensor::from_vector(values, shape).to(like.device());
}

inline const std::vector<OpCase>& op_cases() {
  using V = const std::vector<Tensor>&;
  static const std::vector<OpCase> cases = {
      {"add", {{{3, 4}}, {{3, 4}}}, [](V x) { return fn::add(x[0], x[1]); }},
      {"sub", {{{3, 4}}, {{3, 4}}}, [](V x) { return fn::sub(x[0], x[1]); }},
      {"mul", {{{3, 4}}, {{3, 4}}}, [](V x) { return fn::mul(x[0], x[1]); }},
      {"div", {{{3, 4}}, {{3, 4}, InputKind::Positive}}, [](V x) { return fn::div(x[0], x[1]); }},
      {"affine", {{{5}}}, [](V x) { return fn::affine(x[0], -1.5, 0.25); }},
      {"mul_scalar_tensor", {{{2, 3}}, {{1}}}, [](V x) { return fn::mul_scalar_tensor(x[0], x[1]); }},
      {"matmul_nn", {{{3, 4}}, {{4, 5}}}, [](V x) { return fn::matmul(x[0], x[1]); }},
      {"matmul_tn", {{{4, 3}}, {{4, 5}}}, [](V x) { return fn::matmul(x[0], x[1], true, false); }},
      {"matmul_nt", {{{3, 4}}, {{5, 4}}}, [](V x) { return fn::matmul(x[0], x[1], false, true); }},
      {"matmul_tt", {{{4, 3}}, {{5, 4}}}, [](V x) { return fn::matmul(x[0], x[1], true, true); }},
      {"linear", {{{6, 4}}, {{3, 4}}, {{3}}}, [](V x) { return fn::linear(x[0], x[1], x[2]); }},
      {"bias_add_2d", {{{4, 3}}, {{3}}}, [](V x) { return fn::bias_add(x[0], x[1]); }},
      {"bias_add_4d", {{{2, 3, 2, 2}}, {{3}}}, [](V x) { return fn::bias_add(x[0], x[1]); }},
      {"sigmoid", {{{4, 5}}}, [](V x) { return fn::sigmoid(x[0]); }},
      {"tanh", {{{4, 5}}}, [](V x) { return fn::tanh(x[0]); }},
      {"relu", {{{4, 5}}}, [](V x) { return fn::relu(x[0]); }, true, 0.0},
      {"leaky_relu", {{{4, 5}}}, [](V x) { return fn::leaky_relu(x[0], 0.2); }, true, 0.0},
      {"step", {{{4, 5}}}, [](V x) { return fn::step(x[0]); }, false},
      {"sum", {{{3, 7}}}, [](V x) { return fn::sum(x[0]); }},
      {"mean", {{{3, 7}}}, [](V x) { return fn::mean(x[0]); }},
      {"reshape", {{{2, 6}}}, [](V x) { return fn::mul(fn::reshape(x[0], {3, -1}), fn::reshape(x[0], {3, 4})); }},
      {"softmax_cross_entropy", {{{5, 4}}, {{5}, InputKind::Labels, 4}},
       [](V x) { return fn::softmax_cross_entropy(x[0], x[1]); }},
      {"mse_loss", {{{3, 4}}, {{3, 4}}}, [](V x) { return fn::mse_loss(x[0], x[1]); }},
      {"bce_with_logits", {{{3, 4}}, {{3, 4}, InputKind::Unit}},
       [](V x) { return fn::bce_with_logits(fn::affine(x[0], 3.0), x[1]); }},
      // ---- convolution stack ----
      {"conv2d_s1p1_bias", {{{2, 2, 4, 4}}, {{3, 2, 3, 3}}, {{3}}},
       [](V x) { return fn::conv2d(x[0], x[1], x[2], 1, 1); }},
      {"conv2d_s2p0_nobias", {{{1, 2, 5, 5}}, {{2, 2, 3, 3}}},
       [](V x) { return fn::conv2d(x[0], x[1], Tensor(), 2, 0); }},
      {"conv2d_1x1", {{{2, 3, 3, 3}}, {{2, 3, 1, 1}}, {{2}}}, [](V x) { return fn::conv2d(x[0], x[1], x[2]); }},
      {"conv2d_rect", {{{1, 2, 5, 4}}, {{2, 2, 2, 3}}, {{2}}},
       [](V x) { return fn::conv2d(x[0], x[1], x[2], {2, 1}, {0, 1}); }},
      {"conv_transpose2d", {{{1, 2, 3, 3}}, {{2, 3, 3, 3}}, {{3}}},
       [](V x) { return fn::conv_transpose2d(x[0], x[1], x[2], 2, 1, 1); }},
      {"conv_transpose2d_nobias", {{{2, 2, 2, 3}}, {{2, 1, 2, 2}}},
       [](V x) { return fn::conv_transpose2d(x[0], x[1], Tensor(), 1, 0, 0); }},
      // Max pooling is not differentiable where two window elements tie: elements within
      // the kink range of a rival in their plane are skipped.
      {"max_pool2d", {{{2, 2, 4, 4}}}, [](V x) { return fn::max_pool2d(x[0], 2, 2); }, true, std::nullopt,
       [](size_t i, int64_t j, const std::vector<Tensor>& in, double r) { return i == 0 && max_pool_tie(16, j, in, r); }},
      {"max_pool2d_overlap_pad", {{{1, 2, 5, 5}}}, [](V x) { return fn::max_pool2d(x[0], 3, 2, 1); }, true,
       std::nullopt,
       [](size_t i, int64_t j, const std::vector<Tensor>& in, double r) { return i == 0 && max_pool_tie(25, j, in, r); }},
      {"avg_pool2d_pad", {{{1, 2, 5, 5}}}, [](V x) { return fn::avg_pool2d(x[0], 3, 2, 1); }},
      {"adaptive_avg_pool2d", {{{2, 2, 5, 5}}}, [](V x) { return fn::adaptive_avg_pool2d(x[0], 3, 3); }},
      // Batch norm: the running statistics are buffers (not differentiated) made fresh in
      // every call, so the checker's repeated forwards all see the same state.
      {"batch_norm2d_train", {{{3, 2, 3, 3}}, {{2}}, {{2}}},
       [](V x) {
         Tensor rm = Tensor::zeros({2}, x[0].dtype(), x[0].device());
         Tensor rv = Tensor::ones({2}, x[0].dtype(), x[0].device());
         return fn::batch_norm2d(x[0], x[1], x[2], rm, rv, true, 0.1, 1e-5);
       }},
      {"batch_norm2d_eval", {{{2, 3, 2, 2}}, {{3}}, {{3}}},
       [](V x) {
         Tensor rm = Tensor::from_vector<double>({0.1, -0.2, 0.3}, {3}).to(x[0].dtype()).to(x[0].device());
         Tensor rv = Tensor::from_vector<double>({0.5, 1.5, 2.0}, {3}).to(x[0].dtype()).to(x[0].device());
         return fn::batch_norm2d(x[0], x[1], x[2], rm, rv, false, 0.1, 1e-5);
       }},
      // A fresh generator with a fixed seed per call: every call draws the same mask.
      {"dropout", {{{4, 5}}},
       [](V x) {
         Generator gen(123);
         return fn::dropout(x[0], 0.3, true, gen);
       }},
      {"flatten", {{{2, 3, 2, 2}}}, [](V x) { return fn::mul(fn::flatten(x[0]), fn::flatten(x[0])); }},
      // Squared, so the gradient depends on the Gram matrix's value as in a style loss.
      {"gram_matrix", {{{2, 3, 2, 3}}}, [](V x) {
         Tensor g = fn::gram_matrix(x[0]);
         return fn::mul(g, g);
       }},
      // ---- sequences (core/functional_seq.cpp); ids, targets and lengths are fixed i64
      // tensors made on the inputs' device, so padding and ignored rows are always present.
      {"embedding", {{{5, 3}}},
       [](V x) { return fn::embedding(seq_ids({1, 3, 0, 3, 4, 1}, {2, 3}, x[0]), x[0]); }},
      {"embedding_padding", {{{5, 3}}},
       [](V x) { return fn::embedding(seq_ids({1, 3, 0, 3, 4, 0}, {2, 3}, x[0]), x[0], 0); }, true, std::nullopt,
       // Row 0 is the padding row: its gradient is zero by definition, not by calculus, so
       // the finite differences skip it (the device agreement still compares it).
       [](size_t i, int64_t j, const std::vector<Tensor>&, double) { return i == 0 && j < 3; }},
      {"cross_entropy_masked", {{{6, 4}}},
       [](V x) { return fn::cross_entropy_masked(x[0], seq_ids({1, -100, 3, 0, -100, 2}, {6}, x[0]), -100); }},
      {"lstm_pointwise", {{{3, 8}}, {{3, 2}}},
       [](V x) {
         fn::LstmState s = fn::lstm_pointwise(x[0], x[1]);
         return fn::add(s.h, fn::mul(s.c, s.c));
       }},
      {"lstm_cell", {{{2, 3}}, {{2, 4}}, {{2, 4}}, {{16, 3}}, {{16, 4}}, {{16}}, {{16}}},
       [](V x) {
         fn::LstmState s = fn::lstm_cell(x[0], x[1], x[2], fn::scale(x[3], 0.5), fn::scale(x[4], 0.5), x[5], x[6]);
         return fn::add(s.h, fn::mul(s.c, s.c));
       }},
      {"lstm_lengths", {{{3, 4, 2}}, {{3, 3}}, {{3, 3}}, {{12, 2}}, {{12, 3}}, {{12}}, {{12}}},
       [](V x) {
         fn::LstmSequence r = fn::lstm(x[0], seq_ids({4, 2, 1}, {3}, x[0]), x[1], x[2], fn::scale(x[3], 0.5),
                                       fn::scale(x[4], 0.5), x[5], x[6]);
         return fn::add(fn::reshape(r.output, {3, 12}), fn::concat_last(fn::concat_last(r.final.h, r.final.c),
                                                                          fn::concat_last(r.final.c, r.final.h)));
       }},
      {"lstm_lengths_reverse", {{{3, 4, 2}}, {{12, 2}}, {{12, 3}}, {{12}}, {{12}}},
       [](V x) {
         fn::LstmSequence r = fn::lstm(x[0], seq_ids({2, 4, 3}, {3}, x[0]), Tensor(), Tensor(), fn::scale(x[1], 0.5),
                                       fn::scale(x[2], 0.5), x[3], x[4], true);
         return fn::add(fn::reshape(r.output, {3, 12}), fn::concat_last(fn::concat_last(r.final.h, r.final.c),
                                                                          fn::concat_last(r.final.c, r.final.h)));
       }},
      {"lstm_no_lengths", {{{2, 3, 2}}, {{8, 2}}, {{8, 2}}, {{8}}},
       [](V x) {
         fn::LstmSequence r = fn::lstm(x[0], Tensor(), Tensor(), Tensor(), x[1], x[2], x[3], Tensor());
         return fn::mul(fn::reshape(r.output, {2, 6}), fn::reshape(r.output, {2, 6}));
       }},
      {"concat_last", {{{2, 3, 2}}, {{2, 3, 2}}},
       [](V x) { return fn::mul(fn::concat_last(x[0], x[1]), fn::concat_last(x[1], x[1])); }},
      {"bmv", {{{2, 3, 4}}, {{2, 4}}}, [](V x) { return fn::bmv(x[0], x[1]); }},
      {"bmv_trans", {{{2, 3, 4}}, {{2, 3}}}, [](V x) { return fn::bmv(x[0], x[1], true); }},
      {"masked_softmax", {{{3, 4}}}, [](V x) { return fn::masked_softmax(x[0], seq_ids({3, 0, 4}, {3}, x[0])); }},
      {"bmm", {{{2, 3, 4}}, {{2, 4, 5}}}, [](V x) { return fn::bmm(x[0], x[1]); }},
      {"bmm_ta", {{{2, 4, 3}}, {{2, 4, 5}}}, [](V x) { return fn::bmm(x[0], x[1], true, false); }},
      {"bmm_tb", {{{2, 3, 4}}, {{2, 5, 4}}}, [](V x) { return fn::bmm(x[0], x[1], false, true); }},
      {"bmm_tt", {{{2, 4, 3}}, {{2, 5, 4}}}, [](V x) { return fn::bmm(x[0], x[1], true, true); }},
      {"attention_seq_dot", {{{3, 2, 2}}, {{3, 4, 2}}, {{3, 4, 3}}},
       [](V x) {
         fn::Attention a = fn::attention_seq(x[0], x[1], x[2], seq_ids({4, 1, 2}, {3}, x[0]));
         // Both outputs, the context squared so its gradient depends on its value.
         return fn::add(a.weights, fn::bmm(fn::mul(a.context, a.context), x[2], false, true));
       }},
      {"attention_seq_general", {{{3, 2, 2}}, {{3, 4, 3}}, {{3, 4, 2}}, {{2, 3}}},
       [](V x) {
         fn::Attention a = fn::attention_seq(x[0], x[1], x[2], seq_ids({2, 4, 3}, {3}, x[0]), x[3]);
         // Both outputs, the context squared so its gradient depends on its value.
         return fn::add(a.weights, fn::bmm(fn::mul(a.context, a.context), x[2], false, true));
       }},
      {"attention_map_dot", {{{2, 3, 3}}, {{2, 3, 2, 2}}},
       [](V x) {
         fn::Attention a = fn::attention_map(x[0], x[1]);
         return fn::add(a.weights, fn::bmm(fn::mul(a.context, a.context), fn::reshape(x[1], {2, 3, 4})));
       }},
      {"attention_map_general", {{{2, 3, 2}}, {{2, 3, 1, 3}}, {{2, 3}}},
       [](V x) {
         fn::Attention a = fn::attention_map(x[0], x[1], x[2]);
         // Both outputs, the context (B, T, C) squared so its gradient depends on its value.
         return fn::add(a.weights, fn::bmm(fn::mul(a.context, a.context), fn::reshape(x[1], {2, 3, 3})));
       }},
      {"attention_dot", {{{3, 2}}, {{3, 4, 2}}, {{3, 4, 3}}},
       [](V x) {
         fn::Attention a = fn::attention(x[0], x[1], x[2], seq_ids({4, 1, 2}, {3}, x[0]));
         return fn::add(a.weights, fn::bmv(x[2], fn::mul(a.context, a.context)));
       }},
      {"attention_general", {{{3, 2}}, {{3, 4, 3}}, {{3, 4, 2}}, {{2, 3}}},
       [](V x) {
         fn::Attention a = fn::attention(x[0], x[1], x[2], seq_ids({2, 4, 3}, {3}, x[0]), x[3]);
         return fn::add(a.weights, fn::bmv(x[2], fn::mul(a.context, a.context)));
       }},
  };
  return cases;
}

}  // namespace dtrain::testing

namespace dtrain::testing {
// Readable parameter names in test output.
inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }
}  // namespace dtrain::testing
