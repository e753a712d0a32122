#include "core/models/vgg.h"

#include <cmath>
#include <string>

namespace dtrain::models {

namespace {

// torchvision's cfgs, "M" written as 0.
const std::vector<int> kCfgA = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
const std::vector<int> kCfgB = {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
const std::vector<int> kCfgD = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
const std::vector<int> kCfgE = {64,  64,  0,   128, 128, 0,   256, 256, 256, 256, 0,
                                512, 512, 512, 512, 0,   512, 512, 512, 512, 0};

VggConfig with_cfg(const std::vector<int>& layers, int num_classes) {
  VggConfig c;
  c.layers = layers;
  c.num_classes = num_classes;
  return c;
}

// Conv(3x3, pad 1) [BatchNorm2d] ReLU per channel count, MaxPool2d(2, 2) per 0.
// Returns the sequence and sets `channels` to the last conv's output channels.
std::shared_ptr<nn::Sequential> make_features(const std::vector<int>& layers, int in_channels, bool batch_norm,
                                              Generator& gen, int64_t& channels) {
  DT_CHECK(!layers.empty(), "VGG: the layer list is empty; give channel counts, 0 for a max pool");
  DT_CHECK(in_channels > 0, "VGG: in_channels must be positive, got ", in_channels);
  auto features = std::make_shared<nn::Sequential>();
  channels = in_channels;
  for (int v : layers) {
    DT_CHECK(v >= 0, "VGG: layer entries are channel counts or 0 (max pool), got ", v);
    if (v == 0) {
      features->add(std::make_shared<nn::MaxPool2d>(2, 2));
      continue;
    }
    features->add(std::make_shared<nn::Conv2d>(channels, v, 3, gen, 1, 1));
    if (batch_norm) features->add(std::make_shared<nn::BatchNorm2d>(v));
    features->add(std::make_shared<nn::ReLU>());
    channels = v;
  }
  return features;
}

// torchvision.models.vgg.VGG._initialize_weights.
void torchvision_init(Vgg& model, Generator& gen) {
  auto visit = [&gen](const std::shared_ptr<nn::Module>& m) {
    if (auto conv = std::dynamic_pointer_cast<nn::Conv2d>(m)) {
      Tensor w = conv->weight();
      // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out).
      double fan_out = static_cast<double>(w.size(0) * w.size(2) * w.size(3));
      gen.normal_(w, 0.0, std::sqrt(2.0 / fan_out));
      if (conv->bias().defined()) conv->bias().zero_();
    } else if (auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>(m)) {
      bn->weight().fill_(1.0);
      bn->bias().zero_();
    } else if (auto lin = std::dynamic_pointer_cast<nn::Linear>(m)) {
      Tensor w = lin->weight();
      gen.normal_(w, 0.0, 0.01);
      if (lin->bias().defined()) lin->bias().zero_();
    }
  };
  for (const auto& [name, m] : model.features().children()) visit(m);
  for (const auto& [name, m] : model.classifier().children()) visit(m);
}

}  // namespace

VggConfig vgg11_config(int num_classes) { return with_cfg(kCfgA, num_classes); }
VggConfig vgg13_config(int num_classes) { return with_cfg(kCfgB, num_classes); }
VggConfig vgg16_config(int num_classes) { return with_cfg(kCfgD, num_classes); }
VggConfig vgg19_config(int num_classes) { return with_cfg(kCfgE, num_classes); }

VggConfig vgg16_cifar_config(int num_classes) {
  VggConfig c = with_cfg(kCfgD, num_classes);
  c.pool_out = 1;
  c.hidden = 512;
  return c;
}

Vgg::Vgg(std::shared_ptr<nn::Sequential> features, std::shared_ptr<nn::Module> avgpool,
         std::shared_ptr<nn::Sequential> classifier)
    : features_(std::move(features)), avgpool_(std::move(avgpool)), classifier_(std::move(classifier)) {
  DT_CHECK(features_ && classifier_, "Vgg: features and classifier are required");
  register_module("features", features_);
  if (avgpool_) register_module("avgpool", avgpool_);
  register_module("classifier", classifier_);
}

Tensor Vgg::forward(const Tensor& x) {
  DT_CHECK(x.defined() && x.ndim() == 4, "VGG: expected images of shape (N, C, H, W), got ",
           x.defined() ? x.str() : "undefined");
  Tensor h = features_->forward(x);
  if (avgpool_) h = avgpool_->forward(h);
  return classifier_->forward(fn::flatten(h));
}

std::vector<std::shared_ptr<nn::Dropout>> Vgg::dropouts() const {
  std::vector<std::shared_ptr<nn::Dropout>> out;
  for (const auto& [name, m] : classifier_->children()) {
    if (auto d = std::dynamic_pointer_cast<nn::Dropout>(m)) out.push_back(d);
  }
  return out;
}

std::shared_ptr<Vgg> make_vgg(const VggConfig& config, Generator& gen, std::optional<Generator> dropout_gen) {
  DT_CHECK(config.num_classes > 0 && config.hidden > 0, "VGG: num_classes and hidden must be positive, got ",
           config.num_classes, " and ", config.hidden);
  DT_CHECK(config.pool_out >= 0, "VGG: pool_out must not be negative, got ", config.pool_out);
  DT_CHECK(config.dropout >= 0 && config.dropout < 1, "VGG: dropout must be in [0, 1), got ", config.dropout);
  int64_t channels = 0;
  auto features = make_features(config.layers, config.in_channels, config.batch_norm, gen, channels);
  std::shared_ptr<nn::Module> avgpool;
  int64_t flat = channels;
  if (config.pool_out > 0) {
    avgpool = std::make_shared<nn::AdaptiveAvgPool2d>(config.pool_out);
    flat = channels * config.pool_out * config.pool_out;
  }
  uint64_t dropout_seed = dropout_gen ? dropout_gen->seed() : gen.seed();
  auto classifier = std::make_shared<nn::Sequential>();
  classifier->add(std::make_shared<nn::Linear>(flat, config.hidden, gen));
  classifier->add(std::make_shared<nn::ReLU>());
  classifier->add(std::make_shared<nn::Dropout>(config.dropout, Generator::derive(dropout_seed, 0, "vgg dropout")));
  classifier->add(std::make_shared<nn::Linear>(config.hidden, config.hidden, gen));
  classifier->add(std::make_shared<nn::ReLU>());
  classifier->add(std::make_shared<nn::Dropout>(config.dropout, Generator::derive(dropout_seed, 1, "vgg dropout")));
  classifier->add(std::make_shared<nn::Linear>(config.hidden, config.num_classes, gen));
  auto model = std::make_shared<Vgg>(features, avgpool, classifier);
  if (config.torchvision_init) torchvision_init(*model, gen);
  return model;
}

std::shared_ptr<Vgg> make_small_vgg(const SmallVggConfig& config, Generator& gen) {
  DT_CHECK(config.image_size > 0 && config.hidden > 0 && config.num_classes > 0,
           "small VGG: image_size, hidden and num_classes must be positive");
  int64_t channels = 0;
  auto features = make_features(config.layers, config.in_channels, false, gen, channels);
  int64_t size = config.image_size;
  for (int v : config.layers) {
    if (v == 0) size /= 2;
  }
  DT_CHECK(size > 0, "small VGG: ", config.image_size, "x", config.image_size, " images are too small for ",
           "the layer list's max pools");
  auto classifier = std::make_shared<nn::Sequential>();
  classifier->add(std::make_shared<nn::Linear>(channels * size * size, config.hidden, gen));
  classifier->add(std::make_shared<nn::ReLU>());
  classifier->add(std::make_shared<nn::Linear>(config.hidden, config.num_classes, gen));
  return std::make_shared<Vgg>(features, nullptr, classifier);
}

}  // namespace dtrain::models
