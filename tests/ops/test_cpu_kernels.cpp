// Tests of the CPU kernels (ops/cpu.h) against values computed by hand or by naive loops
// in the test. The CPU kernels are the ground truth the CUDA twins are later tested
// against, so these pin down the semantics of ops/kernels.inc.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "ops/cpu.h"
#include "ops/philox.h"  // the stream layout test calls philox::generate directly

namespace {

namespace cpu = dtrain::ops::cpu;
using dtrain::ops::bf16;
using dtrain::ops::Exec;

// Typed over float and double (STYLE.md item 17; the CUDA device axis comes with the
// twin tests).
template <typename T>
class CpuKernelTest : public ::testing::Test {
 protected:
  // Tolerance relative to max(|a|, |b|, 1) (STYLE.md item 16).
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
TYPED_TEST_SUITE(CpuKernelTest, FloatTypes);

// ---- elementwise ------------------------------------------------------------------

TYPED_TEST(CpuKernelTest, FillAndArithmetic) {
  using T = TypeParam;
  std::vector<T> out(3);
  cpu::fill<T>(out.data(), T(2.5), 3, this->ex);
  this->expect_near(out, {2.5, 2.5, 2.5});

  const std::vector<T> a{1, -2, 3}, b{4, 5, -0.5};
  cpu::add<T>(a.data(), b.data(), out.data(), 3, this->ex);
  this->expect_near(out, {5, 3, 2.5});
  cpu::sub<T>(a.data(), b.data(), out.data(), 3, this->ex);
  this->expect_near(out, {-3, -7, 3.5});
  cpu::mul<T>(a.data(), b.data(), out.data(), 3, this->ex);
  this->expect_near(out, {4, -10, -1.5});
  cpu::div<T>(a.data(), b.data(), out.data(), 3, this->ex);
  this->expect_near(out, {0.25, -0.4, -6});

  std::vector<T> alias = a;  // out aliases a
  cpu::add<T>(alias.data(), b.data(), alias.data(), 3, this->ex);
  this->expect_near(alias, {5, 3, 2.5});
}

TYPED_TEST(CpuKernelTest, AffineAxpbyScaleBy) {
  using T = TypeParam;
  const std::vector<T> x{1, -2, 0.5};
  std::vector<T> out(3);
  cpu::affine<T>(x.data(), out.data(), T(-3), T(1), 3, this->ex);
  this->expect_near(out, {-2, 7, -0.5});

  std::vector<T> y{10, 20, 30};
  cpu::axpby<T>(x.data(), y.data(), T(2), T(0.5), 3, this->ex);
  this->expect_near(y, {7, 6, 16});

  const std::vector<T> g{T(-4)};
  cpu::scale_by<T>(x.data(), g.data(), out.data(), 3, this->ex);
  this->expect_near(out, {-4, 8, -2});
}

TYPED_TEST(CpuKernelTest, PreconditionsThrowInvalidArgument) {
  using T = TypeParam;
  std::vector<T> out(2);
  EXPECT_THROW(cpu::fill<T>(out.data(), T(0), -1, this->ex), std::invalid_argument);
  EXPECT_THROW(cpu::add<T>(nullptr, out.data(), out.data(), 2, this->ex), std::invalid_argument);
  cpu::add<T>(nullptr, nullptr, nullptr, 0, this->ex);  // empty: null is fine
  try {
    cpu::relu_forward<T>(out.data(), out.data(), -7, this->ex);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("relu_forward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("-7"), std::string::npos) << e.what();
  }
}

// ---- activations ------------------------------------------------------------------

TYPED_TEST(CpuKernelTest, Sigmoid) {
  using T = TypeParam;
  const std::vector<T> x{0, 2, -2, 1000, -1000};
  std::vector<T> y(5);
  cpu::sigmoid_forward<T>(x.data(), y.data(), 5, this->ex);
  const double s2 = 1.0 / (1.0 + std::exp(-2.0));
  this->expect_near(y, {0.5, s2, 1 - s2, 1, 0});
  for (T v : y) EXPECT_TRUE(std::isfinite(v));

  const std::vector<T> gy{2, 1, -1, 1, 1};
  std::vector<T> gx(5);
  cpu::sigmoid_backward<T>(y.data(), gy.data(), gx.data(), 5, this->ex);
  this->expect_near(gx, {0.5, s2 * (1 - s2), -s2 * (1 - s2), 0, 0});
}

TYPED_TEST(CpuKernelTest, Tanh) {
  using T = TypeParam;
  const std::vector<T> x{0, 0.5, -1};
  std::vector<T> y(3), gx(3);
  cpu::tanh_forward<T>(x.data(), y.data(), 3, this->ex);
  this->expect_near(y, {0, std::tanh(0.5), std::tanh(-1.0)});
  const std::vector<T> gy{3, 2, 1};
  cpu::tanh_backward<T>(y.data(), gy.data(), gx.data(), 3, this->ex);
  const double t5 = std::tanh(0.5), t1 = std::tanh(1.0);
  this->expect_near(gx, {3, 2 * (1 - t5 * t5), 1 - t1 * t1});
}

TYPED_TEST(CpuKernelTest, ReluLeakyReluStep) {
  using T = TypeParam;
  const std::vector<T> x{-2, 0, 3};
  const std::vector<T> gy{10, 20, 30};
  std::vector<T> y(3), gx(3);
  cpu::relu_forward<T>(x.data(), y.data(), 3, this->ex);
  this->expect_near(y, {0, 0, 3});
  cpu::relu_backward<T>(x.data(), gy.data(), gx.data(), 3, this->ex);
  this->expect_near(gx, {0, 0, 30});

  cpu::leaky_relu_forward<T>(x.data(), y.data(), T(0.1), 3, this->ex);
  this->expect_near(y, {-0.2, 0, 3});
  cpu::leaky_relu_backward<T>(x.data(), gy.data(), gx.data(), T(0.1), 3, this->ex);
  this->expect_near(gx, {1, 2, 30});

  cpu::step_forward<T>(x.data(), y.data(), 3, this->ex);
  this->expect_near(y, {0, 1, 1});
}

// ---- bias and reductions ----------------------------------------------------------

TYPED_TEST(CpuKernelTest, BiasAddAndGradWithOuterAndInner) {
  using T = TypeParam;
  constexpr int64_t kOuter = 2, kC = 3, kInner = 2;
  std::vector<T> x(kOuter * kC * kInner);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(i);
  const std::vector<T> b{100, 200, 300};
  std::vector<T> out(x.size());
  cpu::bias_add<T>(x.data(), b.data(), out.data(), kOuter, kC, kInner, this->ex);
  this->expect_near(out, {100, 101, 202, 203, 304, 305, 106, 107, 208, 209, 310, 311});

  std::vector<T> gb(kC, T(-1));
  cpu::bias_grad<T>(x.data(), gb.data(), kOuter, kC, kInner, this->ex);
  // c = 0: 0+1+6+7, c = 1: 2+3+8+9, c = 2: 4+5+10+11
  this->expect_near(gb, {14, 22, 30});
}

TYPED_TEST(CpuKernelTest, SumAll) {
  using T = TypeParam;
  std::vector<T> x(1001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(i) * T(0.5);
  std::vector<T> out(1, T(7));
  cpu::sum_all<T>(x.data(), out.data(), 1001, this->ex);
  this->expect_near(out, {0.5 * 1000 * 1001 / 2});
  cpu::sum_all<T>(x.data(), out.data(), 0, this->ex);
  this->expect_near(out, {0});
}

// ---- gemm -------------------------------------------------------------------------

// C = alpha op(A) op(B) + beta C by a triple loop over row-major storage.
template <typename T>
std::vector<double> naive_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                               const std::vector<T>& a, int64_t lda, const std::vector<T>& b, int64_t ldb, double beta,
                               const std::vector<T>& c, int64_t ldc) {
  std::vector<double> out(c.begin(), c.end());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = ta ? a[p * lda + i] : a[i * lda + p];
        const double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        acc += av * bv;
      }
      out[i * ldc + j] = alpha * acc + beta * static_cast<double>(c[i * ldc + j]);
    }
  }
  return out;
}

