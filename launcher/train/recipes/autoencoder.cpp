// The autoencoder recipe: model.name = "autoencoder" (docs/AUTOENCODER.md). A convolutional
// autoencoder (core/models/autoencoder.h) learns to rebuild images from a small code;
// with autoencoder.noise it learns to denoise (corrupted inputs, clean targets). Pixels
// are p/255 in [0, 1] for the inputs and the targets; the loss is binary cross-entropy on
// the logits (or the MSE of sigmoid(logits)), the mean over pixels. Evaluation: the
// held-out loss, the pixel MSE and its PSNR over the whole test set, and rank 0's PNG grid
// of fixed test images: inputs, (corrupted inputs,) reconstructions, a row each.
//
// Note [Global autoencoder noise]: the denoising noise of a training micro-batch is drawn
// for the GLOBAL micro-batch, (world_size x batch_size, C, H, W), from one stream derived
// from the seed alone ((seed, 0, "autoencoder_noise")), and rank r corrupts its rows
// [r B, (r + 1) B), as the GAN recipe draws its noise (Note [Global GAN noise] in
// dcgan.cpp): W ranks at batch B corrupt each sample exactly as one process at batch W B
// does, and the stream is saved once in a checkpoint. The evaluation's noise comes from a
// stream per rank, (seed, rank, "autoencoder_eval_noise"), restarted at each evaluation, so
// every evaluation of a run sees the same corrupted test images (for a given world size).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/functional.h"
#include "core/io/image_grid.h"
#include "core/models/autoencoder.h"
#include "launcher/train/common.h"
#include "launcher/train/recipes/image_inputs.h"
#include "launcher/train/recipes/single_network.h"
#include "launcher/train/registry.h"

namespace dtrain::launcher {

namespace {

class AutoencoderRecipe final : public SingleNetworkRecipe {
 public:
  explicit AutoencoderRecipe(const Config& cfg) : SingleNetworkRecipe(cfg), opt_(cfg.autoencoder) {
    train_px_.range = test_px_.range = PixelInputs::Range::kUnit;
  }

  // Image files of either kind: the labels are not read.
  void configure_loader(data::LoaderConfig& lc) const override { lc.images_only = true; }

  void check_train_data(const RunContext&, data::Loader& train) override {
    DT_CHECK_AS(train.kind() == data::Kind::ImageOnly, ConfigError, "data.train = ", cfg_.data.train, " is a ",
                data::kind_name(train.kind()), " file; model.name = autoencoder needs an image file");
    schema_ = train.image_schema();
  }

  void setup(const RunContext& ctx, const data::LoaderConfig& lc) override {
    open_test(lc, data::Kind::ImageOnly, "model.name = autoencoder needs an image file");
    if (test_) {
      test_schema_ = test_->image_schema();
      const data::ImageSchema& a = schema_;
      const data::ImageSchema& b = test_schema_;
      DT_CHECK_AS(b.height == a.height && b.width == a.width && b.channels == a.channels, ConfigError,
                  "data.test images are ", b.height, "x", b.width, "x", b.channels, " but data.train images are ",
                  a.height, "x", a.width, "x", a.channels);
    }
    models::AutoencoderConfig ac;
    ac.channels = schema_.channels;
    ac.height = schema_.height;
    ac.width = schema_.width;
    ac.width_mult = opt_.width;
    ac.code = opt_.code;
    // One initialization stream for every rank (rank 0's values are broadcast anyway).
    Generator gen = Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "init");
    auto net = std::make_shared<models::ConvAutoencoder>(ac, gen);
    module_ = net;
    std::ostringstream desc;
    desc << "autoencoder " << ac.height << "x" << ac.width << "x" << ac.channels << " -> code " << ac.code
         << " (width " << ac.width_mult << ", loss " << opt_.loss << ")";
    description_ = desc.str();
    noise_ = std::make_unique<Generator>(Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "autoencoder_noise"));
    finish_setup(ctx);
    if (ctx.rank0() && test_ && !opt_.samples.empty()) prepare_grid(lc);
  }

