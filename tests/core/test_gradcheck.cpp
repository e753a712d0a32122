// Gradient check of every differentiable function (tests/support/op_cases.h) by central
// differences in double.
#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"
#include "tests/support/op_cases.h"

namespace dtrain::testing {
namespace {

class GradCheck : public ::testing::TestWithParam<OpCase> {};

TEST_P(GradCheck, MatchesCentralDifferences) {
  const OpCase& c = GetParam();
  std::vector<Tensor> inputs = make_inputs(c, DType::F64, Device::cpu(), 42);
  std::vector<bool> diff;
  for (const InputSpec& s : c.inputs) diff.push_back(is_differentiable_input(s));
  GradCheckOptions opt;
  opt.kink = c.kink;
  opt.at_kink = c.at_kink;
  EXPECT_TRUE(check_gradients(c.f, inputs, diff, opt)) << "op " << c.name;
}

std::vector<OpCase> differentiable_cases() {
  std::vector<OpCase> out;
  for (const OpCase& c : op_cases()) {
    if (c.differentiable) out.push_back(c);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Ops, GradCheck, ::testing::ValuesIn(differentiable_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) { return info.param.name; });

// The checker itself must catch a wrong gradient: a function whose recorded backward is
// deliberately off by a factor of two.
TEST(GradCheckSelf, DetectsAWrongBackward) {
  TensorFn wrong = [](const std::vector<Tensor>& x) {
    Tensor y = fn::affine(x[0], 2.0);
    // Record a second, bogus path: y + x with a backward that returns 2*g instead of g.
    Tensor out;
    {
      autograd::NoGrad ng;
      out = fn::add(y, x[0]);
    }
    if (autograd::should_record({&y, &x[0]})) {
      autograd::record("bogus_add", {y, x[0]}, {out},
                       [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0], fn::scale(g[0], 2.0)}; });
    }
    return out;
  };
  Tensor x = Tensor::empty({4}, DType::F64);
  Generator(3).normal_(x);
  EXPECT_FALSE(check_gradients(wrong, {x}, {true}));
}

TEST(GradCheckSelf, SkipsKinks) {
  Tensor x = Tensor::from_vector<double>({-1.0, 0.0, 1.0}, {3});
  GradCheckOptions opt;
  opt.kink = 0.0;
  auto result = check_gradients([](const std::vector<Tensor>& v) { return fn::relu(v[0]); }, {x}, {true}, opt);
  EXPECT_TRUE(result);
  EXPECT_NE(std::string(result.message()).find("1 skipped"), std::string::npos) << result.message();
}

// A max-pool window holding two values closer than the finite-difference step: across
// the tie the numeric derivative is half of each side's, so an unskipped check must fail,
// and skipping tied elements must pass and say how many it skipped.
TEST(GradCheckSelf, MaxPoolTiesAreKinksAndAreSkipped) {
  Tensor x = Tensor::from_vector<double>({0.5, 2.0, 2.0 + 1e-9, -1.0, 0.1, 0.2, 0.3, 0.4}, {1, 2, 2, 2});
  TensorFn pool = [](const std::vector<Tensor>& v) { return fn::max_pool2d(v[0], 2, 2); };
  EXPECT_FALSE(check_gradients(pool, {x.clone()}, {true}));
  GradCheckOptions opt;
  opt.at_kink = [](size_t, int64_t j, const std::vector<Tensor>& in, double r) { return max_pool_tie(4, j, in, r); };
  auto result = check_gradients(pool, {x.clone()}, {true}, opt);
  EXPECT_TRUE(result);
  EXPECT_NE(std::string(result.message()).find("2 skipped"), std::string::npos) << result.message();
}

}  // namespace
}  // namespace dtrain::testing
