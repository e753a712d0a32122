// `dtrain style`: see commands.h and docs/STYLE_TRANSFER.md.
//
// The image's pixels are the only parameters: VGG16's feature extractor is frozen (its
// weights get no gradient, which also saves the weight-gradient convolutions), and each
// step is one forward and backward of the losses of core/models/style_transfer.h.
// Adam's image is clamped to [0, 1] after every step; L-BFGS runs unconstrained (its
// line search and curvature pairs assume an unchanged objective) and the image is clamped
// when written.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/io/image.h"
#include "core/models/style_transfer.h"
#include "core/models/vgg.h"
#include "core/optim/lbfgs.h"
#include "core/optim/optimizer.h"
#include "core/runtime.h"
#include "launcher/cli/args.h"
#include "launcher/cli/commands.h"

namespace dtrain::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultStyleLayers = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1";

constexpr const char* kEpilog =
    "The output image starts from the content image (or noise) and its pixels are optimised so\n"
    "that VGG16's features at the content layer match the content image's and the Gram matrices\n"
    "of the features at the style layers match the style image's (Gatys et al.). Both images are\n"
    "resized so that their shorter side is --size pixels; the output has the content image's\n"
    "shape. Inputs are PNG, JPEG, PGM or PPM (grayscale is used as RGB); the output is PNG or\n"
    "JPEG by its extension.\n"
    "\n"
    "Weights: --weights takes an HDF5 file with VGG16's parameters under /model/<name>\n"
    "(features.0.weight, ...): a dtrain checkpoint of a VGG16, or a torchvision VGG16 state_dict\n"
    "converted with\n"
    "  /usr/bin/python3 scripts/import_torchvision.py vgg16.pth vgg16.h5\n"
    "Without it the network has random weights (torchvision's initialisation, seeded): random\n"
    "convolutional features still transfer colours and fine texture, but not the strokes and\n"
    "shapes that pretrained ImageNet features capture.\n"
    "\n"
    "Layers are named conv<b>_<i>, relu<b>_<i> or pool<b> (VGG16: conv1_1 .. conv5_3). A style\n"
    "layer may carry its own weight factor, e.g. --style-layers conv1_1:2,conv2_1,conv3_1.\n"
    "\n"
    "Example:\n"
    "  dtrain style --content photo.jpg --style painting.png --out out.png --weights vgg16.h5 \\\n"
    "      --size 256 --steps 300 --save-every 100\n"
    "\n"
    "Exit codes: 0 written, 1 an image or weights file could not be read or written, 2 bad usage,\n"
    "3 --device cuda in a build without CUDA.";

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    const int index = name == "cuda" ? 0 : std::stoi(name.substr(5));
    cuda::check_device(index);
    return Device::cuda(index);
  }
  DT_THROW(ConfigError, "dtrain style: unknown --device '", name, "': use cpu, cuda or cuda:N");
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) {
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

double parse_number(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DT_CHECK_AS(used == text.size() && used > 0 && std::isfinite(v), ConfigError, "dtrain style: ", what, " '", text,
              "' is not a number");
  return v;
}

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Reads an image as RGB with its shorter side resized to `size`.
io::Image load_rgb(const std::string& path, const char* flag, int64_t size) {
  DT_CHECK_AS(fs::exists(path), ConfigError, "dtrain style: ", flag, " ", path, " does not exist");
  io::Image im = io::read_image(path);
  if (im.channels == 1) {
    std::printf("note: %s %s is grayscale; it is used as an RGB image with three equal channels\n", flag,
                path.c_str());
    io::Image rgb;
    rgb.height = im.height;
    rgb.width = im.width;
    rgb.channels = 3;
    rgb.pixels.reserve(im.pixels.size() * 3);
    for (uint8_t v : im.pixels) rgb.pixels.insert(rgb.pixels.end(), {v, v, v});
    im = std::move(rgb);
  }
  DT_CHECK_AS(im.channels == 3, ConfigError, "dtrain style: ", flag, " ", path, " has ", im.channels,
              " channels; give an RGB or grayscale image");
  io::Image r = io::resize_shorter_side(im, size);
  DT_CHECK_AS(std::max(r.height, r.width) <= 8 * size, ConfigError, "dtrain style: ", flag, " ", path, " is ",
              im.width, "x", im.height, ": at --size ", size, " it would be ", r.width, "x", r.height,
              "; crop it to an aspect ratio of at most 8:1");
  return r;
}

// VGG16's feature extractor: torchvision's layers and initialisation, with a 1-unit
// classifier (never run) instead of the 4096-wide one, so that building it costs nothing.
std::shared_ptr<models::Vgg> vgg16_features(uint64_t seed) {
  models::VggConfig c = models::vgg16_config();
  c.pool_out = 0;
  c.hidden = 1;
  c.num_classes = 1;
  c.dropout = 0;
  Generator gen = Generator::derive(seed, 0, "init");
  return models::make_vgg(c, gen);
}

struct LayerChoice {
  int64_t content = 0;
  std::vector<int64_t> style;
  std::vector<double> factors;
  std::vector<std::string> style_names;
};

LayerChoice parse_layers(const std::vector<int>& cfg, const std::string& content, const std::string& style) {
  LayerChoice c;
  c.content = models::vgg_layer_index(cfg, content);
  for (const std::string& item : split(style, ',')) {
    const auto colon = item.find(':');
    const std::string name = item.substr(0, colon);
    c.style.push_back(models::vgg_layer_index(cfg, name));
    c.style_names.push_back(name);
    std::string what = "the weight of ";
    what += name;
    c.factors.push_back(colon == std::string::npos ? 1.0 : parse_number(item.substr(colon + 1), what));
  }
  DT_CHECK_AS(!c.style.empty(), ConfigError, "dtrain style: --style-layers is empty; give layer names such as ",
              kDefaultStyleLayers);
  return c;
}

// clamp(x, 0, 1) = relu(x) - relu(x - 1), in place and unrecorded.
void clamp01_(const Tensor& x) {
  autograd::NoGrad no_grad;
  x.copy_(fn::sub(fn::relu(x), fn::relu(fn::affine(x, 1.0, -1.0))));
}

io::Image to_image(const Tensor& x) {
  autograd::NoGrad no_grad;
  return io::tensor_to_image(fn::scale(x, 255.0).to(Device::cpu()));  // rounds and clamps to [0, 255]
}

// out.png, 100 -> out.step100.png
std::string intermediate_name(const std::string& out, int64_t step) {
  fs::path p(out);
  std::string name = p.stem().string();
  name += ".step";
  name += std::to_string(step);
  name += p.extension().string();
  return (p.parent_path() / name).string();
}

}  // namespace

