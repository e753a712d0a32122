// The text classifier recipe: model.name = "text_classifier" (docs/TEXT_CLASSIFIER.md). A
// recurrent classifier (core/models/text_classifier.h) on a sequence-classification file
// (docs/DATASETS.md; e.g. the FreeDict language-identification words of
// scripts/prepare-data.sh): softmax cross-entropy over the classes. Evaluation: held-out
// loss and accuracy, the majority-class baseline, per-class precision and recall and the
// confusion matrix (rows: true class, columns: predicted), all from counts all-reduced over
// the ranks' shards; rank 0 prints them, records them in the metrics file and, with
// text.confusion, draws the matrix as a PNG.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/functional.h"
#include "core/io/image.h"
#include "core/models/text_classifier.h"
#include "launcher/train/common.h"
#include "launcher/train/recipes/single_network.h"
#include "launcher/train/registry.h"

namespace dtrain::launcher {

namespace {

// The confusion matrix `counts` (K x K, rows true classes) as a picture: a cell of
// `cell` pixels per entry, grey level = the row's share (white: all of the row's samples
// there), with a one-pixel grid. Rows and columns follow the file's class order.
io::Image confusion_image(const std::vector<double>& counts, int64_t k, int64_t cell = 24) {
  io::Image img;
  img.width = img.height = k * (cell + 1) + 1;
  img.channels = 1;
  img.pixels.assign(static_cast<size_t>(img.width * img.height), 96);  // the grid lines
  for (int64_t t = 0; t < k; ++t) {
    double row = 0;
    for (int64_t p = 0; p < k; ++p) row += counts[static_cast<size_t>(t * k + p)];
    for (int64_t p = 0; p < k; ++p) {
      const double share = row > 0 ? counts[static_cast<size_t>(t * k + p)] / row : 0;
      const auto v = static_cast<uint8_t>(std::lround(255 * share));
      for (int64_t y = 0; y < cell; ++y) {
        for (int64_t x = 0; x < cell; ++x) {
          img.pixels[static_cast<size_t>((t * (cell + 1) + 1 + y) * img.width + p * (cell + 1) + 1 + x)] = v;
        }
      }
    }
  }
  return img;
}

class TextClassifierRecipe final : public SingleNetworkRecipe {
 public:
  explicit TextClassifierRecipe(const Config& cfg) : SingleNetworkRecipe(cfg), opt_(cfg.text) {}

  void check_train_data(const RunContext&, data::Loader& train) override {
    DT_CHECK_AS(train.kind() == data::Kind::SequenceClassification, ConfigError, "data.train = ", cfg_.data.train,
                " is a ", data::kind_name(train.kind()),
                " file; model.name = text_classifier needs a sequence-classification file (dtrain data convert words)");
    schema_ = train.sequence_schema();
  }

  void setup(const RunContext& ctx, const data::LoaderConfig& lc) override {
    open_test(lc, data::Kind::SequenceClassification,
              "model.name = text_classifier needs a sequence-classification file");
    if (test_) {
      test_schema_ = test_->sequence_schema();
      DT_CHECK_AS(test_schema_.vocab == schema_.vocab, ConfigError, "data.test = ", cfg_.data.test,
                  " and data.train = ", cfg_.data.train,
                  " have different vocabularies; write both with one `dtrain data convert words` call");
      DT_CHECK_AS(test_schema_.classes == schema_.classes, ConfigError, "data.test = ", cfg_.data.test,
                  " and data.train = ", cfg_.data.train, " have different classes");
    }
    models::TextClassifierConfig tc = model_config(cfg_, schema_);
    // One initialization stream for every rank (rank 0's values are broadcast anyway).
    Generator gen = Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "init");
    auto net = std::make_shared<models::TextClassifier>(tc, gen);
    model_ = net.get();
    module_ = net;
    std::ostringstream desc;
    desc << "text_classifier " << schema_.tokens << " " << tc.vocab << " -> " << tc.classes << " classes (emb "
         << tc.emb_dim << ", " << (tc.bidirectional ? "bidirectional " : "") << "LSTM " << tc.hidden << " x "
         << tc.layers << ")";
    description_ = desc.str();
    finish_setup(ctx);
  }

  RunHeader header() const override {
    std::string classes;
    for (const std::string& c : schema_.classes) classes += (classes.empty() ? "" : " ") + c;
    return base_header(format("%lld sequences of up to %lld %s, %lld classes (%s)", static_cast<long long>(schema_.n),
                              static_cast<long long>(schema_.max_len), schema_.tokens.c_str(),
                              static_cast<long long>(schema_.num_classes()), classes.c_str()));
  }

