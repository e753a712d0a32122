// The ops/cuda kernels, run on the grid emulator, against their ops::cpu twins
// (docs/EMULATOR.md). Every section of ops/kernels.inc without library calls, float and
// double, at odd sizes, sizes of several blocks, and past one grid (the grid-stride
// loops' second lap: blocks_for caps a grid at 4096 blocks of 256 threads).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu.h"
#include "ops/cuda.h"
#include "tests/emu/emulator.h"

namespace dtrain::ops {
// Declared in ops/cuda/common.cuh, which this file cannot include (it is the CPU side).
namespace cuda::detail {
template <typename T>
void scale_matrix(T* c, int64_t m, int64_t n, int64_t ldc, T beta, Exec ex);
}  // namespace cuda::detail

namespace {

using emu::DeviceBuffer;

constexpr int64_t kOneGrid = 4096 * 256;
// Under AddressSanitizer (dtrain_emu_asan_tests, or a build sanitized as a whole; several
// times slower) the sizes past one grid give way to a size of a few blocks: the memory
// checks need every kernel run, not every lap of its loops.
#if DT_EMU_ASAN
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
int64_t past_one_grid(int64_t extra) { return kSanitized ? 3 * 256 + extra : kOneGrid + extra; }

template <typename T>
std::vector<T> random_vec(size_t n, uint32_t seed, double lo = -3.0, double hi = 3.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(gen));
  return v;
}

std::vector<int64_t> random_ids(size_t n, uint32_t seed, int64_t lo, int64_t hi) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int64_t> dist(lo, hi - 1);
  std::vector<int64_t> v(n);
  for (int64_t& x : v) x = dist(gen);
  return v;
}

struct Tol {
  double rtol, atol;
};
template <typename T>
Tol tol(bool reduction = false) {
  if constexpr (sizeof(T) == 4) {
    return reduction ? Tol{2e-5, 1e-6} : Tol{1e-6, 1e-7};
  } else {
    return reduction ? Tol{1e-12, 1e-13} : Tol{1e-14, 1e-15};
  }
}

template <typename T>
::testing::AssertionResult close(const std::string& what, const std::vector<T>& got, const std::vector<T>& want,
                                 Tol t) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
  int bad = 0;
  std::string first;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    const bool ok = (std::isnan(g) && std::isnan(w)) || g == w || std::fabs(g - w) <= t.atol + t.rtol * std::fabs(w);
    if (!ok && bad++ == 0) {
      first = "[" + std::to_string(i) + "] cuda " + std::to_string(g) + " cpu " + std::to_string(w);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << got.size() << " differ, first " << first;
}

template <typename T>
::testing::AssertionResult close(const std::string& what, const DeviceBuffer<T>& got, const std::vector<T>& want,
                                 Tol t) {
  return close(what, got.to_vector(), want, t);
}

template <typename T>
class EmuKernels : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(EmuKernels, Types);

// ---- elementwise -------------------------------------------------------------------------

TYPED_TEST(EmuKernels, Elementwise) {
  using T = TypeParam;
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{4099}, past_one_grid(1001)}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const auto a = random_vec<T>(n, 1), b = random_vec<T>(n, 2, 0.5, 3.0), g = random_vec<T>(1, 3);
    DeviceBuffer<T> da(a), db(b), dg(g), out(n);
    std::vector<T> want(n);
    cuda::fill(out.data(), T(1.25), n, {});
    cpu::fill(want.data(), T(1.25), n, {});
    EXPECT_TRUE(close("fill", out, want, tol<T>()));
    using Binary = void (*)(const T*, const T*, T*, int64_t, Exec);
    const std::pair<const char*, std::pair<Binary, Binary>> binaries[] = {
        {"add", {cuda::add<T>, cpu::add<T>}},
        {"sub", {cuda::sub<T>, cpu::sub<T>}},
        {"mul", {cuda::mul<T>, cpu::mul<T>}},
        {"div", {cuda::div<T>, cpu::div<T>}}};
    for (const auto& [name, f] : binaries) {
      f.first(da.data(), db.data(), out.data(), n, {});
      f.second(a.data(), b.data(), want.data(), n, {});
      EXPECT_TRUE(close(name, out, want, tol<T>()));
    }
    cuda::affine(da.data(), out.data(), T(-1.5), T(0.25), n, {});
    cpu::affine(a.data(), want.data(), T(-1.5), T(0.25), n, {});
    EXPECT_TRUE(close("affine", out, want, tol<T>()));
    DeviceBuffer<T> y(b);  // in and out
    std::vector<T> y_want = b;
    cuda::axpby(da.data(), y.data(), T(0.5), T(0.9), n, {});
    cpu::axpby(a.data(), y_want.data(), T(0.5), T(0.9), n, {});
    EXPECT_TRUE(close("axpby", y, y_want, tol<T>()));
    cuda::scale_by(da.data(), dg.data(), out.data(), n, {});
    cpu::scale_by(a.data(), g.data(), want.data(), n, {});
    EXPECT_TRUE(close("scale_by", out, want, tol<T>()));
    DeviceBuffer<T> alias(a);  // out aliases a
    cuda::add(alias.data(), db.data(), alias.data(), n, {});
    cpu::add(a.data(), b.data(), want.data(), n, {});
    EXPECT_TRUE(close("add in place", alias, want, tol<T>()));
  }
}

