#pragma once
// VGG networks (Simonyan & Zisserman, 2014) with torchvision's layout and names, and the
// small VGG-style CNN of the lecture's CIFAR-10 exercise.
//
// Layout (torchvision.models.VGG): children "features" (Sequential of 3x3 convolutions
// with padding 1, [BatchNorm2d], ReLU, and 2x2 max pools), "avgpool"
// (AdaptiveAvgPool2d), "classifier" (Linear, ReLU, Dropout, Linear, ReLU, Dropout,
// Linear); the forward flattens between avgpool and classifier. Parameter names are
// therefore torchvision's: "features.0.weight", ..., "classifier.6.bias".
#include <memory>
#include <optional>
#include <vector>

#include "core/nn/conv.h"
#include "core/nn/layers.h"
#include "core/rng.h"

namespace dtrain::models {

struct VggConfig {
  // Output channels of each 3x3 convolution in order, 0 for a 2x2 max pool
  // (torchvision's cfgs with "M" written as 0).
  std::vector<int> layers;
  int in_channels = 3;
  int num_classes = 1000;
  int pool_out = 7;  // AdaptiveAvgPool2d((pool_out, pool_out)); without avgpool when 0
  int hidden = 4096;
  double dropout = 0.5;
  bool batch_norm = false;
  // torchvision's VGG initialization (conv: kaiming normal, fan_out, bias 0; batch norm:
  // 1, 0; linear: normal(0, 0.01), bias 0). When false, each layer keeps torch.nn's
  // default initialization.
  bool torchvision_init = true;
};

// torchvision's configurations A, B, D, E (VGG11, 13, 16, 19).
VggConfig vgg11_config(int num_classes = 1000);
VggConfig vgg13_config(int num_classes = 1000);
VggConfig vgg16_config(int num_classes = 1000);
VggConfig vgg19_config(int num_classes = 1000);
// VGG16's convolutions for 32x32 images (CIFAR-10): after five pools the map is 1x1, so
// pool_out = 1 and a 512-512-classes classifier (about 15.2M parameters).
VggConfig vgg16_cifar_config(int num_classes = 10);

// A VGG network: features, [avgpool], flatten, classifier.
class Vgg : public nn::Module {
 public:
  Vgg(std::shared_ptr<nn::Sequential> features, std::shared_ptr<nn::Module> avgpool,
      std::shared_ptr<nn::Sequential> classifier);
  Tensor forward(const Tensor& x) override;  // x (N, C, H, W) -> logits (N, classes)
  std::string describe() const override { return "VGG"; }
  nn::Sequential& features() { return *features_; }
  nn::Sequential& classifier() { return *classifier_; }
  // The Dropout layers of the classifier (their generators go into checkpoints).
  std::vector<std::shared_ptr<nn::Dropout>> dropouts() const;

 private:
  std::shared_ptr<nn::Sequential> features_;
  std::shared_ptr<nn::Module> avgpool_;  // may be null
  std::shared_ptr<nn::Sequential> classifier_;
};

// Builds the network of `config` with initial values from `gen`. Dropout layer k (in
// order) draws its masks from Generator::derive(dropout_gen.seed(), k, "vgg dropout"),
// where dropout_gen defaults to `gen`; pass one derived per rank (e.g.
// Generator::derive(seed, rank, "dropout")) so that ranks drop different units while
// initializing identically.
std::shared_ptr<Vgg> make_vgg(const VggConfig& config, Generator& gen,
                              std::optional<Generator> dropout_gen = std::nullopt);
inline std::shared_ptr<Vgg> vgg16(Generator& gen, int num_classes = 1000) {
  return make_vgg(vgg16_config(num_classes), gen);
}

// The lecture's small VGG-style CNN on 3x32x32 images: conv(c0)-conv(c0)-pool-
// conv(c1)-conv(c1)-pool-conv(c2)-pool-fc(hidden)-fc(classes), 3x3 convolutions with
// padding 1, ReLU after each convolution and after the hidden layer, 2x2 max pools,
// flatten (c2 * 4 * 4). Named like VGG: features.N, classifier.N (no avgpool).
// torch.nn's default initialization.
struct SmallVggConfig {
  std::vector<int> layers = {64, 64, 0, 128, 128, 0, 256, 0};  // as VggConfig::layers
  int in_channels = 3;
  int image_size = 32;  // square input; each pool halves it
  int hidden = 512;
  int num_classes = 10;
};
std::shared_ptr<Vgg> make_small_vgg(const SmallVggConfig& config, Generator& gen);
inline std::shared_ptr<Vgg> small_vgg(Generator& gen, int num_classes = 10) {
  SmallVggConfig c;
  c.num_classes = num_classes;
  return make_small_vgg(c, gen);
}

}  // namespace dtrain::models
