// Golden test against PyTorch for the captioning model (core/models/captioner.h): a float64
// Captioner (1x8x8 images, 2 conv stages from 2 channels -> a 2x2 map of 4 channels, emb 3,
// hidden 5, vocabulary 7) with the parameters and batch of tests/fixtures/golden_captioning.h5
// (three captions of different lengths, PAD-padded targets) must reproduce PyTorch's
// teacher-forced logits, attention weights, masked cross-entropy loss and every parameter
// gradient; then one Adam step must reproduce PyTorch's parameters and the loss after it.
// The fixture is written by scripts/make_golden_captioning.py with the model of the
// recipe's PyTorch reference (benchmarks/captioning_torch.py).
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/io/h5.h"
#include "core/models/captioner.h"
#include "core/optim/optimizer.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// Float64 throughout: only the summation order differs from PyTorch's.
constexpr Tolerance kTol{1e-9, 1e-12};

class GoldenCaptioning : public ::testing::TestWithParam<DeviceKind> {
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

TEST_P(GoldenCaptioning, OneStepMatchesPyTorch) {
  const std::string fixture = fixture_path("golden_captioning.h5");
  const std::string script = "scripts/make_golden_captioning.py";
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << fixture << " has no format_version attribute; regenerate it with " << script;
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kGoldenFormatVersion)
      << fixture << " has another format version than this test reads; regenerate it with " << script;

  models::CaptionerConfig config;
  config.channels = f.get_attribute<int64_t>("/", "channels");
  config.height = f.get_attribute<int64_t>("/", "height");
  config.width = f.get_attribute<int64_t>("/", "width");
  config.vocab = f.get_attribute<int64_t>("/", "vocab");
  config.conv_width = f.get_attribute<int64_t>("/", "conv_width");
  config.stages = f.get_attribute<int64_t>("/", "stages");
  config.emb_dim = f.get_attribute<int64_t>("/", "emb_dim");
  config.hidden = f.get_attribute<int64_t>("/", "hidden");
  config.pad_id = f.get_attribute<int64_t>("/", "pad_id");
  config.dtype = DType::F64;
  Generator gen(0);  // values are replaced by the fixture's
  models::Captioner model(config, gen);

  nn::NamedTensors params = model.named_parameters();
  ASSERT_NO_FATAL_FAILURE(load_golden_params(f, "", params, DType::F64));
  model.to(device_);
  const Tensor images = f.read_as("/images", DType::F64).to(device_);
  const Tensor tgt_in = f.read_as("/tgt_in", DType::I64).to(device_);
  const Tensor tgt_out = f.read_as("/tgt_out", DType::I64).to(device_);

  autograd::Tape tape;
  Tensor logits, alpha, loss;
  {
    autograd::GradRecorder rec(tape);
    logits = model.forward_teacher(images, tgt_in, &alpha);
    loss = model.loss(logits, tgt_out);
  }
  ASSERT_EQ(logits.dtype(), DType::F64);
  EXPECT_TRUE(tensors_close("logits", logits, f.read_as("/logits", DType::F64), kTol));
  EXPECT_TRUE(tensors_close("attention", alpha, f.read_as("/alpha", DType::F64), kTol));
  EXPECT_TRUE(tensors_close("loss", loss, f.read_as("/loss", DType::F64), kTol));
  optim::Adam opt(model.named_parameters(), {.lr = f.get_attribute<double>("/", "lr"),
                                             .beta1 = f.get_attribute<double>("/", "beta1"),
                                             .beta2 = f.get_attribute<double>("/", "beta2"),
                                             .eps = f.get_attribute<double>("/", "eps")});
  opt.zero_grad();
  tape.backward(loss);
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(tensors_close("grad of " + name, p.grad(), f.read_as("/grads/" + name, DType::F64), kTol));
  }
  opt.step();
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(tensors_close("final " + name, p, f.read_as("/final_params/" + name, DType::F64), kTol));
  }
  Tensor loss_after;
  {
    autograd::NoGrad no_grad;
    loss_after = model.loss(model.forward_teacher(images, tgt_in), tgt_out);
  }
  EXPECT_TRUE(tensors_close("loss after Adam", loss_after, f.read_as("/loss_after", DType::F64), kTol));
}

INSTANTIATE_TEST_SUITE_P(Devices, GoldenCaptioning, ::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                         [](const ::testing::TestParamInfo<DeviceKind>& info) {
                           return std::string(info.param == DeviceKind::CPU ? "cpu" : "cuda");
                         });

}  // namespace
}  // namespace dtrain::testing
