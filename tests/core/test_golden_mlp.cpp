// Golden test against PyTorch: a small MLP (Linear-Tanh-Linear-ReLU-Linear) with the
// parameters, input and labels of tests/fixtures/golden_mlp.h5 must reproduce PyTorch's
// logits, cross-entropy loss and parameter gradients, then five SGD steps (momentum,
// weight decay) must reproduce PyTorch's step losses and final parameters. The fixture is
// written by scripts/make_golden_mlp.py (see there for its layout).
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/nn/layers.h"
#include "core/optim/optimizer.h"
#include "core/runtime.h"
#include "tests/support/compare.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

const std::string kFixture = fixture_path("golden_mlp.h5");
constexpr int64_t kFormatVersion = 1;
constexpr int kSteps = 5;

// Per-tensor tolerances: float32 rounding level, a little looser after five steps of
// accumulated rounding differences (summation order differs from PyTorch's).
constexpr Tolerance kForwardTol{1e-5, 1e-6};
constexpr Tolerance kGradTol{1e-5, 1e-6};
constexpr Tolerance kLossTol{1e-5, 0.0};
constexpr Tolerance kFinalParamTol{1e-5, 1e-6};

std::shared_ptr<nn::Sequential> make_mlp() {
  Generator gen(0);  // values are replaced by the fixture's
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(6, 16, gen), std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(16, 16, gen),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(16, 4, gen)});
}

class GoldenMlp : public ::testing::TestWithParam<DeviceKind> {
 protected:
  void SetUp() override {
    if (GetParam() == DeviceKind::CUDA) {
      std::string why;
      if (cuda::device_count(&why) == 0) GTEST_SKIP() << "no usable CUDA device: " << why;
      device_ = Device::cuda(0);
    }
  }
  Device device_ = Device::cpu();
};

TEST_P(GoldenMlp, MatchesPyTorch) {
  io::H5File f = io::H5File::open_read(kFixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << kFixture << " has no format_version attribute; regenerate it with scripts/make_golden_mlp.py";
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kFormatVersion)
      << kFixture << " has another format version than this test reads; regenerate it with "
      << "scripts/make_golden_mlp.py (or update the test to the new layout)";

  auto model = make_mlp();
  nn::NamedTensors params = model->named_parameters();
  std::vector<std::string> names;
  for (const auto& [name, p] : params) names.push_back(name);
  // The fixture's state_dict names must be exactly ours, in both directions.
  std::vector<std::string> fixture_names = f.list("/params");
  std::vector<std::string> sorted_names = names;
  std::sort(sorted_names.begin(), sorted_names.end());
  ASSERT_EQ(sorted_names, fixture_names) << "parameter names differ from PyTorch's state_dict names";
  for (auto& [name, p] : params) {
    Tensor v = f.read_as("/params/" + name, DType::F32);
    ASSERT_EQ(v.shape(), p.shape()) << name;
    p.copy_(v);
  }
  model->to(device_);

  Tensor x = f.read_as("/input", DType::F32).to(device_);          // (8, 6)
  Tensor labels = f.read_as("/labels", DType::I64).to(device_);    // (8)
  auto forward_loss = [&](Tensor* logits_out) {
    autograd::Tape tape;
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      Tensor logits = model->forward(x);  // (8, 4)
      loss = fn::softmax_cross_entropy(logits, labels);
      if (logits_out != nullptr) *logits_out = logits;
    }
    tape.backward(loss);
    return loss;
  };

  // ---- one forward and backward ----
  Tensor logits;
  Tensor loss = forward_loss(&logits);
  EXPECT_TRUE(tensors_close("logits", logits, f.read_as("/logits", DType::F32), kForwardTol));
  EXPECT_TRUE(tensors_close("loss", loss, f.read_as("/loss", DType::F32), kLossTol));
  for (const auto& [name, p] : model->named_parameters()) {
    EXPECT_TRUE(tensors_close("grad of " + name, p.grad(), f.read_as("/grads/" + name, DType::F32), kGradTol));
  }

  // ---- five SGD steps on the same batch ----
  optim::SGD opt(model->named_parameters(),
                 optim::SGD::Options{.lr = 0.1, .momentum = 0.9, .dampening = 0.0, .weight_decay = 1e-4,
                                     .nesterov = false});
  std::vector<double> step_losses;
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    step_losses.push_back(static_cast<double>(forward_loss(nullptr).item<float>()));
    opt.step();
  }
  Tensor got = Tensor::from_vector<double>(step_losses, {kSteps});
  EXPECT_TRUE(tensors_close("step_losses", got, f.read_as("/step_losses", DType::F64), kLossTol));
  for (const auto& [name, p] : model->named_parameters()) {
    EXPECT_TRUE(tensors_close("final " + name, p, f.read_as("/final_params/" + name, DType::F32), kFinalParamTol));
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, GoldenMlp, ::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                         [](const ::testing::TestParamInfo<DeviceKind>& info) {
                           return info.param == DeviceKind::CPU ? std::string("cpu") : std::string("cuda");
                         });

}  // namespace
}  // namespace dtrain::testing
