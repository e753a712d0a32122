// The convolution stack's modules (core/nn/conv.h): names, shapes and initialization as
// torch.nn's, batch norm's running statistics, dropout's modes, and the messages for bad
// input shapes. The functions' gradients are checked in tests/core/test_gradcheck.cpp
// (cases in tests/support/op_cases.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/nn/conv.h"
#include "core/nn/layers.h"

namespace dtrain::nn {
namespace {

std::vector<std::string> names_of(const NamedTensors& ts) {
  std::vector<std::string> out;
  for (const auto& [name, t] : ts) out.push_back(name);
  return out;
}

// The message of the exception `f` throws, or "" when it does not throw.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ValueError& e) {
    return e.what();
  }
  return "";
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector<float>()) m = std::max(m, static_cast<double>(std::fabs(v)));
  return m;
}

TEST(Conv2d, NamesShapesAndInitBounds) {
  Generator gen(1);
  Conv2d conv(16, 32, 3, gen, 1, 1);
  auto params = conv.named_parameters();
  ASSERT_EQ(names_of(params), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(conv.weight().shape(), (Shape{32, 16, 3, 3}));
  EXPECT_EQ(conv.bias().shape(), (Shape{32}));
  // kaiming_uniform(a = sqrt(5)): bound 1 / sqrt(fan_in), fan_in = 16 * 3 * 3 = 144.
  double bound = 1.0 / 12.0;
  EXPECT_LE(max_abs(conv.weight()), bound);
  EXPECT_GT(max_abs(conv.weight()), 0.9 * bound);  // 4608 draws fill the range
  EXPECT_LE(max_abs(conv.bias()), bound);
  EXPECT_TRUE(conv.weight().requires_grad());

  Conv2d no_bias(3, 4, {1, 2}, gen, 1, 0, false);
  EXPECT_EQ(names_of(no_bias.named_parameters()), (std::vector<std::string>{"weight"}));
  EXPECT_EQ(no_bias.weight().shape(), (Shape{4, 3, 1, 2}));
  EXPECT_FALSE(no_bias.bias().defined());
}

TEST(Conv2d, OutputShapes) {
  Generator gen(2);
  Tensor x = Tensor::zeros({2, 3, 9, 8});
  EXPECT_EQ(Conv2d(3, 5, 3, gen, 1, 1)(x).shape(), (Shape{2, 5, 9, 8}));
  EXPECT_EQ(Conv2d(3, 5, 3, gen, 2, 0)(x).shape(), (Shape{2, 5, 4, 3}));
  EXPECT_EQ(Conv2d(3, 5, {3, 1}, gen, {1, 2}, {0, 0})(x).shape(), (Shape{2, 5, 7, 4}));
}

TEST(Conv2d, BiasIsAddedPerChannel) {
  Generator gen(3);
  Conv2d conv(1, 2, 1, gen);
  conv.weight().copy_(Tensor::from_vector<float>({2.0f, -1.0f}, {2, 1, 1, 1}));
  conv.bias().copy_(Tensor::from_vector<float>({0.5f, 1.0f}, {2}));
  Tensor y = conv(Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{2.5f, 4.5f, 6.5f, 8.5f, 0.0f, -1.0f, -2.0f, -3.0f}));
}

TEST(Conv2d, BadShapesNameBothTensors) {
  Generator gen(4);
  Conv2d conv(3, 8, 3, gen, 1, 1);
  std::string e = error_of([&] { conv(Tensor::zeros({1, 4, 8, 8})); });
  EXPECT_NE(e.find("(1, 4, 8, 8)"), std::string::npos) << e;
  EXPECT_NE(e.find("(8, 3, 3, 3)"), std::string::npos) << e;
  EXPECT_NE(e.find("channels"), std::string::npos) << e;

  e = error_of([&] { conv(Tensor::zeros({3, 8, 8})); });
  EXPECT_NE(e.find("expected x of shape (N, C, H, W)"), std::string::npos) << e;

  Conv2d big(3, 2, 5, gen);
  e = error_of([&] { big(Tensor::zeros({1, 3, 4, 4})); });
  EXPECT_NE(e.find("smaller than the kernel"), std::string::npos) << e;

  e = error_of([&] {
    fn::conv2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({2, 3, 3, 3}), Tensor::zeros({3}), 1, 1);
  });
  EXPECT_NE(e.find("bias f32(3,)"), std::string::npos) << e;
  EXPECT_NE(e.find("must have shape (2,) for weight f32(2, 3, 3, 3)"), std::string::npos) << e;

  e = error_of([&] { fn::conv2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({2, 3, 3, 3}, DType::F64), Tensor()); });
  EXPECT_NE(e.find("dtype"), std::string::npos) << e;
  EXPECT_THROW(Conv2d(3, 2, 3, gen, 0), ValueError);
}

