// The tape: shared subexpressions, gradient accumulation, ready-hooks.
#include <gtest/gtest.h>

#include <thread>

#include "core/autograd.h"
#include "core/functional.h"

namespace dtrain {
namespace {

Tensor leaf(std::vector<double> v) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, SharedSubexpressionGradientsAdd) {
  // y = sum(h * h + h), h = x * w: h is used three times.
  Tensor x = leaf({1.0, 2.0, -3.0});
  Tensor w = leaf({0.5, -1.0, 2.0});
  autograd::Tape tape;
  Tensor y;
  {
    autograd::GradRecorder rec(tape);
    Tensor h = x * w;
    y = fn::sum(h * h + h);
  }
  tape.backward(y);
  // dy/dh = 2h + 1; dy/dx = (2h + 1) w; dy/dw = (2h + 1) x
  std::vector<double> xs = {1, 2, -3}, ws = {0.5, -1, 2};
  std::vector<double> gx = x.grad().to_vector<double>(), gw = w.grad().to_vector<double>();
  for (size_t i = 0; i < 3; ++i) {
    double h = xs[i] * ws[i];
    EXPECT_DOUBLE_EQ(gx[i], (2 * h + 1) * ws[i]);
    EXPECT_DOUBLE_EQ(gw[i], (2 * h + 1) * xs[i]);
  }
  EXPECT_EQ(tape.size(), 0u) << "backward clears the tape";
}

TEST(Autograd, SameLeafTwiceInOneOp) {
  Tensor x = leaf({3.0, -2.0});
  autograd::Tape tape;
  Tensor y;
  {
    autograd::GradRecorder rec(tape);
    y = fn::sum(x * x);
  }
  tape.backward(y);
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{6.0, -4.0}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardsUntilZeroed) {
  Tensor x = leaf({1.0, 2.0});
  autograd::Tape tape;
  for (int pass = 0; pass < 3; ++pass) {
    Tensor y;
    {
      autograd::GradRecorder rec(tape);
      y = fn::sum(fn::scale(x, 2.0));
    }
    tape.backward(y);
  }
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{6.0, 6.0}));
  x.zero_grad();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0.0, 0.0}));
}

TEST(Autograd, NothingIsRecordedWithoutARecorderOrOutsideNoGrad) {
  Tensor x = leaf({1.0});
  autograd::Tape tape;
  Tensor y = x * x;
  EXPECT_FALSE(y.requires_grad());
  {
    autograd::GradRecorder rec(tape);
    autograd::NoGrad ng;
    Tensor z = x * x;
    EXPECT_FALSE(z.requires_grad());
  }
  EXPECT_EQ(tape.size(), 0u);
  Tensor c = Tensor::from_vector<double>({1.0}, {1});
  {
    autograd::GradRecorder rec(tape);
    Tensor z = c * c;  // no input requires grad
    EXPECT_FALSE(z.requires_grad());
  }
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Autograd, BackwardOnNonScalarNeedsASeed) {
  Tensor x = leaf({1.0, 2.0});
  autograd::Tape tape;
  Tensor y;
  {
    autograd::GradRecorder rec(tape);
    y = fn::scale(x, 3.0);
  }
  EXPECT_THROW(tape.backward(y), ValueError);
  tape.backward(y, Tensor::from_vector<double>({1.0, 10.0}, {2}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3.0, 30.0}));
}

TEST(Autograd, BackwardFromATensorThatDoesNotRequireGradFails) {
  autograd::Tape tape;
  Tensor c = Tensor::scalar(1.0, DType::F64);
  EXPECT_THROW(tape.backward(c), ValueError);
}

// Note [Ready-hooks]: a hook fires once per backward, after the last use of its leaf has
// been replayed, with the gradient complete.
TEST(Autograd, ReadyHooksFireOnceAfterTheLastUse) {
  Tensor w1 = leaf({2.0});
  Tensor w2 = leaf({3.0});
  Tensor x = Tensor::from_vector<double>({1.0}, {1});
  std::vector<std::string> order;
  std::vector<double> grad_at_fire;
  w1.register_grad_ready_hook([&](const Tensor& p) {
    order.push_back("w1");
    grad_at_fire.push_back(p.grad().item<double>());
  });
  w2.register_grad_ready_hook([&](const Tensor& p) {
    order.push_back("w2");
    grad_at_fire.push_back(p.grad().item<double>());
  });
  autograd::Tape tape;
  Tensor y;
  {
    autograd::GradRecorder rec(tape);
    Tensor h = w1 * x;       // first use of w1 (earliest on the tape)
    Tensor k = h * w2;       // only use of w2
    y = fn::sum(k * w1);     // last use of w1 in forward order, replayed first
  }
  tape.backward(y);
  // y = w1^2 * w2 * x: dy/dw1 = 2 w1 w2 = 12, dy/dw2 = w1^2 = 4. w2's only use is
  // replayed before w1's first use, so w2 is ready first; w1 fires once, not twice.
  ASSERT_EQ(order, (std::vector<std::string>{"w2", "w1"}));
  EXPECT_DOUBLE_EQ(grad_at_fire[0], 4.0);
  EXPECT_DOUBLE_EQ(grad_at_fire[1], 12.0);
}

TEST(Autograd, ReadyHooksFireEvenWhenNoGradientFlows) {
  // step() blocks the gradient; the parameter is still "done" and its grad is zeros.
  Tensor w = leaf({0.5, -0.5});
  int fired = 0;
  w.register_grad_ready_hook([&](const Tensor&) { ++fired; });
  Tensor v = leaf({1.0, 1.0});
  autograd::Tape tape;
  Tensor y;
  {
    autograd::GradRecorder rec(tape);
    Tensor s = fn::step(w * v);  // not recorded: w's use is the mul
    y = fn::sum(s * v);
  }
  tape.backward(y);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{0.0, 0.0}));
}

TEST(Autograd, HooksFireInEveryBackwardPass) {
  Tensor w = leaf({1.0});
  int fired = 0;
  w.register_grad_ready_hook([&](const Tensor&) { ++fired; });
  autograd::Tape tape;
  for (int i = 0; i < 3; ++i) {
    Tensor y;
    {
      autograd::GradRecorder rec(tape);
      y = fn::sum(w * w);
    }
    tape.backward(y);
  }
  EXPECT_EQ(fired, 3);
}

TEST(Autograd, InteriorGradientsAreNotStoredOnTensors) {
  Tensor x = leaf({1.0, 2.0});
  autograd::Tape tape;
  Tensor h, y;
  {
    autograd::GradRecorder rec(tape);
    h = fn::scale(x, 2.0);
    y = fn::sum(h);
  }
  tape.backward(y);
  EXPECT_FALSE(h.grad().defined());
  EXPECT_FALSE(h.is_leaf());
  EXPECT_TRUE(x.is_leaf());
}

TEST(Autograd, ThreadsRecordOnTheirOwnTapes) {
  autograd::Tape main_tape;
  autograd::GradRecorder rec(main_tape);
  bool other_thread_saw_tape = true;
  std::thread t([&] { other_thread_saw_tape = autograd::active_tape() != nullptr; });
  t.join();
  EXPECT_FALSE(other_thread_saw_tape);
  EXPECT_EQ(autograd::active_tape(), &main_tape);
}

}  // namespace
}  // namespace dtrain
