// VGG models (core/models/vgg.h): torchvision's layout and names, parameter counts, and
// forward shapes of the 32x32 variants. VGG16 at 224x224 is never run forward here (far
// too slow on a CPU); its parameters are built once, to count and name them.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/models/vgg.h"

#ifndef DTRAIN_FIXTURE_DIR
#error "DTRAIN_FIXTURE_DIR must be defined by the build (tests/CMakeLists.txt)"
#endif

namespace dtrain::models {
namespace {

std::string shape_csv(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out;
}

std::vector<std::string> name_shape_lines(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(name + " " + shape_csv(p.shape()));
  return out;
}

TEST(Vgg16, MatchesTorchvisionNamesShapesAndCount) {
  // tests/fixtures/vgg16_torchvision_params.txt is written by scripts/make_vgg16_names.py
  // from torchvision.models.vgg16().
  const std::string path = DTRAIN_FIXTURE_DIR "/vgg16_torchvision_params.txt";
  std::ifstream in(path);
  ASSERT_TRUE(in.is_open()) << "cannot open " << path << "; regenerate it with scripts/make_vgg16_names.py";
  std::vector<std::string> want;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) want.push_back(line);
  }
  ASSERT_EQ(want.size(), 32u);

  VggConfig config = vgg16_config(1000);
  config.torchvision_init = false;  // values do not matter here; skip the second pass
  Generator gen(0);
  auto model = make_vgg(config, gen);  // 553 MB of f32
  EXPECT_EQ(model->num_parameters(), 138357544);
  EXPECT_EQ(name_shape_lines(*model), want);
  EXPECT_TRUE(model->named_buffers().empty());
}

TEST(Vgg16, BatchNormVariantAddsTorchvisionBufferNames) {
  // vgg16_bn at 32x32 (the BN layers' names do not depend on the classifier's size).
  VggConfig config = vgg16_cifar_config(10);
  config.batch_norm = true;
  Generator gen(1);
  auto model = make_vgg(config, gen);
  auto buffers = model->named_buffers();
  ASSERT_EQ(buffers.size(), 13u * 3u);
  EXPECT_EQ(buffers[0].first, "features.1.running_mean");
  EXPECT_EQ(buffers[2].first, "features.1.num_batches_tracked");
  auto params = model->named_parameters();
  EXPECT_EQ(params[0].first, "features.0.weight");
  EXPECT_EQ(params[2].first, "features.1.weight");
  EXPECT_EQ(params.back().first, "classifier.6.bias");
  // torchvision's vgg16_bn: features.40.weight is the last conv, features.43 the last pool.
  EXPECT_EQ(model->features().size(), 44u);
}

TEST(Vgg16Cifar, ForwardShapeAndParameterCount) {
  Generator gen(2);
  auto model = make_vgg(vgg16_cifar_config(10), gen);
  // 14,714,688 in the convolutions + 512*512+512 + 512*512+512 + 512*10+10.
  EXPECT_EQ(model->num_parameters(), 14714688 + 262656 + 262656 + 5130);
  EXPECT_EQ(model->dropouts().size(), 2u);
  model->eval();
  Tensor x = Tensor::empty({1, 3, 32, 32});
  gen.normal_(x);
  Tensor y = model->forward(x);
  EXPECT_EQ(y.shape(), (Shape{1, 10}));
  for (float v : y.to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
}

TEST(Vgg, TorchvisionInitialization) {
  VggConfig config;
  config.layers = {16, 0, 32, 0};
  config.pool_out = 2;
  config.hidden = 64;
  config.num_classes = 5;
  Generator gen(3);
  auto model = make_vgg(config, gen);
  for (const auto& [name, p] : model->named_parameters()) {
    std::vector<float> v = p.to_vector<float>();
    double sum2 = 0;
    for (float e : v) sum2 += static_cast<double>(e) * e;
    double rms = std::sqrt(sum2 / static_cast<double>(v.size()));
    if (name.ends_with(".bias")) {
      EXPECT_EQ(rms, 0.0) << name;
    } else if (name == "features.0.weight") {
      EXPECT_NEAR(rms, std::sqrt(2.0 / (16 * 9)), 0.2 * std::sqrt(2.0 / (16 * 9))) << name;  // fan_out
    } else if (name.starts_with("classifier")) {
      EXPECT_NEAR(rms, 0.01, 0.002) << name;
    }
  }
}

TEST(Vgg, DropoutOnlyInTraining) {
  VggConfig config;
  config.layers = {4, 0};
  config.pool_out = 1;
  config.hidden = 256;
  config.num_classes = 3;
  Generator gen(4);
  auto model = make_vgg(config, gen);
  Tensor x = Tensor::empty({2, 3, 4, 4});
  gen.normal_(x);
  model->eval();
  std::vector<float> a = model->forward(x).to_vector<float>();
  EXPECT_EQ(model->forward(x).to_vector<float>(), a);
  model->train();
  EXPECT_NE(model->forward(x).to_vector<float>(), a);
}

TEST(SmallVgg, LayoutAndForwardShape) {
  Generator gen(5);
  auto model = small_vgg(gen, 10);
  std::vector<std::string> names;
  for (const auto& [name, p] : model->named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"features.0.weight", "features.0.bias", "features.2.weight",
                                             "features.2.bias", "features.5.weight", "features.5.bias",
                                             "features.7.weight", "features.7.bias", "features.10.weight",
                                             "features.10.bias", "classifier.0.weight", "classifier.0.bias",
                                             "classifier.2.weight", "classifier.2.bias"}));
  // 1792 + 36928 + 73856 + 147584 + 295168 + (4096*512 + 512) + (512*10 + 10)
  EXPECT_EQ(model->num_parameters(), 1792 + 36928 + 73856 + 147584 + 295168 + 2097664 + 5130);
  Tensor x = Tensor::empty({2, 3, 32, 32});
  gen.normal_(x);
  autograd::Tape tape;
  Tensor y, loss;
  {
    autograd::GradRecorder rec(tape);
    y = model->forward(x);
    loss = fn::sum(y);
  }
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
  tape.backward(loss);
  for (const auto& [name, p] : model->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().shape(), p.shape()) << name;
  }
}

TEST(SmallVgg, WrongImageSizeIsAClearError) {
  Generator gen(6);
  auto model = small_vgg(gen, 10);
  try {
    model->forward(Tensor::zeros({1, 3, 64, 64}));
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("(1, 16384)"), std::string::npos) << m;  // 256 * 8 * 8 features
    EXPECT_NE(m.find("4096"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace dtrain::models
