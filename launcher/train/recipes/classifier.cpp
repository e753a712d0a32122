// The image classifier recipe: model.name = mlp | small_cnn | small_vgg | vgg16_cifar |
// vgg16 (docs/TRAINING.md). Softmax cross-entropy on labelled images; evaluation is the
// test set's accuracy and loss, each rank evaluating its shard (no drop_last) and the
// sums all-reduced.
#include <algorithm>

#include "core/error.h"
#include "core/functional.h"
#include "core/models/image_classifier.h"
#include "launcher/train/common.h"
#include "launcher/train/recipes/image_inputs.h"
#include "launcher/train/recipes/single_network.h"
#include "launcher/train/registry.h"

namespace dtrain::launcher {

namespace {

class ClassifierRecipe final : public SingleNetworkRecipe {
 public:
  explicit ClassifierRecipe(const Config& cfg) : SingleNetworkRecipe(cfg) {
    const bool tanh = cfg.data.normalize == "tanh";  // "auto" is meanstd for a classifier
    train_inputs_.range = test_inputs_.range = tanh ? PixelInputs::Range::kTanh : PixelInputs::Range::kMeanStd;
  }

  void check_train_data(const RunContext&, data::Loader& train) override {
    DT_CHECK_AS(train.kind() == data::Kind::ImageClassification, ConfigError, "data.train = ", cfg_.data.train,
                " is a ", data::kind_name(train.kind()), " file; dtrain train needs an image classification file");
    train_schema_ = train.image_schema();
  }

  void setup(const RunContext& ctx, const data::LoaderConfig& lc) override {
    const int64_t classes = cfg_.model.classes > 0 ? cfg_.model.classes : train_schema_.num_classes();
    DT_CHECK_AS(classes >= train_schema_.num_classes(), ConfigError, "model.classes = ", cfg_.model.classes, " but ",
                cfg_.data.train, " has ", train_schema_.num_classes(), " classes");
    open_test(lc, data::Kind::ImageClassification, "an image classification file is needed");
    if (test_) {
      test_schema_ = test_->image_schema();
      const data::ImageSchema& a = train_schema_;
      const data::ImageSchema& b = test_schema_;
      DT_CHECK_AS(b.height == a.height && b.width == a.width && b.channels == a.channels, ConfigError,
                  "data.test images are ", b.height, "x", b.width, "x", b.channels, " but data.train images are ",
                  a.height, "x", a.width, "x", a.channels);
      DT_CHECK_AS(b.num_classes() <= classes, ConfigError, "data.test has ", b.num_classes(), " classes, the model ",
                  classes);
    }
    const data::ImageSchema& s = train_schema_;
    models::BuiltClassifier built = models::make_image_classifier(
        classifier_spec(cfg_.model), s.channels, s.height, s.width, classes, static_cast<uint64_t>(cfg_.seed),
        ctx.world.rank());
    module_ = built.module;
    description_ = built.description;
    finish_setup(ctx);
  }

  RunHeader header() const override {
    const data::ImageSchema& s = train_schema_;
    return base_header(std::to_string(s.n) + " samples " + std::to_string(s.height) + "x" + std::to_string(s.width) +
                       "x" + std::to_string(s.channels));
  }