TYPED_TEST(CpuKernelTest, GemmAllTransposesWithBeta) {
  using T = TypeParam;
  constexpr int64_t m = 3, n = 4, k = 5;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      // Padded row strides (+1) check that lda/ldb/ldc are honoured.
      const int64_t lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 1, ldc = n + 1;
      std::vector<T> a((ta ? k : m) * lda), b((tb ? n : k) * ldb), c(m * ldc);
      for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<T>(static_cast<int>(i % 7) - 3) * T(0.5);
      for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<T>(static_cast<int>(i % 5) - 2);
      for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<T>(i) * T(0.25);
      const auto want = naive_gemm(ta, tb, m, n, k, 1.5, a, lda, b, ldb, 0.5, c, ldc);
      cpu::gemm<T>(ta, tb, m, n, k, T(1.5), a.data(), lda, b.data(), ldb, T(0.5), c.data(), ldc, this->ex);
      SCOPED_TRACE(testing::Message() << "trans_a " << ta << " trans_b " << tb);
      this->expect_near(c, want);
    }
  }
}

TYPED_TEST(CpuKernelTest, GemmEmptySizes) {
  using T = TypeParam;
  std::vector<T> c{1, 2, 3, 4};
  cpu::gemm<T>(false, false, 2, 2, 0, T(1), nullptr, 0, nullptr, 2, T(3), c.data(), 2, this->ex);
  this->expect_near(c, {3, 6, 9, 12});
  c[0] = std::numeric_limits<T>::quiet_NaN();
  cpu::gemm<T>(false, false, 2, 2, 0, T(1), nullptr, 0, nullptr, 2, T(0), c.data(), 2, this->ex);
  this->expect_near(c, {0, 0, 0, 0});  // beta = 0 ignores old contents, NaN included
  cpu::gemm<T>(false, false, 0, 2, 3, T(1), nullptr, 3, nullptr, 2, T(0), nullptr, 2, this->ex);
  EXPECT_THROW(cpu::gemm<T>(false, false, 2, 2, 2, T(1), c.data(), 1, c.data(), 2, T(0), c.data(), 2, this->ex),
               std::invalid_argument);  // lda < k
}

