// Tests of the conv-stack CPU kernels (ops/kernels.inc, "convolution" onwards): conv2d
// against naive loops and the adjoint identity, on every CPU path (oneDNN blocked and
// plain, im2col, for float; im2col for double); pooling, batch norm and dropout against
// hand values, finite differences and the Philox layout; and the OpenMP-parallel
// reductions, which must not change a bit with the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu.h"
#include "ops/cpu/conv_paths.h"

namespace {

namespace cpu = dtrain::ops::cpu;
namespace detail = dtrain::ops::detail;
using dtrain::ops::AdaptivePoolGeom;
using dtrain::ops::Conv2dGeom;
using dtrain::ops::Exec;
using dtrain::ops::Pool2dGeom;

template <typename T>
std::vector<T> random_vector(int64_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (T& e : v) e = static_cast<T>(dist(rng));
  return v;
}

template <typename T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Runs f with OpenMP limited to `threads`, restoring the previous limit.
void with_threads(int threads, const std::function<void()>& f) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  f();
  omp_set_num_threads(before);
}

// ---- convolution: references ------------------------------------------------------

// A naive result with, per element, the sum of |terms| (the scale of its rounding error).
struct Reference {
  std::vector<double> value, scale;
};

// Calls f(n, co, ci, oh, ow, ki, kj, x_index, w_index, y_index) for every term of the
// convolution sum whose input position is inside the image: the 7 loops, once.
template <typename F>
void for_each_term(const Conv2dGeom& g, F f) {
  const int64_t ho = g.h_out(), wo = g.w_out();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t co = 0; co < g.c_out; ++co)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow)
          for (int64_t ci = 0; ci < g.c_in; ++ci)
            for (int64_t ki = 0; ki < g.kh; ++ki)
              for (int64_t kj = 0; kj < g.kw; ++kj) {
                const int64_t ih = oh * g.stride_h - g.pad_h + ki, iw = ow * g.stride_w - g.pad_w + kj;
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                f(((n * g.c_in + ci) * g.h + ih) * g.w + iw, ((co * g.c_in + ci) * g.kh + ki) * g.kw + kj,
                  ((n * g.c_out + co) * ho + oh) * wo + ow);
              }
}

Reference naive_forward(const Conv2dGeom& g, const std::vector<double>& x, const std::vector<double>& w) {
  Reference r{std::vector<double>(g.y_numel()), std::vector<double>(g.y_numel())};
  for_each_term(g, [&](int64_t xi, int64_t wi, int64_t yi) {
    r.value[yi] += x[xi] * w[wi];
    r.scale[yi] += std::fabs(x[xi] * w[wi]);
  });
  return r;
}

Reference naive_backward_data(const Conv2dGeom& g, const std::vector<double>& w, const std::vector<double>& gy) {
  Reference r{std::vector<double>(g.x_numel()), std::vector<double>(g.x_numel())};
  for_each_term(g, [&](int64_t xi, int64_t wi, int64_t yi) {
    r.value[xi] += gy[yi] * w[wi];
    r.scale[xi] += std::fabs(gy[yi] * w[wi]);
  });
  return r;
}

Reference naive_backward_weight(const Conv2dGeom& g, const std::vector<double>& x, const std::vector<double>& gy) {
  Reference r{std::vector<double>(g.w_numel()), std::vector<double>(g.w_numel())};
  for_each_term(g, [&](int64_t xi, int64_t wi, int64_t yi) {
    r.value[wi] += gy[yi] * x[xi];
    r.scale[wi] += std::fabs(gy[yi] * x[xi]);
  });
  return r;
}

// |got - want| <= tol (scale + 1) for every element; prints the first few misses.
template <typename T>
void expect_matches(const std::vector<T>& got, const Reference& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.value.size()) << what;
  int misses = 0;
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want.value[i]);
    worst = std::max(worst, err / (want.scale[i] + 1.0));
    if (err > tol * (want.scale[i] + 1.0) && ++misses <= 5) {
      ADD_FAILURE() << what << " at " << i << ": got " << got[i] << ", want " << want.value[i];
    }
  }
  EXPECT_EQ(misses, 0) << what << ": worst relative error " << worst;
}

Conv2dGeom conv(int64_t n, int64_t c_in, int64_t h, int64_t w, int64_t c_out, int64_t kh, int64_t kw, int64_t sh,
                int64_t sw, int64_t ph, int64_t pw) {
  Conv2dGeom g;
  g.n = n, g.c_in = c_in, g.h = h, g.w = w, g.c_out = c_out, g.kh = kh, g.kw = kw;
  g.stride_h = sh, g.stride_w = sw, g.pad_h = ph, g.pad_w = pw;
  return g;
}

std::string describe(const Conv2dGeom& g) {
  return "N" + std::to_string(g.n) + " C" + std::to_string(g.c_in) + " " + std::to_string(g.h) + "x" +
         std::to_string(g.w) + " -> C" + std::to_string(g.c_out) + " k" + std::to_string(g.kh) + "x" +
         std::to_string(g.kw) + " s" + std::to_string(g.stride_h) + "x" + std::to_string(g.stride_w) + " p" +
         std::to_string(g.pad_h) + "x" + std::to_string(g.pad_w);
}

