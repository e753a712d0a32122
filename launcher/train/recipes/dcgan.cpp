// The GAN recipe: model.name = "dcgan" (docs/GAN.md). Two networks, G and D, each with its
// optimizer and its Reducer (on the same process group: their collectives never
// interleave, Note [GAN generator step freezes D] in gan_step.h); each step is one GanStep
// on this rank's rows of the global batch's noise. The "evaluation" is rank 0 alone
// writing the grid of G(fixed noise) (gan.samples), with no collective; after the last
// step rank 0 writes gan.export and every rank agrees on the outcome.
//
// Note [Global GAN noise]: every step draws the noise of the GLOBAL batch,
// (world_size x batch_size, z_dim, 1, 1), from one stream derived from the seed alone
// ((seed, 0, "gan_noise"), the same state on every rank), and rank r uses rows
// [r B, (r + 1) B) through GanStep::step(real, z). So the noise of sample i of a step does
// not depend on how the global batch is split: W ranks at batch B draw exactly what one
// process at batch W B draws, and with batch norm off (batch norm normalizes with each
// rank's own batch statistics, as PyTorch DDP without SyncBatchNorm) the runs agree up to
// the rounding of the all-reduce. The stream's state is one pair of integers, saved once
// in a checkpoint and valid for any world size. The cost: each rank fills W times the
// normals it uses, W B z_dim numbers per step (8 ranks x 128 x 100 = 102,400, under a
// millisecond, on the device that holds them), against G's and D's forward and backward
// passes of W-fold fewer samples but millions of multiply-adds each; no communication.
//
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/autograd.h"

#include "core/error.h"
#include "core/io/image_grid.h"
#include "core/models/dcgan.h"
#include "launcher/train/common.h"
#include "launcher/train/recipes/dcgan_export.h"
#include "launcher/train/recipes/gan_step.h"
#include "launcher/train/recipes/image_inputs.h"
#include "launcher/train/recipe.h"
#include "launcher/train/registry.h"

namespace dtrain::launcher {

namespace {

void add_prefixed(nn::NamedTensors& out, const std::string& prefix, const nn::NamedTensors& in) {
  for (const auto& [name, t] : in) out.emplace_back(prefix + name, t);
}

std::string optimizer_text(const OptimizerConfig& o) {
  std::ostringstream os;
  os << o.name << " lr " << o.lr;
  if (o.name == "sgd") {
    os << " momentum " << o.momentum;
  } else {
    os << " betas (" << o.betas[0] << ", " << o.betas[1] << ")";
  }
  if (o.weight_decay > 0) os << " weight_decay " << o.weight_decay;
  return os.str();
}

class DcganRecipe final : public Recipe {
 public:
  explicit DcganRecipe(const Config& cfg) : cfg_(cfg) {
    inputs_.range = cfg.data.normalize == "meanstd" ? PixelInputs::Range::kMeanStd : PixelInputs::Range::kTanh;
  }

  // A GAN reads classification files too, without their labels.
  void configure_loader(data::LoaderConfig& lc) const override { lc.images_only = true; }

  void check_train_data(const RunContext&, data::Loader& train) override {
    DT_CHECK_AS(train.kind() == data::Kind::ImageOnly, ConfigError, "data.train = ", cfg_.data.train, " is a ",
                data::kind_name(train.kind()), " file; model.name = dcgan needs an image file");
    schema_ = train.image_schema();
  }

