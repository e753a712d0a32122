// Golden test against PyTorch for the recurrent text classifier
// (core/models/text_classifier.h): a TextClassifier (vocabulary 10, emb 4, a 2-layer LSTM
// of hidden 3, 3 classes), unidirectional and bidirectional, with the parameters and batch
// of tests/fixtures/golden_text_classifier.h5 (four samples of lengths 5, 2, 4, 1, padded
// with the padding id 0) must reproduce PyTorch's logits, cross-entropy loss and every
// parameter gradient (nn.LSTM on packed sequences; the padding row of the embedding gets
// none); then two Adam steps on the same batch (optim::Adam, lr 2e-3) must reproduce
// PyTorch's loss before each step, the parameters after them and the loss of the updated
// model. The fixture is written by scripts/make_golden_text_classifier.py (see there for its
// layout and the PyTorch model).
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
#include "core/models/text_classifier.h"
#include "core/optim/optimizer.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// Float64: only the summation order differs from PyTorch's (measured on the CPU: at most
// 2e-16 absolute for logits, losses and parameters, 3e-17 for the gradients, which are 1e-5
// to 0.24): rtol 1e-9 and atol 1e-13 for everything, room for other summation orders (CUDA),
// as the other float64 golden tests. Float32 (the fixture's float64 parameters and inputs
// rounded to float32) against the float64 reference (measured on the CPU: logits 3e-8,
// gradients 1.3e-8, losses 6e-8, final parameters 2e-7 absolute): float32 rounding level as
// the float32 golden tests, with atol 1e-7 for the gradients (their scale is small); Adam's
// first steps move each parameter by about lr = 2e-3 whatever the gradient's size, so the
// final parameters are compared to 1e-6.
GoldenTolerances tolerances(DType dtype) {
  if (dtype == DType::F64) return {{1e-9, 1e-13}, {1e-9, 1e-13}, {1e-9, 1e-13}, {1e-9, 1e-13}};
  return {{1e-5, 1e-6}, {1e-4, 1e-7}, {1e-5, 1e-6}, {1e-5, 1e-6}};
}

class GoldenTextClassifier : public ::testing::TestWithParam<std::tuple<DeviceKind, DType, std::string>> {
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

double as_double(const Tensor& scalar) { return scalar.to(Device::cpu()).to(DType::F64).item<double>(); }

TEST_P(GoldenTextClassifier, TwoAdamStepsMatchPyTorch) {
  const DType dtype = std::get<1>(GetParam());
  const std::string v = "/" + std::get<2>(GetParam());
  const GoldenTolerances tol = tolerances(dtype);
  const std::string fixture = fixture_path("golden_text_classifier.h5");
  const std::string script = "scripts/make_golden_text_classifier.py";
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << fixture << " has no format_version attribute; regenerate it with " << script;
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kGoldenFormatVersion)
      << fixture << " has another format version than this test reads; regenerate it with " << script;

  models::TextClassifierConfig config;
  config.vocab = f.get_attribute<int64_t>("/", "vocab");
  config.classes = f.get_attribute<int64_t>("/", "classes");
  config.emb_dim = f.get_attribute<int64_t>("/", "emb_dim");
  config.hidden = f.get_attribute<int64_t>("/", "hidden");
  config.layers = f.get_attribute<int64_t>("/", "layers");
  config.bidirectional = f.get_attribute<int64_t>(v, "bidirectional") != 0;
  config.dtype = dtype;
  Generator gen(0);  // values are replaced by the fixture's
  models::TextClassifier model(config, gen);

  nn::NamedTensors params = model.named_parameters();
  ASSERT_NO_FATAL_FAILURE(load_golden_params(f, v, params, DType::F64));
  model.to(device_);
  const Tensor tokens = f.read_as("/tokens", DType::I64).to(device_);
  const Tensor lengths = f.read_as("/lengths", DType::I64).to(device_);
  const Tensor labels = f.read_as("/labels", DType::I64).to(device_);

  // One forward and backward, then two Adam steps.
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
      logits = model.forward(tokens, lengths);
      loss = fn::softmax_cross_entropy(logits, labels);
    }
    ASSERT_EQ(logits.dtype(), dtype);
    opt.zero_grad();
    tape.backward(loss);
    step_losses.push_back(as_double(loss));
    if (step == 0) {
      EXPECT_TRUE(tensors_close("logits", logits, f.read_as(v + "/logits", DType::F64), tol.forward));
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
    loss_after = fn::softmax_cross_entropy(model.forward(tokens, lengths), labels);
  }
  EXPECT_TRUE(tensors_close("loss after Adam", loss_after, f.read_as(v + "/loss_after", DType::F64), tol.loss));
}

INSTANTIATE_TEST_SUITE_P(Variants, GoldenTextClassifier,
                         ::testing::Combine(::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                                            ::testing::Values(DType::F64, DType::F32),
                                            ::testing::Values(std::string("unidirectional"),
                                                              std::string("bidirectional"))),
                         [](const ::testing::TestParamInfo<GoldenTextClassifier::ParamType>& info) {
                           return std::string(std::get<0>(info.param) == DeviceKind::CPU ? "cpu" : "cuda") + "_" +
                                  (std::get<1>(info.param) == DType::F64 ? "f64" : "f32") + "_" +
                                  std::get<2>(info.param);
                         });

}  // namespace
}  // namespace dtrain::testing