// Stride 1/2, padding 0/1/2, non-square and 1x1 kernels, batches > 1, channel counts
// that are not multiples of 8 (and a few that are, for oneDNN's blocked kernels), and an
// output size that drops the last input rows (floor division).
std::vector<Conv2dGeom> conv_geometries() {
  return {
      conv(2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1),     conv(3, 5, 9, 8, 7, 3, 3, 2, 2, 1, 1),
      conv(1, 4, 6, 7, 6, 3, 1, 1, 1, 2, 0),     conv(2, 6, 5, 5, 10, 1, 1, 1, 1, 0, 0),
      conv(2, 3, 5, 5, 4, 1, 1, 2, 2, 0, 0),     conv(2, 17, 10, 9, 19, 5, 5, 2, 2, 2, 2),
      conv(4, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1),   conv(2, 3, 5, 4, 2, 2, 3, 2, 1, 0, 0),
      conv(1, 2, 4, 4, 3, 3, 3, 1, 1, 0, 0),     conv(2, 32, 6, 6, 16, 3, 3, 2, 2, 1, 1),
      conv(3, 1, 8, 5, 9, 1, 3, 1, 2, 0, 1),
  };
}

// A float implementation under test: forward, backward data, backward weight.
struct ConvPath {
  const char* name;
  std::function<void(const Conv2dGeom&, const float*, const float*, float*)> forward, backward_data, backward_weight;
};

std::vector<ConvPath> float_paths() {
  auto dnnl = [](detail::DnnlLayout layout) {
    return ConvPath{
        layout == detail::DnnlLayout::kBlocked ? "dnnl blocked" : "dnnl plain",
        [layout](const Conv2dGeom& g, const float* x, const float* w, float* y) {
          ASSERT_TRUE(detail::conv2d_forward_dnnl(g, x, w, y, layout)) << "oneDNN: no forward for " << describe(g);
        },
        [layout](const Conv2dGeom& g, const float* w, const float* gy, float* gx) {
          ASSERT_TRUE(detail::conv2d_backward_data_dnnl(g, w, gy, gx, layout))
              << "oneDNN: no backward data for " << describe(g);
        },
        [layout](const Conv2dGeom& g, const float* x, const float* gy, float* gw) {
          ASSERT_TRUE(detail::conv2d_backward_weight_dnnl(g, x, gy, gw, layout))
              << "oneDNN: no backward weights for " << describe(g);
        }};
  };
  return {
      ConvPath{"kernel", [](const Conv2dGeom& g, const float* x, const float* w,
                            float* y) { cpu::conv2d_forward<float>(g, x, w, y, Exec{}); },
               [](const Conv2dGeom& g, const float* w, const float* gy,
                  float* gx) { cpu::conv2d_backward_data<float>(g, w, gy, gx, Exec{}); },
               [](const Conv2dGeom& g, const float* x, const float* gy,
                  float* gw) { cpu::conv2d_backward_weight<float>(g, x, gy, gw, Exec{}); }},
      dnnl(detail::DnnlLayout::kBlocked),
      dnnl(detail::DnnlLayout::kPlain),
      ConvPath{"im2col", detail::conv2d_forward_im2col<float>, detail::conv2d_backward_data_im2col<float>,
               detail::conv2d_backward_weight_im2col<float>},
  };
}

// ---- convolution: tests ---------------------------------------------------------------

TEST(CpuConv, FloatPathsMatchNaiveLoops) {
  uint32_t seed = 1;
  for (const Conv2dGeom& g : conv_geometries()) {
    const auto x = random_vector<float>(g.x_numel(), seed++);
    const auto w = random_vector<float>(g.w_numel(), seed++);
    const auto gy = random_vector<float>(g.y_numel(), seed++);
    const Reference y_ref = naive_forward(g, to_double(x), to_double(w));
    const Reference gx_ref = naive_backward_data(g, to_double(w), to_double(gy));
    const Reference gw_ref = naive_backward_weight(g, to_double(x), to_double(gy));
    for (const ConvPath& path : float_paths()) {
      const std::string what = std::string(path.name) + " " + describe(g);
      // Poisoned outputs: every element must be written (=).
      std::vector<float> y(g.y_numel(), std::numeric_limits<float>::quiet_NaN());
      std::vector<float> gx(g.x_numel(), std::numeric_limits<float>::quiet_NaN());
      std::vector<float> gw(g.w_numel(), std::numeric_limits<float>::quiet_NaN());
      path.forward(g, x.data(), w.data(), y.data());
      path.backward_data(g, w.data(), gy.data(), gx.data());
      path.backward_weight(g, x.data(), gy.data(), gw.data());
      expect_matches(y, y_ref, 1e-5, what + " forward");
      expect_matches(gx, gx_ref, 1e-5, what + " backward data");
      expect_matches(gw, gw_ref, 1e-5, what + " backward weight");
    }
  }
}