  void setup(const RunContext& ctx, const data::LoaderConfig&) override {
    world_ = &ctx.world;
    const int64_t h = schema_.height, w = schema_.width;
    DT_CHECK_AS(h == w && (h == 28 || h == 32), ConfigError, "model.name = dcgan needs 28x28 or 32x32 images; ",
                cfg_.data.train, " has ", h, "x", w);
    models::DcganConfig dc;
    dc.image_size = static_cast<int>(h);
    dc.channels = static_cast<int>(schema_.channels);
    dc.z_dim = static_cast<int>(cfg_.model.z_dim);
    dc.g_channels = static_cast<int>(cfg_.model.g_channels);
    dc.d_channels = static_cast<int>(cfg_.model.d_channels);
    dc.batch_norm = cfg_.model.batch_norm;
    // One initialization stream for every rank (rank 0's values are broadcast anyway).
    Generator gen = Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "init");
    g_ = models::make_dcgan_generator(dc, gen);
    d_ = models::make_dcgan_discriminator(dc, gen);
    for (nn::Module* net : {static_cast<nn::Module*>(g_.get()), static_cast<nn::Module*>(d_.get())}) {
      net->to(ctx.world.device());
      net->train();
    }
    g_params_ = g_->named_parameters();
    d_params_ = d_->named_parameters();
    g_buffers_ = g_->named_buffers();
    d_buffers_ = d_->named_buffers();
    opt_g_ = build_optimizer(cfg_.optimizer_g, g_params_);
    opt_d_ = build_optimizer(cfg_.optimizer_d, d_params_);
    // Note [Global GAN noise]: one stream for every rank, derived from the seed alone.
    noise_ = std::make_unique<Generator>(Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "gan_noise"));
    Generator fixed = Generator::derive(static_cast<uint64_t>(cfg_.gan.noise_seed), 0, "gan_fixed_noise");
    fixed_z_ = Tensor::empty({cfg_.gan.samples_n, cfg_.model.z_dim, 1, 1}, DType::F32, ctx.world.device());
    fixed.normal_(fixed_z_, 0.0, 1.0);
    std::ostringstream desc;
    desc << "dcgan " << h << "x" << w << "x" << schema_.channels << " (z " << dc.z_dim << ", G width "
         << dc.g_channels << " " << g_->num_parameters() << " parameters, D width " << dc.d_channels << " "
         << d_->num_parameters() << " parameters" << (dc.batch_norm ? ", batch norm" : ", no batch norm") << ")";
    description_ = desc.str();
  }

  void make_reducers(dist::ProcessGroup& group, const dist::ReducerOptions& ro) override {
    // One Reducer per network, on the same group (Note [GAN generator step freezes D]).
    reducer_g_ = std::make_unique<dist::Reducer>(group, g_params_, ro);
    reducer_d_ = std::make_unique<dist::Reducer>(group, d_params_, ro);
    GanStepOptions so;
    so.z_dim = static_cast<int>(cfg_.model.z_dim);
    step_ = std::make_unique<GanStep>(*g_, *d_, *opt_g_, *opt_d_, reducer_g_.get(), reducer_d_.get(), *noise_, so);
  }

  Agreement agreement() const override {
    Agreement a;
    a.optimizer = "generator: " + optimizer_settings(cfg_.optimizer_g) + "\ndiscriminator: " +
                  optimizer_settings(cfg_.optimizer_d);
    a.parameters = "generator:\n" + dist::describe_parameters(g_params_) + "\ndiscriminator:\n" +
                   dist::describe_parameters(d_params_);
    a.layout = "generator:\n" + reducer_g_->layout() + "\ndiscriminator:\n" + reducer_d_->layout();
    a.training = ", gan.samples_n " + std::to_string(cfg_.gan.samples_n) + ", gan.noise_seed " +
                 std::to_string(cfg_.gan.noise_seed);
    a.dataset = manifest_line("train", schema_) + "\n" + augment_line(cfg_, inputs_.name());
    return a;
  }

  void broadcast_initial() override {
    reducer_g_->broadcast_from_rank0(g_buffers_);
    reducer_d_->broadcast_from_rank0(d_buffers_);
  }