TEST(ConvTranspose2d, NamesShapesInitAndOutputSize) {
  Generator gen(5);
  ConvTranspose2d up(8, 4, 3, gen, 2, 1, 1);
  EXPECT_EQ(names_of(up.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(up.weight().shape(), (Shape{8, 4, 3, 3}));  // (C_in, C_out, KH, KW) as torch
  EXPECT_EQ(up.bias().shape(), (Shape{4}));
  // torch's fan_in of the transposed weight is weight.size(1) * KH * KW = 36.
  EXPECT_LE(max_abs(up.weight()), 1.0 / 6.0);
  EXPECT_GT(max_abs(up.weight()), 0.9 / 6.0);

  // H_out = (H - 1) * stride - 2 * padding + KH + output_padding.
  for (int64_t h : {1, 4, 7}) {
    for (int64_t w : {2, 5}) {
      Tensor y = up(Tensor::zeros({2, 8, h, w}));
      Size2 want = up.output_size(h, w);
      EXPECT_EQ(want.h, (h - 1) * 2 - 2 + 3 + 1);
      EXPECT_EQ(want.w, (w - 1) * 2 - 2 + 3 + 1);
      EXPECT_EQ(y.shape(), (Shape{2, 4, want.h, want.w}));
    }
  }
  ConvTranspose2d plain(2, 3, {2, 3}, gen);
  EXPECT_EQ(plain(Tensor::zeros({1, 2, 4, 4})).shape(), (Shape{1, 3, 5, 6}));
}

TEST(ConvTranspose2d, IsTheAdjointOfConv2d) {
  // <conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for the same weight and geometry.
  Generator gen(6);
  Tensor x = Tensor::empty({2, 3, 7, 6}, DType::F64), w = Tensor::empty({4, 3, 3, 3}, DType::F64);
  gen.normal_(x);
  gen.normal_(w);
  Tensor cx = fn::conv2d(x, w, Tensor(), 2, 1);
  Tensor y = Tensor::empty(cx.shape(), DType::F64);
  gen.normal_(y);
  // 7 = (4 - 1) * 2 - 2 + 3 + 0, 6 = (3 - 1) * 2 - 2 + 3 + 1.
  Tensor ty = fn::conv_transpose2d(y, w, Tensor(), 2, 1, {0, 1});
  ASSERT_EQ(ty.shape(), x.shape());
  double lhs = fn::sum(fn::mul(cx, y)).item<double>();
  double rhs = fn::sum(fn::mul(x, ty)).item<double>();
  EXPECT_NEAR(lhs, rhs, 1e-9 * std::max(1.0, std::fabs(lhs)));
}

TEST(ConvTranspose2d, BadArguments) {
  Generator gen(7);
  EXPECT_THROW(ConvTranspose2d(2, 2, 3, gen, 2, 1, 2), ValueError);  // output_padding >= stride
  ConvTranspose2d up(4, 2, 2, gen, 2);
  std::string e = error_of([&] { up(Tensor::zeros({1, 3, 4, 4})); });
  EXPECT_NE(e.find("(1, 3, 4, 4)"), std::string::npos) << e;
  EXPECT_NE(e.find("(4, 2, 2, 2)"), std::string::npos) << e;
}

TEST(Pooling, ShapesDefaultsAndValues) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 1, 4, 4});
  MaxPool2d mp(2);  // stride defaults to the kernel
  EXPECT_EQ(mp(x).to_vector<float>(), (std::vector<float>{6, 8, 14, 16}));
  AvgPool2d ap(2);
  EXPECT_EQ(ap(x).to_vector<float>(), (std::vector<float>{3.5f, 5.5f, 11.5f, 13.5f}));
  AdaptiveAvgPool2d gp(1);
  EXPECT_EQ(gp(x).to_vector<float>(), (std::vector<float>{8.5f}));
  EXPECT_EQ(AdaptiveAvgPool2d({3, 2})(Tensor::zeros({2, 3, 7, 5})).shape(), (Shape{2, 3, 3, 2}));
  EXPECT_EQ(MaxPool2d(3, 2, 1)(Tensor::zeros({1, 2, 7, 7})).shape(), (Shape{1, 2, 4, 4}));
  EXPECT_TRUE(mp.named_parameters().empty());

  std::string e = error_of([&] { MaxPool2d(2)(Tensor::zeros({4, 4})); });
  EXPECT_NE(e.find("(4, 4)"), std::string::npos) << e;
  e = error_of([&] { MaxPool2d(3, 1, 2)(x); });
  EXPECT_NE(e.find("at most half the kernel"), std::string::npos) << e;
  e = error_of([&] { MaxPool2d(5)(x); });
  EXPECT_NE(e.find("smaller than the kernel"), std::string::npos) << e;
}