TEST(CpuConv, DoubleMatchesNaiveLoops) {
  uint32_t seed = 100;
  for (const Conv2dGeom& g : conv_geometries()) {
    const auto x = random_vector<double>(g.x_numel(), seed++);
    const auto w = random_vector<double>(g.w_numel(), seed++);
    const auto gy = random_vector<double>(g.y_numel(), seed++);
    std::vector<double> y(g.y_numel(), NAN), gx(g.x_numel(), NAN), gw(g.w_numel(), NAN);
    cpu::conv2d_forward<double>(g, x.data(), w.data(), y.data(), Exec{});
    cpu::conv2d_backward_data<double>(g, w.data(), gy.data(), gx.data(), Exec{});
    cpu::conv2d_backward_weight<double>(g, x.data(), gy.data(), gw.data(), Exec{});
    expect_matches(y, naive_forward(g, x, w), 1e-13, describe(g) + " forward");
    expect_matches(gx, naive_backward_data(g, w, gy), 1e-13, describe(g) + " backward data");
    expect_matches(gw, naive_backward_weight(g, x, gy), 1e-13, describe(g) + " backward weight");
  }
}

// <conv(x, w), gy> = <x, backward_data(w, gy)> = <w, backward_weight(x, gy)>: the two
// backward kernels are the adjoints of the forward, whatever the geometry.
TEST(CpuConv, AdjointIdentity) {
  uint32_t seed = 200;
  for (const Conv2dGeom& g : conv_geometries()) {
    const auto x = random_vector<double>(g.x_numel(), seed++);
    const auto w = random_vector<double>(g.w_numel(), seed++);
    const auto gy = random_vector<double>(g.y_numel(), seed++);
    std::vector<double> y(g.y_numel()), gx(g.x_numel()), gw(g.w_numel());
    cpu::conv2d_forward<double>(g, x.data(), w.data(), y.data(), Exec{});
    cpu::conv2d_backward_data<double>(g, w.data(), gy.data(), gx.data(), Exec{});
    cpu::conv2d_backward_weight<double>(g, x.data(), gy.data(), gw.data(), Exec{});
    const double a = dot(y, gy), b = dot(x, gx), c = dot(w, gw);
    const double tol = 1e-12 * std::max({std::fabs(a), 1.0}) * static_cast<double>(g.y_numel());
    EXPECT_NEAR(a, b, tol) << describe(g);
    EXPECT_NEAR(a, c, tol) << describe(g);

    // The same identity through the float kernel (oneDNN), to float accuracy.
    std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), gyf(gy.begin(), gy.end());
    std::vector<float> yf(g.y_numel()), gxf(g.x_numel()), gwf(g.w_numel());
    cpu::conv2d_forward<float>(g, xf.data(), wf.data(), yf.data(), Exec{});
    cpu::conv2d_backward_data<float>(g, wf.data(), gyf.data(), gxf.data(), Exec{});
    cpu::conv2d_backward_weight<float>(g, xf.data(), gyf.data(), gwf.data(), Exec{});
    const double af = dot(to_double(yf), to_double(gyf)), bf = dot(to_double(xf), to_double(gxf)),
                 cf = dot(to_double(wf), to_double(gwf));
    const double tolf = 1e-5 * static_cast<double>(g.y_numel());
    EXPECT_NEAR(af, bf, tolf) << describe(g);
    EXPECT_NEAR(af, cf, tolf) << describe(g);
  }
}

TEST(CpuConv, EmptyBatchAndCachedRepeats) {
  // N = 0: nothing to compute, and the weight gradient is a sum over nothing: zeros.
  Conv2dGeom g = conv(0, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1);
  std::vector<float> gw(g.w_numel(), 7.0f);
  cpu::conv2d_forward<float>(g, nullptr, gw.data(), nullptr, Exec{});
  cpu::conv2d_backward_weight<float>(g, nullptr, nullptr, gw.data(), Exec{});
  for (float v : gw) EXPECT_EQ(v, 0.0f);

  // The cached oneDNN primitive gives the same result on a second call with new data.
  g.n = 2;
  for (int rep = 0; rep < 2; ++rep) {
    const auto x = random_vector<float>(g.x_numel(), 300 + rep);
    const auto w = random_vector<float>(g.w_numel(), 310 + rep);
    std::vector<float> y(g.y_numel());
    cpu::conv2d_forward<float>(g, x.data(), w.data(), y.data(), Exec{});
    expect_matches(y, naive_forward(g, to_double(x), to_double(w)), 1e-5, "repeat " + std::to_string(rep));
  }
}

