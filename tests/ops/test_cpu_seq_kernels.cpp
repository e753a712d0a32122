// Tests of the sequence CPU kernels (ops/cpu/sequence.cpp) against values computed by hand
// or by naive loops here: embedding with padding, masked cross-entropy, the LSTM cell,
// length selection, time slicing, batched products and the masked softmax; and the
// nn::Embedding / nn::LSTM modules built on them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/nn/recurrent.h"
#include "ops/cpu.h"

namespace {

namespace cpu = dtrain::ops::cpu;
using dtrain::ops::Exec;

template <typename T>
class CpuSeqKernelTest : public ::testing::Test {
 protected:
  static constexpr double kTol = sizeof(T) == sizeof(float) ? 1e-5 : 1e-12;
  static void expect_near(const std::vector<T>& got, const std::vector<double>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const double scale = std::max({std::fabs(static_cast<double>(got[i])), std::fabs(want[i]), 1.0});
      EXPECT_NEAR(static_cast<double>(got[i]), want[i], kTol * scale) << "at index " << i;
    }
  }
  Exec ex{};
};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CpuSeqKernelTest, FloatTypes);

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TYPED_TEST(CpuSeqKernelTest, EmbeddingLooksUpRowsAndSkipsPaddingInBackward) {
  using T = TypeParam;
  const std::vector<T> table = {0, 1, 10, 11, 20, 21};  // (3, 2)
  const std::vector<int64_t> ids = {2, 0, 2, 1};
  std::vector<T> out(8);
  cpu::embedding_forward<T>(ids.data(), table.data(), out.data(), 4, 3, 2, this->ex);
  this->expect_near(out, {20, 21, 0, 1, 20, 21, 10, 11});

  const std::vector<T> gout = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<T> gtable(6, T(99));
  cpu::embedding_backward<T>(ids.data(), gout.data(), gtable.data(), 4, 3, 2, -1, this->ex);
  this->expect_near(gtable, {3, 4, 7, 8, 6, 8});  // row 2 = (1+5, 2+6)
  cpu::embedding_backward<T>(ids.data(), gout.data(), gtable.data(), 4, 3, 2, 2, this->ex);
  this->expect_near(gtable, {3, 4, 7, 8, 0, 0});  // the padding row gets nothing
}

TYPED_TEST(CpuSeqKernelTest, EmbeddingRejectsOutOfRangeIds) {
  using T = TypeParam;
  const std::vector<T> table(6, T(0));
  const std::vector<int64_t> ids = {0, 3};
  std::vector<T> out(4);
  EXPECT_THROW(cpu::embedding_forward<T>(ids.data(), table.data(), out.data(), 2, 3, 2, this->ex),
               std::invalid_argument);
  std::vector<T> gtable(6);
  EXPECT_THROW(cpu::embedding_backward<T>(ids.data(), out.data(), gtable.data(), 2, 3, 2, -1, this->ex),
               std::invalid_argument);
}