  Metrics evaluate(const RunContext& ctx, const EvalPoint& at) override {
    // Batch-norm running statistics differ between ranks (each saw its own batches):
    // evaluate every shard with rank 0's, as one model would.
    for (const auto& [name, t] : buffers_) ctx.world.group().broadcast(t, 0)->synchronize();
    module_->eval();
    double correct = 0, loss_sum = 0, samples = 0;
    {
      autograd::NoGrad no_grad;
      const int64_t n = test_->batches_per_epoch();
      for (int64_t i = 0; i < n; ++i) {
        data::Batch b = test_->next();
        if (b.size == 0) continue;
        Tensor logits = module_->forward(test_inputs_.apply(b.images, test_schema_));
        Tensor loss = fn::softmax_cross_entropy(logits, b.labels);
        loss_sum += loss.item<float>() * static_cast<double>(b.size);
        std::vector<float> l = logits.to(Device::cpu()).to_vector<float>();
        std::vector<int64_t> y = b.labels.to(Device::cpu()).to_vector<int64_t>();
        const int64_t k = logits.size(1);
        for (int64_t r = 0; r < b.size; ++r) {
          const float* row = l.data() + r * k;
          if (std::max_element(row, row + k) - row == y[static_cast<size_t>(r)]) correct += 1;
        }
        samples += static_cast<double>(b.size);
      }
    }
    module_->train();
    Tensor sums = Tensor::from_vector<double>({correct, samples, loss_sum}, {3});
    ctx.world.control().all_reduce(sums, dist::ReduceOp::Sum)->wait();
    std::vector<double> s = sums.to_vector<double>();
    Metrics m;
    m.set("test_accuracy", s[1] > 0 ? s[0] / s[1] : 0);
    m.set("test_loss", s[1] > 0 ? s[2] / s[1] : 0);
    m.set("test_samples", s[1]);
    if (ctx.rank0()) {
      std::printf("eval  step %lld/%lld | epoch %.2f | test accuracy %.2f%% (%lld samples) | test loss %.4f\n",
                  static_cast<long long>(at.step), static_cast<long long>(ctx.total_steps), at.epoch,
                  100 * m.get("test_accuracy"), static_cast<long long>(s[1]), m.get("test_loss"));
      std::fflush(stdout);
      ctx.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(at.step) + ",\"epoch\":" +
                        json_number(at.epoch) + ",\"test_accuracy\":" + json_number(m.get("test_accuracy")) +
                        ",\"test_loss\":" + json_number(m.get("test_loss")) + ",\"test_samples\":" +
                        std::to_string(static_cast<int64_t>(s[1])) + ",\"time_s\":" + json_number(at.elapsed) + "}");
    }
    return m;
  }

  std::string final_line(const TrainSummary& s, int world_size) const override {
    if (!s.evaluated) return SingleNetworkRecipe::final_line(s, world_size);
    return format("final test accuracy %.2f%% (test loss %.4f, %lld steps, %d rank%s, %.1f s)",
                  100 * s.eval.get("test_accuracy"), s.eval.get("test_loss"), static_cast<long long>(s.steps),
                  world_size, world_size > 1 ? "s" : "", s.seconds);
  }

 protected:
  Tensor objective(const data::Batch& b, int64_t accum, Tensor& mean, int64_t& units) override {
    Tensor logits = module_->forward(train_inputs_.apply(b.images, train_schema_));
    mean = fn::softmax_cross_entropy(logits, b.labels);
    units = b.size;
    // Each micro-batch's mean loss weighs 1/accum: the step's gradient is the mean over
    // all its samples, as one batch of accum x batch_size would give.
    return accum > 1 ? fn::scale(mean, 1.0 / static_cast<double>(accum)) : mean;
  }

  std::string file_manifest(const std::string& split, bool test) const override {
    return manifest_line(split, test ? test_schema_ : train_schema_);
  }

 private:
  data::ImageSchema train_schema_, test_schema_;
  PixelInputs train_inputs_, test_inputs_;
};

std::vector<ConfigKey> classifier_keys() {
  return {
      DT_CONFIG_KEY("model.classes", Int, model.classes, "output classes; 0 = the training file's class count"),
      DT_CONFIG_KEY("model.dropout", Float, model.dropout, "dropout probability in the VGG classifiers, in [0, 1)"),
      DT_CONFIG_KEY("model.fc_dropout", Float, model.fc_dropout,
                    "mlp, small_cnn: dropout before the last layer, in [0, 1); 0 = none"),
  };
}

void validate_classifier(const Config& c, const ConfigCheck& check) {
  if (c.model.classes < 0) check.fail("model.classes", "must be >= 0 (0: from the training file)");
  if (!(c.model.dropout >= 0 && c.model.dropout < 1)) check.fail("model.dropout", "must be in [0, 1)");
  if (!(c.model.fc_dropout >= 0 && c.model.fc_dropout < 1)) check.fail("model.fc_dropout", "must be in [0, 1)");
}

}  // namespace

RecipeEntry classifier_recipe() {
  return {"classifier", models::image_classifier_names(), "docs/TRAINING.md",
          [](const Config& cfg) -> std::unique_ptr<Recipe> { return std::make_unique<ClassifierRecipe>(cfg); },
          classifier_keys, validate_classifier};
}

}  // namespace dtrain::launcher