TEST(CpuConv, BadGeometryThrows) {
  std::vector<float> buf(1000);
  const float* p = buf.data();
  auto fwd = [&](Conv2dGeom g) { cpu::conv2d_forward<float>(g, p, p, buf.data(), Exec{}); };
  EXPECT_THROW(fwd(conv(1, 1, 4, 4, 1, 0, 3, 1, 1, 0, 0)), std::invalid_argument);   // empty kernel
  EXPECT_THROW(fwd(conv(1, 1, 4, 4, 1, 3, 3, 0, 1, 0, 0)), std::invalid_argument);   // zero stride
  EXPECT_THROW(fwd(conv(1, 1, 4, 4, 1, 3, 3, 1, 1, -1, 0)), std::invalid_argument);  // negative padding
  EXPECT_THROW(fwd(conv(1, 1, 2, 4, 1, 5, 3, 1, 1, 1, 0)), std::invalid_argument);   // kernel > padded input
  EXPECT_THROW(cpu::conv2d_forward<double>(conv(1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0), nullptr, nullptr, nullptr, Exec{}),
               std::invalid_argument);
}

// ---- pooling ------------------------------------------------------------------------

Pool2dGeom pool(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t s, int64_t p) {
  Pool2dGeom g;
  g.n = n, g.c = c, g.h = h, g.w = w, g.kh = k, g.kw = k, g.stride_h = s, g.stride_w = s, g.pad_h = p, g.pad_w = p;
  return g;
}

template <typename T>
class CpuPoolTest : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CpuPoolTest, FloatTypes);

TYPED_TEST(CpuPoolTest, MaxPoolTiesTakeTheFirstMaximum) {
  using T = TypeParam;
  // Two planes; the second is the first negated plus 10 (so its maxima move).
  const std::vector<T> x{1, 3, 3, 0,  //
                         2, 3, 1, 1,  //
                         5, 5, 0, 0,  //
                         5, 4, 0, 0,  //
                         9, 7, 7, 10, 8, 7, 9, 9, 5, 5, 10, 10, 5, 6, 10, 10};
  const Pool2dGeom g = pool(1, 2, 4, 4, 2, 2, 0);
  std::vector<T> y(8);
  std::vector<int32_t> arg(8);
  cpu::max_pool2d_forward<T>(g, x.data(), y.data(), arg.data(), Exec{});
  EXPECT_EQ(y, (std::vector<T>{3, 3, 5, 0, 9, 10, 6, 10}));
  EXPECT_EQ(arg, (std::vector<int32_t>{1, 2, 8, 10, 0, 3, 13, 10}));

  // Backward: gy lands on the argmax positions; zeros elsewhere (=, over a dirty gx).
  const std::vector<T> gy{1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<T> gx(32, T(99));
  cpu::max_pool2d_backward<T>(g, gy.data(), arg.data(), gx.data(), Exec{});
  std::vector<T> want(32, T(0));
  want[1] = 1, want[2] = 2, want[8] = 3, want[10] = 4, want[16 + 0] = 5, want[16 + 3] = 6, want[16 + 13] = 7,
  want[16 + 10] = 8;
  EXPECT_EQ(gx, want);
}

TYPED_TEST(CpuPoolTest, MaxPoolPaddingIsMinusInfinityAndOverlapsAccumulate) {
  using T = TypeParam;
  // 3x3 window, stride 1, padding 1 on a negative 3x3 plane: padding must not win as 0.
  const std::vector<T> x{-5, -4, -9, -1, -8, -7, -6, -2, -3};
  const Pool2dGeom g = pool(1, 1, 3, 3, 3, 1, 1);
  std::vector<T> y(9);
  std::vector<int32_t> arg(9);
  cpu::max_pool2d_forward<T>(g, x.data(), y.data(), arg.data(), Exec{});
  EXPECT_EQ(y, (std::vector<T>{-1, -1, -4, -1, -1, -2, -1, -1, -2}));
  EXPECT_EQ(arg, (std::vector<int32_t>{3, 3, 1, 3, 3, 7, 3, 3, 7}));
  // Overlapping windows share maxima: their gradients add up.
  const std::vector<T> gy(9, T(1));
  std::vector<T> gx(9);
  cpu::max_pool2d_backward<T>(g, gy.data(), arg.data(), gx.data(), Exec{});
  EXPECT_EQ(gx, (std::vector<T>{0, 1, 0, 6, 0, 0, 0, 2, 0}));
}

TYPED_TEST(CpuPoolTest, MaxPoolPropagatesNaNAndMinusInfinity) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  // Windows (2x2, stride 2): {1, NaN, 5, 2} -> NaN at 1; {-inf x 4} -> -inf at the first.
  const std::vector<T> x{1, nan, -inf, -inf, 5, 2, -inf, -inf};
  std::vector<T> y(2);
  std::vector<int32_t> arg(2);
  cpu::max_pool2d_forward<T>(pool(1, 1, 2, 4, 2, 2, 0), x.data(), y.data(), arg.data(), Exec{});
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(arg[0], 1);
  EXPECT_EQ(y[1], -inf);
  EXPECT_EQ(arg[1], 2);
}