  RunHeader header() const override {
    RunHeader h;
    h.model = description_;
    h.parameters = g_->num_parameters() + d_->num_parameters();
    h.data = format("%lld samples %lldx%lldx%lld, inputs in [-1, 1] (%s)", static_cast<long long>(schema_.n),
                    static_cast<long long>(schema_.height), static_cast<long long>(schema_.width),
                    static_cast<long long>(schema_.channels), inputs_.range == PixelInputs::Range::kTanh ? "tanh" : "meanstd: NOT [-1, 1]");
    h.optimizer = "optimizer_g " + optimizer_text(cfg_.optimizer_g) + "; optimizer_d " + optimizer_text(cfg_.optimizer_d);
    h.metrics_fields = ",\"generator_parameters\":" + std::to_string(g_->num_parameters()) +
                       ",\"discriminator_parameters\":" + std::to_string(d_->num_parameters());
    return h;
  }

  StepResult step(StepInput& in, int64_t) override {
    const int64_t batch = cfg_.batch_size;
    data::Batch b = in.next();
    const Tensor real = inputs_.apply(b.images, schema_);
    DT_CHECK(b.size == batch, "dcgan: a training batch of ", b.size, " samples, expected batch_size ", batch);
    // Note [Global GAN noise]: the global batch's noise, this rank's rows.
    Tensor z_all = Tensor::empty({world_->size() * batch, cfg_.model.z_dim, 1, 1}, real.dtype(), real.device());
    noise_->normal_(z_all, 0.0, 1.0);
    world_->progress().phase(control::Phase::Forward);  // both networks' forward and backward
    const GanStepResult r = step_->step(real, z_all.rows(world_->rank() * batch, batch));
    world_->progress().phase(control::Phase::Optimizer);
    const double n = static_cast<double>(b.size);
    StepResult out;
    out.sums = {r.loss_d * n, r.loss_g * n, r.d_real_mean * n, r.d_fake_mean * n, r.d_fake_after * n};
    out.units = n;
    out.comm_wait = reducer_g_->last_wait_seconds() + reducer_d_->last_wait_seconds();
    return out;
  }

  std::vector<std::string> stat_names() const override { return {"loss_d", "loss_g", "d_real", "d_fake", "d_fake_g_step"}; }

  std::string progress(const std::vector<double>& s, double units) const override {
    const double n = units > 0 ? units : 1;
    return format("loss_d %.4f | loss_g %.4f | D(x) %.3f | D(G(z)) %.3f / %.3f", s[0] / n, s[1] / n, s[2] / n,
                  s[3] / n, s[4] / n);
  }

  std::string progress_fields(const std::vector<double>& s, double units) const override {
    const double n = units > 0 ? units : 1;
    return ",\"loss_d\":" + json_number(s[0] / n) + ",\"loss_g\":" + json_number(s[1] / n) + ",\"d_real\":" +
           json_number(s[2] / n) + ",\"d_fake\":" + json_number(s[3] / n) + ",\"d_fake_g_step\":" + json_number(s[4] / n);
  }

  Metrics step_metrics(const std::vector<double>& s, double units) const override {
    Metrics m;
    m.set("loss_d", units > 0 ? s[0] / units : 0);
    m.set("loss_g", units > 0 ? s[1] / units : 0);
    return m;
  }

  bool evaluates() const override { return !cfg_.gan.samples.empty(); }

  // The sample grid, rank 0 alone (no collective).
  Metrics evaluate(const RunContext& ctx, const EvalPoint& at) override {
    if (!ctx.rank0()) return {};
    samples_ = write_samples(at.step);
    std::printf("samples step %lld/%lld: %s (%lld images of G(fixed noise), G in eval mode)\n",
                static_cast<long long>(at.step), static_cast<long long>(ctx.total_steps), samples_.c_str(),
                static_cast<long long>(cfg_.gan.samples_n));
    std::fflush(stdout);
    ctx.write_metrics("{\"kind\":\"samples\",\"step\":" + std::to_string(at.step) + ",\"epoch\":" +
                      json_number(at.epoch) + ",\"path\":" + json_string(samples_) + ",\"images\":" +
                      std::to_string(cfg_.gan.samples_n) + ",\"time_s\":" + json_number(at.elapsed) + "}");
    return {};
  }

