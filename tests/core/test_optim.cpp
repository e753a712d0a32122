// Optimizers against closed-form updates computed here in double (f64 tensors on the
// CPU, so the comparisons can be tight), plus option validation and a convex problem
// solved end to end through autograd.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/optim/optimizer.h"

namespace dtrain::testing {
namespace {

using optim::Adam;
using optim::AdamW;
using optim::SGD;
using Vec = std::vector<double>;

constexpr double kRel = 1e-12;

Tensor param(const Vec& v) {
  Tensor p = Tensor::from_vector<double>(v, {static_cast<int64_t>(v.size())});
  p.set_requires_grad(true);
  return p;
}

void set_grad(Tensor& p, const Vec& g) {
  p.set_grad(Tensor::from_vector<double>(g, {static_cast<int64_t>(g.size())}));
}

void expect_close(const Vec& actual, const Vec& expected, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    double tol = kRel * std::max(1.0, std::abs(expected[i]));
    EXPECT_NEAR(actual[i], expected[i], tol) << what << " element " << i;
  }
}

const Vec kP0 = {0.5, -1.25, 2.0, 0.0};
const std::vector<Vec> kGrads = {{0.1, -0.2, 0.3, -0.4}, {-0.5, 0.25, 0.75, 1.0}, {0.3, 0.3, -0.6, 0.05}};

// ---- SGD ----

TEST(SGD, PlainStepIsParamMinusLrTimesGrad) {
  Tensor p = param(kP0);
  SGD opt({{"p", p}}, {.lr = 0.1});
  set_grad(p, kGrads[0]);
  opt.step();
  Vec expected(kP0.size());
  for (size_t i = 0; i < kP0.size(); ++i) expected[i] = kP0[i] - 0.1 * kGrads[0][i];
  expect_close(p.to_vector<double>(), expected, "sgd plain");
  // Without momentum there is no state.
  EXPECT_TRUE(opt.state().empty());
}

TEST(SGD, WeightDecayAddsToTheGradient) {
  Tensor p = param(kP0);
  const double lr = 0.05, wd = 0.3;
  SGD opt({{"p", p}}, {.lr = lr, .weight_decay = wd});
  Vec ref = kP0;
  for (const Vec& g : kGrads) {
    set_grad(p, g);
    opt.step();
    for (size_t i = 0; i < ref.size(); ++i) ref[i] -= lr * (g[i] + wd * ref[i]);
  }
  expect_close(p.to_vector<double>(), ref, "sgd weight decay");
}

// Reference for PyTorch's SGD with momentum over the three gradients.
Vec sgd_momentum_reference(double lr, double m, double damp, double wd, bool nesterov, Vec* buf_out) {
  Vec p = kP0, buf(kP0.size(), 0.0);
  for (size_t t = 0; t < kGrads.size(); ++t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double d = kGrads[t][i] + wd * p[i];
      buf[i] = t == 0 ? d : m * buf[i] + (1.0 - damp) * d;
      double u = nesterov ? d + m * buf[i] : buf[i];
      p[i] -= lr * u;
    }
  }
  *buf_out = buf;
  return p;
}

TEST(SGD, MomentumWithDampeningOverThreeSteps) {
  const double lr = 0.1, m = 0.9, damp = 0.3;
  Tensor p = param(kP0);
  SGD opt({{"p", p}}, {.lr = lr, .momentum = m, .dampening = damp});
  for (const Vec& g : kGrads) {
    set_grad(p, g);
    opt.step();
  }
  Vec buf;
  Vec expected = sgd_momentum_reference(lr, m, damp, 0.0, false, &buf);
  expect_close(p.to_vector<double>(), expected, "sgd momentum param");
  auto state = opt.state();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].first, "p.momentum_buffer");
  expect_close(state[0].second.to_vector<double>(), buf, "sgd momentum buffer");
  // The first step copies d into the buffer undamped: a different dampening changes
  // only steps 2 and 3, so the result must differ from the undamped reference.
  Vec buf0;
  Vec undamped = sgd_momentum_reference(lr, m, 0.0, 0.0, false, &buf0);
  EXPECT_GT(std::abs(undamped[0] - expected[0]), 1e-3);
}

