#include "core/models/style_transfer.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "core/autograd.h"
#include "core/checkpoint.h"
#include "core/io/h5.h"
#include "core/error.h"

namespace dtrain::models {

std::vector<std::string> vgg_layer_names(const std::vector<int>& layers, bool batch_norm) {
  std::vector<std::string> names;
  int block = 1, conv = 0;
  auto named = [&names](const char* kind, const std::string& suffix) {
    std::string n = kind;
    n += suffix;
    names.push_back(std::move(n));
  };
  for (int v : layers) {
    if (v == 0) {
      named("pool", std::to_string(block));
      ++block;
      conv = 0;
      continue;
    }
    std::string suffix = std::to_string(block);
    suffix += '_';
    suffix += std::to_string(conv + 1);
    named("conv", suffix);
    if (batch_norm) named("bn", suffix);
    named("relu", suffix);
    ++conv;
  }
  return names;
}

int64_t vgg_layer_index(const std::vector<int>& layers, const std::string& name, bool batch_norm) {
  const std::vector<std::string> names = vgg_layer_names(layers, batch_norm);
  auto it = std::find(names.begin(), names.end(), name);
  if (it != names.end()) return it - names.begin();
  std::ostringstream valid;
  for (size_t i = 0; i < names.size(); ++i) valid << (i ? " " : "") << names[i];
  DT_THROW(ConfigError, "no VGG layer named '", name, "'; the layers are: ", valid.str());
}

int64_t pools_before(const std::vector<int>& layers, int64_t index, bool batch_norm) {
  const std::vector<std::string> names = vgg_layer_names(layers, batch_norm);
  int64_t pools = 0;
  for (int64_t i = 0; i < index && i < static_cast<int64_t>(names.size()); ++i) {
    if (names[static_cast<size_t>(i)].rfind("pool", 0) == 0) ++pools;
  }
  return pools;
}

void load_weights(const std::string& path, nn::Module& model, const std::string& prefix) {
  namespace fs = std::filesystem;
  DT_CHECK_AS(fs::exists(path), IoError, "weights file ", path, " does not exist");
  const std::string file = fs::path(path).filename().string();
  if (auto step = ckpt::step_of(file); step && fs::exists(fs::path(path).parent_path() / ckpt::marker_name(*step))) {
    ckpt::verify(path);
  }
  io::H5File f = io::H5File::open_read(path);
  int64_t loaded = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.rfind(prefix, 0) != 0) continue;
    std::string ds = "/model/";
    ds += name;
    DT_CHECK_AS(f.has(ds), ValueError, "weights file ", path, " has no dataset ", ds,
                ": it holds another network (convert a torchvision state_dict with scripts/import_torchvision.py)");
    const Shape shape = f.shape_of(ds);
    DT_CHECK_AS(shape == p.shape(), ValueError, "weights file ", path, ": ", ds, " is ", shape_str(shape),
                " but the model's ", name, " is ", shape_str(p.shape()), ": the file holds another network");
    p.copy_(f.read(ds).to(p.dtype()).to(p.device()));
    ++loaded;
  }
  DT_CHECK_AS(loaded > 0, ValueError, "the model has no parameter named ", prefix, "* to load from ", path);
}