// gemm's k == 0 case, C = beta C, the one kernel of ops/cuda/gemm.cu's section.
TYPED_TEST(EmuKernels, GemmScaleMatrix) {
  using T = TypeParam;
  for (T beta : {T(0), T(-0.5)}) {
    const int64_t m = 37, n = 29, ldc = 33 + 4;  // ldc > n: the padding stays untouched
    const auto c = random_vec<T>(m * ldc, 4);
    DeviceBuffer<T> dc(c);
    std::vector<T> want = c;
    cuda::detail::scale_matrix(dc.data(), m, n, ldc, beta, {});
    cpu::gemm<T>(false, false, m, n, 0, T(1), nullptr, 1, nullptr, n, beta, want.data(), ldc, {});
    EXPECT_TRUE(close("scale_matrix", dc, want, tol<T>()));
  }
}

// ---- activations -------------------------------------------------------------------------

TYPED_TEST(EmuKernels, Activations) {
  using T = TypeParam;
  for (int64_t n : {int64_t{1}, int64_t{300}, past_one_grid(77)}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    auto x = random_vec<T>(n, 5, -40.0, 40.0);  // sigmoid's saturation on both sides
    x[0] = T(0);
    const auto gy = random_vec<T>(n, 6);
    DeviceBuffer<T> dx(x), dgy(gy), out(n);
    std::vector<T> want(n);
    using Fwd = void (*)(const T*, T*, int64_t, Exec);
    using Bwd = void (*)(const T*, const T*, T*, int64_t, Exec);
    const std::pair<const char*, std::pair<Fwd, Fwd>> forwards[] = {
        {"sigmoid_forward", {cuda::sigmoid_forward<T>, cpu::sigmoid_forward<T>}},
        {"tanh_forward", {cuda::tanh_forward<T>, cpu::tanh_forward<T>}},
        {"relu_forward", {cuda::relu_forward<T>, cpu::relu_forward<T>}},
        {"step_forward", {cuda::step_forward<T>, cpu::step_forward<T>}}};
    for (const auto& [name, f] : forwards) {
      f.first(dx.data(), out.data(), n, {});
      f.second(x.data(), want.data(), n, {});
      EXPECT_TRUE(close(name, out, want, tol<T>()));
    }
    const std::pair<const char*, std::pair<Bwd, Bwd>> backwards[] = {
        {"sigmoid_backward", {cuda::sigmoid_backward<T>, cpu::sigmoid_backward<T>}},
        {"tanh_backward", {cuda::tanh_backward<T>, cpu::tanh_backward<T>}},
        {"relu_backward", {cuda::relu_backward<T>, cpu::relu_backward<T>}}};
    for (const auto& [name, f] : backwards) {
      f.first(dx.data(), dgy.data(), out.data(), n, {});
      f.second(x.data(), gy.data(), want.data(), n, {});
      EXPECT_TRUE(close(name, out, want, tol<T>()));
    }
    cuda::leaky_relu_forward(dx.data(), out.data(), T(0.01), n, {});
    cpu::leaky_relu_forward(x.data(), want.data(), T(0.01), n, {});
    EXPECT_TRUE(close("leaky_relu_forward", out, want, tol<T>()));
    cuda::leaky_relu_backward(dx.data(), dgy.data(), out.data(), T(0.2), n, {});
    cpu::leaky_relu_backward(x.data(), gy.data(), want.data(), T(0.2), n, {});
    EXPECT_TRUE(close("leaky_relu_backward", out, want, tol<T>()));
  }
}

// ---- bias and reductions -----------------------------------------------------------------

TYPED_TEST(EmuKernels, BiasAndSums) {
  using T = TypeParam;
  struct Shape {
    int64_t outer, channels, inner;
  };
  std::vector<Shape> shapes = {{1, 1, 1}, {3, 5, 7}, {2, 3, 4099}, {0, 4, 3}};
  shapes.push_back(kSanitized ? Shape{17, 3, 70} : Shape{1700, 3, 700});
  // bias_grad's grid-stride over channels (65535 blocks); slow (17M emulated threads
  // through 11 barriers each), so once, for float, without the sanitizers.
  if (sizeof(T) == 4 && !kSanitized) shapes.push_back({1, 65535 + 300, 1});
  for (const Shape& s : shapes) {
    SCOPED_TRACE(std::to_string(s.outer) + "x" + std::to_string(s.channels) + "x" + std::to_string(s.inner));
    const int64_t total = s.outer * s.channels * s.inner;
    const auto x = random_vec<T>(total, 7), b = random_vec<T>(s.channels, 8);
    DeviceBuffer<T> dx(x), db(b), out(total), gb(s.channels);
    std::vector<T> want(total), gb_want(s.channels);
    cuda::bias_add(dx.data(), db.data(), out.data(), s.outer, s.channels, s.inner, {});
    cpu::bias_add(x.data(), b.data(), want.data(), s.outer, s.channels, s.inner, {});
    EXPECT_TRUE(close("bias_add", out, want, tol<T>()));
    cuda::bias_grad(dx.data(), gb.data(), s.outer, s.channels, s.inner, {});
    cpu::bias_grad(x.data(), gb_want.data(), s.outer, s.channels, s.inner, {});
    EXPECT_TRUE(close("bias_grad", gb, gb_want, tol<T>(true)));
  }
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{1023}, int64_t{3 * 1024 + 5}, int64_t{200000}}) {
    const auto x = random_vec<T>(n, 9);
    DeviceBuffer<T> dx(x), out(1);
    std::vector<T> want(1);
    cuda::sum_all(dx.data(), out.data(), n, {});
    cpu::sum_all(x.data(), want.data(), n, {});
    EXPECT_TRUE(close("sum_all n=" + std::to_string(n), out, want, tol<T>(true)));
  }
}