TEST(SGD, MomentumFirstStepIsUndamped) {
  Tensor p = param(kP0);
  SGD opt({{"p", p}}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  set_grad(p, kGrads[0]);
  opt.step();
  // buf1 = g1 (not (1 - dampening) * g1), so step 1 equals plain SGD.
  Vec expected(kP0.size());
  for (size_t i = 0; i < kP0.size(); ++i) expected[i] = kP0[i] - 0.1 * kGrads[0][i];
  expect_close(p.to_vector<double>(), expected, "sgd momentum step 1");
  expect_close(opt.state()[0].second.to_vector<double>(), kGrads[0], "buffer after step 1");
}

TEST(SGD, NesterovWithWeightDecay) {
  const double lr = 0.07, m = 0.8, wd = 0.01;
  Tensor p = param(kP0);
  SGD opt({{"p", p}}, {.lr = lr, .momentum = m, .weight_decay = wd, .nesterov = true});
  for (const Vec& g : kGrads) {
    set_grad(p, g);
    opt.step();
  }
  Vec buf;
  Vec expected = sgd_momentum_reference(lr, m, 0.0, wd, true, &buf);
  expect_close(p.to_vector<double>(), expected, "nesterov param");
  expect_close(opt.state()[0].second.to_vector<double>(), buf, "nesterov buffer");
  Vec buf_classic;
  Vec classic = sgd_momentum_reference(lr, m, 0.0, wd, false, &buf_classic);
  EXPECT_GT(std::abs(classic[2] - expected[2]), 1e-3) << "Nesterov must differ from classic momentum";
}

TEST(SGD, InvalidOptionsThrow) {
  Tensor p = param(kP0);
  EXPECT_THROW(SGD({{"p", p}}, {.lr = -0.1}), ValueError);
  EXPECT_THROW(SGD({{"p", p}}, {.lr = 0.1, .momentum = -0.5}), ValueError);
  EXPECT_THROW(SGD({{"p", p}}, {.lr = 0.1, .nesterov = true}), ValueError);
  EXPECT_THROW(SGD({{"p", p}}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}), ValueError);
  EXPECT_NO_THROW(SGD({{"p", p}}, {.lr = 0.1, .momentum = 0.9, .nesterov = true}));
}

TEST(SGD, RejectsParametersThatDoNotRequireGrad) {
  Tensor p = Tensor::from_vector<double>({1.0}, {1});
  EXPECT_THROW(SGD({{"p", p}}, {.lr = 0.1}), ValueError);
}

// ---- Adam ----

struct AdamRef {
  Vec p, m, v;
};

AdamRef adam_reference(double lr, double b1, double b2, double eps, double wd, bool decoupled) {
  AdamRef r{kP0, Vec(kP0.size(), 0.0), Vec(kP0.size(), 0.0)};
  for (size_t t = 0; t < kGrads.size(); ++t) {
    double step = static_cast<double>(t + 1);
    double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
    for (size_t i = 0; i < r.p.size(); ++i) {
      double g = kGrads[t][i];
      if (decoupled) {
        r.p[i] *= 1.0 - lr * wd;
      } else {
        g += wd * r.p[i];
      }
      r.m[i] = b1 * r.m[i] + (1.0 - b1) * g;
      r.v[i] = b2 * r.v[i] + (1.0 - b2) * g * g;
      r.p[i] -= lr * (r.m[i] / bc1) / (std::sqrt(r.v[i] / bc2) + eps);
    }
  }
  return r;
}

TEST(Adam, ThreeStepsWithBiasCorrection) {
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  Tensor p = param(kP0);
  Adam opt({{"p", p}}, {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps});
  for (const Vec& g : kGrads) {
    set_grad(p, g);
    opt.step();
  }
  EXPECT_EQ(opt.steps_taken(), 3);
  AdamRef r = adam_reference(lr, b1, b2, eps, 0.0, false);
  expect_close(p.to_vector<double>(), r.p, "adam param");
  auto state = opt.state();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "p.exp_avg");
  EXPECT_EQ(state[1].first, "p.exp_avg_sq");
  expect_close(state[0].second.to_vector<double>(), r.m, "adam exp_avg");
  expect_close(state[1].second.to_vector<double>(), r.v, "adam exp_avg_sq");
}

TEST(Adam, FirstStepMovesEachCoordinateByAboutLr) {
  // With bias correction, step 1 is lr * g / (|g| + eps): a move of ~lr against the
  // sign of the gradient (0 where the gradient is 0). Without the correction it would
  // be lr * 0.1 / sqrt(0.001) ~ 3.16 * lr.
  Tensor p = param({1.0, 1.0, 1.0});
  Adam opt({{"p", p}}, {.lr = 0.01});
  set_grad(p, {3.0, -0.002, 0.0});
  opt.step();
  Vec got = p.to_vector<double>();
  EXPECT_NEAR(got[0], 1.0 - 0.01, 1e-8);
  EXPECT_NEAR(got[1], 1.0 + 0.01, 1e-7);
  EXPECT_DOUBLE_EQ(got[2], 1.0);
}