  // A dcgan checkpoint (docs/CHECKPOINTS.md, "dcgan"): both networks and both optimizers
  // under the name prefixes "generator." and "discriminator."
  // (/model/generator.main.0.weight, /optimizer/discriminator.main.0.weight.exp_avg), so
  // the file format (version 1) and its reader are the classifier's. The one
  // optimizer_steps attribute serves both optimizers: each steps once per GAN step, so
  // both counts equal the step (checked here). The noise stream is the same on every rank
  // (Note [Global GAN noise]) and is stored once, as /rng/rank0/gan_noise; no rank has a
  // stream of its own (rank_streams() is empty), so the loop needs no all_gather.
  void fill_checkpoint(ckpt::Contents& c) const override {
    DT_CHECK(opt_g_->steps_taken() == opt_d_->steps_taken(), "dcgan checkpoint: the optimizers took ",
             opt_g_->steps_taken(), " (G) and ", opt_d_->steps_taken(), " (D) steps; expected equal counts");
    c.model = state();
    add_prefixed(c.optimizer, "generator.", opt_g_->state());
    add_prefixed(c.optimizer, "discriminator.", opt_d_->state());
    c.optimizer_steps = opt_g_->steps_taken();
    c.rng.push_back({0, "gan_noise", noise_->state()});
  }

  void restore(const std::string& path, const ckpt::Contents& c) override {
    const nn::NamedTensors st = state();
    ckpt::check_model(path, c.model, st);
    check_checkpoint_seed(path, c.trainer.seed, cfg_, "the data order and the noise");
    const ckpt::RngStream* noise = nullptr;
    for (const ckpt::RngStream& s : c.rng) {
      if (s.name == "gan_noise") noise = &s;
    }
    DT_CHECK_AS(noise != nullptr, IoError, "checkpoint '", path,
                "' has no /rng/rank0/gan_noise (the dcgan noise stream): it was not written by the dcgan recipe");
    nn::NamedTensors opt_g, opt_d;
    for (const auto& [name, t] : c.optimizer) {
      if (name.rfind("generator.", 0) == 0) {
        opt_g.emplace_back(name.substr(10), t);
      } else if (name.rfind("discriminator.", 0) == 0) {
        opt_d.emplace_back(name.substr(14), t);
      } else {
        DT_THROW(ValueError, "checkpoint '", path, "' has optimizer state '", name,
                 "' of neither network (expected the prefix generator. or discriminator.): not a dcgan checkpoint");
      }
    }
    // Zero gradients, as the classifier's restore does.
    for (nn::NamedTensors* ps : {&g_params_, &d_params_}) {
      for (auto& [name, p] : *ps) p.set_grad(Tensor::zeros(p.shape(), p.dtype(), p.device()));
    }
    try {
      opt_g_->load_state(opt_g, c.optimizer_steps);
    } catch (const ValueError& e) {
      DT_THROW(ValueError, "checkpoint '", path, "' (generator optimizer ", cfg_.optimizer_g.name, "): ", e.what());
    }
    try {
      opt_d_->load_state(opt_d, c.optimizer_steps);
    } catch (const ValueError& e) {
      DT_THROW(ValueError, "checkpoint '", path, "' (discriminator optimizer ", cfg_.optimizer_d.name, "): ",
               e.what());
    }
    std::map<std::string, const Tensor*> in_file;
    for (const auto& [n, t] : c.model) in_file[n] = &t;
    for (const auto& [n, t] : st) t.copy_(in_file.at(n)->to(t.device()));
    noise_->set_state(noise->state);
  }

  std::string world_size_note(int64_t) const override {
    return "training continues from the same global sample and noise; with another global batch or with batch norm "
           "the result is no longer identical to an uninterrupted run (docs/CHECKPOINTS.md)";
  }