TYPED_TEST(CpuPoolTest, MaxPoolWindowEntirelyInPadding) {
  using T = TypeParam;
  const T x[1] = {T(-3)};
  const Pool2dGeom g = pool(1, 1, 1, 1, 1, 1, 1);  // 3x3 output, only the centre sees x
  std::vector<T> y(9);
  std::vector<int32_t> arg(9);
  cpu::max_pool2d_forward<T>(g, x, y.data(), arg.data(), Exec{});
  for (int i = 0; i < 9; ++i) {
    if (i == 4) {
      EXPECT_EQ(y[i], T(-3));
      EXPECT_EQ(arg[i], 0);
    } else {
      EXPECT_EQ(y[i], -std::numeric_limits<T>::infinity()) << i;
      EXPECT_EQ(arg[i], -1) << i;
    }
  }
  const std::vector<T> gy(9, T(2));
  T gx[1] = {T(5)};
  cpu::max_pool2d_backward<T>(g, gy.data(), arg.data(), gx, Exec{});
  EXPECT_EQ(gx[0], T(2));
}

TYPED_TEST(CpuPoolTest, AvgPoolCountsPaddingInTheDivisor) {
  using T = TypeParam;
  const std::vector<T> x(2 * 9, T(1));
  const Pool2dGeom g = pool(2, 1, 3, 3, 3, 1, 1);
  std::vector<T> y(18);
  cpu::avg_pool2d_forward<T>(g, x.data(), y.data(), Exec{});
  const std::vector<double> want{4, 6, 4, 6, 9, 6, 4, 6, 4};
  for (int i = 0; i < 18; ++i) EXPECT_NEAR(static_cast<double>(y[i]), want[i % 9] / 9.0, 1e-7) << i;
  // Backward of all-ones: each input gets 1/9 from every window that contains it.
  const std::vector<T> gy(18, T(1));
  std::vector<T> gx(18, T(42));
  cpu::avg_pool2d_backward<T>(g, gy.data(), gx.data(), Exec{});
  for (int i = 0; i < 18; ++i) EXPECT_NEAR(static_cast<double>(gx[i]), want[i % 9] / 9.0, 1e-7) << i;

  // Stride 2, no padding, with hand values: 2x2 windows of a 4x5 plane (the last column
  // is dropped by the floor).
  std::vector<T> x2(20);
  for (int i = 0; i < 20; ++i) x2[i] = T(i);
  const Pool2dGeom g2 = pool(1, 1, 4, 5, 2, 2, 0);
  std::vector<T> y2(4);
  cpu::avg_pool2d_forward<T>(g2, x2.data(), y2.data(), Exec{});
  EXPECT_EQ(y2, (std::vector<T>{3, 5, 13, 15}));
}

TYPED_TEST(CpuPoolTest, AdaptiveAvgPoolNonDivisibleSizes) {
  using T = TypeParam;
  // 5 -> 3 rows: [0, 2), [1, 4), [3, 5); 7 -> 2 columns: [0, 4), [3, 7).
  AdaptivePoolGeom g;
  g.n = 1, g.c = 2, g.h = 5, g.w = 7, g.h_out = 3, g.w_out = 2;
  std::vector<T> x(70);
  for (int c = 0; c < 2; ++c)
    for (int h = 0; h < 5; ++h)
      for (int w = 0; w < 7; ++w) x[(c * 5 + h) * 7 + w] = T(10 * h + w + 100 * c);
  std::vector<T> y(12);
  cpu::adaptive_avg_pool2d_forward<T>(g, x.data(), y.data(), Exec{});
  const std::vector<double> want{6.5, 9.5, 21.5, 24.5, 36.5, 39.5};
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(static_cast<double>(y[i]), want[i % 6] + 100 * (i / 6), 1e-5) << i;

  const std::vector<T> gy(12, T(1));
  std::vector<T> gx(70, T(-1));
  cpu::adaptive_avg_pool2d_backward<T>(g, gy.data(), gx.data(), Exec{});
  EXPECT_NEAR(static_cast<double>(gx[0]), 1.0 / 8, 1e-7);                  // (0, 0): one 2x4 cell
  EXPECT_NEAR(static_cast<double>(gx[1 * 7 + 3]), (0.5 + 1.0 / 3) * 0.5, 1e-7);  // (1, 3): four cells
  EXPECT_NEAR(static_cast<double>(gx[4 * 7 + 6]), 1.0 / 8, 1e-7);          // (4, 6)
  double total = 0.0;
  for (int i = 0; i < 35; ++i) total += static_cast<double>(gx[35 + i]);
  EXPECT_NEAR(total, 6.0, 1e-6);  // every cell hands out exactly its gradient
  // Global average pooling (output 1x1) is the plane mean.
  g.h_out = g.w_out = 1;
  cpu::adaptive_avg_pool2d_forward<T>(g, x.data(), y.data(), Exec{});
  EXPECT_NEAR(static_cast<double>(y[0]), 23.0, 1e-5);
  EXPECT_NEAR(static_cast<double>(y[1]), 123.0, 1e-5);
}