  RunHeader header() const override {
    const data::ImageSchema& s = schema_;
    std::string data = format("%lld images %lldx%lldx%lld, pixels in [0, 1]", static_cast<long long>(s.n),
                              static_cast<long long>(s.height), static_cast<long long>(s.width),
                              static_cast<long long>(s.channels));
    if (opt_.noise != "none") data += format(", denoising (%s noise %g)", opt_.noise.c_str(), opt_.noise_level);
    return base_header(data);
  }

  Metrics evaluate(const RunContext& ctx, const EvalPoint& at) override {
    module_->eval();
    Generator eval_noise = Generator::derive(static_cast<uint64_t>(cfg_.seed), static_cast<uint64_t>(ctx.world.rank()),
                                             "autoencoder_eval_noise");
    double loss_sum = 0, sq_sum = 0, pixels = 0, samples = 0;
    {
      autograd::NoGrad no_grad;
      const int64_t n = test_->batches_per_epoch();
      for (int64_t i = 0; i < n; ++i) {
        data::Batch b = test_->next();
        if (b.size == 0) continue;
        const Tensor clean = test_px_.apply(b.images, test_schema_);
        Tensor logits = module_->forward(corrupt(clean, eval_noise, b.size, 0));
        loss_sum += loss(logits, clean).item<float>() * static_cast<double>(b.size);
        const double numel = static_cast<double>(clean.numel());
        sq_sum += fn::mse_loss(fn::sigmoid(logits), clean).item<float>() * numel;
        pixels += numel;
        samples += static_cast<double>(b.size);
      }
    }
    module_->train();
    Tensor sums = Tensor::from_vector<double>({loss_sum, sq_sum, pixels, samples}, {4});
    ctx.world.control().all_reduce(sums, dist::ReduceOp::Sum)->wait();
    const std::vector<double> s = sums.to_vector<double>();
    const double mse = s[2] > 0 ? s[1] / s[2] : 0;
    Metrics m;
    m.set("test_loss", s[3] > 0 ? s[0] / s[3] : 0);
    m.set("test_mse", mse);
    m.set("psnr", mse > 0 ? 10 * std::log10(1.0 / mse) : 0);
    m.set("test_samples", s[3]);
    if (ctx.rank0()) {
      std::string grid;
      if (grid_clean_.defined()) grid = write_grid(at.step);
      std::printf("eval  step %lld/%lld | epoch %.2f | held-out loss %.4f | pixel MSE %.5f | PSNR %.2f dB (%lld "
                  "images)%s%s\n",
                  static_cast<long long>(at.step), static_cast<long long>(ctx.total_steps), at.epoch,
                  m.get("test_loss"), mse, m.get("psnr"), static_cast<long long>(s[3]), grid.empty() ? "" : " | ",
                  grid.c_str());
      std::fflush(stdout);
      ctx.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(at.step) + ",\"epoch\":" +
                        json_number(at.epoch) + ",\"test_loss\":" + json_number(m.get("test_loss")) +
                        ",\"test_mse\":" + json_number(mse) + ",\"psnr\":" + json_number(m.get("psnr")) +
                        ",\"test_samples\":" + std::to_string(static_cast<int64_t>(s[3])) +
                        (grid.empty() ? "" : ",\"samples\":" + json_string(grid)) + ",\"time_s\":" +
                        json_number(at.elapsed) + "}");
    }
    return m;
  }

  void fill_checkpoint(ckpt::Contents& c) const override {
    SingleNetworkRecipe::fill_checkpoint(c);
    c.rng.push_back({0, "autoencoder_noise", noise_->state()});
  }

  void restore(const std::string& path, const ckpt::Contents& c) override {
    const ckpt::RngStream* noise = nullptr;
    for (const ckpt::RngStream& s : c.rng) {
      if (s.name == "autoencoder_noise") noise = &s;
    }
    DT_CHECK_AS(noise != nullptr, IoError, "checkpoint '", path,
                "' has no /rng/rank0/autoencoder_noise: it was not written by the autoencoder recipe");
    SingleNetworkRecipe::restore(path, c);
    noise_->set_state(noise->state);
  }

  std::string world_size_note(int64_t) const override {
    return "training continues from the same global sample and noise; with another global batch the result is no "
           "longer identical to an uninterrupted run (docs/CHECKPOINTS.md)";
  }

  std::string final_line(const TrainSummary& s, int world_size) const override {
    if (!s.evaluated) return SingleNetworkRecipe::final_line(s, world_size);
    return format("final held-out loss %.4f, PSNR %.2f dB (%lld steps, %d rank%s, %.1f s)", s.eval.get("test_loss"),
                  s.eval.get("psnr"), static_cast<long long>(s.steps), world_size, world_size > 1 ? "s" : "",
                  s.seconds);
  }

 protected:
  Tensor objective(const data::Batch& b, int64_t accum, Tensor& mean, int64_t& units) override {
    const Tensor clean = train_px_.apply(b.images, schema_);
    // Note [Global autoencoder noise]: this rank's rows of the global micro-batch's noise.
    const int64_t batch = cfg_.batch_size;
    const Tensor input = corrupt(clean, *noise_, world_->size() * batch, world_->rank() * batch);
    mean = loss(module_->forward(input), clean);
    units = b.size;
    return accum > 1 ? fn::scale(mean, 1.0 / static_cast<double>(accum)) : mean;
  }

  std::string file_manifest(const std::string& split, bool test) const override {
    return manifest_line(split, test ? test_schema_ : schema_);
  }
  const char* inputs_name() const override { return train_px_.name(); }

 private:
  // The loss of logits against clean pixels in [0, 1], the mean over pixels.
  Tensor loss(const Tensor& logits, const Tensor& clean) const {
    return opt_.loss == "mse" ? fn::mse_loss(fn::sigmoid(logits), clean) : fn::bce_with_logits(logits, clean);
  }

  // `clean` (n, C, H, W) corrupted by rows [row0, row0 + n) of noise drawn from `gen` for
  // `global_n` images: Gaussian (std noise_level, pixel units, not clipped) or a mask
  // that zeroes each pixel with probability noise_level. `clean` itself without noise.
  Tensor corrupt(const Tensor& clean, Generator& gen, int64_t global_n, int64_t row0) const {
    if (opt_.noise == "none") return clean;
    autograd::NoGrad no_grad;
    Shape shape = clean.shape();
    const int64_t n = shape[0];
    shape[0] = global_n;
    Tensor r = Tensor::empty(shape, clean.dtype(), clean.device());
    if (opt_.noise == "gaussian") {
      gen.normal_(r, 0.0, opt_.noise_level);
      return fn::add(clean, r.rows(row0, n));
    }
    gen.uniform_(r, 0.0, 1.0);
    // Keep a pixel where u >= noise_level: probability 1 - noise_level.
    return fn::mul(clean, fn::step(fn::affine(r.rows(row0, n), 1.0, -opt_.noise_level)));
  }

  // Rank 0: the first samples_n test images and their corrupted versions, fixed for the run.
  void prepare_grid(const data::LoaderConfig& lc) {
    data::LoaderConfig gc = lc;
    gc.path = cfg_.data.test;
    gc.batch_size = std::min<int64_t>(opt_.samples_n, test_schema_.n);
    gc.world_size = 1;
    gc.rank = 0;
    gc.shuffle = false;
    gc.drop_last = false;
    gc.augment = {};
    data::Loader first(gc);
    data::Batch b = first.next();
    grid_clean_ = test_px_.apply(b.images, test_schema_);
    Generator g = Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "autoencoder_grid_noise");
    grid_input_ = corrupt(grid_clean_, g, b.size, 0);
  }

  // Rank 0: the grid's PNG for `step`; returns its path.
  std::string write_grid(int64_t step) {
    std::string path = opt_.samples;
    for (auto at = path.find("{step}"); at != std::string::npos; at = path.find("{step}")) {
      path.replace(at, 6, std::to_string(step));
    }
    const std::filesystem::path fp(path);
    if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
    std::vector<Tensor> rows = {grid_clean_};
    if (opt_.noise != "none") rows.push_back(grid_input_);
    module_->eval();
    {
      autograd::NoGrad no_grad;
      rows.push_back(fn::sigmoid(module_->forward(grid_input_)));
    }
    module_->train();
    std::vector<float> all;
    for (const Tensor& t : rows) {
      const std::vector<float> v = t.to(Device::cpu()).to(DType::F32).to_vector<float>();
      all.insert(all.end(), v.begin(), v.end());
    }
    Shape shape = grid_clean_.shape();
    const int64_t n = shape[0];
    shape[0] = n * static_cast<int64_t>(rows.size());
    // The grid maps [-1, 1] to black..white: pixels p become 2 p - 1.
    Tensor grid = fn::affine(Tensor::from_vector<float>(all, shape), 2.0, -1.0);
    io::write_image_grid(path, grid, 2, 0, n);
    return path;
  }

  const AutoencoderRecipeConfig& opt_;
  data::ImageSchema schema_, test_schema_;
  PixelInputs train_px_, test_px_;
  std::unique_ptr<Generator> noise_;          // Note [Global autoencoder noise]
  Tensor grid_clean_, grid_input_;            // rank 0: the grid's images (n, C, H, W), pixels in [0, 1]
};