// ---- losses --------------------------------------------------------------------------------

TYPED_TEST(EmuKernels, Losses) {
  using T = TypeParam;
  struct Shape {
    int64_t rows, classes;
  };
  for (const Shape& s : {Shape{1, 1}, Shape{5, 3}, Shape{70, 40}, Shape{33, 1000}}) {
    SCOPED_TRACE(std::to_string(s.rows) + "x" + std::to_string(s.classes));
    const auto logits = random_vec<T>(s.rows * s.classes, 10, -8.0, 8.0);
    const auto labels = random_ids(s.rows, 11, 0, s.classes);
    const std::vector<T> g = {T(0.75)};
    DeviceBuffer<T> dl(logits), probs(logits.size()), loss(1), dg(g), gl(logits.size());
    DeviceBuffer<int64_t> dlab(labels);
    std::vector<T> probs_w(logits.size()), loss_w(1), gl_w(logits.size());
    cuda::softmax_xent_forward(dl.data(), dlab.data(), probs.data(), loss.data(), s.rows, s.classes, {});
    cpu::softmax_xent_forward(logits.data(), labels.data(), probs_w.data(), loss_w.data(), s.rows, s.classes, {});
    EXPECT_TRUE(close("softmax_xent_forward probs", probs, probs_w, tol<T>(true)));
    EXPECT_TRUE(close("softmax_xent_forward loss", loss, loss_w, tol<T>(true)));
    cuda::softmax_xent_backward(probs.data(), dlab.data(), dg.data(), gl.data(), s.rows, s.classes, {});
    cpu::softmax_xent_backward(probs_w.data(), labels.data(), g.data(), gl_w.data(), s.rows, s.classes, {});
    EXPECT_TRUE(close("softmax_xent_backward", gl, gl_w, tol<T>(true)));
  }
  for (int64_t n : {int64_t{1}, int64_t{999}, int64_t{5000}}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const auto a = random_vec<T>(n, 12, -20.0, 20.0), b = random_vec<T>(n, 13, 0.0, 1.0);
    const std::vector<T> g = {T(1.5)};
    DeviceBuffer<T> da(a), db(b), dg(g), loss(1), ga(n), gb(n);
    std::vector<T> loss_w(1), ga_w(n), gb_w(n);
    cuda::mse_forward(da.data(), db.data(), loss.data(), n, {});
    cpu::mse_forward(a.data(), b.data(), loss_w.data(), n, {});
    EXPECT_TRUE(close("mse_forward", loss, loss_w, tol<T>(true)));
    cuda::mse_backward(da.data(), db.data(), dg.data(), ga.data(), gb.data(), n, {});
    cpu::mse_backward(a.data(), b.data(), g.data(), ga_w.data(), gb_w.data(), n, {});
    EXPECT_TRUE(close("mse_backward ga", ga, ga_w, tol<T>()));
    EXPECT_TRUE(close("mse_backward gb", gb, gb_w, tol<T>()));
    cuda::mse_backward(da.data(), db.data(), dg.data(), static_cast<T*>(nullptr), gb.data(), n, {});
    EXPECT_TRUE(close("mse_backward gb only", gb, gb_w, tol<T>()));
    cuda::bce_logits_forward(da.data(), db.data(), loss.data(), n, {});
    cpu::bce_logits_forward(a.data(), b.data(), loss_w.data(), n, {});
    EXPECT_TRUE(close("bce_logits_forward", loss, loss_w, tol<T>(true)));
    cuda::bce_logits_backward(da.data(), db.data(), dg.data(), ga.data(), gb.data(), n, {});
    cpu::bce_logits_backward(a.data(), b.data(), g.data(), ga_w.data(), gb_w.data(), n, {});
    EXPECT_TRUE(close("bce_logits_backward gx", ga, ga_w, tol<T>()));
    EXPECT_TRUE(close("bce_logits_backward gy", gb, gb_w, tol<T>()));
    cuda::bce_logits_backward(da.data(), db.data(), dg.data(), ga.data(), static_cast<T*>(nullptr), n, {});
    EXPECT_TRUE(close("bce_logits_backward gx only", ga, ga_w, tol<T>()));
  }
}

// ---- optimizers ----------------------------------------------------------------------------