StyleTransferLoss::StyleTransferLoss(nn::Sequential& features, StyleTransferOptions options,
                                     const Tensor& content_image, const Tensor& style_image)
    : features_(features), opt_(std::move(options)) {
  const auto n = static_cast<int64_t>(features_.size());
  DT_CHECK(!opt_.style_layers.empty(), "style transfer: no style layer given");
  if (opt_.style_weights.empty()) opt_.style_weights.assign(opt_.style_layers.size(), 1e6);
  DT_CHECK(opt_.style_weights.size() == opt_.style_layers.size(), "style transfer: ", opt_.style_layers.size(),
           " style layers but ", opt_.style_weights.size(), " style weights");
  DT_CHECK(opt_.mean.size() == opt_.std.size() && !opt_.mean.empty(), "style transfer: mean and std must have one ",
           "value per channel each");
  for (double s : opt_.std) DT_CHECK(s > 0, "style transfer: std values must be positive, got ", s);
  layers_ = opt_.style_layers;
  layers_.push_back(opt_.content_layer);
  for (int64_t l : layers_) {
    DT_CHECK(l >= 0 && l < n, "style transfer: layer index ", l, " is outside the feature extractor's ", n,
             " layers");
  }
  std::sort(layers_.begin(), layers_.end());
  layers_.erase(std::unique(layers_.begin(), layers_.end()), layers_.end());
  const auto channels = static_cast<int64_t>(opt_.mean.size());
  for (const auto& [what, t] : {std::pair{"content", &content_image}, std::pair{"style", &style_image}}) {
    DT_CHECK(t->defined() && t->ndim() == 4 && t->size(0) == 1 && t->size(1) == channels, "style transfer: the ",
             what, " image must be (1, ", channels, ", H, W), got ", t->defined() ? t->str() : "undefined");
  }

  autograd::NoGrad no_grad;
  const std::vector<Tensor> c = activations(content_image, {opt_.content_layer});
  content_target_ = c[0];
  const std::vector<Tensor> s = activations(style_image, layers_);
  for (int64_t l : opt_.style_layers) {
    const auto at = std::find(layers_.begin(), layers_.end(), l) - layers_.begin();
    gram_targets_.push_back(fn::gram_matrix(s[static_cast<size_t>(at)]));
  }
}

Tensor StyleTransferLoss::normalize(const Tensor& x) const {
  // A 1x1 convolution with the diagonal weight 1 / std and the bias -mean / std.
  const auto c = static_cast<int64_t>(opt_.mean.size());
  std::vector<double> w(static_cast<size_t>(c * c), 0.0), b(static_cast<size_t>(c));
  for (int64_t i = 0; i < c; ++i) {
    w[static_cast<size_t>(i * c + i)] = 1.0 / opt_.std[static_cast<size_t>(i)];
    b[static_cast<size_t>(i)] = -opt_.mean[static_cast<size_t>(i)] / opt_.std[static_cast<size_t>(i)];
  }
  const Tensor wt = Tensor::from_vector(w, {c, c, 1, 1}).to(x.dtype()).to(x.device());
  const Tensor bt = Tensor::from_vector(b, {c}).to(x.dtype()).to(x.device());
  return fn::conv2d(x, wt, bt);
}

std::vector<Tensor> StyleTransferLoss::activations(const Tensor& x, const std::vector<int64_t>& wanted) {
  std::vector<Tensor> out;
  Tensor h = normalize(x);
  size_t next = 0;
  const auto& children = features_.children();
  for (int64_t i = 0; next < wanted.size(); ++i) {
    h = children[static_cast<size_t>(i)].second->forward(h);
    if (i == wanted[next]) {
      out.push_back(h);
      ++next;
    }
  }
  return out;
}

StyleLosses StyleTransferLoss::operator()(const Tensor& x) {
  DT_CHECK(x.defined() && x.ndim() == 4 && x.size(0) == 1 && x.size(1) == static_cast<int64_t>(opt_.mean.size()),
           "style transfer: the image must be (1, ", opt_.mean.size(), ", H, W), got ",
           x.defined() ? x.str() : "undefined");
  const std::vector<Tensor> acts = activations(x, layers_);
  auto at = [&](int64_t l) { return acts[static_cast<size_t>(std::find(layers_.begin(), layers_.end(), l) - layers_.begin())]; };
  StyleLosses r;
  const Tensor content_act = at(opt_.content_layer);
  DT_CHECK(content_act.shape() == content_target_.shape(), "style transfer: the image gives content features ",
           content_act.str(), " but the content image gave ", content_target_.str(),
           "; the image must have the content image's size");
  r.content = fn::mse_loss(content_act, content_target_);
  r.total = fn::scale(r.content, opt_.content_weight);
  for (size_t k = 0; k < opt_.style_layers.size(); ++k) {
    Tensor s = fn::mse_loss(fn::gram_matrix(at(opt_.style_layers[k])), gram_targets_[k]);
    r.total = fn::add(r.total, fn::scale(s, opt_.style_weights[k]));
    r.style.push_back(s);
  }
  return r;
}

}  // namespace dtrain::models