int style_main(const std::vector<std::string>& args) {
  ArgParser p("dtrain style",
              "Neural style transfer: an image with one picture's content in another's style, by optimising its "
              "pixels on VGG16 features.");
  p.add_option("content", "IMAGE", "the photo whose content is kept");
  p.add_option("style", "IMAGE", "the painting whose style is taken");
  p.add_option("out", "FILE", "the result (.png, .jpg or .jpeg)");
  p.add_option("weights", "FILE", "VGG16 weights (HDF5, /model/features.*); default: random weights, see below");
  p.add_option("size", "N", "the shorter side of the images, in pixels", "256");
  p.add_option("steps", "N", "optimisation steps (forward and backward passes)", "300");
  p.add_option("optimizer", "NAME", "adam or lbfgs", "adam");
  p.add_option("lr", "LR", "learning rate (default: 0.02 for adam on [0, 1] pixels, 1 for lbfgs)");
  p.add_option("content-layer", "NAME", "the layer whose features carry the content", "conv4_2");
  p.add_option("style-layers", "LIST", "comma-separated layers whose Gram matrices carry the style",
               kDefaultStyleLayers);
  p.add_option("content-weight", "W", "weight of the content loss", "1");
  p.add_option("style-weight", "W", "weight of each style layer's loss", "1e6");
  p.add_option("init", "FROM", "content (start from the content image) or noise", "content");
  p.add_option("seed", "N", "seed of the random weights and of the noise start", "0");
  p.add_option("device", "DEV", "cpu, cuda or cuda:N", "cpu");
  p.add_option("log-every", "N", "a progress line every N steps", "10");
  p.add_option("save-every", "N", "also write the image every N steps (OUT with .step<N> before the extension)",
               "0");
  p.set_epilog(kEpilog);
  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  for (const char* req : {"content", "style", "out"}) {
    DT_CHECK_AS(p.has(req), ConfigError, "dtrain style: --", req, " is required (see dtrain style --help)");
  }
  const std::string out = p.get("out");
  const std::string ext = lower_extension(out);
  DT_CHECK_AS(ext == ".png" || ext == ".jpg" || ext == ".jpeg", ConfigError, "dtrain style: --out ", out,
              " must end in .png, .jpg or .jpeg");
  const fs::path out_dir = fs::path(out).parent_path();
  DT_CHECK_AS(out_dir.empty() || fs::is_directory(out_dir), ConfigError, "dtrain style: the folder of --out ", out,
              " does not exist");
  const int64_t size = p.get_int("size"), steps = p.get_int("steps");
  const int64_t log_every = p.get_int("log-every"), save_every = p.get_int("save-every");
  DT_CHECK_AS(size > 0 && size <= 4096, ConfigError, "dtrain style: --size must be in 1..4096, got ", size);
  DT_CHECK_AS(steps >= 0, ConfigError, "dtrain style: --steps must not be negative, got ", steps);
  DT_CHECK_AS(log_every > 0, ConfigError, "dtrain style: --log-every must be positive, got ", log_every);
  DT_CHECK_AS(save_every >= 0, ConfigError, "dtrain style: --save-every must not be negative, got ", save_every);
  const std::string optimizer = p.get("optimizer"), init = p.get("init");
  DT_CHECK_AS(optimizer == "adam" || optimizer == "lbfgs", ConfigError, "dtrain style: --optimizer must be adam or ",
              "lbfgs, got '", optimizer, "'");
  DT_CHECK_AS(init == "content" || init == "noise", ConfigError, "dtrain style: --init must be content or noise, ",
              "got '", init, "'");
  const double lr = p.has("lr") ? p.get_double("lr") : optimizer == "adam" ? 0.02 : 1.0;
  DT_CHECK_AS(lr > 0, ConfigError, "dtrain style: --lr must be positive, got ", lr);
  const double content_weight = p.get_double("content-weight"), style_weight = p.get_double("style-weight");
  DT_CHECK_AS(content_weight >= 0 && style_weight >= 0, ConfigError,
              "dtrain style: --content-weight and --style-weight must not be negative");
  const auto seed = static_cast<uint64_t>(p.get_int("seed"));

  const std::vector<int> cfg = models::vgg16_config().layers;
  const LayerChoice layers = parse_layers(cfg, p.get("content-layer"), p.get("style-layers"));
  // The deepest layer sees the image reduced 2^pools times; it needs at least one pixel.
  int64_t deepest = layers.content;
  for (int64_t l : layers.style) deepest = std::max(deepest, l);
  const int64_t min_size = int64_t{1} << models::pools_before(cfg, deepest);
  DT_CHECK_AS(size >= min_size, ConfigError, "dtrain style: --size ", size, " is too small for layer ",
              models::vgg_layer_names(cfg)[static_cast<size_t>(deepest)], ", which sees the image reduced ", min_size,
              " times: use --size ", min_size, " or more");
  const Device device = parse_device(p.get("device"));

  const io::Image content_im = load_rgb(p.get("content"), "--content", size);
  const io::Image style_im = load_rgb(p.get("style"), "--style", size);
  auto vgg = vgg16_features(seed);
  if (p.has("weights")) {
    DT_CHECK_AS(fs::exists(p.get("weights")), ConfigError, "dtrain style: --weights ", p.get("weights"),
                " does not exist (convert a torchvision VGG16 state_dict with scripts/import_torchvision.py)");
    models::load_weights(p.get("weights"), *vgg);
    std::printf("weights: %s\n", p.get("weights").c_str());
  } else {
    std::printf(
        "note: no --weights: VGG16 has random weights (torchvision's initialisation, seed %llu). Random\n"
        "      features transfer colours and fine texture but not the strokes and shapes of pretrained\n"
        "      ImageNet features; for those, convert a torchvision VGG16 with scripts/import_torchvision.py\n",
        static_cast<unsigned long long>(seed));
  }
  for (const Tensor& w : vgg->parameters()) Tensor(w).set_requires_grad(false);  // only the pixels learn
  vgg->to(device);
  vgg->eval();

  const Tensor content = fn::scale(io::image_to_tensor(content_im), 1.0 / 255).to(device);  // (1, 3, H, W)
  const Tensor style = fn::scale(io::image_to_tensor(style_im), 1.0 / 255).to(device);
  models::StyleTransferOptions o;
  o.content_layer = layers.content;
  o.style_layers = layers.style;
  for (double f : layers.factors) o.style_weights.push_back(style_weight * f);
  o.content_weight = content_weight;
  models::StyleTransferLoss loss(vgg->features(), o, content, style);

  Tensor x;
  if (init == "content") {
    x = content.clone();
  } else {
    x = Tensor::empty(content.shape());
    Generator noise = Generator::derive(seed, 0, "style noise");
    noise.uniform_(x, 0.0, 1.0);
    x = x.to(device);
  }
  x.set_requires_grad(true);

  std::printf("style transfer: content %s (%lldx%lld), style %s (%lldx%lld), %s, %lld steps of %s (lr %g) on %s\n",
              p.get("content").c_str(), static_cast<long long>(content_im.width),
              static_cast<long long>(content_im.height), p.get("style").c_str(),
              static_cast<long long>(style_im.width), static_cast<long long>(style_im.height),
              p.has("weights") ? "pretrained weights" : "random weights", static_cast<long long>(steps),
              optimizer.c_str(), lr, device.str().c_str());
  std::string style_list;
  for (size_t k = 0; k < layers.style_names.size(); ++k) {
    if (k) style_list += ", ";
    style_list += layers.style_names[k];
  }
  std::printf("layers: content %s (weight %g), style %s (weight %g each%s)\n", p.get("content-layer").c_str(),
              content_weight, style_list.c_str(), style_weight,
              p.get("style-layers").find(':') != std::string::npos ? ", times the given factors" : "");
  std::fflush(stdout);

  // One evaluation: zero the image's gradient, forward, backward; logs and saves by count.
  int64_t evals = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto evaluate = [&]() -> double {
    x.zero_grad();
    autograd::Tape tape;
    models::StyleLosses l;
    {
      autograd::GradRecorder rec(tape);
      l = loss(x);
    }
    tape.backward(l.total);
    ++evals;
    const double total = l.total.to(Device::cpu()).to(DType::F64).item<double>();
    DT_CHECK(std::isfinite(total), "dtrain style: the loss became ", total, " at step ", evals,
             "; lower --lr or the loss weights");
    if (evals % log_every == 0 || evals == 1 || evals == steps) {
      double style_sum = 0;
      for (size_t k = 0; k < l.style.size(); ++k) {
        style_sum += o.style_weights[k] * l.style[k].to(Device::cpu()).to(DType::F64).item<double>();
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %lld/%lld  loss %.4g  content %.4g  style %.4g  %.2f s/step\n", static_cast<long long>(evals),
                  static_cast<long long>(steps), total, content_weight * l.content.to(Device::cpu()).item<float>(),
                  style_sum, secs / static_cast<double>(evals));
      std::fflush(stdout);
    }
    return total;
  };
  // Intermediate images are the state after `done` completed steps.
  auto maybe_save = [&](int64_t done) {
    if (save_every > 0 && done > 0 && done % save_every == 0 && done < steps) {
      const std::string name = intermediate_name(out, done);
      io::write_image(name, to_image(x));
      std::printf("wrote %s\n", name.c_str());
    }
  };

  if (steps > 0 && optimizer == "adam") {
    optim::Adam adam({{"image", x}}, {.lr = lr});
    for (int64_t s = 1; s <= steps; ++s) {
      evaluate();
      adam.step();
      clamp01_(x);
      maybe_save(s);
    }
  } else if (steps > 0) {
    // One L-BFGS call of at most `steps` evaluations: each iteration evaluates once
    // (no line search), so iterations = evaluations. It may stop earlier on convergence.
    optim::LBFGS lbfgs({{"image", x}}, {.lr = lr, .max_iter = steps, .max_eval = steps + 1});
    lbfgs.step([&] {
      // The state after the previous evaluation's update is what this one evaluates.
      maybe_save(evals);
      return evaluate();
    });
    if (evals < steps) std::printf("L-BFGS converged after %lld steps\n", static_cast<long long>(evals));
  }
  io::write_image(out, to_image(x));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s (%lldx%lld) after %lld steps in %.1f s\n", out.c_str(), static_cast<long long>(content_im.width),
              static_cast<long long>(content_im.height), static_cast<long long>(evals), secs);
  return 0;
}

}  // namespace dtrain::cli