TYPED_TEST(EmuKernels, Optimizers) {
  using T = TypeParam;
  for (int64_t n : {int64_t{1}, int64_t{4099}, past_one_grid(5)}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const auto p = random_vec<T>(n, 14), grad = random_vec<T>(n, 15), buf = random_vec<T>(n, 16);
    struct Sgd {
      T momentum, dampening, wd;
      bool nesterov, first, with_buf;
    };
    for (const Sgd& o : {Sgd{0, 0, 0, false, false, false}, Sgd{T(0.9), T(0.1), T(0.01), true, false, true},
                         Sgd{T(0.9), 0, 0, false, true, true}}) {
      DeviceBuffer<T> dp(p), dgrad(grad), dbuf(buf);
      std::vector<T> p_w = p, buf_w = buf;
      cuda::sgd_step(dp.data(), dgrad.data(), o.with_buf ? dbuf.data() : nullptr, n, T(0.1), o.momentum,
                     o.dampening, o.wd, o.nesterov, o.first, {});
      cpu::sgd_step(p_w.data(), grad.data(), o.with_buf ? buf_w.data() : nullptr, n, T(0.1), o.momentum,
                    o.dampening, o.wd, o.nesterov, o.first, {});
      EXPECT_TRUE(close("sgd_step param", dp, p_w, tol<T>()));
      EXPECT_TRUE(close("sgd_step buf", dbuf, buf_w, tol<T>()));
    }
    for (bool decoupled : {false, true}) {
      const auto m = random_vec<T>(n, 17), v = random_vec<T>(n, 18, 0.0, 2.0);
      DeviceBuffer<T> dp(p), dgrad(grad), dm(m), dv(v);
      std::vector<T> p_w = p, m_w = m, v_w = v;
      cuda::adam_step(dp.data(), dgrad.data(), dm.data(), dv.data(), n, T(1e-3), T(0.9), T(0.999), T(1e-8),
                      T(0.01), decoupled, 3, {});
      cpu::adam_step(p_w.data(), grad.data(), m_w.data(), v_w.data(), n, T(1e-3), T(0.9), T(0.999), T(1e-8),
                     T(0.01), decoupled, 3, {});
      EXPECT_TRUE(close("adam_step param", dp, p_w, tol<T>()));
      EXPECT_TRUE(close("adam_step m", dm, m_w, tol<T>()));
      EXPECT_TRUE(close("adam_step v", dv, v_w, tol<T>()));
    }
  }
}

// ---- random fills and dropout ----------------------------------------------------------------

TYPED_TEST(EmuKernels, PhiloxAndDropout) {
  using T = TypeParam;
  // 4 * kOneGrid + 9 elements need more counter blocks than one grid has threads.
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{4099}, kSanitized ? int64_t{4099} : 4 * kOneGrid + 9}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    DeviceBuffer<T> out(n);
    std::vector<T> want(n);
    cuda::philox_uniform(out.data(), n, 1234, 77, T(-2), T(3), {});
    cpu::philox_uniform(want.data(), n, 1234, 77, T(-2), T(3), {});
    EXPECT_TRUE(close("philox_uniform", out, want, Tol{0, 0}));
    cuda::philox_normal(out.data(), n, 99, 5, T(1), T(2), {});
    cpu::philox_normal(want.data(), n, 99, 5, T(1), T(2), {});
    EXPECT_TRUE(close("philox_normal", out, want, tol<T>()));

    const auto x = random_vec<T>(n, 19), gy = random_vec<T>(n, 20);
    DeviceBuffer<T> dx(x), dgy(gy), y(n), gx(n);
    DeviceBuffer<uint8_t> mask(n);
    std::vector<T> y_w(n), gx_w(n);
    std::vector<uint8_t> mask_w(n);
    cuda::dropout_forward(dx.data(), y.data(), mask.data(), n, T(0.3), 42, 11, {});
    cpu::dropout_forward(x.data(), y_w.data(), mask_w.data(), n, T(0.3), 42, 11, {});
    EXPECT_TRUE(close("dropout_forward y", y, y_w, tol<T>()));
    EXPECT_EQ(mask.to_vector(), mask_w);
    cuda::dropout_backward(dgy.data(), mask.data(), gx.data(), n, T(0.3), {});
    cpu::dropout_backward(gy.data(), mask_w.data(), gx_w.data(), n, T(0.3), {});
    EXPECT_TRUE(close("dropout_backward", gx, gx_w, tol<T>()));
  }
}

// ---- pooling -------------------------------------------------------------------------------------