  Metrics evaluate(const RunContext& ctx, const EvalPoint& at) override {
    const int64_t k = schema_.num_classes();
    module_->eval();
    // [loss sum, samples, confusion (K x K)]
    std::vector<double> sums(static_cast<size_t>(2 + k * k), 0.0);
    {
      autograd::NoGrad no_grad;
      for (int64_t i = 0, n = test_->batches_per_epoch(); i < n; ++i) {
        data::Batch b = test_->next();
        if (b.size == 0) continue;
        Tensor logits = model_->forward(b.tokens, b.lengths);
        sums[0] += fn::softmax_cross_entropy(logits, b.labels).item<float>() * static_cast<double>(b.size);
        sums[1] += static_cast<double>(b.size);
        const std::vector<float> l = logits.to(Device::cpu()).to(DType::F32).to_vector<float>();
        const std::vector<int64_t> y = b.labels.to(Device::cpu()).to_vector<int64_t>();
        for (int64_t r = 0; r < b.size; ++r) {
          const float* row = l.data() + r * k;
          const int64_t pred = std::max_element(row, row + k) - row;
          sums[static_cast<size_t>(2 + y[static_cast<size_t>(r)] * k + pred)] += 1;
        }
      }
    }
    module_->train();
    Tensor t = Tensor::from_vector<double>(sums, {static_cast<int64_t>(sums.size())});
    ctx.world.control().all_reduce(t, dist::ReduceOp::Sum)->wait();
    const std::vector<double> s = t.to_vector<double>();
    const std::vector<double> confusion(s.begin() + 2, s.end());
    double correct = 0, majority = 0;
    std::vector<double> precision(static_cast<size_t>(k)), recall(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) {
      double row = 0, col = 0;
      for (int64_t j = 0; j < k; ++j) {
        row += confusion[static_cast<size_t>(c * k + j)];
        col += confusion[static_cast<size_t>(j * k + c)];
      }
      const double hit = confusion[static_cast<size_t>(c * k + c)];
      correct += hit;
      majority = std::max(majority, row);
      recall[static_cast<size_t>(c)] = row > 0 ? hit / row : 0;
      precision[static_cast<size_t>(c)] = col > 0 ? hit / col : 0;
    }
    const double n = s[1];
    Metrics m;
    m.set("test_loss", n > 0 ? s[0] / n : 0);
    m.set("test_accuracy", n > 0 ? correct / n : 0);
    m.set("majority_accuracy", n > 0 ? majority / n : 0);
    m.set("test_samples", n);
    if (ctx.rank0()) report(ctx, at, m, confusion, precision, recall);
    return m;
  }

  std::string final_line(const TrainSummary& s, int world_size) const override {
    if (!s.evaluated) return SingleNetworkRecipe::final_line(s, world_size);
    return format("final test accuracy %.2f%% (majority class %.2f%%, test loss %.4f, %lld steps, %d rank%s, %.1f s)",
                  100 * s.eval.get("test_accuracy"), 100 * s.eval.get("majority_accuracy"), s.eval.get("test_loss"),
                  static_cast<long long>(s.steps), world_size, world_size > 1 ? "s" : "", s.seconds);
  }

  // The model for a file's vocabulary and classes (also `dtrain predict`'s).
  static models::TextClassifierConfig model_config(const Config& cfg, const data::SequenceSchema& s) {
    models::TextClassifierConfig tc;
    tc.vocab = static_cast<int64_t>(s.vocab.size());
    tc.classes = s.num_classes();
    tc.emb_dim = cfg.text.emb_dim;
    tc.hidden = cfg.text.hidden;
    tc.layers = cfg.text.layers;
    tc.bidirectional = cfg.text.bidirectional;
    return tc;
  }

 protected:
  Tensor objective(const data::Batch& b, int64_t accum, Tensor& mean, int64_t& units) override {
    mean = fn::softmax_cross_entropy(model_->forward(b.tokens, b.lengths), b.labels);
    units = b.size;
    return accum > 1 ? fn::scale(mean, 1.0 / static_cast<double>(accum)) : mean;
  }

  std::string file_manifest(const std::string& split, bool test) const override {
    const data::SequenceSchema& s = test ? test_schema_ : schema_;
    std::ostringstream os;
    os << split << ": " << basename_of(s.path) << ", " << s.n << " sequences of up to " << s.max_len << " "
       << s.tokens << ", vocabulary " << s.vocab.size() << ", " << s.num_classes() << " classes";
    return os.str();
  }