TYPED_TEST(CpuSeqKernelTest, MaskedCrossEntropyAveragesKeptRowsOnly) {
  using T = TypeParam;
  const std::vector<T> logits = {1, 2, 0, 0.5, -1, 3, 2, 2, 2};  // (3, 3)
  const std::vector<int64_t> labels = {1, -100, 0};
  std::vector<T> probs(9), loss(1), count(1);
  cpu::softmax_xent_masked_forward<T>(logits.data(), labels.data(), probs.data(), loss.data(), count.data(), 3, 3,
                                      -100, this->ex);
  auto lse = [&](int r) {
    double s = 0;
    for (int c = 0; c < 3; ++c) s += std::exp(static_cast<double>(logits[r * 3 + c]));
    return std::log(s);
  };
  const double want = ((lse(0) - 2.0) + (lse(2) - 2.0)) / 2.0;
  this->expect_near(loss, {want});
  this->expect_near(count, {2.0});

  const std::vector<T> g = {T(3)};
  std::vector<T> gl(9, T(99));
  cpu::softmax_xent_masked_backward<T>(probs.data(), labels.data(), count.data(), g.data(), gl.data(), 3, 3, -100,
                                       this->ex);
  std::vector<double> want_g(9, 0.0);
  for (int r : {0, 2}) {
    for (int c = 0; c < 3; ++c) {
      want_g[r * 3 + c] = (std::exp(static_cast<double>(logits[r * 3 + c]) - lse(r)) - (c == labels[r] ? 1 : 0)) * 1.5;
    }
  }
  this->expect_near(gl, want_g);  // the ignored row is zero

  // Every row ignored: NaN, as in PyTorch.
  const std::vector<int64_t> none = {-100, -100, -100};
  cpu::softmax_xent_masked_forward<T>(logits.data(), none.data(), probs.data(), loss.data(), count.data(), 3, 3, -100,
                                      this->ex);
  EXPECT_TRUE(std::isnan(static_cast<double>(loss[0])));
  // A kept label out of range throws.
  const std::vector<int64_t> bad = {1, 3, 0};
  EXPECT_THROW(cpu::softmax_xent_masked_forward<T>(logits.data(), bad.data(), probs.data(), loss.data(), count.data(),
                                                   3, 3, -100, this->ex),
               std::invalid_argument);
}

TYPED_TEST(CpuSeqKernelTest, LstmCellMatchesTheFormulas) {
  using T = TypeParam;
  const int B = 2, H = 2;
  const std::vector<T> gates = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8,   // b = 0: i i f f g g o o
                                1.0, 0.5, -1.0, 0.2, 0.3, -0.3, 2.0, -2.0};  // b = 1
  const std::vector<T> c_prev = {0.5, -0.5, 1.0, 0.0};
  std::vector<T> act(16), h(4), c(4);
  cpu::lstm_cell_forward<T>(gates.data(), c_prev.data(), act.data(), h.data(), c.data(), B, H, this->ex);
  std::vector<double> want_h(4), want_c(4);
  for (int b = 0; b < B; ++b) {
    for (int j = 0; j < H; ++j) {
      const double i = sigmoid(gates[b * 8 + j]), f = sigmoid(gates[b * 8 + 2 + j]);
      const double g = std::tanh(static_cast<double>(gates[b * 8 + 4 + j])), o = sigmoid(gates[b * 8 + 6 + j]);
      want_c[b * H + j] = f * c_prev[b * H + j] + i * g;
      want_h[b * H + j] = o * std::tanh(want_c[b * H + j]);
    }
  }
  this->expect_near(c, want_c);
  this->expect_near(h, want_h);

  // Backward against central differences of L = sum(gh h + gc c) in double.
  const std::vector<T> gh = {0.3, -1.0, 0.7, 0.2};
  const std::vector<T> gc = {-0.4, 0.5, 0.1, 1.2};
  std::vector<T> gg(16), gcp(4);
  cpu::lstm_cell_backward<T>(act.data(), c_prev.data(), c.data(), gh.data(), gc.data(), gg.data(), gcp.data(), B, H,
                             this->ex);
  auto objective = [&](const std::vector<double>& a, const std::vector<double>& cp) {
    std::vector<double> act2(16), h2(4), c2(4);
    cpu::lstm_cell_forward<double>(a.data(), cp.data(), act2.data(), h2.data(), c2.data(), B, H, Exec{});
    double s = 0;
    for (int k = 0; k < 4; ++k) s += gh[k] * h2[k] + gc[k] * c2[k];
    return s;
  };
  std::vector<double> a(gates.begin(), gates.end()), cp(c_prev.begin(), c_prev.end());
  std::vector<double> num_g(16), num_c(4);
  const double eps = 1e-6;
  for (int k = 0; k < 16; ++k) {
    auto up = a, down = a;
    up[k] += eps;
    down[k] -= eps;
    num_g[k] = (objective(up, cp) - objective(down, cp)) / (2 * eps);
  }
  for (int k = 0; k < 4; ++k) {
    auto up = cp, down = cp;
    up[k] += eps;
    down[k] -= eps;
    num_c[k] = (objective(a, up) - objective(a, down)) / (2 * eps);
  }
  for (int k = 0; k < 16; ++k) EXPECT_NEAR(static_cast<double>(gg[k]), num_g[k], 1e-5) << "gates " << k;
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(static_cast<double>(gcp[k]), num_c[k], 1e-5) << "c_prev " << k;
}

