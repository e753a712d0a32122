// Golden test against PyTorch for the convolutional autoencoder (core/models/autoencoder.h):
// a ConvAutoencoder for 1x8x8 images (width 3, code 4) with the parameters and batch of
// tests/fixtures/golden_autoencoder.h5 must reproduce PyTorch's codes and logits, and, for
// both pixel losses of the autoencoder recipe (bce on the logits, mse of their sigmoid),
// the loss and every parameter gradient; then two Adam steps on the same batch
// (optim::Adam, lr 1e-3) must reproduce PyTorch's loss before each step, the parameters
// after them and the loss of the updated model. The fixture is written by
// scripts/make_golden_autoencoder.py (see there for its layout and the PyTorch model).
//
// Runs in float64 (tight tolerances) and float32 (the fixture's values rounded; float32
// tolerances) on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/models/autoencoder.h"
#include "core/optim/optimizer.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// Float64: only the summation order differs from PyTorch's (measured on the CPU: at most
// 3e-16 absolute for the parameters, 4e-18 for the gradients, which are 1e-6 to 2e-2): rtol
// 1e-9 and atol 1e-13 for everything, room for other summation orders (CUDA), as the other
// float64 golden tests. Float32 (the fixture's float64 parameters and inputs rounded to
// float32) against the float64 reference (measured on the CPU: logits 2e-8, gradients
// 1.4e-9, losses 8e-9, final parameters 8e-8 absolute): float32 rounding level as the
// float32 golden tests, with atol 1e-7 for the gradients (their scale is small); Adam's
// first steps move each parameter by about lr = 1e-3 whatever the gradient's size, so the
// final parameters are compared to 1e-6.
GoldenTolerances tolerances(DType dtype) {
  if (dtype == DType::F64) return {{1e-9, 1e-13}, {1e-9, 1e-13}, {1e-9, 1e-13}, {1e-9, 1e-13}};
  return {{1e-5, 1e-6}, {1e-4, 1e-7}, {1e-5, 1e-6}, {1e-5, 1e-6}};
}

class GoldenAutoencoder : public ::testing::TestWithParam<std::tuple<DeviceKind, DType, std::string>> {
 protected:
  void SetUp() override {
    if (std::get<0>(GetParam()) == DeviceKind::CUDA) {
      std::string why;
      if (!cuda::available(&why)) GTEST_SKIP() << "no usable CUDA device: " << why;
      device_ = Device::cuda(0);
    }
  }
  Device device_ = Device::cpu();
};

Tensor pixel_loss(const std::string& kind, const Tensor& logits, const Tensor& clean) {
  return kind == "mse" ? fn::mse_loss(fn::sigmoid(logits), clean) : fn::bce_with_logits(logits, clean);
}

double as_double(const Tensor& scalar) { return scalar.to(Device::cpu()).to(DType::F64).item<double>(); }

TEST_P(GoldenAutoencoder, TwoAdamStepsMatchPyTorch) {
  const DType dtype = std::get<1>(GetParam());
  const std::string v = "/" + std::get<2>(GetParam());
  const GoldenTolerances tol = tolerances(dtype);
  const std::string fixture = fixture_path("golden_autoencoder.h5");
  const std::string script = "scripts/make_golden_autoencoder.py";
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << fixture << " has no format_version attribute; regenerate it with " << script;
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kGoldenFormatVersion)
      << fixture << " has another format version than this test reads; regenerate it with " << script;
  const std::string kind = f.get_attribute<std::string>(v, "loss");

  models::AutoencoderConfig config;
  config.channels = f.get_attribute<int64_t>("/", "channels");
  config.height = f.get_attribute<int64_t>("/", "height");
  config.width = f.get_attribute<int64_t>("/", "width");
  config.width_mult = f.get_attribute<int64_t>("/", "width_mult");
  config.code = f.get_attribute<int64_t>("/", "code");
  config.dtype = dtype;
  Generator gen(0);  // values are replaced by the fixture's
  models::ConvAutoencoder model(config, gen);

  nn::NamedTensors params = model.named_parameters();
  ASSERT_NO_FATAL_FAILURE(load_golden_params(f, "", params, DType::F64));
  model.to(device_);
  const Tensor x = f.read_as("/input", DType::F64).to(dtype).to(device_);

  // The code, and one forward and backward.
  {
    autograd::NoGrad no_grad;
    Tensor codes = model.encode(x);
    ASSERT_EQ(codes.dtype(), dtype);
    EXPECT_TRUE(tensors_close("codes", codes, f.read_as("/codes", DType::F64), tol.forward));
  }
  optim::Adam opt(model.named_parameters(), {.lr = f.get_attribute<double>("/", "lr"),
                                             .beta1 = f.get_attribute<double>("/", "beta1"),
                                             .beta2 = f.get_attribute<double>("/", "beta2"),
                                             .eps = f.get_attribute<double>("/", "eps")});
  const Tensor want_steps = f.read_as(v + "/step_losses", DType::F64);
  std::vector<double> step_losses;
  for (int64_t step = 0; step < want_steps.numel(); ++step) {
    autograd::Tape tape;
    Tensor logits, loss;
    {
      autograd::GradRecorder rec(tape);
      logits = model.forward(x);
      loss = pixel_loss(kind, logits, x);
    }
    ASSERT_EQ(logits.dtype(), dtype);
    opt.zero_grad();
    tape.backward(loss);
    step_losses.push_back(as_double(loss));
    if (step == 0) {
      EXPECT_TRUE(tensors_close("logits", logits, f.read_as("/logits", DType::F64), tol.forward));
      EXPECT_TRUE(tensors_close("loss", loss, f.read_as(v + "/loss", DType::F64), tol.loss));
      for (const auto& [name, p] : model.named_parameters()) {
        EXPECT_TRUE(tensors_close("grad of " + name, p.grad(), f.read_as(v + "/grads/" + name, DType::F64), tol.grad));
      }
    }
    opt.step();
  }
  EXPECT_TRUE(tensors_close("step losses", Tensor::from_vector<double>(step_losses, want_steps.shape()), want_steps,
                            tol.loss));
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(tensors_close("final " + name, p, f.read_as(v + "/final_params/" + name, DType::F64),
                              tol.final_param));
  }
  Tensor loss_after;
  {
    autograd::NoGrad no_grad;
    loss_after = pixel_loss(kind, model.forward(x), x);
  }
  EXPECT_TRUE(tensors_close("loss after Adam", loss_after, f.read_as(v + "/loss_after", DType::F64), tol.loss));
}

INSTANTIATE_TEST_SUITE_P(Variants, GoldenAutoencoder,
                         ::testing::Combine(::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                                            ::testing::Values(DType::F64, DType::F32),
                                            ::testing::Values(std::string("bce"), std::string("mse"))),
                         [](const ::testing::TestParamInfo<GoldenAutoencoder::ParamType>& info) {
                           return std::string(std::get<0>(info.param) == DeviceKind::CPU ? "cpu" : "cuda") + "_" +
                                  (std::get<1>(info.param) == DType::F64 ? "f64" : "f32") + "_" +
                                  std::get<2>(info.param);
                         });

}  // namespace
}  // namespace dtrain::testing
