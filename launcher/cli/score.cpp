// `dtrain score`: see score.h.
#include "launcher/cli/score.h"

#include "launcher/cli/commands.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include <thread>

#include "core/autograd.h"
#include "core/checkpoint.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "datasets/loader.h"
#include "datasets/schema.h"
#include "launcher/cli/args.h"
#include "launcher/train/config.h"
#include "launcher/train/common.h"
#include "launcher/train/registry.h"
#include "ops/cpu_threads.h"

namespace dtrain::cli {

namespace {

using launcher::json_number;
using launcher::json_string;

constexpr const char* kEpilog =
    "For each FILE (an HDF5 image file, docs/DATASETS.md; labels optional) it prints the number\n"
    "of samples, the score exp(mean_x KL(p(y|x) || p(y))) with p(y|x) the classifier's softmax\n"
    "and p(y) its mean over the file (1 <= score <= K, the number of classes), the histogram of\n"
    "the predicted classes (argmax) and, when the file has labels, the classifier's accuracy.\n"
    "The classifier is a checkpoint of the classifier recipe: its model is rebuilt from the\n"
    "config stored in the checkpoint and its training file's schema (size, channels, classes,\n"
    "mean/std); --classifier-data names that file when it is no longer where the config says.\n"
    "\n"
    "Example:\n"
    "  dtrain train configs/fashion_mnist_cnn.toml --checkpoint-dir runs/cnn\n"
    "  dtrain score --classifier runs/cnn/step-938.h5 runs/dcgan/samples.h5 data/fashion_mnist_test.h5\n"
    "\n"
    "Exit codes: 0 scored, 1 a file could not be read, 2 bad usage or input (a missing checkpoint,\n"
    "images of another size than the classifier's).";

// The classifier of a checkpoint, in eval mode on the CPU.
struct Classifier {
  launcher::Config cfg;
  data::ImageSchema train;  // its training file's schema
  int64_t classes = 0;
  std::vector<std::string> class_names;  // size `classes`
  bool tanh_inputs = false;
  int64_t step = 0;
  models::BuiltClassifier model;
};

Classifier load_classifier(const std::string& path, const std::string& data_override) {
  DT_CHECK_AS(std::filesystem::exists(path), ConfigError, "dtrain score: --classifier ", path,
              " does not exist (a checkpoint step-<N>.h5 that dtrain train wrote to its checkpoint.dir)");
  ckpt::Contents c = ckpt::read(path);  // verifies marker, checksum and format version
  Classifier k;
  k.step = c.trainer.step;
  k.cfg = launcher::parse_config(c.trainer.config, "the config stored in " + path);
  const std::string& name = k.cfg.model.name;
  const launcher::RecipeEntry* recipe = launcher::find_recipe(name);
  DT_CHECK_AS(recipe != nullptr && std::string(recipe->name) == "classifier", ConfigError, "dtrain score: --classifier ", path, " is a ", name,
              " checkpoint; it needs a checkpoint of the classifier recipe (model.name mlp, small_cnn, small_vgg, "
              "vgg16_cifar or vgg16)");
  const std::string data_path = data_override.empty() ? k.cfg.data.train : data_override;
  DT_CHECK_AS(std::filesystem::exists(data_path), ConfigError, "dtrain score: the classifier's training file ",
              data_path,
              data_override.empty() ? " (data.train of the config stored in the checkpoint) does not exist; pass "
                                      "--classifier-data FILE with that file where it is now"
                                    : " (--classifier-data) does not exist");
  {
    io::H5File f = io::H5File::open_read(data_path);
    k.train = data::validate_images(f, /*require_labels=*/true);
  }
  k.classes = k.cfg.model.classes > 0 ? k.cfg.model.classes : k.train.num_classes();
  for (int64_t y = 0; y < k.classes; ++y) {
    k.class_names.push_back(y < k.train.num_classes() ? k.train.classes[static_cast<size_t>(y)] : std::to_string(y));
  }
  k.tanh_inputs = k.cfg.data.normalize == "tanh";  // "auto" is meanstd for a classifier
  k.model = models::make_image_classifier(launcher::classifier_spec(k.cfg.model), k.train.channels, k.train.height,
                                          k.train.width, k.classes, static_cast<uint64_t>(k.cfg.seed), 0);
  try {
    launcher::load_model(path, c, *k.model.module);
  } catch (const ValueError& e) {
    DT_THROW(ValueError, e.what(), " (model rebuilt from its stored config and ", data_path,
             "; is --classifier-data the file it was trained on?)");
  }
  k.model.module->eval();
  return k;
}

struct FileScore {
  std::string path;
  int64_t samples = 0;
  double score = 0;
  std::vector<int64_t> histogram;
  bool labeled = false;
  double accuracy = 0;
};

FileScore score_file(Classifier& k, const std::string& path, int64_t batch) {
  io::H5File f = io::H5File::open_read(path);
  // A labelled file is validated as one (labels in range of its classes).
  const data::ImageSchema s = data::validate_images(f, /*require_labels=*/f.has("/labels"));
  DT_CHECK_AS(s.height == k.train.height && s.width == k.train.width && s.channels == k.train.channels, ConfigError,
              "dtrain score: ", path, " has ", s.height, "x", s.width, "x", s.channels,
              " images, but the classifier takes ", k.train.height, "x", k.train.width, "x", k.train.channels,
              " (its training file ", k.train.path, "); score images of the classifier's size and channels");
  const int64_t n = s.n, c = s.channels, hw = s.height * s.width, kk = k.classes;
  // Inputs as the classifier was trained: (p/255 - mean) / std with its training file's
  // per-channel mean and std, or 2 p/255 - 1 for data.normalize = tanh.
  std::vector<float> scale(static_cast<size_t>(c)), shift(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    if (k.tanh_inputs) {
      scale[static_cast<size_t>(ch)] = 2.0f / 255.0f;
      shift[static_cast<size_t>(ch)] = -1.0f;
    } else {
      const double mean = ch < static_cast<int64_t>(k.train.mean.size()) ? k.train.mean[static_cast<size_t>(ch)] : 0.0;
      const double sd = ch < static_cast<int64_t>(k.train.std.size()) ? k.train.std[static_cast<size_t>(ch)] : 1.0;
      scale[static_cast<size_t>(ch)] = static_cast<float>(1.0 / (255.0 * sd));
      shift[static_cast<size_t>(ch)] = static_cast<float>(-mean / sd);
    }
  }
  FileScore out;
  out.path = path;
  out.samples = n;
  out.labeled = s.has_labels;
  out.histogram.assign(static_cast<size_t>(kk), 0);
  std::vector<double> probs(static_cast<size_t>(n * kk));
  int64_t correct = 0;
  std::vector<float> x;
  for (int64_t at = 0; at < n; at += batch) {
    const int64_t b = std::min(batch, n - at);
    const Tensor pixels = f.read_rows("/images", at, b);  // u8 (b, H, W, C)
    const uint8_t* px = pixels.data<uint8_t>();
    x.assign(static_cast<size_t>(b * c * hw), 0.0f);
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t p = 0; p < hw; ++p) {
        for (int64_t ch = 0; ch < c; ++ch) {
          x[static_cast<size_t>((i * c + ch) * hw + p)] =
              static_cast<float>(px[(i * hw + p) * c + ch]) * scale[static_cast<size_t>(ch)] +
              shift[static_cast<size_t>(ch)];
        }
      }
    }
    std::vector<float> logits;
    {
      autograd::NoGrad no_grad;
      logits = k.model.module->forward(Tensor::from_vector<float>(x, {b, c, s.height, s.width}))
                   .to(DType::F32)
                   .to_vector<float>();
    }
    std::vector<int64_t> labels;
    if (s.has_labels) labels = f.read_rows("/labels", at, b).to_vector<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      // Softmax in double, shifted by the row's maximum.
      const float* row = logits.data() + i * kk;
      const int64_t best = std::max_element(row, row + kk) - row;
      double z = 0;
      double* p = probs.data() + (at + i) * kk;
      for (int64_t y = 0; y < kk; ++y) z += p[y] = std::exp(static_cast<double>(row[y]) - row[best]);
      for (int64_t y = 0; y < kk; ++y) p[y] /= z;
      ++out.histogram[static_cast<size_t>(best)];
      if (s.has_labels && labels[static_cast<size_t>(i)] == best) ++correct;
    }
  }
  out.score = inception_score(probs, n, kk);
  out.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  return out;
}