TYPED_TEST(CpuSeqKernelTest, LengthSelectAndTimeSlicing) {
  using T = TypeParam;
  const std::vector<int64_t> lengths = {3, 1};
  const std::vector<T> a = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  std::vector<T> out(4);
  cpu::length_select<T>(lengths.data(), 2, a.data(), b.data(), out.data(), 2, 2, this->ex);
  this->expect_near(out, {1, 2, 7, 8});  // sample 1 (length 1) is finished at t = 2
  cpu::length_select<T>(lengths.data(), 0, a.data(), b.data(), out.data(), 2, 2, this->ex);
  this->expect_near(out, {1, 2, 3, 4});

  std::vector<T> x(12);  // (2, 3, 2)
  for (int i = 0; i < 12; ++i) x[i] = static_cast<T>(i);
  std::vector<T> slice(4);
  cpu::time_gather<T>(x.data(), slice.data(), 2, 3, 2, 1, this->ex);
  this->expect_near(slice, {2, 3, 8, 9});
  const std::vector<T> src = {-1, -2, -3, -4};
  cpu::time_scatter<T>(src.data(), x.data(), 2, 3, 2, 2, this->ex);
  this->expect_near(x, {0, 1, 2, 3, -1, -2, 6, 7, 8, 9, -3, -4});
  EXPECT_THROW(cpu::time_gather<T>(x.data(), slice.data(), 2, 3, 2, 3, this->ex), std::invalid_argument);
}

TYPED_TEST(CpuSeqKernelTest, BatchedGemvAndOuter) {
  using T = TypeParam;
  const std::vector<T> a = {1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 0, -2};  // (2, 2, 3)
  const std::vector<T> x = {1, 0, -1, 2, 1, 1};                     // (2, 3)
  std::vector<T> y(4);
  cpu::batched_gemv<T>(false, a.data(), x.data(), y.data(), 2, 2, 3, this->ex);
  this->expect_near(y, {-2, -2, -1, 2});
  const std::vector<T> xt = {1, -1, 2, 3};  // (2, 2)
  std::vector<T> yt(6);
  cpu::batched_gemv<T>(true, a.data(), xt.data(), yt.data(), 2, 2, 3, this->ex);
  this->expect_near(yt, {-3, -3, -3, 4, 0, -4});
  const std::vector<T> u = {1, 2, 3, -1};
  const std::vector<T> v = {1, 0, 2, 1, 1, 1};
  std::vector<T> o(12);
  cpu::batched_outer<T>(u.data(), v.data(), o.data(), 2, 2, 3, this->ex);
  this->expect_near(o, {1, 0, 2, 2, 0, 4, 3, 3, 3, -1, -1, -1});
}

TYPED_TEST(CpuSeqKernelTest, MaskedSoftmaxZeroesPaddingAndEmptyRows) {
  using T = TypeParam;
  const std::vector<T> x = {1, 2, 50, 0, 0, 0};  // (2, 3)
  const std::vector<int64_t> lengths = {2, 0};
  std::vector<T> y(6);
  cpu::masked_softmax_forward<T>(x.data(), lengths.data(), y.data(), 2, 3, this->ex);
  const double e = std::exp(1.0);
  this->expect_near(y, {1 / (1 + e), e / (1 + e), 0, 0, 0, 0});
  const std::vector<T> gy = {1, 3, 5, 1, 1, 1};
  std::vector<T> gx(6);
  cpu::masked_softmax_backward<T>(y.data(), gy.data(), gx.data(), 2, 3, this->ex);
  const double p0 = 1 / (1 + e), p1 = e / (1 + e), dot = p0 * 1 + p1 * 3;
  this->expect_near(gx, {p0 * (1 - dot), p1 * (3 - dot), 0, 0, 0, 0});
}

}  // namespace

