// The image classifiers by name: see image_classifier.h.
#include "core/models/image_classifier.h"

#include <sstream>

#include "core/error.h"
#include "core/models/vgg.h"
#include "core/nn/conv.h"
#include "core/nn/layers.h"
#include "core/rng.h"

namespace dtrain::models {

const std::vector<std::string>& image_classifier_names() {
  static const std::vector<std::string> names = {"mlp", "small_cnn", "small_vgg", "vgg16_cifar", "vgg16"};
  return names;
}

BuiltClassifier make_image_classifier(const ClassifierSpec& m, int64_t channels, int64_t height, int64_t width, int64_t classes,
                       uint64_t seed, int rank) {
  Generator gen = Generator::derive(seed, 0, "init");
  Generator dropout_gen = Generator::derive(seed, static_cast<uint64_t>(rank), "dropout");
  auto c = [](int64_t v) { return static_cast<int>(v); };
  std::ostringstream desc;
  if (m.name == "mlp") {
    int64_t hidden = m.hidden > 0 ? m.hidden : 256;
    auto net = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(channels * height * width, hidden, gen),
        std::make_shared<nn::ReLU>()});
    if (m.fc_dropout > 0) net->add(std::make_shared<nn::Dropout>(m.fc_dropout, dropout_gen));
    net->add(std::make_shared<nn::Linear>(hidden, classes, gen));
    desc << "mlp " << channels * height * width << "-" << hidden << "-" << classes;
    if (m.fc_dropout > 0) desc << " (dropout " << m.fc_dropout << ")";
    return {net, desc.str()};
  }
  if (m.name == "small_cnn") {
    // conv32-relu-pool-conv64-relu-pool-fc(hidden)-relu-fc(classes), 3x3 convolutions with
    // padding 1, 2x2 max pools; named like VGG (features.N, classifier.N).
    DT_CHECK_AS(height >= 4 && width >= 4, ConfigError, "model.name = small_cnn needs images of at least 4x4, got ",
                height, "x", width);
    int64_t hidden = m.hidden > 0 ? m.hidden : 128;
    // With model.batch_norm a BatchNorm2d follows each convolution; with model.fc_dropout
    // a Dropout precedes the last layer (names shift accordingly, as in VGG).
    auto features = std::make_shared<nn::Sequential>();
    features->add(std::make_shared<nn::Conv2d>(channels, 32, 3, gen, 1, 1));
    if (m.batch_norm) features->add(std::make_shared<nn::BatchNorm2d>(32));
    features->add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::MaxPool2d>(2));
    features->add(std::make_shared<nn::Conv2d>(32, 64, 3, gen, 1, 1));
    if (m.batch_norm) features->add(std::make_shared<nn::BatchNorm2d>(64));
    features->add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::MaxPool2d>(2));
    auto classifier = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(64 * (height / 4) * (width / 4), hidden, gen), std::make_shared<nn::ReLU>()});
    if (m.fc_dropout > 0) classifier->add(std::make_shared<nn::Dropout>(m.fc_dropout, dropout_gen));
    classifier->add(std::make_shared<nn::Linear>(hidden, classes, gen));
    desc << "small_cnn conv32-pool-conv64-pool-fc" << hidden << "-fc" << classes;
    if (m.batch_norm) desc << " with batch norm";
    if (m.fc_dropout > 0) desc << " (dropout " << m.fc_dropout << ")";
    return {std::make_shared<Vgg>(features, nullptr, classifier), desc.str()};
  }
  if (m.name == "small_vgg") {
    DT_CHECK_AS(height == width && height % 8 == 0, ConfigError,
                "model.name = small_vgg needs square images with a side divisible by 8, got ", height, "x", width);
    SmallVggConfig sc;
    sc.in_channels = c(channels);
    sc.image_size = c(height);
    sc.num_classes = c(classes);
    if (m.hidden > 0) sc.hidden = c(m.hidden);
    desc << "small_vgg (hidden " << sc.hidden << ", " << classes << " classes)";
    return {make_small_vgg(sc, gen), desc.str()};
  }
  DT_CHECK_AS(m.name == "vgg16" || m.name == "vgg16_cifar", ConfigError, "model.name = ", m.name,
              " is not an image classifier (mlp, small_cnn, small_vgg, vgg16_cifar, vgg16)");
  // vgg16_cifar, vgg16: five 2x2 pools need at least 32x32.
  DT_CHECK_AS(height >= 32 && width >= 32, ConfigError, "model.name = ", m.name,
              " needs images of at least 32x32, got ", height, "x", width);
  VggConfig vc = m.name == "vgg16" ? vgg16_config(c(classes)) : vgg16_cifar_config(c(classes));
  vc.in_channels = c(channels);
  vc.batch_norm = m.batch_norm;
  vc.dropout = m.dropout;
  if (m.hidden > 0) vc.hidden = c(m.hidden);
  desc << m.name << (m.batch_norm ? " with batch norm" : "") << " (hidden " << vc.hidden << ", " << classes
       << " classes)";
  return {make_vgg(vc, gen, dropout_gen), desc.str()};
}

}  // namespace dtrain::models
