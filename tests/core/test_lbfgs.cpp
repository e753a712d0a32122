// L-BFGS against PyTorch's torch.optim.LBFGS: the fixture tests/fixtures/golden_lbfgs.h5
// (scripts/make_golden_lbfgs.py) holds float64 runs on Rosenbrock functions with the
// fixed step (line_search_fn=None) and the strong-Wolfe line search; every step() call
// must give the same iterate, returned loss, evaluation and iteration counts.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/optim/lbfgs.h"
#include "tests/support/compare.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 over one-element tensors.
Tensor rosenbrock(const std::vector<Tensor>& xs) {
  Tensor f;
  for (size_t i = 0; i + 1 < xs.size(); ++i) {
    Tensor a = fn::sub(xs[i + 1], fn::mul(xs[i], xs[i]));
    Tensor b = fn::affine(xs[i], -1.0, 1.0);
    Tensor term = fn::add(fn::scale(fn::mul(a, a), 100.0), fn::mul(b, b));
    f = f.defined() ? fn::add(f, term) : term;
  }
  return fn::sum(f);
}

struct LbfgsRun {
  std::vector<double> x;  // after each step, row-major (steps, n)
  std::vector<double> loss;
  std::vector<int64_t> evals, iters;
};

LbfgsRun run_lbfgs(const std::vector<double>& x0, optim::LBFGS::Options o, int64_t steps, DType dtype) {
  nn::NamedTensors params;
  std::vector<Tensor> xs;
  for (size_t i = 0; i < x0.size(); ++i) {
    Tensor t = Tensor::from_vector<double>({x0[i]}, {1}).to(dtype);
    t.set_requires_grad(true);
    xs.push_back(t);
    params.emplace_back("x" + std::to_string(i), t);
  }
  optim::LBFGS opt(params, o);
  auto closure = [&] {
    for (Tensor& x : xs) x.zero_grad();
    autograd::Tape tape;
    Tensor f;
    {
      autograd::GradRecorder rec(tape);
      f = rosenbrock(xs);
    }
    tape.backward(f);
    return f.to(DType::F64).item<double>();
  };
  LbfgsRun r;
  for (int64_t s = 0; s < steps; ++s) {
    r.loss.push_back(opt.step(closure));
    for (const Tensor& x : xs) r.x.push_back(x.to(DType::F64).item<double>());
    r.evals.push_back(opt.function_evaluations());
    r.iters.push_back(opt.iterations());
  }
  return r;
}

class GoldenLbfgs : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenLbfgs, MatchesPyTorchFloat64) {
  const std::string fixture = fixture_path("golden_lbfgs.h5");
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), 1)
      << fixture << ": another format version; regenerate it with scripts/make_golden_lbfgs.py";
  const std::string g = "/" + GetParam();
  optim::LBFGS::Options o;
  o.lr = f.get_attribute<double>(g, "lr");
  o.max_iter = f.get_attribute<int64_t>(g, "max_iter");
  o.history_size = f.get_attribute<int64_t>(g, "history_size");
  o.strong_wolfe = f.get_attribute<std::string>(g, "line_search") == "strong_wolfe";
  const int64_t steps = f.get_attribute<int64_t>(g, "steps");
  const std::vector<double> x0 = f.read(g + "/x0").to_vector<double>();
  const LbfgsRun r = run_lbfgs(x0, o, steps, DType::F64);
  const auto n = static_cast<int64_t>(x0.size());
  // Float64 throughout; the only differences are summation orders in dot products, which
  // the ill-conditioned 6-D problem amplifies to ~1e-9 after 50 evaluations.
  EXPECT_TRUE(tensors_close("x", Tensor::from_vector(r.x, {steps, n}), f.read(g + "/x"), {1e-8, 1e-9}));
  EXPECT_TRUE(tensors_close("loss", Tensor::from_vector(r.loss, {steps}), f.read(g + "/loss"), {1e-8, 1e-9}));
  EXPECT_EQ(r.evals, f.read(g + "/func_evals").to_vector<int64_t>());
  EXPECT_EQ(r.iters, f.read(g + "/n_iter").to_vector<int64_t>());
}

INSTANTIATE_TEST_SUITE_P(Runs, GoldenLbfgs,
                         ::testing::Values("fixed_step", "fixed_step_short_history", "strong_wolfe", "strong_wolfe_6"));

// With the line search L-BFGS solves the 2-D Rosenbrock problem to its minimum (1, 1),
// also with float32 parameters (the method's vectors are double on the host).
TEST(Lbfgs, StrongWolfeReachesTheRosenbrockMinimumInFloat32) {
  optim::LBFGS::Options o;
  o.strong_wolfe = true;
  o.max_iter = 200;
  o.max_eval = 400;
  const LbfgsRun r = run_lbfgs({-1.5, 2.0}, o, 1, DType::F32);
  EXPECT_NEAR(r.x[0], 1.0, 1e-3);
  EXPECT_NEAR(r.x[1], 1.0, 1e-3);
}

// A stationary start returns at once: one evaluation, no iteration, parameters unchanged.
TEST(Lbfgs, StopsAtAStationaryPoint) {
  const LbfgsRun r = run_lbfgs({1.0, 1.0}, {}, 1, DType::F64);
  EXPECT_EQ(r.evals[0], 1);
  EXPECT_EQ(r.iters[0], 0);
  EXPECT_EQ(r.x, (std::vector<double>{1.0, 1.0}));
  EXPECT_EQ(r.loss[0], 0.0);
}

TEST(Lbfgs, RejectsBadOptions) {
  Tensor p = Tensor::zeros({2});
  p.set_requires_grad(true);
  optim::LBFGS::Options zero_lr, no_history;
  zero_lr.lr = 0.0;
  no_history.history_size = 0;
  EXPECT_THROW(optim::LBFGS({{"p", p}}, zero_lr), Error);
  EXPECT_THROW(optim::LBFGS({{"p", p}}, no_history), Error);
  EXPECT_THROW(optim::LBFGS({}, {}), Error);
}

}  // namespace
}  // namespace dtrain::testing
