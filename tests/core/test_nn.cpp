// Module bookkeeping (names, counts, modes, device moves) and the Linear layer.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/nn/layers.h"
#include "core/rng.h"

namespace dtrain::testing {
namespace {

using nn::Linear;
using nn::Sequential;

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

TEST(Module, SequentialParameterNamesAndOrder) {
  Generator gen(1);
  Sequential net{std::make_shared<Linear>(3, 4, gen), std::make_shared<nn::Tanh>(), std::make_shared<Linear>(4, 2, gen)};
  EXPECT_EQ(net.size(), 3u);
  auto named = net.named_parameters();
  EXPECT_EQ(names_of(named), (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  EXPECT_EQ(named[0].second.shape(), (Shape{4, 3}));
  EXPECT_EQ(named[1].second.shape(), (Shape{4}));
  EXPECT_EQ(named[2].second.shape(), (Shape{2, 4}));
  EXPECT_EQ(named[3].second.shape(), (Shape{2}));
  for (const auto& [name, t] : named) EXPECT_TRUE(t.requires_grad()) << name;
  // parameters() is the same list, as the same tensors (not copies).
  auto params = net.parameters();
  ASSERT_EQ(params.size(), 4u);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_EQ(params[i].id(), named[i].second.id());
  EXPECT_TRUE(net.named_buffers().empty());
}

TEST(Module, NestedSequentialNamesJoinWithDots) {
  Generator gen(1);
  auto inner = std::make_shared<Sequential>();
  inner->add(std::make_shared<Linear>(4, 4, gen, /*bias=*/false)).add(std::make_shared<nn::ReLU>());
  inner->add(std::make_shared<Linear>(4, 1, gen));
  Sequential net{std::make_shared<Linear>(2, 4, gen), inner};
  EXPECT_EQ(names_of(net.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "1.0.weight", "1.2.weight", "1.2.bias"}));
}

TEST(Module, NumParameters) {
  Generator gen(0);
  // The lecture's XOR network: 2 inputs, 2 hidden, 1 output.
  Sequential xor_net{std::make_shared<Linear>(2, 2, gen), std::make_shared<nn::Sigmoid>(),
                     std::make_shared<Linear>(2, 1, gen), std::make_shared<nn::Sigmoid>()};
  EXPECT_EQ(xor_net.num_parameters(), 9);
  EXPECT_EQ(Linear(784, 10, gen).num_parameters(), 7850);
  EXPECT_EQ(Linear(784, 10, gen, /*bias=*/false).num_parameters(), 7840);
  EXPECT_EQ(nn::Tanh().num_parameters(), 0);
}

TEST(Linear, InitWithinPyTorchBounds) {
  Generator gen(11);
  Linear lin(784, 10, gen);
  // The layer is f32, so the bounds are the f32 values of +-1/sqrt(in).
  const float bound = static_cast<float>(1.0 / std::sqrt(784.0));
  for (const Tensor& t : {lin.weight(), lin.bias()}) {
    ASSERT_EQ(t.dtype(), DType::F32);
    std::vector<float> v = t.to_vector<float>();
    float lo = v[0], hi = v[0];
    for (float x : v) {
      ASSERT_GE(x, -bound);
      ASSERT_LT(x, bound);
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    if (v.size() > 1000) {
      // The weights use the range, not a sliver of it.
      EXPECT_LT(lo, -0.9f * bound);
      EXPECT_GT(hi, 0.9f * bound);
    }
  }
}

TEST(Linear, SameSeedSameWeightsDifferentSeedDifferent) {
  Generator a(5), b(5), c(6);
  Linear la(8, 3, a), lb(8, 3, b), lc(8, 3, c);
  EXPECT_EQ(la.weight().to_vector<float>(), lb.weight().to_vector<float>());
  EXPECT_EQ(la.bias().to_vector<float>(), lb.bias().to_vector<float>());
  EXPECT_NE(la.weight().to_vector<float>(), lc.weight().to_vector<float>());
  // Weight and bias come from consecutive parts of the stream, not the same numbers.
  std::vector<float> w = la.weight().to_vector<float>(), bias = la.bias().to_vector<float>();
  EXPECT_NE(std::vector<float>(w.begin(), w.begin() + 3), bias);
  // Two layers built from one generator differ.
  Generator d(5);
  Linear first(8, 3, d), second(8, 3, d);
  EXPECT_NE(first.weight().to_vector<float>(), second.weight().to_vector<float>());
}

TEST(Linear, ForwardIsXWTransposePlusB) {
  Generator gen(3);
  const int64_t n = 3, in = 4, out = 2;
  Linear lin(in, out, gen, true, DType::F64);
  std::vector<double> xv = {0.5, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 3.0, -2.0, 1.0, 1.0, -1.0};
  Tensor x = Tensor::from_vector<double>(xv, {n, in});
  Tensor y = lin(x);
  ASSERT_EQ(y.shape(), (Shape{n, out}));
  std::vector<double> w = lin.weight().to_vector<double>(), b = lin.bias().to_vector<double>();
  std::vector<double> got = y.to_vector<double>();
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double e = b[o];
      for (int64_t k = 0; k < in; ++k) e += xv[r * in + k] * w[o * in + k];
      EXPECT_NEAR(got[r * out + o], e, 1e-13) << "row " << r << " out " << o;
    }
  }
}

TEST(Linear, WithoutBias) {
  Generator gen(3);
  Linear lin(2, 3, gen, /*bias=*/false, DType::F64);
  EXPECT_FALSE(lin.bias().defined());
  EXPECT_EQ(names_of(lin.named_parameters()), std::vector<std::string>{"weight"});
  EXPECT_EQ(lin.describe(), "Linear(in=2, out=3)");
  Tensor x = Tensor::from_vector<double>({1.0, 2.0}, {1, 2});
  std::vector<double> w = lin.weight().to_vector<double>();
  std::vector<double> got = lin(x).to_vector<double>();
  ASSERT_EQ(got.size(), 3u);
  for (int o = 0; o < 3; ++o) EXPECT_NEAR(got[o], w[o * 2] + 2.0 * w[o * 2 + 1], 1e-14);
}

TEST(Linear, NonPositiveFeaturesThrow) {
  Generator gen(0);
  EXPECT_THROW(Linear(0, 3, gen), ValueError);
  EXPECT_THROW(Linear(3, 0, gen), ValueError);
  EXPECT_THROW(Linear(-1, 3, gen), ValueError);
}

TEST(Module, TrainEvalIsRecursive) {
  Generator gen(0);
  auto leaf = std::make_shared<Linear>(2, 2, gen);
  auto inner = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{leaf});
  Sequential net{inner, std::make_shared<nn::Tanh>()};
  EXPECT_TRUE(net.is_training());
  EXPECT_TRUE(leaf->is_training());
  net.eval();
  EXPECT_FALSE(net.is_training());
  EXPECT_FALSE(inner->is_training());
  EXPECT_FALSE(leaf->is_training());
  EXPECT_FALSE(net.children()[1].second->is_training());
  net.train();
  EXPECT_TRUE(leaf->is_training());
  EXPECT_TRUE(inner->is_training());
}

TEST(Module, ZeroGradZerosExistingGradsInPlace) {
  Generator gen(0);
  Sequential net{std::make_shared<Linear>(2, 3, gen), std::make_shared<Linear>(3, 1, gen)};
  auto named = net.named_parameters();
  Tensor w0 = named[0].second;
  w0.set_grad(Tensor::full(w0.shape(), 2.5));
  void* grad_ptr = w0.grad().raw_data();
  net.zero_grad();
  EXPECT_EQ(w0.grad().raw_data(), grad_ptr) << "zero_grad must keep the gradient's memory";
  for (float g : w0.grad().to_vector<float>()) EXPECT_EQ(g, 0.0f);
  // Parameters that had no gradient still have none.
  EXPECT_FALSE(named[1].second.grad().defined());
}

TEST(Module, ToCpuIsANoOp) {
  Generator gen(0);
  Linear lin(3, 2, gen);
  void* w = lin.weight().raw_data();
  void* b = lin.bias().raw_data();
  std::vector<float> before = lin.weight().to_vector<float>();
  lin.to(Device::cpu());
  EXPECT_EQ(lin.weight().raw_data(), w);
  EXPECT_EQ(lin.bias().raw_data(), b);
  EXPECT_EQ(lin.weight().device(), Device::cpu());
  EXPECT_EQ(lin.weight().to_vector<float>(), before);
}

TEST(Module, SummaryMentionsLayersAndTotal) {
  Generator gen(0);
  Sequential xor_net{std::make_shared<Linear>(2, 2, gen), std::make_shared<nn::Sigmoid>(),
                     std::make_shared<Linear>(2, 1, gen)};
  std::string s = xor_net.summary();
  EXPECT_NE(s.find("total parameters: 9"), std::string::npos) << s;
  EXPECT_NE(s.find("Linear(in=2, out=2, bias)"), std::string::npos) << s;
  EXPECT_NE(s.find("Sigmoid"), std::string::npos) << s;
  EXPECT_NE(s.find("[6 params]"), std::string::npos) << s;
  EXPECT_NE(s.find("[3 params]"), std::string::npos) << s;
}

TEST(Sequential, ForwardAppliesChildrenInOrder) {
  Generator gen(9);
  auto lin = std::make_shared<Linear>(2, 2, gen, true, DType::F64);
  Sequential net{lin, std::make_shared<nn::Tanh>()};
  Tensor x = Tensor::from_vector<double>({0.3, -0.7}, {1, 2});
  std::vector<double> expected = lin->forward(x).to_vector<double>();
  for (double& v : expected) v = std::tanh(v);
  std::vector<double> got = net(x).to_vector<double>();
  ASSERT_EQ(got.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got[i], expected[i], 1e-14);
  EXPECT_THROW(net.add(nullptr), ValueError);
}

}  // namespace
}  // namespace dtrain::testing