TYPED_TEST(CpuKernelTest, GemmBetaZeroIgnoresNaN) {
  using T = TypeParam;
  const std::vector<T> a{1, 2, 3, 4}, b{1, 0, 0, 1};
  std::vector<T> c(4, std::numeric_limits<T>::quiet_NaN());
  cpu::gemm<T>(false, false, 2, 2, 2, T(1), a.data(), 2, b.data(), 2, T(0), c.data(), 2, this->ex);
  this->expect_near(c, {1, 2, 3, 4});
}

// ---- losses -----------------------------------------------------------------------

TYPED_TEST(CpuKernelTest, SoftmaxXentKnownCase) {
  using T = TypeParam;
  // Row 0: logits (0, ln 2, ln 3) -> probs (1/6, 2/6, 3/6), label 2 -> loss ln 2.
  // Row 1: equal logits (large, to test the max shift) -> probs 1/3 each, label 0 -> ln 3.
  const std::vector<T> logits{0, static_cast<T>(std::log(2.0)), static_cast<T>(std::log(3.0)), 500, 500, 500};
  const std::vector<int64_t> labels{2, 0};
  std::vector<T> probs(6), loss(1);
  cpu::softmax_xent_forward<T>(logits.data(), labels.data(), probs.data(), loss.data(), 2, 3, this->ex);
  this->expect_near(probs, {1.0 / 6, 2.0 / 6, 3.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  this->expect_near(loss, {(std::log(2.0) + std::log(3.0)) / 2});

  const std::vector<T> g{T(4)};
  std::vector<T> gl(6);
  cpu::softmax_xent_backward<T>(probs.data(), labels.data(), g.data(), gl.data(), 2, 3, this->ex);
  // (probs - onehot) * 4 / 2
  this->expect_near(gl, {2.0 / 6, 4.0 / 6, 6.0 / 6 - 2, 2.0 / 3 - 2, 2.0 / 3, 2.0 / 3});
}

TYPED_TEST(CpuKernelTest, SoftmaxRowsSumToOneAndLossStaysFinite) {
  using T = TypeParam;
  constexpr int64_t rows = 4, classes = 7;
  std::vector<T> logits(rows * classes);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<T>(std::sin(static_cast<double>(i)) * 30);
  logits[0] = T(-200);  // probs[0] underflows in float; the loss uses log-sum-exp
  const std::vector<int64_t> labels{0, 3, 6, 1};
  std::vector<T> probs(rows * classes), loss(1);
  cpu::softmax_xent_forward<T>(logits.data(), labels.data(), probs.data(), loss.data(), rows, classes, this->ex);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < classes; ++c) s += probs[r * classes + c];
    EXPECT_NEAR(s, 1.0, 1e-5) << "row " << r;
  }
  EXPECT_TRUE(std::isfinite(loss[0]));
  EXPECT_GT(loss[0], T(200 / 4));
}