TYPED_TEST(EmuKernels, Pooling) {
  using T = TypeParam;
  const Pool2dGeom pools[] = {
      {.n = 1, .c = 1, .h = 1, .w = 1, .kh = 1, .kw = 1},
      {.n = 2, .c = 3, .h = 7, .w = 5, .kh = 3, .kw = 2, .stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 1},
      {.n = 3, .c = 5, .h = 33, .w = 31, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2},
      {.n = 2, .c = 2, .h = 4, .w = 4, .kh = 3, .kw = 3, .stride_h = 3, .stride_w = 3, .pad_h = 1, .pad_w = 1},
      {.n = kSanitized ? 2 : 64, .c = 32, .h = 40, .w = 40, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2}};
  for (const Pool2dGeom& g : pools) {
    SCOPED_TRACE(std::to_string(g.n) + "x" + std::to_string(g.c) + "x" + std::to_string(g.h) + "x" +
                 std::to_string(g.w) + " k" + std::to_string(g.kh) + "x" + std::to_string(g.kw));
    const auto x = random_vec<T>(g.x_numel(), 21), gy = random_vec<T>(g.y_numel(), 22);
    DeviceBuffer<T> dx(x), dgy(gy), y(g.y_numel()), gx(g.x_numel());
    DeviceBuffer<int32_t> arg(g.y_numel());
    std::vector<T> y_w(g.y_numel()), gx_w(g.x_numel());
    std::vector<int32_t> arg_w(g.y_numel());
    cuda::max_pool2d_forward(g, dx.data(), y.data(), arg.data(), {});
    cpu::max_pool2d_forward(g, x.data(), y_w.data(), arg_w.data(), {});
    EXPECT_TRUE(close("max_pool2d_forward", y, y_w, Tol{0, 0}));
    EXPECT_EQ(arg.to_vector(), arg_w);
    cuda::max_pool2d_backward(g, dgy.data(), arg.data(), gx.data(), {});
    cpu::max_pool2d_backward(g, gy.data(), arg_w.data(), gx_w.data(), {});
    EXPECT_TRUE(close("max_pool2d_backward", gx, gx_w, tol<T>(true)));
    cuda::avg_pool2d_forward(g, dx.data(), y.data(), {});
    cpu::avg_pool2d_forward(g, x.data(), y_w.data(), {});
    EXPECT_TRUE(close("avg_pool2d_forward", y, y_w, tol<T>(true)));
    cuda::avg_pool2d_backward(g, dgy.data(), gx.data(), {});
    cpu::avg_pool2d_backward(g, gy.data(), gx_w.data(), {});
    EXPECT_TRUE(close("avg_pool2d_backward", gx, gx_w, tol<T>(true)));
  }
  const AdaptivePoolGeom adaptive[] = {{.n = 1, .c = 1, .h = 1, .w = 1, .h_out = 1, .w_out = 1},
                                       {.n = 2, .c = 3, .h = 7, .w = 5, .h_out = 3, .w_out = 4},
                                       {.n = 2, .c = 2, .h = 3, .w = 3, .h_out = 7, .w_out = 5},
                                       {.n = 4, .c = 64, .h = 13, .w = 13, .h_out = 7, .w_out = 7}};
  for (const AdaptivePoolGeom& g : adaptive) {
    SCOPED_TRACE("adaptive " + std::to_string(g.h) + "x" + std::to_string(g.w) + " -> " + std::to_string(g.h_out) +
                 "x" + std::to_string(g.w_out));
    const auto x = random_vec<T>(g.x_numel(), 23), gy = random_vec<T>(g.y_numel(), 24);
    DeviceBuffer<T> dx(x), dgy(gy), y(g.y_numel()), gx(g.x_numel());
    std::vector<T> y_w(g.y_numel()), gx_w(g.x_numel());
    cuda::adaptive_avg_pool2d_forward(g, dx.data(), y.data(), {});
    cpu::adaptive_avg_pool2d_forward(g, x.data(), y_w.data(), {});
    EXPECT_TRUE(close("adaptive_avg_pool2d_forward", y, y_w, tol<T>(true)));
    cuda::adaptive_avg_pool2d_backward(g, dgy.data(), gx.data(), {});
    cpu::adaptive_avg_pool2d_backward(g, gy.data(), gx_w.data(), {});
    EXPECT_TRUE(close("adaptive_avg_pool2d_backward", gx, gx_w, tol<T>(true)));
  }
}

// ---- batch normalization ---------------------------------------------------------------------------

// Scratch memory for an Exec, from the emulator's device memory.
struct Scratch {
  DeviceBuffer<unsigned char> buf;
  static void* get(void* owner, size_t bytes) {
    auto* s = static_cast<Scratch*>(owner);
    if (s->buf.size() < bytes) s->buf = DeviceBuffer<unsigned char>(bytes);
    return s->buf.data();
  }
};