TEST(CpuPool, MaxPoolMatchesNaiveOnRandomInput) {
  const Pool2dGeom g = pool(3, 5, 9, 7, 3, 2, 1);
  const auto x = random_vector<float>(g.x_numel(), 400);
  std::vector<float> y(g.y_numel());
  std::vector<int32_t> arg(g.y_numel());
  cpu::max_pool2d_forward<float>(g, x.data(), y.data(), arg.data(), Exec{});
  const int64_t ho = g.h_out(), wo = g.w_out();
  for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
    for (int64_t oh = 0; oh < ho; ++oh) {
      for (int64_t ow = 0; ow < wo; ++ow) {
        float best = -INFINITY;
        int32_t at = -1;
        for (int64_t ih = oh * 2 - 1; ih < oh * 2 + 2; ++ih)
          for (int64_t iw = ow * 2 - 1; iw < ow * 2 + 2; ++iw)
            if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w && x[plane * 63 + ih * 7 + iw] > best) {
              best = x[plane * 63 + ih * 7 + iw];
              at = static_cast<int32_t>(ih * 7 + iw);
            }
        const int64_t j = (plane * ho + oh) * wo + ow;
        EXPECT_EQ(y[j], best);
        EXPECT_EQ(arg[j], at);
      }
    }
  }
}

TEST(CpuPool, BadArgumentsThrow) {
  std::vector<float> buf(64);
  std::vector<int32_t> arg(64);
  EXPECT_THROW(cpu::max_pool2d_forward<float>(pool(1, 1, 4, 4, 0, 1, 0), buf.data(), buf.data(), arg.data(), Exec{}),
               std::invalid_argument);
  EXPECT_THROW(cpu::avg_pool2d_forward<float>(pool(1, 1, 4, 4, 2, 0, 0), buf.data(), buf.data(), Exec{}),
               std::invalid_argument);
  arg[0] = 16;  // outside the 4x4 plane
  EXPECT_THROW(cpu::max_pool2d_backward<float>(pool(1, 1, 4, 4, 2, 2, 0), buf.data(), arg.data(), buf.data(), Exec{}),
               std::invalid_argument);
  AdaptivePoolGeom a;
  a.n = 1, a.c = 1, a.h = 4, a.w = 4, a.h_out = 0;
  EXPECT_THROW(cpu::adaptive_avg_pool2d_forward<float>(a, buf.data(), buf.data(), Exec{}), std::invalid_argument);
}

// ---- batch norm -------------------------------------------------------------------------

template <typename T>
class CpuBatchNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(CpuBatchNormTest, FloatTypes);

TYPED_TEST(CpuBatchNormTest, TrainForwardNormalizesAndUpdatesRunningStats) {
  using T = TypeParam;
  const int64_t n = 4, c = 3, hw = 5, m = n * hw;
  auto x = random_vector<T>(n * c * hw, 500);
  for (int64_t i = 0; i < n * c * hw; ++i) x[i] = x[i] * T(3) + T(2 * ((i / hw) % c));  // per-channel shift
  const std::vector<T> gamma(c, T(1)), beta(c, T(0));
  std::vector<T> y(x.size()), mean(c), invstd(c), rmean(c, T(0.5)), rvar(c, T(2));
  const T eps = T(1e-5), momentum = T(0.1);
  cpu::batch_norm_forward_train<T>(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(),
                                   rmean.data(), rvar.data(), n, c, hw, momentum, eps, Exec{});
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  for (int64_t ch = 0; ch < c; ++ch) {
    double mx = 0, vx = 0, my = 0, vy = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < hw; ++j) {
        mx += x[(i * c + ch) * hw + j];
        my += y[(i * c + ch) * hw + j];
      }
    mx /= m, my /= m;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < hw; ++j) {
        vx += std::pow(x[(i * c + ch) * hw + j] - mx, 2);
        vy += std::pow(y[(i * c + ch) * hw + j] - my, 2);
      }
    vx /= m, vy /= m;
    EXPECT_NEAR(my, 0.0, 10 * tol) << ch;
    EXPECT_NEAR(vy, vx / (vx + 1e-5), 10 * tol) << ch;
    EXPECT_NEAR(mean[ch], mx, tol * 10) << ch;
    EXPECT_NEAR(invstd[ch], 1 / std::sqrt(vx + 1e-5), tol) << ch;
    EXPECT_NEAR(rmean[ch], 0.9 * 0.5 + 0.1 * mx, tol * 10) << ch;
    EXPECT_NEAR(rvar[ch], 0.9 * 2 + 0.1 * vx * m / (m - 1), tol * 10) << ch;  // unbiased
  }

  // gamma and beta scale and shift the normalized values.
  const std::vector<T> gamma2{T(2), T(-1), T(0.5)}, beta2{T(1), T(0), T(-3)};
  std::vector<T> y2(x.size());
  cpu::batch_norm_forward_train<T>(x.data(), gamma2.data(), beta2.data(), y2.data(), mean.data(), invstd.data(),
                                   rmean.data(), rvar.data(), n, c, hw, momentum, eps, Exec{});
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t ch = (static_cast<int64_t>(i) / hw) % c;
    EXPECT_NEAR(y2[i], y[i] * gamma2[ch] + beta2[ch], 10 * tol) << i;
  }
}