TYPED_TEST(CpuKernelTest, SoftmaxLabelOutOfRangeThrows) {
  using T = TypeParam;
  const std::vector<T> logits{1, 2, 3, 4};
  std::vector<T> probs(4), loss(1), g{1}, gl(4);
  for (int64_t bad : {int64_t{2}, int64_t{-1}}) {
    const std::vector<int64_t> labels{0, bad};
    EXPECT_THROW(cpu::softmax_xent_forward<T>(logits.data(), labels.data(), probs.data(), loss.data(), 2, 2, this->ex),
                 std::invalid_argument);
    EXPECT_THROW(cpu::softmax_xent_backward<T>(probs.data(), labels.data(), g.data(), gl.data(), 2, 2, this->ex),
                 std::invalid_argument);
  }
}

TYPED_TEST(CpuKernelTest, Mse) {
  using T = TypeParam;
  const std::vector<T> a{1, 2, 3}, b{0, 4, 3};
  std::vector<T> loss(1), ga(3), gb(3);
  cpu::mse_forward<T>(a.data(), b.data(), loss.data(), 3, this->ex);
  this->expect_near(loss, {5.0 / 3});
  const std::vector<T> g{T(3)};
  cpu::mse_backward<T>(a.data(), b.data(), g.data(), ga.data(), gb.data(), 3, this->ex);
  this->expect_near(ga, {2, -4, 0});  // 2 (a - b) 3 / 3
  this->expect_near(gb, {-2, 4, 0});
  cpu::mse_backward<T>(a.data(), b.data(), g.data(), nullptr, gb.data(), 3, this->ex);
  this->expect_near(gb, {-2, 4, 0});
}

TYPED_TEST(CpuKernelTest, BceLogits) {
  using T = TypeParam;
  const std::vector<T> x{0, 2, -1000, 1000}, y{1, 0, 0, 1};
  std::vector<T> loss(1);
  cpu::bce_logits_forward<T>(x.data(), y.data(), loss.data(), 4, this->ex);
  // ln 2, 2 + ln(1 + e^-2), ~0, ~0
  const double l1 = 2 + std::log1p(std::exp(-2.0));
  this->expect_near(loss, {(std::log(2.0) + l1) / 4});

  const std::vector<T> xl{-1000, 1000}, yl{1, 0};  // confidently wrong: loss 1000 each
  cpu::bce_logits_forward<T>(xl.data(), yl.data(), loss.data(), 2, this->ex);
  EXPECT_TRUE(std::isfinite(loss[0]));
  this->expect_near(loss, {1000});

  const std::vector<T> g{T(2)};
  std::vector<T> gx(4), gy(4);
  cpu::bce_logits_backward<T>(x.data(), y.data(), g.data(), gx.data(), gy.data(), 4, this->ex);
  const double s2 = 1 / (1 + std::exp(-2.0));
  // (sigmoid(x) - y) * 2 / 4 and -x * 2 / 4
  this->expect_near(gx, {-0.25, s2 / 2, 0, 0});
  this->expect_near(gy, {0, -1, 500, -500});
  for (T v : gx) EXPECT_TRUE(std::isfinite(v));
  cpu::bce_logits_backward<T>(x.data(), y.data(), g.data(), gx.data(), nullptr, 4, this->ex);
}

