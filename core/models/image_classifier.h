#pragma once
// The image classifiers that `dtrain train` builds by name (docs/TRAINING.md): mlp,
// small_cnn, small_vgg, vgg16_cifar and vgg16, for images of (C, H, W) and `classes`
// outputs. The initial values come from one stream for every rank, (seed, 0, "init"), so
// every rank builds the same network (and rank 0's values are broadcast anyway); dropout
// masks come from a stream per rank, (seed, rank, "dropout").
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/nn/module.h"

namespace dtrain::models {

// The model.* keys that shape a classifier.
struct ClassifierSpec {
  std::string name = "small_cnn";  // mlp | small_cnn | small_vgg | vgg16_cifar | vgg16
  int64_t hidden = 0;              // classifier hidden width; 0: the model's default
  double dropout = 0.5;            // vgg16 / vgg16_cifar classifier dropout
  bool batch_norm = false;         // small_cnn / vgg16 / vgg16_cifar: BatchNorm2d after convolutions
  double fc_dropout = 0.0;         // mlp / small_cnn: dropout before the last layer (0 = none)
};

struct BuiltClassifier {
  std::shared_ptr<nn::Module> module;
  std::string description;  // one line, e.g. "small_cnn conv32-pool-conv64-pool-fc128-fc10"
};

// The names make_image_classifier accepts.
const std::vector<std::string>& image_classifier_names();

// Throws ConfigError (naming model.name) for a name it does not know or images too small
// for the network.
BuiltClassifier make_image_classifier(const ClassifierSpec& spec, int64_t channels, int64_t height, int64_t width,
                                      int64_t classes, uint64_t seed, int rank);

}  // namespace dtrain::models