  // gan.export after the last step: rank 0 writes, every rank agrees on the outcome, so a
  // failed write fails the run everywhere.
  void finish(const RunContext& ctx, int64_t step) override {
    if (cfg_.gan.export_path.empty()) return;
    std::exception_ptr error;
    if (ctx.rank0()) {
      try {
        const auto t0 = Clock::now();
        const std::string path = export_samples({cfg_.gan.export_path, cfg_.gan.export_n, schema_.channels,
                                                 schema_.height, schema_.width, cfg_.gan.noise_seed,
                                                 cfg_.model.z_dim, ctx.world.device(), *g_});
        std::printf("export: %lld samples of G (eval mode, noise seed %lld) -> %s (%.1f s)\n",
                    static_cast<long long>(cfg_.gan.export_n), static_cast<long long>(cfg_.gan.noise_seed),
                    path.c_str(), seconds_since(t0));
        std::fflush(stdout);
        ctx.write_metrics("{\"kind\":\"export\",\"step\":" + std::to_string(step) + ",\"path\":" + json_string(path) +
                          ",\"samples\":" + std::to_string(cfg_.gan.export_n) + ",\"time_s\":" +
                          json_number(seconds_since(t0)) + "}");
      } catch (...) {
        error = std::current_exception();
      }
    }
    ctx.world.check_all_ok(error, "writing gan.export = " + cfg_.gan.export_path);
  }

  std::string final_line(const TrainSummary& s, int) const override {
    return format("finished %lld steps in %.1f s; loss_d %.4f, loss_g %.4f%s%s", static_cast<long long>(s.steps),
                  s.seconds, s.last_step.get("loss_d"), s.last_step.get("loss_g"), samples_.empty() ? "" : "; samples ",
                  samples_.c_str());
  }

 private:
  // Both networks' parameters, then both networks' buffers, under their prefixes.
  nn::NamedTensors state() const {
    nn::NamedTensors s;
    add_prefixed(s, "generator.", g_params_);
    add_prefixed(s, "discriminator.", d_params_);
    add_prefixed(s, "generator.", g_buffers_);
    add_prefixed(s, "discriminator.", d_buffers_);
    return s;
  }

  // Rank 0: the grid of G(fixed_z), G in eval mode; returns the path written.
  std::string write_samples(int64_t step) {
    std::string path = cfg_.gan.samples;
    for (auto at = path.find("{step}"); at != std::string::npos; at = path.find("{step}")) {
      path.replace(at, 6, std::to_string(step));
    }
    std::filesystem::path fp(path);
    if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
    Tensor images;
    g_->eval();  // batch norm with the running statistics
    try {
      autograd::NoGrad no_grad;
      images = (*g_)(fixed_z_);
    } catch (...) {
      g_->train();
      throw;
    }
    g_->train();
    io::write_image_grid(path, images);
    return path;
  }

  const Config& cfg_;
  World* world_ = nullptr;
  data::ImageSchema schema_;
  PixelInputs inputs_;
  std::shared_ptr<models::DcganGenerator> g_;
  std::shared_ptr<models::DcganDiscriminator> d_;
  nn::NamedTensors g_params_, d_params_, g_buffers_, d_buffers_;
  std::unique_ptr<optim::Optimizer> opt_g_, opt_d_;
  std::unique_ptr<dist::Reducer> reducer_g_, reducer_d_;
  // The training noise: one stream for all ranks, drawn for the global batch (Note
  // [Global GAN noise]).
  std::unique_ptr<Generator> noise_;
  std::unique_ptr<GanStep> step_;
  Tensor fixed_z_;  // the grid's noise batch, the same on every rank
  std::string description_;
  std::string samples_;  // rank 0: the last sample grid written ("" none)
};