TYPED_TEST(CpuKernelTest, EmptyMeanIsNaN) {
  using T = TypeParam;
  std::vector<T> loss(1);
  cpu::mse_forward<T>(nullptr, nullptr, loss.data(), 0, this->ex);
  EXPECT_TRUE(std::isnan(loss[0]));
}

// ---- optimizers -------------------------------------------------------------------

TYPED_TEST(CpuKernelTest, SgdPlainAndWeightDecay) {
  using T = TypeParam;
  std::vector<T> p{1, -2};
  const std::vector<T> g{0.5, 1};
  cpu::sgd_step<T>(p.data(), g.data(), nullptr, 2, T(0.1), T(0), T(0), T(0), false, true, this->ex);
  this->expect_near(p, {0.95, -2.1});
  // d = g + 0.01 p = (0.5095, 0.979); p -= 0.1 d
  cpu::sgd_step<T>(p.data(), g.data(), nullptr, 2, T(0.1), T(0), T(0), T(0.01), false, false, this->ex);
  this->expect_near(p, {0.95 - 0.05095, -2.1 - 0.0979});
}

TYPED_TEST(CpuKernelTest, SgdMomentumFirstAndSecondStep) {
  using T = TypeParam;
  std::vector<T> p{1}, buf{T(123)};  // first step overwrites buf regardless of contents
  std::vector<T> g{2};
  cpu::sgd_step<T>(p.data(), g.data(), buf.data(), 1, T(0.1), T(0.9), T(0.5), T(0), false, true, this->ex);
  this->expect_near(buf, {2});
  this->expect_near(p, {0.8});
  g[0] = T(4);
  // buf = 0.9 * 2 + (1 - 0.5) * 4 = 3.8; p = 0.8 - 0.38
  cpu::sgd_step<T>(p.data(), g.data(), buf.data(), 1, T(0.1), T(0.9), T(0.5), T(0), false, false, this->ex);
  this->expect_near(buf, {3.8});
  this->expect_near(p, {0.42});
}

TYPED_TEST(CpuKernelTest, SgdNesterovWithWeightDecay) {
  using T = TypeParam;
  std::vector<T> p{1}, buf{0}, g{2};
  // d = 2 + 0.1 * 1 = 2.1; buf = 2.1; d = 2.1 + 0.9 * 2.1 = 3.99; p = 1 - 0.1 * 3.99
  cpu::sgd_step<T>(p.data(), g.data(), buf.data(), 1, T(0.1), T(0.9), T(0), T(0.1), true, true, this->ex);
  this->expect_near(buf, {2.1});
  this->expect_near(p, {0.601});
  // d = 2 + 0.0601 = 2.0601; buf = 0.9 * 2.1 + 2.0601 = 3.9501; d = 2.0601 + 0.9 * 3.9501
  cpu::sgd_step<T>(p.data(), g.data(), buf.data(), 1, T(0.1), T(0.9), T(0), T(0.1), true, false, this->ex);
  this->expect_near(buf, {3.9501});
  this->expect_near(p, {0.601 - 0.1 * (2.0601 + 0.9 * 3.9501)});
}

// One Adam update for one element, written out in double.
struct AdamRef {
  double p, m = 0, v = 0;
  void step(double g, double lr, double b1, double b2, double eps, double wd, bool decoupled, int step) {
    if (decoupled) {
      p *= 1 - lr * wd;
    } else {
      g += wd * p;
    }
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double mh = m / (1 - std::pow(b1, step)), vh = v / (1 - std::pow(b2, step));
    p -= lr * mh / (std::sqrt(vh) + eps);
  }
};