TYPED_TEST(CpuBatchNormTest, OneValuePerChannelThrowsInTraining) {
  using T = TypeParam;
  std::vector<T> v(2, T(1));
  EXPECT_THROW(cpu::batch_norm_forward_train<T>(v.data(), v.data(), v.data(), v.data(), v.data(), v.data(), v.data(),
                                                v.data(), 1, 2, 1, T(0.1), T(1e-5), Exec{}),
               std::invalid_argument);
}

TYPED_TEST(CpuBatchNormTest, EvalUsesRunningStats) {
  using T = TypeParam;
  // n = 1, c = 2, hw = 2.
  const std::vector<T> x{1, 3, 10, 20}, gamma{2, -1}, beta{0.5, 1}, rmean{1, 10}, rvar{4, 100};
  std::vector<T> y(4);
  cpu::batch_norm_forward_eval<T>(x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), y.data(), 1, 2, 2,
                                  T(0), Exec{});
  const std::vector<double> want{0.5, 2.5, 1, 0};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(static_cast<double>(y[i]), want[i], 1e-6) << i;
}

// The backward against central differences of L = sum(gy . y(x, gamma, beta)) in double.
TEST(CpuBatchNorm, BackwardMatchesFiniteDifferences) {
  const int64_t n = 3, c = 2, hw = 4;
  auto x = random_vector<double>(n * c * hw, 600, -2, 2);
  auto gamma = random_vector<double>(c, 601, 0.5, 1.5);
  auto beta = random_vector<double>(c, 602);
  const auto gy = random_vector<double>(n * c * hw, 603);
  auto loss = [&]() {
    std::vector<double> y(x.size()), mean(c), invstd(c), rm(c), rv(c);
    cpu::batch_norm_forward_train<double>(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(),
                                          rm.data(), rv.data(), n, c, hw, 0.1, 1e-5, Exec{});
    return dot(y, gy);
  };
  std::vector<double> y(x.size()), mean(c), invstd(c), rm(c), rv(c);
  cpu::batch_norm_forward_train<double>(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(),
                                        rm.data(), rv.data(), n, c, hw, 0.1, 1e-5, Exec{});
  std::vector<double> gx(x.size(), NAN), ggamma(c, NAN), gbeta(c, NAN);
  cpu::batch_norm_backward<double>(x.data(), gy.data(), gamma.data(), mean.data(), invstd.data(), gx.data(),
                                   ggamma.data(), gbeta.data(), n, c, hw, Exec{});
  auto numeric = [&](double& v) {
    const double h = 1e-6, keep = v;
    v = keep + h;
    const double up = loss();
    v = keep - h;
    const double down = loss();
    v = keep;
    return (up - down) / (2 * h);
  };
  auto check = [](double analytic, double num, const std::string& what) {
    EXPECT_NEAR(analytic, num, 1e-6 * std::max({std::fabs(analytic), std::fabs(num), 1.0})) << what;
  };
  for (size_t i = 0; i < x.size(); ++i) check(gx[i], numeric(x[i]), "gx[" + std::to_string(i) + "]");
  for (int64_t ch = 0; ch < c; ++ch) {
    check(ggamma[ch], numeric(gamma[ch]), "ggamma");
    check(gbeta[ch], numeric(beta[ch]), "gbeta");
  }
}

// ---- dropout ----------------------------------------------------------------------------

template <typename T>
class CpuDropoutTest : public ::testing::Test {};
TYPED_TEST_SUITE(CpuDropoutTest, FloatTypes);

TYPED_TEST(CpuDropoutTest, KeepsAboutOneMinusPAndScales) {
  using T = TypeParam;
  const int64_t n = 100003;  // not a multiple of 4: the last block is partial
  const T p = T(0.3);
  const auto x = random_vector<T>(n, 700, 0.5, 1.5);  // never 0
  std::vector<T> y(n);
  std::vector<uint8_t> mask(n, 7);
  cpu::dropout_forward<T>(x.data(), y.data(), mask.data(), n, p, 1234, 55, Exec{});
  // The mask is u >= p with u from philox_uniform's layout, element for element.
  std::vector<T> u(n);
  cpu::philox_uniform<T>(u.data(), n, 1234, 55, T(0), T(1), Exec{});
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(mask[i], u[i] >= p ? 1 : 0) << i;
    kept += mask[i];
    ASSERT_EQ(y[i], mask[i] ? x[i] / (T(1) - p) : T(0)) << i;
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 0.01);

  // Same seed and offset: the same mask; another offset: another one.
  std::vector<T> y2(n);
  std::vector<uint8_t> mask2(n);
  cpu::dropout_forward<T>(x.data(), y2.data(), mask2.data(), n, p, 1234, 55, Exec{});
  EXPECT_EQ(mask, mask2);
  EXPECT_EQ(y, y2);
  cpu::dropout_forward<T>(x.data(), y2.data(), mask2.data(), n, p, 1234, 56, Exec{});
  EXPECT_NE(mask, mask2);

  // Backward uses the mask.
  const auto gy = random_vector<T>(n, 701);
  std::vector<T> gx(n);
  cpu::dropout_backward<T>(gy.data(), mask.data(), gx.data(), n, p, Exec{});
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(gx[i], mask[i] ? gy[i] / (T(1) - p) : T(0)) << i;
}

