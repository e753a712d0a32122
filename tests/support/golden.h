#pragma once
// Golden tests against PyTorch for classifiers: a fixture made by a script with PyTorch
// (scripts/make_golden_*.py) holds the initial parameters by state_dict name, an input
// batch and labels, the logits, the cross-entropy loss and every parameter gradient, then
// the losses of five SGD steps on the same batch and the final parameters.
// check_golden_classifier() loads the fixture into `model` and compares all of it.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/nn/module.h"
#include "core/optim/optimizer.h"
#include "core/runtime.h"

namespace dtrain {
// gtest prints a DType parameter by its name ("f32") instead of its bytes.
inline void PrintTo(DType t, std::ostream* os) { *os << dtype_name(t); }
}  // namespace dtrain
#include "tests/support/compare.h"

namespace dtrain::testing {

// Tests parameterized over the device; CUDA instances skip with the reason where no
// device is usable, never pass.
class DeviceParamTest : public ::testing::TestWithParam<DeviceKind> {
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

inline std::string device_param_name(const ::testing::TestParamInfo<DeviceKind>& info) {
  return info.param == DeviceKind::CPU ? "cpu" : "cuda";
}

struct GoldenTolerances {
  Tolerance forward, grad, loss, final_param;
};

// The fixture's format version this code reads.
inline constexpr int64_t kGoldenFormatVersion = 1;

// Copies the fixture's parameters (<prefix>/params/<name>, stored as `stored`, converted
// to each parameter's dtype) into `params`: the names must be exactly the model's, in both directions, and
// each shape must match. Call it inside ASSERT_NO_FATAL_FAILURE.
inline void load_golden_params(const io::H5File& f, const std::string& prefix, const nn::NamedTensors& params,
                               DType stored) {
  std::vector<std::string> names;
  for (const auto& [name, p] : params) names.push_back(name);
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names, f.list(prefix + "/params")) << "parameter names differ from PyTorch's state_dict names";
  for (const auto& [name, p] : params) {
    Tensor value = f.read_as(prefix + "/params/" + name, stored).to(p.dtype());
    ASSERT_EQ(value.shape(), p.shape()) << name;
    Tensor(p).copy_(value);
  }
}

inline void check_golden_classifier(const std::string& fixture, const std::string& script, nn::Module& model,
                                    Device device, const GoldenTolerances& tol, optim::SGD::Options sgd,
                                    int steps = 5) {
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << fixture << " has no format_version attribute; regenerate it with " << script;
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kGoldenFormatVersion)
      << fixture << " has another format version than this test reads; regenerate it with " << script
      << " (or update the test to the new layout)";

  // The fixture's state_dict names must be exactly ours, in both directions.
  nn::NamedTensors params = model.named_parameters();
  ASSERT_NO_FATAL_FAILURE(load_golden_params(f, "", params, DType::F32));
  model.to(device);

  Tensor x = f.read_as("/input", DType::F32).to(device);
  Tensor labels = f.read_as("/labels", DType::I64).to(device);
  auto forward_loss = [&](Tensor* logits_out) {
    autograd::Tape tape;
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      Tensor logits = model.forward(x);
      loss = fn::softmax_cross_entropy(logits, labels);
      if (logits_out != nullptr) *logits_out = logits;
    }
    tape.backward(loss);
    return loss;
  };

  // One forward and backward.
  Tensor logits;
  Tensor loss = forward_loss(&logits);
  EXPECT_TRUE(tensors_close("logits", logits, f.read_as("/logits", DType::F32), tol.forward));
  EXPECT_TRUE(tensors_close("loss", loss, f.read_as("/loss", DType::F32), tol.loss));
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(tensors_close("grad of " + name, p.grad(), f.read_as("/grads/" + name, DType::F32), tol.grad));
  }

  // SGD steps on the same batch.
  optim::SGD opt(model.named_parameters(), sgd);
  std::vector<double> step_losses;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    step_losses.push_back(static_cast<double>(forward_loss(nullptr).item<float>()));
    opt.step();
  }
  Tensor got = Tensor::from_vector<double>(step_losses, {static_cast<int64_t>(steps)});
  EXPECT_TRUE(tensors_close("step_losses", got, f.read_as("/step_losses", DType::F64), tol.loss));
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(tensors_close("final " + name, p, f.read_as("/final_params/" + name, DType::F32), tol.final_param));
  }
}

}  // namespace dtrain::testing