 private:
  // Rank 0: the evaluation's lines, metrics record and confusion picture.
  void report(const RunContext& ctx, const EvalPoint& at, const Metrics& m, const std::vector<double>& confusion,
              const std::vector<double>& precision, const std::vector<double>& recall) {
    const int64_t k = schema_.num_classes();
    std::string picture;
    if (!opt_.confusion.empty()) {
      picture = opt_.confusion;
      for (auto p = picture.find("{step}"); p != std::string::npos; p = picture.find("{step}")) {
        picture.replace(p, 6, std::to_string(at.step));
      }
      const std::filesystem::path fp(picture);
      if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
      io::write_image(picture, confusion_image(confusion, k));
    }
    std::printf("eval  step %lld/%lld | epoch %.2f | test accuracy %.2f%% (%lld samples; majority class %.2f%%) | "
                "test loss %.4f%s%s\n",
                static_cast<long long>(at.step), static_cast<long long>(ctx.total_steps), at.epoch,
                100 * m.get("test_accuracy"), static_cast<long long>(m.get("test_samples")),
                100 * m.get("majority_accuracy"), m.get("test_loss"), picture.empty() ? "" : " | ", picture.c_str());
    std::string per_class = "  precision / recall:", json_classes = "[", json_matrix = "[";
    for (int64_t c = 0; c < k; ++c) {
      const std::string& name = schema_.classes[static_cast<size_t>(c)];
      per_class += format(" %s %.1f/%.1f", name.c_str(), 100 * precision[static_cast<size_t>(c)],
                          100 * recall[static_cast<size_t>(c)]);
      if (c > 0) json_classes += ',';
      json_classes += "{\"class\":" + json_string(name) + ",\"precision\":" +
                      json_number(precision[static_cast<size_t>(c)]) + ",\"recall\":" +
                      json_number(recall[static_cast<size_t>(c)]) + "}";
      json_matrix += c ? ",[" : "[";
      for (int64_t j = 0; j < k; ++j) {
        if (j > 0) json_matrix += ',';
        json_matrix += std::to_string(static_cast<int64_t>(confusion[static_cast<size_t>(c * k + j)]));
      }
      json_matrix += "]";
    }
    std::printf("%s\n", per_class.c_str());
    std::fflush(stdout);
    ctx.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(at.step) + ",\"epoch\":" +
                      json_number(at.epoch) + ",\"test_accuracy\":" + json_number(m.get("test_accuracy")) +
                      ",\"majority_accuracy\":" + json_number(m.get("majority_accuracy")) + ",\"test_loss\":" +
                      json_number(m.get("test_loss")) + ",\"test_samples\":" +
                      std::to_string(static_cast<int64_t>(m.get("test_samples"))) + ",\"classes\":" + json_classes +
                      "],\"confusion\":" + json_matrix + "]" +
                      (picture.empty() ? "" : ",\"confusion_png\":" + json_string(picture)) + ",\"time_s\":" +
                      json_number(at.elapsed) + "}");
  }

  const TextRecipeConfig& opt_;
  data::SequenceSchema schema_, test_schema_;
  models::TextClassifier* model_ = nullptr;  // module_
};

std::vector<ConfigKey> text_keys() {
  return {
      DT_CONFIG_KEY("text.emb_dim", Int, text.emb_dim, "text_classifier: embedding width"),
      DT_CONFIG_KEY("text.hidden", Int, text.hidden, "text_classifier: LSTM units per direction"),
      DT_CONFIG_KEY("text.layers", Int, text.layers, "text_classifier: LSTM layers"),
      DT_CONFIG_KEY("text.bidirectional", Bool, text.bidirectional,
                    "text_classifier: a bidirectional LSTM (the classifier reads both final states)"),
      DT_CONFIG_KEY("text.confusion", String, text.confusion,
                    "text_classifier: PNG of the confusion matrix written by rank 0 at each evaluation (rows: true "
                    "class, columns: predicted; \"{step}\" is replaced by the step); \"\" = none"),
  };
}

void validate_text(const Config& c, const ConfigCheck& check) {
  if (c.text.emb_dim < 1) check.fail("text.emb_dim", "must be >= 1");
  if (c.text.hidden < 1) check.fail("text.hidden", "must be >= 1");
  if (c.text.layers < 1) check.fail("text.layers", "must be >= 1");
  if (c.model.name == "text_classifier") {
    if (c.data.pad_crop != 0 || c.data.hflip) {
      check.fail("data.augment", "is for images; model.name = text_classifier reads token sequences");
    }
  } else if (!c.text.confusion.empty()) {
    check.fail("text.confusion", "is for model.name = text_classifier only");
  }
}

}  // namespace

models::TextClassifierConfig text_classifier_config(const Config& cfg, const data::SequenceSchema& s) {
  return TextClassifierRecipe::model_config(cfg, s);
}

RecipeEntry text_classifier_recipe() {
  return {"text_classifier", {"text_classifier"}, "docs/TEXT_CLASSIFIER.md",
          [](const Config& cfg) -> std::unique_ptr<Recipe> { return std::make_unique<TextClassifierRecipe>(cfg); },
          text_keys, validate_text};
}

}  // namespace dtrain::launcher