TEST(BatchNorm2d, NamesAndInitialValues) {
  BatchNorm2d bn(3);
  EXPECT_EQ(names_of(bn.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(names_of(bn.named_buffers()),
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(bn.weight().to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(bn.bias().to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(bn.running_mean().to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(bn.running_var().to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(bn.num_batches_tracked().dtype(), DType::I64);
  EXPECT_EQ(bn.num_batches_tracked().ndim(), 0);
  EXPECT_EQ(bn.num_batches_tracked().item<int64_t>(), 0);
}

TEST(BatchNorm2d, TrainingUpdatesRunningStatsAndEvalDoesNot) {
  BatchNorm2d bn(2);
  // Channel 0 holds 1..8, channel 1 holds 10 everywhere; N = 2, HW = 4.
  std::vector<float> v;
  for (int n = 0; n < 2; ++n) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<float>(n * 4 + i + 1));
    for (int i = 0; i < 4; ++i) v.push_back(10.0f);
  }
  Tensor x = Tensor::from_vector(v, {2, 2, 2, 2});
  Tensor y = bn(x);
  // Normalized with the batch statistics: channel 0 has mean 4.5, biased var 5.25.
  std::vector<float> yv = y.to_vector<float>();
  EXPECT_NEAR(yv[0], (1 - 4.5) / std::sqrt(5.25 + 1e-5), 1e-5);
  EXPECT_NEAR(yv[4], 0.0, 1e-5);
  // running = 0.9 running + 0.1 batch, with the unbiased variance 5.25 * 8 / 7 = 6.
  std::vector<float> rm = bn.running_mean().to_vector<float>(), rv = bn.running_var().to_vector<float>();
  EXPECT_NEAR(rm[0], 0.45, 1e-6);
  EXPECT_NEAR(rm[1], 1.0, 1e-6);
  EXPECT_NEAR(rv[0], 0.9 + 0.6, 1e-6);
  EXPECT_NEAR(rv[1], 0.9, 1e-6);
  EXPECT_EQ(bn.num_batches_tracked().item<int64_t>(), 1);
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked().item<int64_t>(), 2);
  EXPECT_NEAR(bn.running_mean().to_vector<float>()[0], 0.9 * 0.45 + 0.45, 1e-6);

  bn.eval();
  std::vector<float> rm_before = bn.running_mean().to_vector<float>();
  std::vector<float> rv_before = bn.running_var().to_vector<float>();
  Tensor ye = bn(x);
  EXPECT_EQ(bn.running_mean().to_vector<float>(), rm_before);
  EXPECT_EQ(bn.running_var().to_vector<float>(), rv_before);
  EXPECT_EQ(bn.num_batches_tracked().item<int64_t>(), 2);
  // Eval normalizes with the running statistics.
  EXPECT_NEAR(ye.to_vector<float>()[0], (1 - rm_before[0]) / std::sqrt(rv_before[0] + 1e-5), 1e-5);
}

TEST(BatchNorm2d, EvalBackwardUsesRunningStatistics) {
  BatchNorm2d bn(1);
  bn.running_mean().copy_(Tensor::from_vector<float>({1.0f}, {1}));
  bn.running_var().copy_(Tensor::from_vector<float>({4.0f - 1e-5f}, {1}));  // invstd = 0.5
  bn.weight().copy_(Tensor::from_vector<float>({3.0f}, {1}));
  bn.eval();
  Tensor x = Tensor::from_vector<float>({1, 3, 5, 7}, {1, 1, 2, 2}).set_requires_grad(true);
  autograd::Tape tape;
  Tensor loss;
  {
    autograd::GradRecorder rec(tape);
    loss = fn::sum(bn(x));
  }
  tape.backward(loss);
  for (float g : x.grad().to_vector<float>()) EXPECT_NEAR(g, 1.5f, 1e-5);           // gamma * invstd
  EXPECT_NEAR(bn.weight().grad().item<float>(), (0 + 1 + 2 + 3) * 1.0f, 1e-4);     // sum xhat
  EXPECT_NEAR(bn.bias().grad().item<float>(), 4.0f, 1e-6);                          // sum 1
}

TEST(BatchNorm2d, BadShapes) {
  BatchNorm2d bn(3);
  std::string e = error_of([&] { bn(Tensor::zeros({2, 4, 2, 2})); });
  EXPECT_NE(e.find("(2, 4, 2, 2)"), std::string::npos) << e;
  EXPECT_NE(e.find("expected 3"), std::string::npos) << e;
  e = error_of([&] { bn(Tensor::zeros({1, 3, 1, 1})); });
  EXPECT_NE(e.find("more than one value per channel"), std::string::npos) << e;
  e = error_of([&] { bn(Tensor::zeros({2, 3})); });
  EXPECT_NE(e.find("(N, C, H, W)"), std::string::npos) << e;
  e = error_of([&] {
    fn::batch_norm2d(Tensor::zeros({2, 3, 2, 2}), Tensor::ones({2}), Tensor::zeros({3}), Tensor(), Tensor(), true);
  });
  EXPECT_NE(e.find("weight (gamma) f32(2,)"), std::string::npos) << e;
  EXPECT_NE(e.find("must have shape (3,) for input f32(2, 3, 2, 2)"), std::string::npos) << e;
}

TEST(Dropout, EvalIsIdentityAndTrainingDropsAndScales) {
  Dropout drop(0.25, Generator::derive(1, 0, "dropout"));
  Tensor x = Tensor::ones({64, 64});
  Generator::State before = drop.generator().state();
  drop.eval();
  Tensor ye = drop(x);
  EXPECT_EQ(ye.id(), x.id());  // the very same tensor
  EXPECT_EQ(drop.generator().state(), before);

  drop.train();
  std::vector<float> y = drop(x).to_vector<float>();
  int64_t kept = 0;
  for (float v : y) {
    ASSERT_TRUE(v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6) << v;
    kept += v != 0.0f;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 4096.0, 0.75, 0.03);
  // The generator advanced by the blocks the mask consumed, so the next mask differs.
  EXPECT_EQ(drop.generator().state().offset, before.offset + 4096 / 4);
  EXPECT_NE(drop(x).to_vector<float>(), y);
  // Same state, same mask.
  drop.generator().set_state(before);
  EXPECT_EQ(drop(x).to_vector<float>(), y);

  EXPECT_EQ(Dropout(0.0)(x).id(), x.id());
  EXPECT_THROW(Dropout(1.5), ValueError);
}

TEST(Flatten, KeepsTheBatchDimension) {
  EXPECT_EQ(Flatten()(Tensor::zeros({3, 4, 5, 2})).shape(), (Shape{3, 40}));
  EXPECT_EQ(Flatten()(Tensor::zeros({3, 4})).shape(), (Shape{3, 4}));
  EXPECT_EQ(Flatten()(Tensor::zeros({0, 4, 2})).shape(), (Shape{0, 8}));
}

TEST(ConvStack, SummaryDescribesLayers) {
  Generator gen(8);
  Sequential net{std::make_shared<Conv2d>(3, 4, 3, gen, 1, 1), std::make_shared<BatchNorm2d>(4),
                 std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2), std::make_shared<Dropout>(0.5),
                 std::make_shared<Flatten>()};
  std::string s = net.summary();
  EXPECT_NE(s.find("Conv2d(3, 4, kernel_size=3, stride=1, padding=1, bias)"), std::string::npos) << s;
  EXPECT_NE(s.find("BatchNorm2d(4"), std::string::npos) << s;
  EXPECT_NE(s.find("total parameters: 120"), std::string::npos) << s;  // 108 + 4 + 4 + 4
  EXPECT_EQ(net(Tensor::ones({2, 3, 8, 8})).shape(), (Shape{2, 64}));
}

}  // namespace
}  // namespace dtrain::nn