TYPED_TEST(CpuKernelTest, AdamAndAdamW) {
  using T = TypeParam;
  for (bool decoupled : {false, true}) {
    SCOPED_TRACE(decoupled ? "AdamW" : "Adam");
    std::vector<T> p{1, -0.5}, m(2, T(0)), v(2, T(0));
    AdamRef r0{1}, r1{-0.5};
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    const double grads[3][2] = {{0.3, -1}, {0.1, 2}, {-0.2, 0}};
    for (int s = 1; s <= 3; ++s) {
      const std::vector<T> g{static_cast<T>(grads[s - 1][0]), static_cast<T>(grads[s - 1][1])};
      cpu::adam_step<T>(p.data(), g.data(), m.data(), v.data(), 2, T(lr), T(b1), T(b2), T(eps), T(wd), decoupled, s,
                        this->ex);
      r0.step(static_cast<double>(g[0]), lr, b1, b2, eps, wd, decoupled, s);
      r1.step(static_cast<double>(g[1]), lr, b1, b2, eps, wd, decoupled, s);
      this->expect_near(p, {r0.p, r1.p});
      this->expect_near(m, {r0.m, r1.m});
      this->expect_near(v, {r0.v, r1.v});
    }
  }
  // Step 1, no decay: m_hat = g, v_hat = g^2, so p moves by lr * sign(g) (up to eps).
  std::vector<T> p{0}, m{0}, v{0};
  const std::vector<T> g{T(5)};
  cpu::adam_step<T>(p.data(), g.data(), m.data(), v.data(), 1, T(0.01), T(0.9), T(0.999), T(0), T(0), false, 1,
                    this->ex);
  this->expect_near(p, {-0.01});
  EXPECT_THROW(cpu::adam_step<T>(p.data(), g.data(), m.data(), v.data(), 1, T(0.01), T(0.9), T(0.999), T(0), T(0),
                                 false, 0, this->ex),
               std::invalid_argument);
}

// ---- Philox fills -----------------------------------------------------------------

TYPED_TEST(CpuKernelTest, PhiloxReproducibleAndSeedSensitive) {
  using T = TypeParam;
  std::vector<T> a(37), b(37), c(37);
  cpu::philox_uniform<T>(a.data(), 37, 42, 7, T(0), T(1), this->ex);
  cpu::philox_uniform<T>(b.data(), 37, 42, 7, T(0), T(1), this->ex);
  cpu::philox_uniform<T>(c.data(), 37, 43, 7, T(0), T(1), this->ex);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  cpu::philox_normal<T>(a.data(), 37, 42, 7, T(0), T(1), this->ex);
  cpu::philox_normal<T>(b.data(), 37, 42, 7, T(0), T(1), this->ex);
  EXPECT_EQ(a, b);
}

TYPED_TEST(CpuKernelTest, PhiloxUniformRangeAndMean) {
  using T = TypeParam;
  constexpr int64_t n = 100000;
  std::vector<T> x(n);
  cpu::philox_uniform<T>(x.data(), n, 1234, 0, T(-2), T(3), this->ex);
  double sum = 0;
  for (T v : x) {
    ASSERT_GE(v, T(-2));
    ASSERT_LT(v, T(3));
    sum += v;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.02);  // std of the mean: 5 / sqrt(12 n) = 0.0046
  cpu::philox_uniform<T>(x.data(), n, 99, 5, T(0), T(1), this->ex);
  sum = 0;
  for (T v : x) sum += v;
  EXPECT_NEAR(sum / n, 0.5, 0.005);
}

TYPED_TEST(CpuKernelTest, PhiloxNormalMoments) {
  using T = TypeParam;
  constexpr int64_t n = 100000;
  std::vector<T> x(n);
  cpu::philox_normal<T>(x.data(), n, 2024, 3, T(0), T(1), this->ex);
  double sum = 0, sq = 0;
  for (T v : x) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 0, 0.015);
  EXPECT_NEAR(std::sqrt(sq / n - mean * mean), 1, 0.015);
  cpu::philox_normal<T>(x.data(), n, 2024, 3, T(5), T(2), this->ex);
  sum = 0;
  for (T v : x) sum += v;
  EXPECT_NEAR(sum / n, 5, 0.03);
}