std::vector<ConfigKey> autoencoder_keys() {
  return {
      DT_CONFIG_KEY("autoencoder.code", Int, autoencoder.code, "autoencoder: the code's size (numbers per image)"),
      DT_CONFIG_KEY("autoencoder.width", Int, autoencoder.width,
                    "autoencoder: channels of the first convolution (the second has twice as many)"),
      DT_CONFIG_KEY("autoencoder.loss", String, autoencoder.loss,
                    "autoencoder: bce (binary cross-entropy on the logits) | mse (of sigmoid(logits)); pixels in "
                    "[0, 1]"),
      DT_CONFIG_KEY("autoencoder.noise", String, autoencoder.noise,
                    "autoencoder: none | gaussian | mask: denoising, the inputs corrupted (seeded), the targets clean"),
      DT_CONFIG_KEY("autoencoder.noise_level", Float, autoencoder.noise_level,
                    "autoencoder: gaussian noise std in pixel units, or the probability that mask zeroes a pixel"),
      DT_CONFIG_KEY("autoencoder.samples", String, autoencoder.samples,
                    "autoencoder: PNG written by rank 0 at each evaluation: test images, (corrupted,) "
                    "reconstructed, a row each (\"{step}\" in the name is replaced by the step); \"\" = none"),
      DT_CONFIG_KEY("autoencoder.samples_n", Int, autoencoder.samples_n, "autoencoder: test images in the grid"),
  };
}