TYPED_TEST(EmuKernels, BatchNorm) {
  using T = TypeParam;
  struct Shape {
    int64_t n, channels, hw;
  };
  // Under the sanitizers every fiber switch is a system call (ucontext): fewer blocks.
  const int64_t many = kSanitized ? 13 : 300;
  for (const Shape& s : {Shape{2, 1, 1}, Shape{3, 5, 7}, Shape{4, 3, kSanitized ? 150 : 1500}, Shape{2, many, 9}}) {
    SCOPED_TRACE(std::to_string(s.n) + "x" + std::to_string(s.channels) + "x" + std::to_string(s.hw));
    const int64_t total = s.n * s.channels * s.hw;
    const auto x = random_vec<T>(total, 25, -4.0, 6.0), gy = random_vec<T>(total, 26);
    const auto gamma = random_vec<T>(s.channels, 27), beta = random_vec<T>(s.channels, 28);
    const auto rm = random_vec<T>(s.channels, 29), rv = random_vec<T>(s.channels, 30, 0.5, 2.0);
    DeviceBuffer<T> dx(x), dgy(gy), dgamma(gamma), dbeta(beta), drm(rm), drv(rv), y(total), mean(s.channels),
        invstd(s.channels), gx(total), ggamma(s.channels), gbeta(s.channels);
    std::vector<T> y_w(total), mean_w(s.channels), invstd_w(s.channels), rm_w = rm, rv_w = rv, gx_w(total),
        ggamma_w(s.channels), gbeta_w(s.channels);
    cuda::batch_norm_forward_train(dx.data(), dgamma.data(), dbeta.data(), y.data(), mean.data(), invstd.data(),
                                   drm.data(), drv.data(), s.n, s.channels, s.hw, T(0.1), T(1e-5), {});
    cpu::batch_norm_forward_train(x.data(), gamma.data(), beta.data(), y_w.data(), mean_w.data(), invstd_w.data(),
                                  rm_w.data(), rv_w.data(), s.n, s.channels, s.hw, T(0.1), T(1e-5), {});
    const Tol t = tol<T>(true);
    EXPECT_TRUE(close("batch_norm_forward_train y", y, y_w, t));
    EXPECT_TRUE(close("batch_norm_forward_train mean", mean, mean_w, t));
    EXPECT_TRUE(close("batch_norm_forward_train invstd", invstd, invstd_w, t));
    EXPECT_TRUE(close("batch_norm_forward_train running_mean", drm, rm_w, t));
    EXPECT_TRUE(close("batch_norm_forward_train running_var", drv, rv_w, t));
    cuda::batch_norm_forward_eval(dx.data(), dgamma.data(), dbeta.data(), drm.data(), drv.data(), y.data(), s.n,
                                  s.channels, s.hw, T(1e-5), {});
    cpu::batch_norm_forward_eval(x.data(), gamma.data(), beta.data(), rm_w.data(), rv_w.data(), y_w.data(), s.n,
                                 s.channels, s.hw, T(1e-5), {});
    EXPECT_TRUE(close("batch_norm_forward_eval", y, y_w, t));
    cpu::batch_norm_backward(x.data(), gy.data(), gamma.data(), mean_w.data(), invstd_w.data(), gx_w.data(),
                             ggamma_w.data(), gbeta_w.data(), s.n, s.channels, s.hw, {});
    Scratch scratch;
    for (bool with_scratch : {false, true}) {
      Exec ex;
      if (with_scratch) {
        ex.scratch_fn = &Scratch::get;
        ex.scratch_owner = &scratch;
      }
      cuda::batch_norm_backward(dx.data(), dgy.data(), dgamma.data(), mean.data(), invstd.data(), gx.data(),
                                ggamma.data(), gbeta.data(), s.n, s.channels, s.hw, ex);
      const std::string how = with_scratch ? " (scratch)" : " (no scratch)";
      EXPECT_TRUE(close("batch_norm_backward gx" + how, gx, gx_w, sizeof(T) == 4 ? Tol{1e-4, 1e-5} : t));
      EXPECT_TRUE(close("batch_norm_backward ggamma" + how, ggamma, ggamma_w, t));
      EXPECT_TRUE(close("batch_norm_backward gbeta" + how, gbeta, gbeta_w, t));
    }
  }
}

// ---- sequences ---------------------------------------------------------------------------------------

TYPED_TEST(EmuKernels, EmbeddingAndMaskedLoss) {
  using T = TypeParam;
  const int64_t n = 77, vocab = 13, dim = 37;
  auto ids = random_ids(n, 31, 0, vocab);
  const auto table = random_vec<T>(vocab * dim, 32), gout = random_vec<T>(n * dim, 33);
  DeviceBuffer<int64_t> dids(ids);
  DeviceBuffer<T> dtable(table), dgout(gout), out(n * dim), gtable(vocab * dim);
  std::vector<T> out_w(n * dim), gtable_w(vocab * dim);
  cuda::embedding_forward(dids.data(), dtable.data(), out.data(), n, vocab, dim, {});
  cpu::embedding_forward(ids.data(), table.data(), out_w.data(), n, vocab, dim, {});
  EXPECT_TRUE(close("embedding_forward", out, out_w, Tol{0, 0}));
  for (int64_t padding : {int64_t{-1}, int64_t{2}}) {
    cuda::embedding_backward(dids.data(), dgout.data(), gtable.data(), n, vocab, dim, padding, {});
    cpu::embedding_backward(ids.data(), gout.data(), gtable_w.data(), n, vocab, dim, padding, {});
    EXPECT_TRUE(close("embedding_backward padding " + std::to_string(padding), gtable, gtable_w, tol<T>(true)));
  }

  struct Shape {
    int64_t rows, classes;
  };
  for (const Shape& s : {Shape{1, 1}, Shape{9, 5}, Shape{70, 45}}) {
    SCOPED_TRACE(std::to_string(s.rows) + "x" + std::to_string(s.classes));
    const int64_t ignore = 0;
    auto labels = random_ids(s.rows, 34, 0, s.classes);
    const auto logits = random_vec<T>(s.rows * s.classes, 35, -6.0, 6.0);
    const std::vector<T> g = {T(2)};
    DeviceBuffer<int64_t> dlab(labels);
    DeviceBuffer<T> dl(logits), probs(logits.size()), loss(1), count(1), dg(g), gl(logits.size());
    std::vector<T> probs_w(logits.size()), loss_w(1), count_w(1), gl_w(logits.size());
    cuda::softmax_xent_masked_forward(dl.data(), dlab.data(), probs.data(), loss.data(), count.data(), s.rows,
                                      s.classes, ignore, {});
    cpu::softmax_xent_masked_forward(logits.data(), labels.data(), probs_w.data(), loss_w.data(), count_w.data(),
                                     s.rows, s.classes, ignore, {});
    EXPECT_TRUE(close("softmax_xent_masked_forward probs", probs, probs_w, tol<T>(true)));
    EXPECT_TRUE(close("softmax_xent_masked_forward loss", loss, loss_w, tol<T>(true)));
    EXPECT_TRUE(close("softmax_xent_masked_forward count", count, count_w, Tol{0, 0}));
    cuda::softmax_xent_masked_backward(probs.data(), dlab.data(), count.data(), dg.data(), gl.data(), s.rows,
                                       s.classes, ignore, {});
    cpu::softmax_xent_masked_backward(probs_w.data(), labels.data(), count_w.data(), g.data(), gl_w.data(), s.rows,
                                      s.classes, ignore, {});
    EXPECT_TRUE(close("softmax_xent_masked_backward", gl, gl_w, tol<T>(true)));
  }
}