TYPED_TEST(CpuDropoutTest, ZeroAndOneAndInvalidP) {
  using T = TypeParam;
  const std::vector<T> x{1, -2, 3, 4, 5};
  std::vector<T> y(5);
  std::vector<uint8_t> mask(5);
  cpu::dropout_forward<T>(x.data(), y.data(), mask.data(), 5, T(0), 9, 0, Exec{});
  EXPECT_EQ(y, x);
  EXPECT_EQ(mask, std::vector<uint8_t>(5, 1));
  cpu::dropout_forward<T>(x.data(), y.data(), mask.data(), 5, T(1), 9, 0, Exec{});
  EXPECT_EQ(y, std::vector<T>(5, T(0)));
  EXPECT_EQ(mask, std::vector<uint8_t>(5, 0));
  EXPECT_THROW(cpu::dropout_forward<T>(x.data(), y.data(), mask.data(), 5, T(1.5), 9, 0, Exec{}),
               std::invalid_argument);
  EXPECT_THROW(cpu::dropout_backward<T>(x.data(), mask.data(), y.data(), 5, T(-0.1), Exec{}), std::invalid_argument);
}

// ---- parallel reductions: the thread count never changes a bit --------------------------

template <typename T>
std::vector<T> run_reductions() {
  const int64_t n = 300007;
  const auto a = random_vector<T>(n, 800, -3, 5);
  const auto b = random_vector<T>(n, 801, -1, 1);
  std::vector<T> out;
  T s;
  cpu::sum_all<T>(a.data(), &s, n, Exec{});
  out.push_back(s);
  cpu::mse_forward<T>(a.data(), b.data(), &s, n, Exec{});
  out.push_back(s);
  cpu::bce_logits_forward<T>(a.data(), b.data(), &s, n, Exec{});
  out.push_back(s);
  std::vector<int64_t> labels(n / 10);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 10);
  std::vector<T> probs(labels.size() * 10);
  cpu::softmax_xent_forward<T>(a.data(), labels.data(), probs.data(), &s, static_cast<int64_t>(labels.size()), 10,
                               Exec{});
  out.push_back(s);
  std::vector<T> gb(7);
  cpu::bias_grad<T>(a.data(), gb.data(), 7, 7, n / 49, Exec{});  // (outer, C, inner)
  out.insert(out.end(), gb.begin(), gb.end());
  std::vector<T> gb2(1000);
  cpu::bias_grad<T>(a.data(), gb2.data(), 300, 1000, 1, Exec{});  // (N, C)
  out.insert(out.end(), gb2.begin(), gb2.end());
  // Batch norm statistics and gradients.
  const int64_t bn = 8, bc = 16, bhw = 1024;
  std::vector<T> gamma(bc, T(1.5)), beta(bc, T(0.25)), y(bn * bc * bhw), mean(bc), invstd(bc), rm(bc, 0), rv(bc, 1);
  cpu::batch_norm_forward_train<T>(a.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(),
                                   rm.data(), rv.data(), bn, bc, bhw, T(0.1), T(1e-5), Exec{});
  std::vector<T> gx(y.size()), gg(bc), gbeta(bc);
  cpu::batch_norm_backward<T>(a.data(), b.data(), gamma.data(), mean.data(), invstd.data(), gx.data(), gg.data(),
                              gbeta.data(), bn, bc, bhw, Exec{});
  for (const auto* v : {&mean, &invstd, &rm, &rv, &gg, &gbeta, &y, &gx}) out.insert(out.end(), v->begin(), v->end());
  // Elementwise results, too (trivially the same, but they run parallel above 2^15).
  std::vector<T> e(n);
  cpu::add<T>(a.data(), b.data(), e.data(), n, Exec{});
  cpu::sigmoid_forward<T>(e.data(), e.data(), n, Exec{});
  out.insert(out.end(), e.begin(), e.end());
  return out;
}

template <typename T>
class CpuParallelTest : public ::testing::Test {};
TYPED_TEST_SUITE(CpuParallelTest, FloatTypes);

TYPED_TEST(CpuParallelTest, ReductionsAreBitwiseIndependentOfThreads) {
  using T = TypeParam;
  std::vector<T> one, two;
  with_threads(1, [&] { one = run_reductions<T>(); });
  with_threads(2, [&] { two = run_reductions<T>(); });
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)), 0);
  // The chunked sum still is a sum.
  const auto a = random_vector<T>(300007, 800, -3, 5);
  double want = 0;
  for (T v : a) want += static_cast<double>(v);
  EXPECT_NEAR(static_cast<double>(one[0]), want, 1e-6 * std::fabs(want));
}

}  // namespace