void validate_autoencoder(const Config& c, const ConfigCheck& check) {
  const AutoencoderRecipeConfig& a = c.autoencoder;
  if (a.code < 1) check.fail("autoencoder.code", "must be >= 1");
  if (a.width < 1) check.fail("autoencoder.width", "must be >= 1");
  check.one_of("autoencoder.loss", a.loss, {"bce", "mse"});
  check.one_of("autoencoder.noise", a.noise, {"none", "gaussian", "mask"});
  if (a.noise == "gaussian" && !(a.noise_level > 0)) check.fail("autoencoder.noise_level", "must be > 0 for gaussian");
  if (a.noise == "mask" && !(a.noise_level > 0 && a.noise_level < 1)) {
    check.fail("autoencoder.noise_level", "must be in (0, 1) for mask (the probability of zeroing a pixel)");
  }
  if (a.samples_n < 1) check.fail("autoencoder.samples_n", "must be >= 1");
  if (c.model.name == "autoencoder") {
    if (c.data.normalize != "auto") {
      check.fail("data.normalize", "must be auto for model.name = autoencoder (its pixels are p/255 in [0, 1])");
    }
  } else if (!a.samples.empty()) {
    check.fail("autoencoder.samples", "is for model.name = autoencoder only");
  }
}

}  // namespace

RecipeEntry autoencoder_recipe() {
  return {"autoencoder", {"autoencoder"}, "docs/AUTOENCODER.md",
          [](const Config& cfg) -> std::unique_ptr<Recipe> { return std::make_unique<AutoencoderRecipe>(cfg); },
          autoencoder_keys, validate_autoencoder};
}

}  // namespace dtrain::launcher