TYPED_TEST(EmuKernels, LstmCellAndTimeSlicing) {
  using T = TypeParam;
  const int64_t batch = 7, hidden = 45, steps = 5, dim = 45;
  const auto gates = random_vec<T>(batch * 4 * hidden, 36), c_prev = random_vec<T>(batch * hidden, 37);
  DeviceBuffer<T> dgates(gates), dc_prev(c_prev), act(batch * 4 * hidden), h(batch * hidden), c(batch * hidden);
  std::vector<T> act_w(batch * 4 * hidden), h_w(batch * hidden), c_w(batch * hidden);
  cuda::lstm_cell_forward(dgates.data(), dc_prev.data(), act.data(), h.data(), c.data(), batch, hidden, {});
  cpu::lstm_cell_forward(gates.data(), c_prev.data(), act_w.data(), h_w.data(), c_w.data(), batch, hidden, {});
  EXPECT_TRUE(close("lstm_cell_forward act", act, act_w, tol<T>()));
  EXPECT_TRUE(close("lstm_cell_forward h", h, h_w, tol<T>()));
  EXPECT_TRUE(close("lstm_cell_forward c", c, c_w, tol<T>()));
  const auto gh = random_vec<T>(batch * hidden, 38), gc = random_vec<T>(batch * hidden, 39);
  DeviceBuffer<T> dgh(gh), dgc(gc), ggates(batch * 4 * hidden), gc_prev(batch * hidden);
  std::vector<T> ggates_w(batch * 4 * hidden), gc_prev_w(batch * hidden);
  cuda::lstm_cell_backward(act.data(), dc_prev.data(), c.data(), dgh.data(), dgc.data(), ggates.data(),
                           gc_prev.data(), batch, hidden, {});
  cpu::lstm_cell_backward(act_w.data(), c_prev.data(), c_w.data(), gh.data(), gc.data(), ggates_w.data(),
                          gc_prev_w.data(), batch, hidden, {});
  EXPECT_TRUE(close("lstm_cell_backward ggates", ggates, ggates_w, tol<T>()));
  EXPECT_TRUE(close("lstm_cell_backward gc_prev", gc_prev, gc_prev_w, tol<T>()));

  const auto lengths = random_ids(batch, 40, 0, steps + 2);
  const auto a = random_vec<T>(batch * dim, 41), b = random_vec<T>(batch * dim, 42);
  DeviceBuffer<int64_t> dlen(lengths);
  DeviceBuffer<T> da(a), db(b), out(batch * dim);
  std::vector<T> out_w(batch * dim);
  for (int64_t t = 0; t < steps; ++t) {
    cuda::length_select(dlen.data(), t, da.data(), db.data(), out.data(), batch, dim, {});
    cpu::length_select(lengths.data(), t, a.data(), b.data(), out_w.data(), batch, dim, {});
    EXPECT_TRUE(close("length_select t=" + std::to_string(t), out, out_w, Tol{0, 0}));
  }
  DeviceBuffer<T> alias(a);  // out aliases a
  std::vector<T> alias_w = a;
  cuda::length_select(dlen.data(), 2, alias.data(), db.data(), alias.data(), batch, dim, {});
  cpu::length_select(lengths.data(), 2, alias_w.data(), b.data(), alias_w.data(), batch, dim, {});
  EXPECT_TRUE(close("length_select in place", alias, alias_w, Tol{0, 0}));

  const auto seq = random_vec<T>(batch * steps * dim, 43);
  DeviceBuffer<T> dseq(seq), slice(batch * dim);
  std::vector<T> seq_w = seq, slice_w(batch * dim);
  for (int64_t t : {int64_t{0}, steps - 1}) {
    cuda::time_gather(dseq.data(), slice.data(), batch, steps, dim, t, {});
    cpu::time_gather(seq.data(), slice_w.data(), batch, steps, dim, t, {});
    EXPECT_TRUE(close("time_gather", slice, slice_w, Tol{0, 0}));
    cuda::time_scatter(da.data(), dseq.data(), batch, steps, dim, t, {});
    cpu::time_scatter(a.data(), seq_w.data(), batch, steps, dim, t, {});
    EXPECT_TRUE(close("time_scatter", dseq, seq_w, Tol{0, 0}));
  }
}

