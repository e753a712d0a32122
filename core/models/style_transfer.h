#pragma once
// Neural style transfer (Gatys, Ecker & Bethge, 2016): the losses whose minimum over an
// image's pixels keeps one image's content and takes another's style, measured through a
// convolutional feature extractor (VGG16's `features` in `dtrain style`).
//
//   content(x) = mean((F_c(x) - F_c(content))^2)                 at one layer c
//   style_l(x) = mean((G(F_l(x)) - G(F_l(style)))^2)              at each style layer l
//   total(x)   = content_weight * content(x) + sum_l style_weight_l * style_l(x)
//
// F_l is the output of features' child l (a convolution, ReLU or pool) for the image
// normalised per channel as (x - mean) / std, x in [0, 1] (ImageNet's statistics by
// default, as torchvision's pretrained VGG expects); G is fn::gram_matrix
// (F F^T / (C H W)). These are the definitions of PyTorch's neural style tutorial, so its
// weights (content 1, style 1e6) carry over.
#include <string>
#include <vector>

#include "core/models/vgg.h"
#include "core/nn/layers.h"

namespace dtrain::models {

// Gatys et al.'s names for the layers of a VGG `features` stack built from `layers`
// (VggConfig::layers, 0 = max pool), one per child in order: conv<b>_<i>, [bn<b>_<i>],
// relu<b>_<i>, pool<b> (block b counts pools, i the convolutions within a block, both from 1).
std::vector<std::string> vgg_layer_names(const std::vector<int>& layers, bool batch_norm = false);
// The child index of `name` in those names; ConfigError listing the valid names otherwise.
int64_t vgg_layer_index(const std::vector<int>& layers, const std::string& name, bool batch_norm = false);
// The number of max pools before child `index` (the input is reduced 2^pools times).
int64_t pools_before(const std::vector<int>& layers, int64_t index, bool batch_norm = false);

// Copies the parameters of `model` whose names start with `prefix` from the HDF5 weights
// file `path`: /model/<name> datasets, the layout of dtrain's checkpoints and of
// scripts/import_torchvision.py's output (a dtrain checkpoint with its marker beside it is
// verified first). Throws IoError for an unreadable file, ValueError naming the first
// missing or mis-shaped tensor (a file of another network).
void load_weights(const std::string& path, nn::Module& model, const std::string& prefix = "features.");

struct StyleTransferOptions {
  int64_t content_layer = 19;                        // VGG16: conv4_2
  std::vector<int64_t> style_layers = {0, 5, 10, 17, 24};  // VGG16: conv1_1 ... conv5_1
  std::vector<double> style_weights;                 // per style layer; empty = 1e6 each
  double content_weight = 1.0;
  std::vector<double> mean = {0.485, 0.456, 0.406};  // per channel of the [0, 1] image
  std::vector<double> std = {0.229, 0.224, 0.225};
};

struct StyleLosses {
  Tensor total;               // 0-dim
  Tensor content;             // 0-dim, unweighted
  std::vector<Tensor> style;  // per style layer, 0-dim, unweighted
};

// The losses for images of one size on one device. The targets (the content image's
// features at the content layer, the style image's Gram matrices) are computed once, in
// the constructor, without recording. `features` is used, not owned, and must outlive
// this object; only its children up to the deepest layer used are run.
class StyleTransferLoss {
 public:
  // content_image, style_image: (1, C, H, W) with values in [0, 1] on features' device;
  // the two may differ in size (Gram matrices do not depend on it).
  StyleTransferLoss(nn::Sequential& features, StyleTransferOptions options, const Tensor& content_image,
                    const Tensor& style_image);
  // x: (1, C, H, W) in [0, 1]; differentiable in x when recorded.
  StyleLosses operator()(const Tensor& x);
  const StyleTransferOptions& options() const { return opt_; }

 private:
  // (x - mean) / std per channel, as two broadcast ops.
  Tensor normalize(const Tensor& x) const;
  // The outputs of the children listed in `wanted` (ascending), running no further.
  std::vector<Tensor> activations(const Tensor& x, const std::vector<int64_t>& wanted);

  nn::Sequential& features_;
  StyleTransferOptions opt_;
  std::vector<int64_t> layers_;  // content layer and style layers, sorted, unique
  Tensor content_target_;        // F_c(content)
  std::vector<Tensor> gram_targets_;  // G(F_l(style)) per style layer
};

}  // namespace dtrain::models