// ---- nn::Embedding and nn::LSTM (core/nn/recurrent.h) on the CPU ----

namespace {

using dtrain::DType;
using dtrain::Generator;
using dtrain::Tensor;

TEST(RecurrentModules, LstmParameterNamesFollowPyTorch) {
  Generator gen(1);
  dtrain::nn::LSTM lstm(3, 4, gen, 2, true);
  std::vector<std::string> names;
  for (const auto& [name, t] : lstm.named_parameters()) names.push_back(name);
  const std::vector<std::string> want = {
      "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse",
      "bias_ih_l0_reverse", "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
      "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(lstm.named_parameters()[8].second.shape(), (dtrain::Shape{16, 8}));  // layer 1 reads both directions
  for (const auto& [name, t] : lstm.named_parameters()) {
    for (float v : t.to_vector<float>()) ASSERT_LE(std::fabs(v), 0.5f) << name;  // 1/sqrt(4)
  }
}

TEST(RecurrentModules, EmbeddingZeroesThePaddingRow) {
  Generator gen(2);
  dtrain::nn::Embedding emb(5, 3, gen, 1);
  std::vector<float> w = emb.weight().to_vector<float>();
  for (int d = 0; d < 3; ++d) EXPECT_EQ(w[3 + d], 0.0f);
  Tensor out = emb.forward(Tensor::from_vector<int64_t>({1, 4}, {2}));
  EXPECT_EQ(out.shape(), (dtrain::Shape{2, 3}));
}

// A shorter sample's outputs are zero past its length, its final state is its state at
// its last step, and it equals running the sample alone, unpadded.
TEST(RecurrentModules, LstmLengthsMatchUnpaddedRuns) {
  Generator gen(3);
  dtrain::nn::LSTM lstm(2, 3, gen, 2, true, DType::F64);
  Tensor x = Tensor::empty({2, 4, 2}, DType::F64);
  Generator(4).normal_(x);
  dtrain::nn::LstmOutput full = lstm.forward(x, Tensor::from_vector<int32_t>({4, 2}, {2}));
  EXPECT_EQ(full.output.shape(), (dtrain::Shape{2, 4, 6}));
  ASSERT_EQ(full.h.size(), 4u);
  // Sample 1 alone, truncated to its 2 steps.
  std::vector<double> xv = x.to_vector<double>();
  Tensor x1 = Tensor::from_vector(std::vector<double>(xv.begin() + 8, xv.begin() + 12), {1, 2, 2});
  dtrain::nn::LstmOutput alone = lstm.forward(x1, Tensor());
  std::vector<double> o = full.output.to_vector<double>(), a = alone.output.to_vector<double>();
  for (int t = 0; t < 4; ++t) {
    for (int k = 0; k < 6; ++k) {
      const double got = o[static_cast<size_t>((4 + t) * 6 + k)];
      const double want = t < 2 ? a[static_cast<size_t>(t * 6 + k)] : 0.0;
      EXPECT_NEAR(got, want, 1e-12) << "t " << t << " k " << k;
    }
  }
  for (size_t s = 0; s < 4; ++s) {
    std::vector<double> h = full.h[s].to_vector<double>(), ha = alone.h[s].to_vector<double>();
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(h[static_cast<size_t>(3 + k)], ha[static_cast<size_t>(k)], 1e-12) << s;
  }
}

}  // namespace