// Options with a value; everything else not starting with '-' is a file to score.
bool takes_value(const std::string& a) { return a == "--classifier" || a == "--classifier-data" || a == "--batch"; }

}  // namespace

int score_main(const std::vector<std::string>& args) {
  cli::ArgParser p("dtrain score",
                   "Inception-Score-style quality of image files (e.g. a GAN's gan.export) with a classifier "
                   "trained by dtrain (docs/GAN.md).");
  p.add_option("classifier", "CKPT", "checkpoint of a classifier trained by dtrain train (required)");
  p.add_option("classifier-data", "FILE",
               "the classifier's training file, when it moved since training (default: its config's data.train)");
  p.add_option("batch", "N", "images per forward pass", "256");
  p.add_flag("json", "print one JSON object per file instead of text");
  p.add_positional("FILE.h5 [FILE.h5 ...]", "image files to score (HDF5, docs/DATASETS.md)");
  p.set_epilog(kEpilog);
  // ArgParser has fixed positionals: hand it the options and the first file, keep the rest.
  std::vector<std::string> options, files;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind("-", 0) == 0) {
      options.push_back(args[i]);
      if (takes_value(args[i]) && i + 1 < args.size()) options.push_back(args[++i]);
    } else {
      files.push_back(args[i]);
    }
  }
  if (!files.empty()) options.push_back(files.front());
  p.parse(options);
  if (p.help_requested()) {
    std::fputs(p.help().c_str(), stdout);
    return 0;
  }
  DT_CHECK_AS(p.has("classifier"), ConfigError,
              "dtrain score: --classifier CKPT is required; run 'dtrain score --help' for the usage");
  const int64_t batch = p.get_int("batch");
  DT_CHECK_AS(batch >= 1, ConfigError, "dtrain score: --batch must be >= 1, got ", batch);
  const bool json = p.flag("json");
  for (const std::string& f : files) {
    DT_CHECK_AS(std::filesystem::exists(f), ConfigError, "dtrain score: ", f, " does not exist");
  }

  ops::cpu::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const std::string ckpt_path = p.get("classifier");
  Classifier k = load_classifier(ckpt_path, p.has("classifier-data") ? p.get("classifier-data") : "");
  if (!json) {
    std::printf("classifier %s: %s, step %lld; %lldx%lldx%lld images, %lld classes (%s)\n", ckpt_path.c_str(),
                k.model.description.c_str(), static_cast<long long>(k.step), static_cast<long long>(k.train.height),
                static_cast<long long>(k.train.width), static_cast<long long>(k.train.channels),
                static_cast<long long>(k.classes), k.train.path.c_str());
  }
  for (const std::string& f : files) {
    const FileScore s = score_file(k, f, batch);
    if (json) {
      std::string line = "{\"file\":" + json_string(s.path) + ",\"samples\":" + std::to_string(s.samples) +
                         ",\"score\":" + json_number(s.score) + ",\"classes\":" + std::to_string(k.classes) +
                         ",\"histogram\":[";
      for (size_t y = 0; y < s.histogram.size(); ++y) {
        if (y) line += ",";
        line += std::to_string(s.histogram[y]);
      }
      line += "],\"class_names\":[";
      for (size_t y = 0; y < k.class_names.size(); ++y) {
        if (y) line += ",";
        line += json_string(k.class_names[y]);
      }
      line += "]";
      if (s.labeled) line += ",\"accuracy\":" + json_number(s.accuracy);
      line += ",\"classifier\":" + json_string(ckpt_path) + "}";
      std::printf("%s\n", line.c_str());
    } else {
      std::printf("%s: %lld samples | score %.4f (1 to %lld)", s.path.c_str(), static_cast<long long>(s.samples),
                  s.score, static_cast<long long>(k.classes));
      if (s.labeled) std::printf(" | accuracy %.2f%%", 100 * s.accuracy);
      std::printf("\n  predicted classes:");
      for (size_t y = 0; y < s.histogram.size(); ++y) {
        std::printf("%s %s %lld", y ? " |" : "", k.class_names[y].c_str(), static_cast<long long>(s.histogram[y]));
      }
      std::printf("\n");
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace dtrain::cli
