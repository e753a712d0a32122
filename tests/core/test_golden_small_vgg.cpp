// Golden test against PyTorch for the convolution stack: a reduced-width small VGG
// (conv8-conv8-pool-conv16-conv16-pool-conv32-pool-fc32-fc10 on 3x32x32) with the
// parameters, input and labels of tests/fixtures/golden_small_vgg.h5 must reproduce
// PyTorch's logits, cross-entropy loss and every parameter gradient, then five SGD steps
// (momentum, weight decay) must reproduce PyTorch's step losses and final parameters.
// The fixture is written by scripts/make_golden_small_vgg.py (see there for its layout).
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/models/vgg.h"
#include "core/optim/optimizer.h"
#include "core/runtime.h"
#include "tests/support/compare.h"

#ifndef DTRAIN_FIXTURE_DIR
#error "DTRAIN_FIXTURE_DIR must be defined by the build (tests/CMakeLists.txt)"
#endif

namespace dtrain::testing {
namespace {

constexpr const char* kFixture = DTRAIN_FIXTURE_DIR "/golden_small_vgg.h5";
constexpr int64_t kFormatVersion = 1;
constexpr int kSteps = 5;

// Float rounding level. Convolutions sum up to 3*3*32 = 288 products per output and
// the first linear layer 512, in another order than PyTorch's (oneDNN), so the
// tolerances are a little looser than the MLP's: rtol 1e-4, atol 1e-5 for values and
// gradients; step losses and final parameters after five steps likewise.
constexpr Tolerance kForwardTol{1e-4, 1e-5};
constexpr Tolerance kGradTol{1e-4, 1e-5};
constexpr Tolerance kLossTol{1e-5, 1e-6};
constexpr Tolerance kFinalParamTol{1e-4, 1e-5};

class GoldenSmallVgg : public ::testing::TestWithParam<DeviceKind> {
 protected:
  void SetUp() override {
    if (GetParam() == DeviceKind::CUDA) {
      std::string why;
      if (!cuda::available(&why)) GTEST_SKIP() << "no usable CUDA device: " << why;
      device_ = Device::cuda(0);
    }
  }
  Device device_ = Device::cpu();
};

TEST_P(GoldenSmallVgg, MatchesPyTorch) {
  io::H5File f = io::H5File::open_read(kFixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << kFixture << " has no format_version attribute; regenerate it with scripts/make_golden_small_vgg.py";
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kFormatVersion)
      << kFixture << " has another format version than this test reads; regenerate it with "
      << "scripts/make_golden_small_vgg.py (or update the test to the new layout)";

  models::SmallVggConfig config;
  config.layers = {8, 8, 0, 16, 16, 0, 32, 0};
  config.hidden = 32;
  config.num_classes = 10;
  Generator gen(0);  // values are replaced by the fixture's
  auto model = models::make_small_vgg(config, gen);

  nn::NamedTensors params = model->named_parameters();
  std::vector<std::string> names;
  for (const auto& [name, p] : params) names.push_back(name);
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names, f.list("/params")) << "parameter names differ from PyTorch's state_dict names";
  for (auto& [name, p] : params) {
    Tensor v = f.read_as("/params/" + name, DType::F32);
    ASSERT_EQ(v.shape(), p.shape()) << name;
    p.copy_(v);
  }
  model->to(device_);

  Tensor x = f.read_as("/input", DType::F32).to(device_);        // (4, 3, 32, 32)
  Tensor labels = f.read_as("/labels", DType::I64).to(device_);  // (4)
  auto forward_loss = [&](Tensor* logits_out) {
    autograd::Tape tape;
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      Tensor logits = model->forward(x);  // (4, 10)
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
                 optim::SGD::Options{.lr = f.get_attribute<double>("/", "lr"),
                                     .momentum = f.get_attribute<double>("/", "momentum"),
                                     .dampening = 0.0,
                                     .weight_decay = f.get_attribute<double>("/", "weight_decay"),
                                     .nesterov = false});
  std::vector<double> step_losses;
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    step_losses.push_back(static_cast<double>(forward_loss(nullptr).to(Device::cpu()).item<float>()));
    opt.step();
  }
  Tensor got = Tensor::from_vector<double>(step_losses, {kSteps});
  EXPECT_TRUE(tensors_close("step_losses", got, f.read_as("/step_losses", DType::F64), kLossTol));
  for (const auto& [name, p] : model->named_parameters()) {
    EXPECT_TRUE(tensors_close("final " + name, p, f.read_as("/final_params/" + name, DType::F32), kFinalParamTol));
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, GoldenSmallVgg, ::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                         [](const ::testing::TestParamInfo<DeviceKind>& info) {
                           return info.param == DeviceKind::CPU ? std::string("cpu") : std::string("cuda");
                         });

}  // namespace
}  // namespace dtrain::testing