// The stream layout contract of ops/philox.h: a fill consumes ceil(n/4) (uniform) or
// ceil(n/2) (normal) counter blocks, so consecutive fills at advancing offsets equal one
// long fill, and a short fill is a prefix of a long one.
TYPED_TEST(CpuKernelTest, PhiloxStreamLayout) {
  using T = TypeParam;
  constexpr int64_t n = 12;  // a multiple of 4
  std::vector<T> whole(2 * n), head(n), tail(n);
  cpu::philox_uniform<T>(whole.data(), 2 * n, 5, 100, T(0), T(1), this->ex);
  cpu::philox_uniform<T>(head.data(), n, 5, 100, T(0), T(1), this->ex);
  cpu::philox_uniform<T>(tail.data(), n, 5, 100 + (n + 3) / 4, T(0), T(1), this->ex);
  EXPECT_EQ(head, std::vector<T>(whole.begin(), whole.begin() + n));
  EXPECT_EQ(tail, std::vector<T>(whole.begin() + n, whole.end()));

  cpu::philox_normal<T>(whole.data(), 2 * n, 5, 100, T(0), T(1), this->ex);
  cpu::philox_normal<T>(head.data(), n, 5, 100, T(0), T(1), this->ex);
  cpu::philox_normal<T>(tail.data(), n, 5, 100 + (n + 1) / 2, T(0), T(1), this->ex);
  EXPECT_EQ(head, std::vector<T>(whole.begin(), whole.begin() + n));
  EXPECT_EQ(tail, std::vector<T>(whole.begin() + n, whole.end()));

  // n = 7 (not a multiple of 4 or 2): still a prefix.
  std::vector<T> short_fill(7);
  cpu::philox_uniform<T>(short_fill.data(), 7, 5, 100, T(0), T(1), this->ex);
  cpu::philox_uniform<T>(whole.data(), 2 * n, 5, 100, T(0), T(1), this->ex);
  EXPECT_EQ(short_fill, std::vector<T>(whole.begin(), whole.begin() + 7));
  cpu::philox_normal<T>(short_fill.data(), 7, 5, 100, T(0), T(1), this->ex);
  cpu::philox_normal<T>(whole.data(), 2 * n, 5, 100, T(0), T(1), this->ex);
  EXPECT_EQ(short_fill, std::vector<T>(whole.begin(), whole.begin() + 7));
}

// Element i of a uniform fill is lane i % 4 of block offset + i / 4, and element i of a
// normal fill uses lanes 2 (i % 2), 2 (i % 2) + 1 of block offset + i / 2, checked
// against philox::generate and the Box-Muller formula directly.
TEST(CpuPhilox, ElementsMatchTheDocumentedLanes) {
  namespace philox = dtrain::ops::philox;
  std::vector<double> u(6), z(3);
  cpu::philox_uniform<double>(u.data(), 6, 77, 9, 0.0, 1.0, Exec{});
  cpu::philox_normal<double>(z.data(), 3, 77, 9, 0.0, 1.0, Exec{});
  for (int i = 0; i < 6; ++i) {
    const philox::Block blk = philox::generate(77, 9 + i / 4);
    EXPECT_DOUBLE_EQ(u[i], 1.0 - philox::to_unit_double(blk.v[i % 4])) << i;
  }
  for (int i = 0; i < 3; ++i) {
    const philox::Block blk = philox::generate(77, 9 + i / 2);
    const double u1 = philox::to_unit_double(blk.v[2 * (i % 2)]);
    const double u2 = philox::to_unit_double(blk.v[2 * (i % 2) + 1]);
    EXPECT_DOUBLE_EQ(z[i], std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2)) << i;
  }
}

// ---- convert ----------------------------------------------------------------------

TEST(CpuConvert, FloatBf16RoundTrip) {
  // 1.0f: exact. 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to
  // even -> 1.0. 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) ->
  // 1 + 2^-6. NaN stays NaN; infinities are kept.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x{1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, nan, inf};
  std::vector<bf16> h(x.size());
  std::vector<float> back(x.size());
  cpu::convert<float, bf16>(x.data(), h.data(), 6, Exec{});
  cpu::convert<bf16, float>(h.data(), back.data(), 6, Exec{});
  EXPECT_EQ(h[0].bits, 0x3f80);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 1.0f);
  EXPECT_EQ(back[2], 1.0f + 0x1p-6f);
  EXPECT_EQ(back[3], -2.5f);
  EXPECT_TRUE(std::isnan(back[4]));
  EXPECT_EQ(back[5], inf);
}

