// Golden test against PyTorch for neural style transfer (core/models/style_transfer.h):
// with the small seeded feature extractor and images of tests/fixtures/golden_style.h5
// (scripts/make_golden_style.py, which documents the network and the losses), the
// content loss, each style loss, the Gram matrices, the total and its gradient with
// respect to the image must equal PyTorch's, and five Adam steps on the image must give
// PyTorch's losses and final image.
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include "core/models/style_transfer.h"
#include "core/optim/optimizer.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

std::shared_ptr<nn::Sequential> small_features(Generator& gen) {
  auto f = std::make_shared<nn::Sequential>();
  f->add(std::make_shared<nn::Conv2d>(3, 4, 3, gen, 1, 1));
  f->add(std::make_shared<nn::ReLU>());
  f->add(std::make_shared<nn::Conv2d>(4, 4, 3, gen, 1, 1));
  f->add(std::make_shared<nn::ReLU>());
  f->add(std::make_shared<nn::MaxPool2d>(2, 2));
  f->add(std::make_shared<nn::Conv2d>(4, 6, 3, gen, 1, 1));
  f->add(std::make_shared<nn::ReLU>());
  f->add(std::make_shared<nn::MaxPool2d>(2, 2));
  f->add(std::make_shared<nn::Conv2d>(6, 8, 3, gen, 1, 1));
  f->add(std::make_shared<nn::ReLU>());
  return f;
}

using GoldenStyle = DeviceParamTest;

TEST_P(GoldenStyle, LossesGradientAndAdamStepsMatchPyTorch) {
  const std::string fixture = fixture_path("golden_style.h5");
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), 1)
      << fixture << ": another format version; regenerate it with scripts/make_golden_style.py";
  Generator gen(0);  // values are replaced by the fixture's
  auto net = small_features(gen);
  for (const auto& [name, p] : net->named_parameters()) {
    ASSERT_TRUE(f.has("/params/" + name)) << name;
    p.copy_(f.read("/params/" + name));
  }
  net->to(device_);

  models::StyleTransferOptions o;
  o.content_layer = f.get_attribute<int64_t>("/", "content_layer");
  o.style_layers.clear();
  for (double l : f.get_attribute<std::vector<double>>("/", "style_layers")) o.style_layers.push_back(static_cast<int64_t>(l));
  o.style_weights = f.get_attribute<std::vector<double>>("/", "style_weights");
  o.content_weight = f.get_attribute<double>("/", "content_weight");
  o.mean = f.get_attribute<std::vector<double>>("/", "mean");
  o.std = f.get_attribute<std::vector<double>>("/", "std");
  models::StyleTransferLoss loss(*net, o, f.read("/content").to(device_), f.read("/style").to(device_));

  // Values are sums of a few hundred float products in another order than PyTorch's;
  // the style losses are differences of Gram matrices (cancellation), so rtol 1e-4.
  const Tolerance value{1e-4, 1e-7};
  Tensor x = f.read("/image").to(device_);
  x.set_requires_grad(true);
  autograd::Tape tape;
  models::StyleLosses l;
  {
    autograd::GradRecorder rec(tape);
    l = loss(x);
  }
  tape.backward(l.total);
  EXPECT_TRUE(tensors_close("content_loss", l.content.to(Device::cpu()), f.read("/content_loss"), value));
  std::vector<float> style;
  for (const Tensor& s : l.style) style.push_back(s.to(Device::cpu()).item<float>());
  EXPECT_TRUE(tensors_close("style_losses", Tensor::from_vector(style, {static_cast<int64_t>(style.size())}),
                            f.read("/style_losses"), {1e-4, 1e-12}));
  EXPECT_TRUE(tensors_close("total", l.total.to(Device::cpu()), f.read("/total"), value));
  EXPECT_TRUE(tensors_close("grad", x.grad().to(Device::cpu()), f.read("/grad"), {1e-4, 1e-6}));

  // Five Adam steps on the image.
  Tensor y = f.read("/image").to(device_);
  y.set_requires_grad(true);
  optim::Adam adam({{"image", y}}, {.lr = f.get_attribute<double>("/", "adam_lr")});
  std::vector<double> losses;
  for (int s = 0; s < 5; ++s) {
    adam.zero_grad();
    autograd::Tape t;
    Tensor total;
    {
      autograd::GradRecorder rec(t);
      total = loss(y).total;
    }
    t.backward(total);
    losses.push_back(total.to(Device::cpu()).to(DType::F64).item<double>());
    adam.step();
  }
  EXPECT_TRUE(tensors_close("adam_losses", Tensor::from_vector(losses, {5}), f.read("/adam_losses"), {1e-4, 1e-7}));
  EXPECT_TRUE(tensors_close("adam_image", y.to(Device::cpu()), f.read("/adam_image"), {1e-4, 1e-5}));
}

INSTANTIATE_TEST_SUITE_P(Devices, GoldenStyle, ::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                         device_param_name);

// Gram matrices of the fixture's image at each style layer, through the public function.
TEST(GoldenStyleGram, MatchesPyTorch) {
  const std::string fixture = fixture_path("golden_style.h5");
  io::H5File f = io::H5File::open_read(fixture);
  Generator gen(0);
  auto net = small_features(gen);
  for (const auto& [name, p] : net->named_parameters()) p.copy_(f.read("/params/" + name));
  // (x - mean) / std as PyTorch computes it, then the layers one by one.
  const std::vector<double> mean = f.get_attribute<std::vector<double>>("/", "mean");
  const std::vector<double> sd = f.get_attribute<std::vector<double>>("/", "std");
  std::vector<float> img = f.read("/image").to_vector<float>();
  for (size_t i = 0; i < img.size(); ++i) {
    const size_t c = i / 256;
    img[i] = static_cast<float>((img[i] - mean[c]) / sd[c]);
  }
  Tensor h = Tensor::from_vector(img, {1, 3, 16, 16});
  int64_t i = 0;
  for (const auto& [name, m] : net->children()) {
    h = m->forward(h);
    if (f.has("/grams/" + std::to_string(i))) {
      EXPECT_TRUE(tensors_close("gram " + std::to_string(i), fn::gram_matrix(h), f.read("/grams/" + std::to_string(i)),
                                {1e-4, 1e-7}));
    }
    ++i;
  }
}

}  // namespace
}  // namespace dtrain::testing