TEST(Adam, L2WeightDecayAndAdamWDifferAndAreEachCorrect) {
  const double lr = 0.05, wd = 0.2;
  Tensor p_l2 = param(kP0), p_w = param(kP0);
  Adam l2({{"p", p_l2}}, {.lr = lr, .weight_decay = wd});
  AdamW adamw({{"p", p_w}}, {.lr = lr, .weight_decay = wd});
  for (const Vec& g : kGrads) {
    set_grad(p_l2, g);
    set_grad(p_w, g);
    l2.step();
    adamw.step();
  }
  AdamRef r_l2 = adam_reference(lr, 0.9, 0.999, 1e-8, wd, false);
  AdamRef r_w = adam_reference(lr, 0.9, 0.999, 1e-8, wd, true);
  expect_close(p_l2.to_vector<double>(), r_l2.p, "adam L2");
  expect_close(p_w.to_vector<double>(), r_w.p, "adamw");
  expect_close(adamw.state()[0].second.to_vector<double>(), r_w.m, "adamw exp_avg");
  // The two forms of weight decay must give measurably different parameters.
  double max_diff = 0;
  Vec a = p_l2.to_vector<double>(), b = p_w.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
  EXPECT_GT(max_diff, 1e-4);
}

TEST(AdamW, DefaultWeightDecayIsPointZeroOne) {
  Tensor p = param(kP0);
  AdamW opt({{"p", p}}, {.lr = 0.01});
  set_grad(p, kGrads[0]);
  opt.step();
  Vec expected(kP0.size());
  for (size_t i = 0; i < kP0.size(); ++i) {
    // Bias-corrected first step: m_hat = g, v_hat = g^2.
    double g = kGrads[0][i];
    expected[i] = kP0[i] * (1.0 - 0.01 * 0.01) - 0.01 * g / (std::abs(g) + 1e-8);
  }
  expect_close(p.to_vector<double>(), expected, "adamw default wd");
}

TEST(Adam, InvalidOptionsThrow) {
  Tensor p = param(kP0);
  EXPECT_THROW(Adam({{"p", p}}, {.lr = -1e-3}), ValueError);
  EXPECT_THROW(Adam({{"p", p}}, {.beta1 = 1.0}), ValueError);
  EXPECT_THROW(Adam({{"p", p}}, {.beta2 = 1.0}), ValueError);
  EXPECT_THROW(Adam({{"p", p}}, {.beta1 = -0.1}), ValueError);
  EXPECT_THROW(Adam({{"p", p}}, {.eps = 0.0}), ValueError);
  EXPECT_THROW(AdamW({{"p", p}}, {.beta2 = 1.5}), ValueError);
}

// ---- common behaviour ----

TEST(Optimizer, ParametersWithoutGradAreSkipped) {
  Tensor a = param({1.0, 2.0}), b = param({3.0, 4.0});
  Adam adam({{"a", a}, {"b", b}}, {.lr = 0.1});
  set_grad(a, {0.5, -0.5});
  adam.step();
  EXPECT_EQ(b.to_vector<double>(), (Vec{3.0, 4.0}));
  EXPECT_NE(a.to_vector<double>(), (Vec{1.0, 2.0}));
  auto state = adam.state();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "a.exp_avg");
  EXPECT_EQ(state[1].first, "a.exp_avg_sq");

  Tensor c = param({5.0}), d = param({6.0});
  SGD sgd({{"c", c}, {"d", d}}, {.lr = 0.1, .momentum = 0.9});
  set_grad(d, {1.0});
  sgd.step();
  EXPECT_EQ(c.to_vector<double>(), Vec{5.0});
  ASSERT_EQ(sgd.state().size(), 1u);
  EXPECT_EQ(sgd.state()[0].first, "d.momentum_buffer");
}

TEST(Optimizer, StepsTakenCountsEveryStepAndLrCanChange) {
  Tensor p = param({1.0});
  SGD opt({{"p", p}}, {.lr = 0.5});
  EXPECT_EQ(opt.steps_taken(), 0);
  opt.step();  // no grad yet: still counts as a step
  EXPECT_EQ(opt.steps_taken(), 1);
  EXPECT_EQ(p.to_vector<double>(), Vec{1.0});
  set_grad(p, {1.0});
  opt.step();
  opt.set_lr(0.25);
  EXPECT_DOUBLE_EQ(opt.lr(), 0.25);
  opt.step();
  EXPECT_EQ(opt.steps_taken(), 3);
  EXPECT_DOUBLE_EQ(p.item<double>(), 1.0 - 0.5 - 0.25);
  opt.zero_grad();
  EXPECT_EQ(p.grad().to_vector<double>(), Vec{0.0});
}