TEST(CpuConvert, NumericPairs) {
  const std::vector<double> d{1.75, -1.75, 200.0};
  std::vector<int32_t> i32(3);
  std::vector<float> f(3);
  cpu::convert<double, int32_t>(d.data(), i32.data(), 3, Exec{});
  EXPECT_EQ(i32, (std::vector<int32_t>{1, -1, 200}));  // truncation toward zero
  cpu::convert<double, float>(d.data(), f.data(), 3, Exec{});
  EXPECT_EQ(f, (std::vector<float>{1.75f, -1.75f, 200.0f}));

  const std::vector<uint8_t> bytes{0, 7, 255};
  std::vector<double> dd(3);
  cpu::convert<uint8_t, double>(bytes.data(), dd.data(), 3, Exec{});
  EXPECT_EQ(dd, (std::vector<double>{0, 7, 255}));

  const std::vector<int64_t> labels{3, -4};
  std::vector<bf16> h(2);
  std::vector<double> back(2);
  cpu::convert<int64_t, bf16>(labels.data(), h.data(), 2, Exec{});
  cpu::convert<bf16, double>(h.data(), back.data(), 2, Exec{});
  EXPECT_EQ(back, (std::vector<double>{3, -4}));

  std::vector<uint8_t> out(2);
  const std::vector<bf16> hb{dtrain::ops::float_to_bf16(9.9f), dtrain::ops::float_to_bf16(0.5f)};
  cpu::convert<bf16, uint8_t>(hb.data(), out.data(), 2, Exec{});
  EXPECT_EQ(out, (std::vector<uint8_t>{9, 0}));
}

// Floating -> integer outside the target's range saturates, NaN gives 0 (convert_value.h):
// what a GPU's conversion does, where a plain cast is undefined (x86 gives -1.0 -> 255).
TEST(CpuConvert, FloatToIntegerSaturatesAndNanIsZero) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x{-1.0f, -0.75f, 254.9f, 255.5f, 300.0f, 3e9f, -3e9f, 1e19f, -1e19f, nan, inf, -inf};
  std::vector<uint8_t> u8(x.size());
  cpu::convert<float, uint8_t>(x.data(), u8.data(), static_cast<int64_t>(x.size()), Exec{});
  EXPECT_EQ(u8, (std::vector<uint8_t>{0, 0, 254, 255, 255, 255, 0, 255, 0, 0, 255, 0}));
  std::vector<int32_t> i32(x.size());
  cpu::convert<float, int32_t>(x.data(), i32.data(), static_cast<int64_t>(x.size()), Exec{});
  const int32_t lo = std::numeric_limits<int32_t>::lowest(), hi = std::numeric_limits<int32_t>::max();
  EXPECT_EQ(i32, (std::vector<int32_t>{-1, 0, 254, 255, 300, hi, lo, hi, lo, 0, hi, lo}));
  std::vector<int64_t> i64(x.size());
  cpu::convert<float, int64_t>(x.data(), i64.data(), static_cast<int64_t>(x.size()), Exec{});
  const int64_t lo64 = std::numeric_limits<int64_t>::lowest(), hi64 = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(i64, (std::vector<int64_t>{-1, 0, 254, 255, 300, 3000000000, -3000000000, hi64, lo64, 0, hi64, lo64}));
  // The largest double below 2^31 still fits; 2^31 does not.
  const std::vector<double> d{2147483647.0, 2147483646.5, 2147483648.0, -2147483648.0, -2147483649.0};
  std::vector<int32_t> di(d.size());
  cpu::convert<double, int32_t>(d.data(), di.data(), static_cast<int64_t>(d.size()), Exec{});
  EXPECT_EQ(di, (std::vector<int32_t>{hi, 2147483646, hi, lo, lo}));
}

}  // namespace