std::vector<ConfigKey> dcgan_keys() {
  std::vector<ConfigKey> keys = {
      DT_CONFIG_KEY("model.z_dim", Int, model.z_dim, "dcgan: noise dimension (nz)"),
      DT_CONFIG_KEY("model.g_channels", Int, model.g_channels, "dcgan: generator width (ngf)"),
      DT_CONFIG_KEY("model.d_channels", Int, model.d_channels, "dcgan: discriminator width (ndf)"),
      DT_CONFIG_KEY("gan.samples", String, gan.samples,
                    "dcgan: PNG written by rank 0 at each evaluation, a grid of G(fixed noise) (\"{step}\" in the name "
                    "is replaced by the step); \"\" = none"),
      DT_CONFIG_KEY("gan.samples_n", Int, gan.samples_n, "dcgan: images in the grid (the fixed noise batch)"),
      DT_CONFIG_KEY("gan.noise_seed", Int, gan.noise_seed, "dcgan: seed of the fixed noise batch"),
      DT_CONFIG_KEY("gan.export", String, gan.export_path,
                    "dcgan: HDF5 image file (docs/DATASETS.md) of gan.export_n samples of G, written by rank 0 after the "
                    "last step, for `dtrain score`; \"\" = none"),
      DT_CONFIG_KEY("gan.export_n", Int, gan.export_n, "dcgan: samples in gan.export"),
  };
  // Between the model's keys and gan.*: the two optimizers.
  const auto at = keys.begin() + 3;
  std::vector<ConfigKey> g = optimizer_keys("optimizer_g", &Config::optimizer_g, "dcgan generator's optimizer: ",
                                            "learning rate (constant)");
  std::vector<ConfigKey> d = optimizer_keys("optimizer_d", &Config::optimizer_d, "dcgan discriminator's optimizer: ",
                                            "learning rate (constant)");
  g.insert(g.end(), d.begin(), d.end());
  keys.insert(at, g.begin(), g.end());
  return keys;
}

void validate_dcgan(const Config& c, const ConfigCheck& check) {
  if (c.model.z_dim < 1) check.fail("model.z_dim", "must be >= 1");
  if (c.model.g_channels < 1) check.fail("model.g_channels", "must be >= 1");
  if (c.model.d_channels < 1) check.fail("model.d_channels", "must be >= 1");
  if (c.gan.samples_n < 1) check.fail("gan.samples_n", "must be >= 1");
  if (c.gan.noise_seed < 0) check.fail("gan.noise_seed", "must be >= 0");
  if (c.gan.export_n < 1) check.fail("gan.export_n", "must be >= 1");
  check.optimizer("optimizer_g", c.optimizer_g);
  check.optimizer("optimizer_d", c.optimizer_d);
  if (c.model.name == "dcgan") {
    // The GAN loop (docs/GAN.md) has no test evaluation, gradient accumulation or
    // schedule: refuse them rather than ignore them.
    if (!c.data.test.empty()) {
      check.fail("data.test",
                 "must be empty for model.name = dcgan (a GAN's evaluation is the sample grid, gan.samples)");
    }
    if (c.grad_accum != 1) check.fail("grad_accum", "must be 1 for model.name = dcgan");
    if (c.schedule.name != "constant") {
      check.fail("schedule.name",
                 "must be constant for model.name = dcgan (the rates are optimizer_g.lr and optimizer_d.lr)");
    }
  } else if (!c.gan.samples.empty()) {
    check.fail("gan.samples", "is for model.name = dcgan only");
  } else if (!c.gan.export_path.empty()) {
    check.fail("gan.export", "is for model.name = dcgan only");
  }
}

}  // namespace

RecipeEntry dcgan_recipe() {
  return {"dcgan", {"dcgan"}, "docs/GAN.md",
          [](const Config& cfg) -> std::unique_ptr<Recipe> { return std::make_unique<DcganRecipe>(cfg); },
          dcgan_keys, validate_dcgan};
}

}  // namespace dtrain::launcher