TEST(Optimizer, AdamBiasCorrectionUsesStepsTakenOnResume) {
  // Restoring steps_taken and the moments continues the same trajectory.
  const double lr = 0.02;
  Tensor p = param(kP0);
  Adam full({{"p", p}}, {.lr = lr});
  for (const Vec& g : kGrads) {
    set_grad(p, g);
    full.step();
  }

  Tensor q = param(kP0);
  Adam first({{"p", q}}, {.lr = lr});
  for (size_t t = 0; t < 2; ++t) {
    set_grad(q, kGrads[t]);
    first.step();
  }
  Tensor q2 = param(q.to_vector<double>());
  Adam resumed({{"p", q2}}, {.lr = lr});
  set_grad(q2, kGrads[2]);
  resumed.set_steps_taken(2);
  // Create the state by stepping with zero lr, then overwrite it with the saved moments.
  // (A zero-lr step also updates the moments, so restore them afterwards.)
  resumed.set_lr(0.0);
  resumed.step();
  resumed.set_lr(lr);
  resumed.set_steps_taken(2);
  auto saved = first.state(), fresh = resumed.state();
  ASSERT_EQ(saved.size(), fresh.size());
  for (size_t i = 0; i < saved.size(); ++i) fresh[i].second.copy_(saved[i].second);
  resumed.step();
  expect_close(q2.to_vector<double>(), p.to_vector<double>(), "resumed adam");
}

TEST(Optimizer, SgdMinimizesAConvexQuadratic) {
  // f(x) = (x - 3)^2, gradient 2 (x - 3); lr 0.1 contracts the error by 0.8 per step.
  Tensor x = Tensor::from_vector<double>({-2.0}, {1});
  x.set_requires_grad(true);
  Tensor three = Tensor::from_vector<double>({3.0}, {1});
  SGD opt({{"x", x}}, {.lr = 0.1});
  double loss = 0;
  for (int it = 0; it < 200; ++it) {
    opt.zero_grad();
    autograd::Tape tape;
    Tensor f;
    {
      autograd::GradRecorder rec(tape);
      Tensor d = fn::sub(x, three);
      f = fn::sum(fn::mul(d, d));
    }
    loss = f.item<double>();
    tape.backward(f);
    ASSERT_TRUE(x.grad().defined());
    opt.step();
  }
  EXPECT_NEAR(x.item<double>(), 3.0, 1e-6);
  EXPECT_LT(loss, 1e-12);
}

}  // namespace
}  // namespace dtrain::testing

namespace dtrain {
namespace {

// load_state() restores what state() and steps_taken() held: the continuation of a
// restored optimizer equals the original's, bit for bit.
TEST(OptimizerState, LoadStateContinuesExactly) {
  auto make_param = [] {
    Tensor p = Tensor::from_vector<double>({0.5, -1.0, 2.0}, {3});
    p.set_requires_grad(true);
    return p;
  };
  Tensor g = Tensor::from_vector<double>({0.1, -0.2, 0.3}, {3});
  for (int kind = 0; kind < 2; ++kind) {
    Tensor a = make_param(), b = make_param();
    auto make = [&](Tensor p) -> std::unique_ptr<optim::Optimizer> {
      if (kind == 0) return std::make_unique<optim::SGD>(nn::NamedTensors{{"w", p}}, optim::SGD::Options{.lr = 0.1, .momentum = 0.9});
      return std::make_unique<optim::Adam>(nn::NamedTensors{{"w", p}}, optim::Adam::Options{.lr = 0.01});
    };
    auto oa = make(a);
    for (int s = 0; s < 2; ++s) {
      a.set_grad(g.clone());
      oa->step();
    }
    auto ob = make(b);
    b.copy_(a);
    ob->load_state(oa->state(), oa->steps_taken());
    EXPECT_EQ(ob->steps_taken(), 2);
    a.set_grad(g.clone());
    b.set_grad(g.clone());
    oa->step();
    ob->step();
    EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>()) << (kind == 0 ? "SGD" : "Adam");
  }
}

TEST(OptimizerState, LoadStateRejectsForeignState) {
  Tensor p = Tensor::from_vector<double>({1.0, 2.0}, {2});
  p.set_requires_grad(true);
  optim::SGD sgd({{"w", p}}, optim::SGD::Options{.lr = 0.1, .momentum = 0.9});
  // Adam's slot names are not SGD's.
  EXPECT_THROW(sgd.load_state({{"w.exp_avg", Tensor::zeros({2}, DType::F64)}}, 1), ValueError);
  // A parameter this optimizer does not have.
  EXPECT_THROW(sgd.load_state({{"v.momentum_buffer", Tensor::zeros({2}, DType::F64)}}, 1), ValueError);
  // The right name with the wrong shape.
  EXPECT_THROW(sgd.load_state({{"w.momentum_buffer", Tensor::zeros({3}, DType::F64)}}, 1), ValueError);
  sgd.load_state({{"w.momentum_buffer", Tensor::ones({2}, DType::F64)}}, 4);
  ASSERT_EQ(sgd.state().size(), 1u);
  EXPECT_EQ(sgd.state()[0].first, "w.momentum_buffer");
  EXPECT_EQ(sgd.steps_taken(), 4);
}

}  // namespace
}  // namespace dtrain