TYPED_TEST(EmuKernels, AttentionPieces) {
  using T = TypeParam;
  const int64_t batch = 5, m = 19, k = 23;
  const auto a = random_vec<T>(batch * m * k, 44);
  for (bool trans : {false, true}) {
    const int64_t xn = trans ? m : k, yn = trans ? k : m;
    const auto x = random_vec<T>(batch * xn, 45);
    DeviceBuffer<T> da(a), dx(x), y(batch * yn);
    std::vector<T> y_w(batch * yn);
    cuda::batched_gemv(trans, da.data(), dx.data(), y.data(), batch, m, k, {});
    cpu::batched_gemv(trans, a.data(), x.data(), y_w.data(), batch, m, k, {});
    EXPECT_TRUE(close(trans ? "batched_gemv trans" : "batched_gemv", y, y_w, tol<T>(true)));
  }
  const auto u = random_vec<T>(batch * m, 46), v = random_vec<T>(batch * k, 47);
  DeviceBuffer<T> du(u), dv(v), outer(batch * m * k);
  std::vector<T> outer_w(batch * m * k);
  cuda::batched_outer(du.data(), dv.data(), outer.data(), batch, m, k, {});
  cpu::batched_outer(u.data(), v.data(), outer_w.data(), batch, m, k, {});
  EXPECT_TRUE(close("batched_outer", outer, outer_w, tol<T>()));

  const int64_t rows = 300, steps = 17;  // rows past one block of threads
  const auto x = random_vec<T>(rows * steps, 48, -10.0, 10.0), gy = random_vec<T>(rows * steps, 49);
  const auto lengths = random_ids(rows, 50, 0, steps + 3);
  DeviceBuffer<T> dx(x), dgy(gy), y(rows * steps), gx(rows * steps);
  DeviceBuffer<int64_t> dlen(lengths);
  std::vector<T> y_w(rows * steps), gx_w(rows * steps);
  cuda::masked_softmax_forward(dx.data(), dlen.data(), y.data(), rows, steps, {});
  cpu::masked_softmax_forward(x.data(), lengths.data(), y_w.data(), rows, steps, {});
  EXPECT_TRUE(close("masked_softmax_forward", y, y_w, tol<T>(true)));
  cuda::masked_softmax_backward(y.data(), dgy.data(), gx.data(), rows, steps, {});
  cpu::masked_softmax_backward(y_w.data(), gy.data(), gx_w.data(), rows, steps, {});
  EXPECT_TRUE(close("masked_softmax_backward", gx, gx_w, tol<T>(true)));
}

// ---- conversions: every pair, with the values where rounding rules matter ----------------------

// Values where rounding and saturation rules matter (below and above every integer type's
// range, NaN and infinities: saturated, Note in ops/common/convert_value.h), then random
// ones up to n.
template <typename S>
std::vector<S> convert_inputs(size_t n) {
  std::vector<double> v = {0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 127.0, 255.0, 3.999, -7.25, 1e6 + 0.5};
  const auto r = random_vec<double>(n - v.size(), 51, -100.0, 250.0);
  v.insert(v.end(), r.begin(), r.end());
  std::vector<S> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_same_v<S, bf16>) {
      out[i] = float_to_bf16(static_cast<float>(v[i]));
    } else if constexpr (std::is_same_v<S, uint8_t>) {
      out[i] = static_cast<uint8_t>(static_cast<int64_t>(std::fabs(v[i])) % 256);
    } else {
      out[i] = static_cast<S>(v[i]);
    }
  }
  if constexpr (std::is_floating_point_v<S> || std::is_same_v<S, bf16>) {
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min(),
                              1e-40f, 3.4e38f, 1.00390625f, 1.01171875f, 3e9f, -3e9f, 1e19f, -1e19f, 256.0f};
    for (size_t i = 0; i < std::size(specials); ++i) {
      if constexpr (std::is_same_v<S, bf16>) {
        out[i] = float_to_bf16(specials[i]);
      } else {
        out[i] = static_cast<S>(specials[i]);
      }
    }
  }
  return out;
}

template <typename D>
std::vector<uint8_t> bytes_of(const std::vector<D>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(D));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Every pair at a size of several blocks; two of them (the loop is the same template)
// past one grid.
template <typename S, typename D>
void check_convert(const char* pair) {
  SCOPED_TRACE(pair);
  constexpr bool large = (std::is_same_v<S, float> && std::is_same_v<D, double>) ||
                         (std::is_same_v<S, uint8_t> && std::is_same_v<D, bf16>);
  const std::vector<S> x = convert_inputs<S>(large ? past_one_grid(333) : 4099);
  const int64_t n = static_cast<int64_t>(x.size());
  DeviceBuffer<S> dx(x);
  DeviceBuffer<D> out(n);
  std::vector<D> want(n);
  cuda::convert(dx.data(), out.data(), n, {});
  cpu::convert(x.data(), want.data(), n, {});
  EXPECT_EQ(bytes_of(out.to_vector()), bytes_of(want)) << "bitwise";
}

TEST(EmuConvert, EveryPairBitwise) {
#define DT_EMU_CHECK_CONVERT(S, D) check_convert<S, D>(#S " -> " #D);
  DT_CONVERT_PAIRS(DT_EMU_CHECK_CONVERT)
#undef DT_EMU_CHECK_CONVERT
}

}  // namespace
}  // namespace dtrain::ops
