// The training loop: see trainer.h, Note [Trainer step].
#include "launcher/trainer.h"

#include <sched.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>

#include "core/autograd.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/log.h"
#include "core/io/image_grid.h"
#include "core/models/dcgan.h"
#include "core/models/vgg.h"
#include "core/nn/conv.h"
#include "core/nn/layers.h"
#include "core/optim/lr_schedule.h"
#include "core/optim/optimizer.h"
#include "datasets/loader.h"
#include "distributed/agreement.h"
#include "distributed/gan.h"
#include "distributed/reducer.h"
#include "ops/cpu_threads.h"

#ifndef DTRAIN_VERSION
#define DTRAIN_VERSION "unknown"
#endif
#ifndef DTRAIN_GIT_HASH
#define DTRAIN_GIT_HASH "unknown"
#endif

namespace dtrain::launcher {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string basename_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// ---- models ----------------------------------------------------------------------------

struct BuiltModel {
  std::shared_ptr<nn::Module> module;
  std::string description;
};

// The models of docs/TRAINING.md for images (C, H, W) and `classes` outputs. The initial
// values come from one stream for every rank (and rank 0's are broadcast anyway); dropout
// masks from a stream per rank.
BuiltModel build_model(const ModelConfig& m, int64_t channels, int64_t height, int64_t width, int64_t classes,
                       uint64_t seed, int rank) {
  Generator gen = Generator::derive(seed, 0, "init");
  Generator dropout_gen = Generator::derive(seed, static_cast<uint64_t>(rank), "dropout");
  auto c = [](int64_t v) { return static_cast<int>(v); };
  std::ostringstream desc;
  if (m.name == "mlp") {
    int64_t hidden = m.hidden > 0 ? m.hidden : 256;
    auto net = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(channels * height * width, hidden, gen),
        std::make_shared<nn::ReLU>()});
    if (m.fc_dropout > 0) net->add(std::make_shared<nn::Dropout>(m.fc_dropout, dropout_gen));
    net->add(std::make_shared<nn::Linear>(hidden, classes, gen));
    desc << "mlp " << channels * height * width << "-" << hidden << "-" << classes;
    if (m.fc_dropout > 0) desc << " (dropout " << m.fc_dropout << ")";
    return {net, desc.str()};
  }
  if (m.name == "small_cnn") {
    // conv32-relu-pool-conv64-relu-pool-fc(hidden)-relu-fc(classes), 3x3 convolutions with
    // padding 1, 2x2 max pools; named like VGG (features.N, classifier.N).
    DT_CHECK_AS(height >= 4 && width >= 4, ConfigError, "model.name = small_cnn needs images of at least 4x4, got ",
                height, "x", width);
    int64_t hidden = m.hidden > 0 ? m.hidden : 128;
    // With model.batch_norm a BatchNorm2d follows each convolution; with model.fc_dropout
    // a Dropout precedes the last layer (names shift accordingly, as in VGG).
    auto features = std::make_shared<nn::Sequential>();
    features->add(std::make_shared<nn::Conv2d>(channels, 32, 3, gen, 1, 1));
    if (m.batch_norm) features->add(std::make_shared<nn::BatchNorm2d>(32));
    features->add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::MaxPool2d>(2));
    features->add(std::make_shared<nn::Conv2d>(32, 64, 3, gen, 1, 1));
    if (m.batch_norm) features->add(std::make_shared<nn::BatchNorm2d>(64));
    features->add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::MaxPool2d>(2));
    auto classifier = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(64 * (height / 4) * (width / 4), hidden, gen), std::make_shared<nn::ReLU>()});
    if (m.fc_dropout > 0) classifier->add(std::make_shared<nn::Dropout>(m.fc_dropout, dropout_gen));
    classifier->add(std::make_shared<nn::Linear>(hidden, classes, gen));
    desc << "small_cnn conv32-pool-conv64-pool-fc" << hidden << "-fc" << classes;
    if (m.batch_norm) desc << " with batch norm";
    if (m.fc_dropout > 0) desc << " (dropout " << m.fc_dropout << ")";
    return {std::make_shared<models::Vgg>(features, nullptr, classifier), desc.str()};
  }
  if (m.name == "small_vgg") {
    DT_CHECK_AS(height == width && height % 8 == 0, ConfigError,
                "model.name = small_vgg needs square images with a side divisible by 8, got ", height, "x", width);
    models::SmallVggConfig sc;
    sc.in_channels = c(channels);
    sc.image_size = c(height);
    sc.num_classes = c(classes);
    if (m.hidden > 0) sc.hidden = c(m.hidden);
    desc << "small_vgg (hidden " << sc.hidden << ", " << classes << " classes)";
    return {models::make_small_vgg(sc, gen), desc.str()};
  }
  // vgg16_cifar, vgg16: five 2x2 pools need at least 32x32.
  DT_CHECK_AS(height >= 32 && width >= 32, ConfigError, "model.name = ", m.name,
              " needs images of at least 32x32, got ", height, "x", width);
  models::VggConfig vc = m.name == "vgg16" ? models::vgg16_config(c(classes)) : models::vgg16_cifar_config(c(classes));
  vc.in_channels = c(channels);
  vc.batch_norm = m.batch_norm;
  vc.dropout = m.dropout;
  if (m.hidden > 0) vc.hidden = c(m.hidden);
  desc << m.name << (m.batch_norm ? " with batch norm" : "") << " (hidden " << vc.hidden << ", " << classes
       << " classes)";
  return {models::make_vgg(vc, gen, dropout_gen), desc.str()};
}

std::unique_ptr<optim::Optimizer> build_optimizer(const OptimizerConfig& o, const nn::NamedTensors& params) {
  if (o.name == "sgd") {
    optim::SGD::Options s;
    s.lr = o.lr;
    s.momentum = o.momentum;
    s.nesterov = o.nesterov;
    s.weight_decay = o.weight_decay;
    return std::make_unique<optim::SGD>(params, s);
  }
  if (o.name == "adam") {
    optim::Adam::Options a;
    a.lr = o.lr;
    a.beta1 = o.betas[0];
    a.beta2 = o.betas[1];
    a.eps = o.eps;
    a.weight_decay = o.weight_decay;
    return std::make_unique<optim::Adam>(params, a);
  }
  optim::AdamW::Options a;
  a.lr = o.lr;
  a.beta1 = o.betas[0];
  a.beta2 = o.betas[1];
  a.eps = o.eps;
  a.weight_decay = o.weight_decay;
  return std::make_unique<optim::AdamW>(params, a);
}

std::unique_ptr<optim::LrSchedule> build_schedule(const Config& c, int64_t total_steps) {
  const ScheduleConfig& s = c.schedule;
  if (s.name == "step") return std::make_unique<optim::StepLr>(c.optimizer.lr, s.step_size, s.gamma);
  if (s.name == "cosine") return std::make_unique<optim::CosineWarmupLr>(c.optimizer.lr, s.warmup, total_steps, s.min_lr);
  return std::make_unique<optim::ConstantLr>(c.optimizer.lr);
}

// ---- checkpoint helpers ----------------------------------------------------------------

// Every random stream of the model that later steps draw from, by a stable name
// ("dropout.classifier.2"), in module order. Data order and augmentation need none: they
// are functions of (seed, epoch, position) (datasets/augment.h, Note [Epoch stream]).
void collect_generators(nn::Module& m, const std::string& prefix,
                        std::vector<std::pair<std::string, Generator*>>& out) {
  if (auto* d = dynamic_cast<nn::Dropout*>(&m)) out.emplace_back("dropout." + prefix, &d->generator());
  for (const auto& [name, child] : m.children()) {
    collect_generators(*child, prefix.empty() ? name : prefix + "." + name, out);
  }
}

// "key = value" lines of two canonical configs that differ, as "key: old -> new".
std::string config_changes(const std::string& before, const std::string& after) {
  auto parse = [](const std::string& text) {
    std::map<std::string, std::string> kv;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      auto eq = line.find(" = ");
      if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 3);
    }
    return kv;
  };
  std::map<std::string, std::string> a = parse(before), b = parse(after);
  std::string out;
  for (const auto& [k, v] : b) {
    auto it = a.find(k);
    std::string old = it == a.end() ? "(absent)" : it->second;
    if (old != v) out += (out.empty() ? "" : "; ") + k + ": " + old + " -> " + v;
  }
  return out;
}

// Test-only knobs from the environment (tests/launcher/test_resume.cpp); none is set in
// normal runs.
struct TestKnobs {
  int64_t crash_at_step = -1;        // DTRAIN_TEST_CRASH_AT_STEP: every rank SIGKILLs itself after it
  int64_t crash_in_ckpt_step = -1;   // DTRAIN_TEST_CRASH_IN_CHECKPOINT=STEP:STAGE: rank 0 SIGKILLs
  std::string crash_in_ckpt_stage;   //   itself at that stage of that checkpoint's write
  std::string log_samples;           // DTRAIN_TEST_LOG_SAMPLES: append "step row" lines to <it>.rank<r>
  std::string pid_dir;               // DTRAIN_TEST_PID_DIR: rank<r>.pid at start, rank<r>.stopped at a stop
  int64_t step_delay_ms = 0;         // DTRAIN_TEST_STEP_DELAY_MS: sleep after each step

  static TestKnobs from_env() {
    TestKnobs k;
    auto env = [](const char* name) -> std::string {
      const char* v = std::getenv(name);
      return v ? v : "";
    };
    if (auto v = env("DTRAIN_TEST_CRASH_AT_STEP"); !v.empty()) k.crash_at_step = std::stoll(v);
    if (auto v = env("DTRAIN_TEST_CRASH_IN_CHECKPOINT"); !v.empty()) {
      auto colon = v.find(':');
      k.crash_in_ckpt_step = std::stoll(v.substr(0, colon));
      k.crash_in_ckpt_stage = colon == std::string::npos ? "synced" : v.substr(colon + 1);
    }
    k.log_samples = env("DTRAIN_TEST_LOG_SAMPLES");
    k.pid_dir = env("DTRAIN_TEST_PID_DIR");
    if (auto v = env("DTRAIN_TEST_STEP_DELAY_MS"); !v.empty()) k.step_delay_ms = std::stoll(v);
    return k;
  }
};

// ---- text ------------------------------------------------------------------------------

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string duration_text(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = static_cast<int64_t>(std::llround(s));
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(t / 3600), static_cast<long long>(t % 3600 / 60));
  } else if (t >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(t / 60), static_cast<long long>(t % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(t));
  }
  return buf;
}

std::string manifest_line(const std::string& split, const data::ImageSchema& s) {
  std::ostringstream os;
  os << split << ": " << basename_of(s.path) << ", " << s.n << " samples of " << s.height << "x" << s.width << "x"
     << s.channels << " u8, " << s.classes.size() << " classes; mean";
  for (double v : s.mean) os << " " << v;
  os << "; std";
  for (double v : s.std) os << " " << v;
  return os.str();
}

}  // namespace

// ---- the trainer -----------------------------------------------------------------------

struct Trainer::Impl {
  Impl(const Config& c, World& w) : cfg(c), world(w), log(w.rank(), w.size()) {}

  const Config cfg;
  World& world;
  Logger log;
  int threads = 1;
  BuiltModel model;
  nn::NamedTensors params, buffers;
  data::ImageSchema train_schema, test_schema;
  std::unique_ptr<data::Loader> train, test;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LrSchedule> schedule;
  std::unique_ptr<dist::Reducer> reducer;
  int64_t micro_per_epoch = 0;  // micro-batches per rank in an epoch
  int64_t total_steps = 0;
  std::FILE* metrics = nullptr;
  std::function<int()> stop;
  bool preflight_done = false;

  // Checkpoints and resume (docs/CHECKPOINTS.md).
  std::vector<std::pair<std::string, Generator*>> generators;  // this rank's streams
  TestKnobs knobs = TestKnobs::from_env();
  int64_t start_step = 0;       // steps done before this run (a resumed checkpoint's step)
  bool resumed = false;
  int64_t resumed_step = -1;
  std::string last_checkpoint;  // path of the newest checkpoint this run wrote
  std::FILE* sample_log = nullptr;

  // data.normalize = tanh: the loader's (p/255 - mean) / std is mapped to 2 p/255 - 1 by
  // x * 2 std + (2 mean - 1), per channel (tensors of the batch's shape, cached).
  bool tanh_inputs = false;
  struct Affine {
    Shape shape;
    Tensor scale, shift;
  } train_affine, test_affine;
  Tensor normalize(const Tensor& x, Affine& a, const data::ImageSchema& s) const;

  // model.name = dcgan (docs/GAN.md).
  bool gan = false;
  struct Gan {
    std::shared_ptr<models::DcganGenerator> g;
    std::shared_ptr<models::DcganDiscriminator> d;
    nn::NamedTensors g_params, d_params, g_buffers, d_buffers;
    std::unique_ptr<optim::Optimizer> opt_g, opt_d;
    std::unique_ptr<dist::Reducer> reducer_g, reducer_d;
    std::unique_ptr<Generator> noise;  // this rank's training noise
    Tensor fixed_z;                    // the grid's noise batch, the same on every rank
    std::string description;
  } gan_;
  void setup_gan();
  // Rank 0: the grid of G(fixed_z), G in eval mode; returns the path written.
  std::string write_samples(int64_t step);
  TrainSummary run_gan();

  ~Impl() {
    if (metrics) std::fclose(metrics);
    if (sample_log) std::fclose(sample_log);
  }

  std::string build_id() const { return std::string("dtrain ") + DTRAIN_VERSION + " (" + DTRAIN_GIT_HASH + ")"; }
  int64_t global_micro_batch() const { return static_cast<int64_t>(world.size()) * cfg.batch_size; }
  // Collective: writes the checkpoint of `step` (rank 0), prunes, and agrees on success.
  void save(int64_t step, data::Position pos);
  // Collective: picks (rank 0) and loads (every rank) the checkpoint of cfg.resume.
  void resume();
  void load(const std::string& path, int64_t step);

  void setup();
  struct Eval {
    double accuracy = 0, loss = 0;
    int64_t samples = 0;
  };
  Eval evaluate();
  void write_metrics(const std::string& line) {
    if (!metrics) return;
    std::fputs(line.c_str(), metrics);
    std::fputc('\n', metrics);
    std::fflush(metrics);
  }
  bool rank0() const { return world.rank() == 0; }
};

void Trainer::Impl::setup() {
  threads = static_cast<int>(cfg.threads);
  if (threads == 0) {
    // The node's cores shared among its ranks, and no more than this process may run on
    // (mpirun binds each rank to a core when there are no more ranks than cores).
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / world.local_size());
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) threads = std::max(1, std::min(threads, CPU_COUNT(&set)));
  }
  if (world.device().is_cpu()) ops::cpu::set_num_threads(threads);

  data::LoaderConfig lc;
  lc.path = cfg.data.train;
  lc.batch_size = cfg.batch_size;
  lc.world_size = world.size();
  lc.rank = world.rank();
  lc.seed = static_cast<uint64_t>(cfg.seed);
  lc.threads = static_cast<int>(cfg.data.workers);
  lc.augment.pad_crop = cfg.data.pad_crop;
  lc.augment.hflip = cfg.data.hflip;
  lc.device = world.device();
  gan = cfg.model.name == "dcgan";
  tanh_inputs = cfg.data.normalize == "tanh" || (cfg.data.normalize == "auto" && gan);
  lc.images_only = gan;  // a GAN reads classification files too, without their labels
  train = std::make_unique<data::Loader>(lc);
  if (gan) {
    DT_CHECK_AS(train->kind() == data::Kind::ImageOnly, ConfigError, "data.train = ", cfg.data.train, " is a ",
                data::kind_name(train->kind()), " file; model.name = dcgan needs an image file");
  } else {
    DT_CHECK_AS(train->kind() == data::Kind::ImageClassification, ConfigError, "data.train = ", cfg.data.train,
                " is a ", data::kind_name(train->kind()), " file; dtrain train needs an image classification file");
  }
  train_schema = train->image_schema();
  micro_per_epoch = train->batches_per_epoch();
  int64_t global = static_cast<int64_t>(world.size()) * cfg.batch_size;
  DT_CHECK_AS(micro_per_epoch >= cfg.grad_accum, ConfigError, "data.train has ", train_schema.n,
              " samples: too few for an optimizer step of ", world.size(), " ranks x batch_size ", cfg.batch_size,
              " x grad_accum ", cfg.grad_accum, " = ", global * cfg.grad_accum, " samples");
  total_steps = cfg.steps > 0 ? cfg.steps : cfg.epochs * micro_per_epoch / cfg.grad_accum;
  DT_CHECK_AS(cfg.schedule.name != "cosine" || cfg.schedule.warmup < total_steps, ConfigError,
              "schedule.warmup = ", cfg.schedule.warmup, " must be smaller than the number of steps, ", total_steps);

  if (gan) {
    setup_gan();
    return;
  }
  int64_t classes = cfg.model.classes > 0 ? cfg.model.classes : train_schema.num_classes();
  DT_CHECK_AS(classes >= train_schema.num_classes(), ConfigError, "model.classes = ", cfg.model.classes, " but ",
              cfg.data.train, " has ", train_schema.num_classes(), " classes");

  if (!cfg.data.test.empty()) {
    data::LoaderConfig tc = lc;
    tc.path = cfg.data.test;
    tc.batch_size = cfg.eval_batch_size > 0 ? cfg.eval_batch_size : cfg.batch_size;
    tc.shuffle = false;
    tc.drop_last = false;
    tc.augment = {};
    test = std::make_unique<data::Loader>(tc);
    DT_CHECK_AS(test->kind() == data::Kind::ImageClassification, ConfigError, "data.test = ", cfg.data.test,
                " is a ", data::kind_name(test->kind()), " file; an image classification file is needed");
    test_schema = test->image_schema();
    DT_CHECK_AS(test_schema.height == train_schema.height && test_schema.width == train_schema.width &&
                    test_schema.channels == train_schema.channels,
                ConfigError, "data.test images are ", test_schema.height, "x", test_schema.width, "x",
                test_schema.channels, " but data.train images are ", train_schema.height, "x", train_schema.width,
                "x", train_schema.channels);
    DT_CHECK_AS(test_schema.num_classes() <= classes, ConfigError, "data.test has ", test_schema.num_classes(),
                " classes, the model ", classes);
  }

  model = build_model(cfg.model, train_schema.channels, train_schema.height, train_schema.width, classes,
                      static_cast<uint64_t>(cfg.seed), world.rank());
  model.module->to(world.device());
  model.module->train();
  params = model.module->named_parameters();
  buffers = model.module->named_buffers();
  optimizer = build_optimizer(cfg.optimizer, params);
  schedule = build_schedule(cfg, total_steps);
  collect_generators(*model.module, "", generators);
  DT_CHECK_AS(cfg.resume.empty() || cfg.resume != "auto" || !cfg.checkpoint_dir.empty(), ConfigError,
              "--resume auto looks for checkpoints in checkpoint.dir, which is not set (--checkpoint-dir DIR or "
              "--set checkpoint.dir=DIR)");
  if (!knobs.log_samples.empty()) {
    std::string p = knobs.log_samples + ".rank" + std::to_string(world.rank());
    sample_log = std::fopen(p.c_str(), "a");
    DT_CHECK_AS(sample_log != nullptr, IoError, "cannot write ", p, ": ", std::strerror(errno));
  }

  if (rank0() && !cfg.log_metrics.empty()) {
    std::filesystem::path p(cfg.log_metrics);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    // A resumed run continues the file.
    metrics = std::fopen(cfg.log_metrics.c_str(), cfg.resume.empty() ? "w" : "a");
    DT_CHECK_AS(metrics != nullptr, IoError, "cannot write log.metrics = ", cfg.log_metrics, ": ",
                std::strerror(errno));
  }
}

Tensor Trainer::Impl::normalize(const Tensor& x, Affine& a, const data::ImageSchema& s) const {
  if (!tanh_inputs) return x;
  if (!a.scale.defined() || a.shape != x.shape()) {
    const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
    std::vector<float> scale(static_cast<size_t>(n * c * hw)), shift(scale.size());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const double mean = ch < static_cast<int64_t>(s.mean.size()) ? s.mean[static_cast<size_t>(ch)] : 0.0;
        const double sd = ch < static_cast<int64_t>(s.std.size()) ? s.std[static_cast<size_t>(ch)] : 1.0;
        const size_t at = static_cast<size_t>((i * c + ch) * hw);
        std::fill_n(scale.begin() + static_cast<std::ptrdiff_t>(at), hw, static_cast<float>(2 * sd));
        std::fill_n(shift.begin() + static_cast<std::ptrdiff_t>(at), hw, static_cast<float>(2 * mean - 1));
      }
    }
    a.shape = x.shape();
    a.scale = Tensor::from_vector<float>(scale, x.shape()).to(x.device()).to(x.dtype());
    a.shift = Tensor::from_vector<float>(shift, x.shape()).to(x.device()).to(x.dtype());
  }
  autograd::NoGrad no_grad;
  return fn::add(fn::mul(x, a.scale), a.shift);
}

void Trainer::Impl::setup_gan() {
  const int64_t h = train_schema.height, w = train_schema.width;
  DT_CHECK_AS(h == w && (h == 28 || h == 32), ConfigError, "model.name = dcgan needs 28x28 or 32x32 images; ",
              cfg.data.train, " has ", h, "x", w);
  total_steps = cfg.steps > 0 ? cfg.steps : cfg.epochs * micro_per_epoch;
  models::DcganConfig dc;
  dc.image_size = static_cast<int>(h);
  dc.channels = static_cast<int>(train_schema.channels);
  dc.z_dim = static_cast<int>(cfg.model.z_dim);
  dc.g_channels = static_cast<int>(cfg.model.g_channels);
  dc.d_channels = static_cast<int>(cfg.model.d_channels);
  dc.batch_norm = cfg.model.batch_norm;
  // One initialization stream for every rank (rank 0's values are broadcast anyway).
  Generator gen = Generator::derive(static_cast<uint64_t>(cfg.seed), 0, "init");
  gan_.g = models::make_dcgan_generator(dc, gen);
  gan_.d = models::make_dcgan_discriminator(dc, gen);
  for (nn::Module* net : {static_cast<nn::Module*>(gan_.g.get()), static_cast<nn::Module*>(gan_.d.get())}) {
    net->to(world.device());
    net->train();
  }
  gan_.g_params = gan_.g->named_parameters();
  gan_.d_params = gan_.d->named_parameters();
  gan_.g_buffers = gan_.g->named_buffers();
  gan_.d_buffers = gan_.d->named_buffers();
  gan_.opt_g = build_optimizer(cfg.optimizer_g, gan_.g_params);
  gan_.opt_d = build_optimizer(cfg.optimizer_d, gan_.d_params);
  schedule = build_schedule(cfg, total_steps);  // unused (constant rates), described nowhere
  gan_.noise = std::make_unique<Generator>(
      Generator::derive(static_cast<uint64_t>(cfg.seed), static_cast<uint64_t>(world.rank()), "gan_noise"));
  Generator fixed = Generator::derive(static_cast<uint64_t>(cfg.gan.noise_seed), 0, "gan_fixed_noise");
  gan_.fixed_z = Tensor::empty({cfg.gan.samples_n, cfg.model.z_dim, 1, 1}, DType::F32, world.device());
  fixed.normal_(gan_.fixed_z, 0.0, 1.0);
  std::ostringstream desc;
  desc << "dcgan " << h << "x" << w << "x" << train_schema.channels << " (z " << dc.z_dim << ", G width "
       << dc.g_channels << " " << gan_.g->num_parameters() << " parameters, D width " << dc.d_channels << " "
       << gan_.d->num_parameters() << " parameters" << (dc.batch_norm ? ", batch norm" : ", no batch norm") << ")";
  gan_.description = desc.str();

  if (rank0() && !cfg.log_metrics.empty()) {
    std::filesystem::path p(cfg.log_metrics);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    metrics = std::fopen(cfg.log_metrics.c_str(), "w");
    DT_CHECK_AS(metrics != nullptr, IoError, "cannot write log.metrics = ", cfg.log_metrics, ": ",
                std::strerror(errno));
  }
}

std::string Trainer::Impl::write_samples(int64_t step) {
  std::string path = cfg.gan.samples;
  for (auto at = path.find("{step}"); at != std::string::npos; at = path.find("{step}")) {
    path.replace(at, 6, std::to_string(step));
  }
  std::filesystem::path fp(path);
  if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
  Tensor images;
  gan_.g->eval();  // batch norm with the running statistics
  try {
    autograd::NoGrad no_grad;
    images = (*gan_.g)(gan_.fixed_z);
  } catch (...) {
    gan_.g->train();
    throw;
  }
  gan_.g->train();
  io::write_image_grid(path, images);
  return path;
}

Trainer::Trainer(const Config& config, World& world) : impl_(std::make_unique<Impl>(config, world)) {
  std::exception_ptr error;
  try {
    impl_->setup();
  } catch (...) {
    error = std::current_exception();
  }
  world.check_all_ok(error, "set-up");
}

Trainer::~Trainer() = default;

int64_t Trainer::total_steps() const { return impl_->total_steps; }

void Trainer::set_stop_request(std::function<int()> stop) { impl_->stop = std::move(stop); }

void Trainer::preflight() {
  Impl& m = *impl_;
  dist::ReducerOptions ro;
  ro.first_bucket_bytes = static_cast<size_t>(m.cfg.first_bucket_mib * (1 << 20));
  ro.bucket_bytes = static_cast<size_t>(m.cfg.bucket_mib * (1 << 20));
  std::exception_ptr error;
  try {
    if (m.gan) {
      // One Reducer per network, on the same group: their collectives never interleave
      // (Note [GAN generator step freezes D] in distributed/gan.h).
      m.gan_.reducer_g = std::make_unique<dist::Reducer>(m.world.group(), m.gan_.g_params, ro);
      m.gan_.reducer_d = std::make_unique<dist::Reducer>(m.world.group(), m.gan_.d_params, ro);
    } else {
      m.reducer = std::make_unique<dist::Reducer>(m.world.group(), m.params, ro);
    }
  } catch (...) {
    error = std::current_exception();
  }
  m.world.check_all_ok(error, "reducer set-up");

  std::ostringstream training, optimizer, dataset;
  training << "steps " << m.total_steps << ", grad_accum " << m.cfg.grad_accum << ", seed " << m.cfg.seed
           << ", eval.interval " << m.cfg.eval_interval << ", eval.batch_size " << m.cfg.eval_batch_size
           << ", device " << m.cfg.device << ", checkpoint.dir '" << m.cfg.checkpoint_dir << "' every "
           << m.cfg.checkpoint_every << " final " << m.cfg.checkpoint_final << ", resume '" << m.cfg.resume << "'";
  auto describe_optimizer = [](std::ostringstream& os, const OptimizerConfig& o) {
    os << o.name << " lr " << o.lr << " momentum " << o.momentum << " nesterov " << o.nesterov << " weight_decay "
       << o.weight_decay << " betas " << o.betas[0] << " " << o.betas[1] << " eps " << o.eps;
  };
  std::string parameters, layout;
  if (m.gan) {
    optimizer << "generator: ";
    describe_optimizer(optimizer, m.cfg.optimizer_g);
    optimizer << "\ndiscriminator: ";
    describe_optimizer(optimizer, m.cfg.optimizer_d);
    parameters = "generator:\n" + dist::describe_parameters(m.gan_.g_params) + "\ndiscriminator:\n" +
                 dist::describe_parameters(m.gan_.d_params);
    layout = "generator:\n" + m.gan_.reducer_g->layout() + "\ndiscriminator:\n" + m.gan_.reducer_d->layout();
    training << ", gan.samples_n " << m.cfg.gan.samples_n << ", gan.noise_seed " << m.cfg.gan.noise_seed;
  } else {
    describe_optimizer(optimizer, m.cfg.optimizer);
    optimizer << "; " << m.schedule->describe();
    parameters = dist::describe_parameters(m.params);
    layout = m.reducer->layout();
  }
  dataset << manifest_line("train", m.train_schema);
  if (m.test) dataset << "\n" << manifest_line("test", m.test_schema);
  dataset << "\naugment pad_crop " << m.cfg.data.pad_crop << " hflip " << m.cfg.data.hflip << "; inputs "
          << (m.tanh_inputs ? "tanh" : "meanstd");
  dist::AgreementItems items = {
      {"batch size", std::to_string(m.cfg.batch_size)},
      {"parameters", parameters},
      {"bucket layout", layout},
      {"training length", training.str()},
      {"optimizer", optimizer.str()},
      {"dataset", dataset.str()},
      {"build", std::string("dtrain ") + DTRAIN_VERSION + " (" + DTRAIN_GIT_HASH + ")"},
  };
  dist::check_agreement(m.world.control(), items);
  m.preflight_done = true;
}

Trainer::Impl::Eval Trainer::Impl::evaluate() {
  // Batch-norm running statistics differ between ranks (each saw its own batches):
  // evaluate every shard with rank 0's, as one model would.
  for (const auto& [name, t] : buffers) world.group().broadcast(t, 0)->synchronize();
  model.module->eval();
  double correct = 0, loss_sum = 0, samples = 0;
  {
    autograd::NoGrad no_grad;
    int64_t n = test->batches_per_epoch();
    for (int64_t i = 0; i < n; ++i) {
      data::Batch b = test->next();
      if (b.size == 0) continue;
      Tensor logits = model.module->forward(normalize(b.images, test_affine, test_schema));
      Tensor loss = fn::softmax_cross_entropy(logits, b.labels);
      loss_sum += loss.item<float>() * static_cast<double>(b.size);
      std::vector<float> l = logits.to(Device::cpu()).to_vector<float>();
      std::vector<int64_t> y = b.labels.to(Device::cpu()).to_vector<int64_t>();
      int64_t k = logits.size(1);
      for (int64_t r = 0; r < b.size; ++r) {
        const float* row = l.data() + r * k;
        int64_t best = std::max_element(row, row + k) - row;
        if (best == y[r]) correct += 1;
      }
      samples += static_cast<double>(b.size);
    }
  }
  model.module->train();
  Tensor sums = Tensor::from_vector<double>({correct, samples, loss_sum}, {3});
  world.control().all_reduce(sums, dist::ReduceOp::Sum)->wait();
  std::vector<double> s = sums.to_vector<double>();
  Eval e;
  e.samples = static_cast<int64_t>(s[1]);
  e.accuracy = s[1] > 0 ? s[0] / s[1] : 0;
  e.loss = s[1] > 0 ? s[2] / s[1] : 0;
  return e;
}

// Note [Checkpoint protocol]: every rank calls save() at the same steps (the decision
// is a function of the step and the agreed stop flag). The one collective inside is an
// all_gather of every rank's Generator states, so rank 0 can write /rng/rank<r>/ for all
// ranks; rank 0 then writes and prunes alone (Note [Checkpoint commit] in
// core/checkpoint.h) while the others wait in check_all_ok, which doubles as the barrier
// that tells every rank whether the write succeeded. A failed write therefore fails the
// run on every rank with rank 0's message; the older checkpoints are untouched.
void Trainer::Impl::save(int64_t step, data::Position pos) {
  const int w = world.size();
  const int64_t n = static_cast<int64_t>(generators.size());
  std::vector<int64_t> all_states;
  if (n > 0) {
    std::vector<int64_t> mine;
    for (const auto& [name, g] : generators) {
      Generator::State st = g->state();
      mine.push_back(static_cast<int64_t>(st.seed));
      mine.push_back(static_cast<int64_t>(st.offset));
    }
    Tensor in = Tensor::from_vector<int64_t>(mine, {2 * n});
    Tensor out = Tensor::zeros({2 * n * w}, DType::I64);
    world.control().all_gather(in, out)->wait();
    all_states = out.to_vector<int64_t>();
  }
  std::exception_ptr error;
  if (rank0()) {
    try {
      const auto t0 = Clock::now();
      ckpt::Contents c;
      c.model = params;
      c.model.insert(c.model.end(), buffers.begin(), buffers.end());
      c.optimizer = optimizer->state();
      c.optimizer_steps = optimizer->steps_taken();
      for (int r = 0; r < w; ++r) {
        for (int64_t i = 0; i < n; ++i) {
          const size_t at = static_cast<size_t>((r * n + i) * 2);
          c.rng.push_back({r, generators[static_cast<size_t>(i)].first,
                           {static_cast<uint64_t>(all_states[at]), static_cast<uint64_t>(all_states[at + 1])}});
        }
      }
      ckpt::TrainerState& t = c.trainer;
      t.step = step;
      t.epoch = pos.epoch;
      t.cursor = pos.cursor;
      t.seed = cfg.seed;
      t.world_size = w;
      t.global_batch = global_micro_batch() * cfg.grad_accum;
      t.schedule_step = step;
      t.config = canonical(cfg);
      t.build = build_id();
      ckpt::StageHook hook;
      if (knobs.crash_in_ckpt_step == step) {
        hook = [this](const std::string& stage) {
          if (stage == knobs.crash_in_ckpt_stage) {
            std::fflush(stdout);
            std::raise(SIGKILL);
          }
        };
      }
      last_checkpoint = ckpt::write(cfg.checkpoint_dir, c, hook);
      const double write_s = seconds_since(t0);
      std::vector<std::string> removed = ckpt::prune(cfg.checkpoint_dir, cfg.checkpoint_keep_last);
      std::error_code ec;
      const double mib = static_cast<double>(std::filesystem::file_size(last_checkpoint, ec)) / (1 << 20);
      std::printf("checkpoint step %lld: %s (%.1f MiB in %.2f s%s)\n", static_cast<long long>(step),
                  last_checkpoint.c_str(), mib, write_s,
                  removed.empty() ? "" : (", " + std::to_string(removed.size()) + " old files removed").c_str());
      std::fflush(stdout);
      write_metrics("{\"kind\":\"checkpoint\",\"step\":" + std::to_string(step) + ",\"path\":" +
                    json_string(last_checkpoint) + ",\"mib\":" + json_number(mib) + ",\"write_s\":" +
                    json_number(write_s) + "}");
    } catch (...) {
      error = std::current_exception();
    }
  }
  world.check_all_ok(error, "writing the checkpoint of step " + std::to_string(step));
}

// Note [Resume agreement]: rank 0 alone picks the checkpoint (the newest that verifies,
// for --resume auto) and broadcasts its step, so every rank loads the same one even while
// another job's files change under them; every rank then reads that file itself (the
// checkpoint directory must be on a filesystem all ranks see). Failures on any rank are
// agreed through check_all_ok, so no rank trains on while another stops.
void Trainer::Impl::resume() {
  std::exception_ptr error;
  int64_t step = -1;
  std::string path;
  if (rank0()) {
    try {
      if (cfg.resume == "auto") {
        auto found = ckpt::find_latest(cfg.checkpoint_dir, log);
        if (found) {
          step = found->first;
          path = found->second;
        } else {
          std::printf("resume: no complete checkpoint in %s; starting from step 0\n", cfg.checkpoint_dir.c_str());
        }
      } else {
        ckpt::verify(cfg.resume);
        step = io::H5File::open_read(cfg.resume).get_attribute<int64_t>("/trainer", "step");
        path = cfg.resume;
      }
    } catch (...) {
      error = std::current_exception();
    }
  }
  world.check_all_ok(error, "choosing the checkpoint to resume from");
  Tensor chosen = Tensor::from_vector<int64_t>({step}, {1});
  world.control().broadcast(chosen, 0)->wait();
  step = chosen.to_vector<int64_t>()[0];
  if (step < 0) return;
  if (!rank0()) {
    path = cfg.resume == "auto" ? (std::filesystem::path(cfg.checkpoint_dir) / ckpt::file_name(step)).string()
                                : cfg.resume;
  }
  error = nullptr;
  try {
    load(path, step);
  } catch (...) {
    error = std::current_exception();
  }
  world.check_all_ok(error, "loading checkpoint " + path);
}

void Trainer::Impl::load(const std::string& path, int64_t step) {
  // Rank 0 verified the file (marker, checksum, version); the others trust that and
  // check that they read the same step.
  ckpt::Contents c = ckpt::read(path, /*verified=*/true);
  DT_CHECK_AS(c.trainer.step == step, IoError, "checkpoint '", path, "' holds step ", c.trainer.step, ", rank 0 chose ",
              step, ": do all ranks see the same checkpoint directory?");
  nn::NamedTensors state = params;
  state.insert(state.end(), buffers.begin(), buffers.end());
  ckpt::check_model(path, c.model, state);
  DT_CHECK_AS(c.trainer.seed == cfg.seed, ConfigError, "checkpoint '", path, "' was written with seed ", c.trainer.seed,
              ", this run has seed ", cfg.seed, ": resume with --set seed=", c.trainer.seed,
              " (the seed fixes the data order)");

  // Zero gradients make the first resumed step accumulate into zeroed buffers exactly as
  // an uninterrupted run's steps do.
  for (auto& [name, p] : params) p.set_grad(Tensor::zeros(p.shape(), p.dtype(), p.device()));
  try {
    optimizer->load_state(c.optimizer, c.optimizer_steps);
  } catch (const ValueError& e) {
    DT_THROW(ValueError, "checkpoint '", path, "' (optimizer ", cfg.optimizer.name, "): ", e.what());
  }
  std::map<std::string, const Tensor*> model_in_file;
  for (const auto& [n, t] : c.model) model_in_file[n] = &t;
  for (const auto& [n, t] : state) t.copy_(model_in_file.at(n)->to(t.device()));

  // Random streams: this rank's, when the writing run had this rank.
  const int r = world.rank();
  int64_t restored = 0;
  for (auto& [name, g] : generators) {
    for (const ckpt::RngStream& s : c.rng) {
      if (s.rank == r && s.name == name) {
        g->set_state(s.state);
        ++restored;
      }
    }
  }
  if (restored < static_cast<int64_t>(generators.size()) && r < c.trainer.world_size) {
    log.warn("checkpoint '", path, "' lacks ", static_cast<int64_t>(generators.size()) - restored,
             " of this rank's random streams; they start fresh");
  }

  const data::Position pos{c.trainer.epoch, c.trainer.cursor};
  train->seek(pos);
  start_step = step;
  resumed = true;
  resumed_step = step;
  if (rank0()) {
    std::printf("resumed from %s: step %lld, epoch %lld, sample %lld of the epoch\n", path.c_str(),
                static_cast<long long>(step), static_cast<long long>(pos.epoch + 1),
                static_cast<long long>(pos.cursor));
    if (c.trainer.world_size != world.size()) {
      std::printf("note: the checkpoint was written by %lld rank%s, this run has %d: training continues from the "
                  "same global sample; per-rank batches and the random streams of ranks >= %lld are new, and the "
                  "result is no longer bit-identical to an uninterrupted run (docs/CHECKPOINTS.md)\n",
                  static_cast<long long>(c.trainer.world_size), c.trainer.world_size > 1 ? "s" : "", world.size(),
                  static_cast<long long>(c.trainer.world_size));
    }
    if (std::string changes = config_changes(c.trainer.config, canonical(cfg)); !changes.empty()) {
      std::printf("note: configuration changed since the checkpoint: %s\n", changes.c_str());
    }
    if (c.trainer.build != build_id()) {
      std::printf("note: the checkpoint was written by %s, this is %s\n", c.trainer.build.c_str(), build_id().c_str());
    }
    std::fflush(stdout);
  }
}

TrainSummary Trainer::run() {
  Impl& m = *impl_;
  DT_CHECK(m.preflight_done, "Trainer::run before preflight()");
  const Config& cfg = m.cfg;
  if (!m.knobs.pid_dir.empty()) {
    std::ofstream(m.knobs.pid_dir + "/rank" + std::to_string(m.world.rank()) + ".pid") << ::getpid() << "\n";
  }
  if (m.gan) return m.run_gan();
  // A resumed run loads the same file on every rank; a fresh one takes rank 0's initial
  // values everywhere (only now that the shapes agree).
  if (!cfg.resume.empty()) m.resume();
  if (!m.resumed) m.reducer->broadcast_from_rank0(m.buffers);
  const int world = m.world.size();
  const int64_t accum = cfg.grad_accum;
  const int64_t epochs_total = (m.total_steps * accum + m.micro_per_epoch - 1) / m.micro_per_epoch;

  if (m.rank0()) {
    std::printf("dtrain train %s: %d rank%s (%s, %s, %d thread%s per rank), %s, %lld parameters\n",
                cfg.source.c_str(), world, world > 1 ? "s" : "", m.world.group().backend().c_str(),
                m.world.device().str().c_str(), m.threads, m.threads > 1 ? "s" : "", m.model.description.c_str(),
                static_cast<long long>(m.model.module->num_parameters()));
    std::printf("data %s: %lld samples %lldx%lldx%lld; global batch %lld (%d x %lld%s); %lld steps (%lld per epoch)\n",
                basename_of(cfg.data.train).c_str(), static_cast<long long>(m.train_schema.n),
                static_cast<long long>(m.train_schema.height), static_cast<long long>(m.train_schema.width),
                static_cast<long long>(m.train_schema.channels),
                static_cast<long long>(world * cfg.batch_size * accum), world, static_cast<long long>(cfg.batch_size),
                accum > 1 ? (" x " + std::to_string(accum) + " micro-batches").c_str() : "",
                static_cast<long long>(m.total_steps), static_cast<long long>(m.micro_per_epoch / accum));
    std::printf("optimizer %s; %s\n", cfg.optimizer.name.c_str(), m.schedule->describe().c_str());
    std::fflush(stdout);
    m.write_metrics("{\"kind\":\"header\",\"world_size\":" + std::to_string(world) + ",\"backend\":" +
                    json_string(m.world.group().backend()) + ",\"device\":" + json_string(m.world.device().str()) +
                    ",\"threads_per_rank\":" + std::to_string(m.threads) + ",\"steps\":" +
                    std::to_string(m.total_steps) + ",\"steps_per_epoch\":" +
                    std::to_string(m.micro_per_epoch / accum) + ",\"parameters\":" +
                    std::to_string(m.model.module->num_parameters()) + ",\"build\":" +
                    json_string(std::string(DTRAIN_VERSION) + " (" + DTRAIN_GIT_HASH + ")") +
                    ",\"config\":" + json_string(canonical(cfg)) + "}");
  }

  TrainSummary summary;
  auto record_eval = [&](int64_t step, double epoch, double elapsed) {
    Impl::Eval e = m.evaluate();
    summary.evaluated = true;
    summary.test_accuracy = e.accuracy;
    summary.test_loss = e.loss;
    summary.test_samples = e.samples;
    if (m.rank0()) {
      std::printf("eval  step %lld/%lld | epoch %.2f | test accuracy %.2f%% (%lld samples) | test loss %.4f\n",
                  static_cast<long long>(step), static_cast<long long>(m.total_steps), epoch, 100 * e.accuracy,
                  static_cast<long long>(e.samples), e.loss);
      std::fflush(stdout);
      m.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch) +
                      ",\"test_accuracy\":" + json_number(e.accuracy) + ",\"test_loss\":" + json_number(e.loss) +
                      ",\"test_samples\":" + std::to_string(e.samples) + ",\"time_s\":" + json_number(elapsed) + "}");
    }
  };

  // Interval accumulators (rank 0 reports them).
  struct Interval {
    int64_t steps = 0;
    double loss_sum = 0, samples = 0, wall = 0, data_wait = 0, allreduce_wait = 0, skew = 0;
  } iv;
  const auto start = Clock::now();
  // Micro-batches consumed by this rank (for the epoch shown; on a resume, as this world
  // size would have consumed them to reach the loader's position).
  int64_t consumed = 0;
  int64_t step = m.start_step;
  data::Position position = m.train->sampler().normalize(m.train->position());
  if (m.resumed) {
    consumed = position.epoch * m.micro_per_epoch + position.cursor / m.global_micro_batch();
  }
  const bool checkpoints = !cfg.checkpoint_dir.empty();
  std::vector<std::pair<Tensor, int64_t>> losses;  // each micro-batch's mean loss, size
  losses.reserve(static_cast<size_t>(accum));
  while (step < m.total_steps) {
    const auto t0 = Clock::now();
    const double wait0 = m.train->wait_seconds();
    const int64_t epoch_before = position.epoch;
    int64_t samples = 0;
    losses.clear();
    m.optimizer->zero_grad();
    for (int64_t i = 0; i < accum; ++i) {
      data::Batch b = m.train->next();
      position = m.train->sampler().normalize(b.next);
      if (m.sample_log) {
        for (const data::RowRange& rr : m.train->sampler().plan(b.at).ranges) {
          for (int64_t row = rr.start; row < rr.start + rr.count; ++row) {
            std::fprintf(m.sample_log, "%lld %lld\n", static_cast<long long>(step + 1), static_cast<long long>(row));
          }
        }
        std::fflush(m.sample_log);
      }
      m.reducer->set_sync(i == accum - 1);
      autograd::Tape tape;
      Tensor loss, objective;
      {
        autograd::GradRecorder rec(tape);
        Tensor logits = m.model.module->forward(m.normalize(b.images, m.train_affine, m.train_schema));
        loss = fn::softmax_cross_entropy(logits, b.labels);
        // Each micro-batch's mean loss weighs 1/accum: the step's gradient is the mean
        // over all its samples, as one batch of accum x batch_size would give.
        objective = accum > 1 ? fn::scale(loss, 1.0 / static_cast<double>(accum)) : loss;
      }
      tape.backward(objective);
      losses.emplace_back(loss.detach(), b.size);
      samples += b.size;
      ++consumed;
    }
    m.reducer->finalize();
    const double lr = m.schedule->lr_at(step);
    m.optimizer->set_lr(lr);
    m.optimizer->step();
    double loss_sum = 0;
    for (const auto& [l, n] : losses) loss_sum += l.item<float>() * static_cast<double>(n);
    ++step;

    const double data_wait = m.train->wait_seconds() - wait0;
    const double allreduce_wait = m.reducer->last_wait_seconds();
    const double busy = seconds_since(t0) - data_wait - allreduce_wait;
    const int stop_here = m.stop ? m.stop() : 0;
    // The step boundary: one all_gather of [loss sum, samples, busy s, stop] per rank.
    Tensor mine =
        Tensor::from_vector<double>({loss_sum, static_cast<double>(samples), busy, static_cast<double>(stop_here)}, {4});
    Tensor all = Tensor::zeros({4 * static_cast<int64_t>(world)}, DType::F64);
    m.world.control().all_gather(mine, all)->wait();
    std::vector<double> g = all.to_vector<double>();
    double g_loss = 0, g_samples = 0, busy_max = 0, busy_min = 1e300;
    bool stop_all = false;
    int stop_kind = 0;
    for (int r = 0; r < world; ++r) {
      g_loss += g[4 * r];
      g_samples += g[4 * r + 1];
      busy_max = std::max(busy_max, g[4 * r + 2]);
      busy_min = std::min(busy_min, g[4 * r + 2]);
      stop_all = stop_all || g[4 * r + 3] != 0;
      stop_kind = std::max(stop_kind, static_cast<int>(g[4 * r + 3]));
    }
    summary.final_loss = g_samples > 0 ? g_loss / g_samples : 0;

    iv.steps += 1;
    iv.loss_sum += g_loss;
    iv.samples += g_samples;
    iv.wall += seconds_since(t0);
    iv.data_wait += data_wait;
    iv.allreduce_wait += allreduce_wait;
    iv.skew += busy_max - busy_min;
    const double epoch_f = static_cast<double>(consumed) / static_cast<double>(m.micro_per_epoch);
    const bool last = step == m.total_steps || stop_all;
    if (m.rank0() && (step % cfg.log_interval == 0 || last)) {
      const double n = static_cast<double>(iv.steps);
      const double loss = iv.samples > 0 ? iv.loss_sum / iv.samples : 0;
      const double ips = iv.wall > 0 ? iv.samples / iv.wall : 0;
      const double eta = static_cast<double>(m.total_steps - step) * iv.wall / n;
      const int64_t epoch_now = (consumed - 1) / m.micro_per_epoch + 1;
      std::printf("step %lld/%lld | epoch %lld/%lld | loss %.4f | lr %.4g | %.0f img/s | data %.1f ms | "
                  "allreduce %.1f ms | skew %.1f ms | ETA %s\n",
                  static_cast<long long>(step), static_cast<long long>(m.total_steps),
                  static_cast<long long>(epoch_now), static_cast<long long>(epochs_total), loss, lr, ips,
                  1e3 * iv.data_wait / n, 1e3 * iv.allreduce_wait / n, 1e3 * iv.skew / n, duration_text(eta).c_str());
      std::fflush(stdout);
      m.write_metrics("{\"kind\":\"train\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch_f) +
                      ",\"loss\":" + json_number(loss) + ",\"lr\":" + json_number(lr) +
                      ",\"images_per_s\":" + json_number(ips) + ",\"data_wait_s\":" + json_number(iv.data_wait / n) +
                      ",\"allreduce_wait_s\":" + json_number(iv.allreduce_wait / n) +
                      ",\"step_time_skew_s\":" + json_number(iv.skew / n) + ",\"steps_logged\":" +
                      std::to_string(iv.steps) + ",\"time_s\":" + json_number(seconds_since(start)) + "}");
      iv = Interval{};
    }
    if (stop_all && step < m.total_steps) {
      summary.stopped = true;
      summary.stop_kind = stop_kind;
      if (m.rank0()) {
        std::printf("stop requested: stopping after step %lld\n", static_cast<long long>(step));
        std::fflush(stdout);
      }
      if (checkpoints) m.save(step, position);
      if (!m.knobs.pid_dir.empty()) {
        std::ofstream(m.knobs.pid_dir + "/rank" + std::to_string(m.world.rank()) + ".stopped") << step << "\n";
      }
      break;
    }
    if (m.test) {
      const bool epoch_end = position.epoch > epoch_before;
      const bool due = cfg.eval_interval > 0 ? step % cfg.eval_interval == 0 : epoch_end;
      if (due || step == m.total_steps) record_eval(step, epoch_f, seconds_since(start));
    }
    if (checkpoints && ((cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) ||
                        (step == m.total_steps && cfg.checkpoint_final))) {
      m.save(step, position);
    }
    if (step == m.knobs.crash_at_step) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    if (m.knobs.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(m.knobs.step_delay_ms));
  }
  summary.steps = step;
  summary.seconds = seconds_since(start);
  summary.resumed_from = m.resumed_step;
  summary.checkpoint = m.last_checkpoint;
  if (m.rank0()) {
    if (summary.stopped) {
      std::printf("stopped after step %lld of %lld (%.1f s)%s\n", static_cast<long long>(step),
                  static_cast<long long>(m.total_steps), summary.seconds,
                  checkpoints ? "" : "; no checkpoint: checkpoint.dir is not set");
    } else if (m.resumed && step == m.start_step) {
      std::printf("nothing to train: the checkpoint is at step %lld of %lld\n", static_cast<long long>(step),
                  static_cast<long long>(m.total_steps));
    } else if (summary.evaluated) {
      std::printf("final test accuracy %.2f%% (test loss %.4f, %lld steps, %d rank%s, %.1f s)\n",
                  100 * summary.test_accuracy, summary.test_loss, static_cast<long long>(step), world,
                  world > 1 ? "s" : "", summary.seconds);
    } else {
      std::printf("finished %lld steps in %.1f s; final training loss %.4f\n", static_cast<long long>(step),
                  summary.seconds, summary.final_loss);
    }
    std::fflush(stdout);
  }
  return summary;
}

// The GAN loop (trainer.h; docs/GAN.md): the classifier loop's protocol with a GanStep
// in place of the forward/backward, and rank 0 writing the sample grid where the
// classifier evaluates.
TrainSummary Trainer::Impl::run_gan() {
  const int world_n = world.size();
  // Rank 0's initial values everywhere (only now that the shapes agree).
  gan_.reducer_g->broadcast_from_rank0(gan_.g_buffers);
  gan_.reducer_d->broadcast_from_rank0(gan_.d_buffers);
  dist::GanStepOptions so;
  so.z_dim = static_cast<int>(cfg.model.z_dim);
  dist::GanStep gan_step(*gan_.g, *gan_.d, *gan_.opt_g, *gan_.opt_d, gan_.reducer_g.get(), gan_.reducer_d.get(),
                         *gan_.noise, so);
  const int64_t epochs_total = (total_steps + micro_per_epoch - 1) / micro_per_epoch;
  const int64_t params_total = gan_.g->num_parameters() + gan_.d->num_parameters();
  auto opt_text = [](const OptimizerConfig& o) {
    std::ostringstream os;
    os << o.name << " lr " << o.lr;
    if (o.name == "sgd") {
      os << " momentum " << o.momentum;
    } else {
      os << " betas (" << o.betas[0] << ", " << o.betas[1] << ")";
    }
    if (o.weight_decay > 0) os << " weight_decay " << o.weight_decay;
    return os.str();
  };
  if (rank0()) {
    std::printf("dtrain train %s: %d rank%s (%s, %s, %d thread%s per rank), %s, %lld parameters\n",
                cfg.source.c_str(), world_n, world_n > 1 ? "s" : "", world.group().backend().c_str(),
                world.device().str().c_str(), threads, threads > 1 ? "s" : "", gan_.description.c_str(),
                static_cast<long long>(params_total));
    std::printf("data %s: %lld samples %lldx%lldx%lld, inputs in [-1, 1] (%s); global batch %lld (%d x %lld); "
                "%lld steps (%lld per epoch)\n",
                basename_of(cfg.data.train).c_str(), static_cast<long long>(train_schema.n),
                static_cast<long long>(train_schema.height), static_cast<long long>(train_schema.width),
                static_cast<long long>(train_schema.channels), tanh_inputs ? "tanh" : "meanstd: NOT [-1, 1]",
                static_cast<long long>(world_n * cfg.batch_size), world_n, static_cast<long long>(cfg.batch_size),
                static_cast<long long>(total_steps), static_cast<long long>(micro_per_epoch));
    std::printf("optimizer_g %s; optimizer_d %s\n", opt_text(cfg.optimizer_g).c_str(),
                opt_text(cfg.optimizer_d).c_str());
    std::fflush(stdout);
    write_metrics("{\"kind\":\"header\",\"model\":\"dcgan\",\"world_size\":" + std::to_string(world_n) +
                  ",\"backend\":" + json_string(world.group().backend()) + ",\"device\":" +
                  json_string(world.device().str()) + ",\"threads_per_rank\":" + std::to_string(threads) +
                  ",\"steps\":" + std::to_string(total_steps) + ",\"steps_per_epoch\":" +
                  std::to_string(micro_per_epoch) + ",\"parameters\":" + std::to_string(params_total) +
                  ",\"generator_parameters\":" + std::to_string(gan_.g->num_parameters()) +
                  ",\"discriminator_parameters\":" + std::to_string(gan_.d->num_parameters()) + ",\"build\":" +
                  json_string(std::string(DTRAIN_VERSION) + " (" + DTRAIN_GIT_HASH + ")") +
                  ",\"config\":" + json_string(canonical(cfg)) + "}");
  }

  TrainSummary summary;
  struct Interval {
    int64_t steps = 0;
    double loss_d = 0, loss_g = 0, d_real = 0, d_fake = 0, d_fake_g = 0;  // sums weighted by samples
    double samples = 0, wall = 0, data_wait = 0, allreduce_wait = 0, skew = 0;
  } iv;
  const auto start = Clock::now();
  int64_t consumed = 0;
  int64_t step = 0;
  data::Position position = train->sampler().normalize(train->position());
  constexpr int kFields = 8;
  while (step < total_steps) {
    const auto t0 = Clock::now();
    const double wait0 = train->wait_seconds();
    const int64_t epoch_before = position.epoch;
    data::Batch b = train->next();
    position = train->sampler().normalize(b.next);
    const Tensor real = normalize(b.images, train_affine, train_schema);
    const dist::GanStepResult r = gan_step.step(real);
    ++consumed;
    ++step;

    const double data_wait = train->wait_seconds() - wait0;
    const double allreduce_wait = gan_.reducer_g->last_wait_seconds() + gan_.reducer_d->last_wait_seconds();
    const double busy = seconds_since(t0) - data_wait - allreduce_wait;
    const int stop_here = stop ? stop() : 0;
    const double n = static_cast<double>(b.size);
    // The step boundary: one all_gather of this rank's statistics (Note [Trainer step]).
    Tensor mine = Tensor::from_vector<double>({r.loss_d * n, r.loss_g * n, r.d_real_mean * n, r.d_fake_mean * n,
                                               r.d_fake_after * n, n, busy, static_cast<double>(stop_here)},
                                              {kFields});
    Tensor all = Tensor::zeros({kFields * static_cast<int64_t>(world_n)}, DType::F64);
    world.control().all_gather(mine, all)->wait();
    std::vector<double> g = all.to_vector<double>();
    double sums[6] = {0, 0, 0, 0, 0, 0};
    double busy_max = 0, busy_min = 1e300;
    bool stop_all = false;
    int stop_kind = 0;
    for (int k = 0; k < world_n; ++k) {
      const double* row = g.data() + kFields * k;
      for (int i = 0; i < 6; ++i) sums[i] += row[i];
      busy_max = std::max(busy_max, row[6]);
      busy_min = std::min(busy_min, row[6]);
      stop_all = stop_all || row[7] != 0;
      stop_kind = std::max(stop_kind, static_cast<int>(row[7]));
    }
    const double total_n = sums[5];
    summary.final_loss_d = total_n > 0 ? sums[0] / total_n : 0;
    summary.final_loss_g = total_n > 0 ? sums[1] / total_n : 0;
    summary.final_loss = summary.final_loss_d;

    iv.steps += 1;
    iv.loss_d += sums[0];
    iv.loss_g += sums[1];
    iv.d_real += sums[2];
    iv.d_fake += sums[3];
    iv.d_fake_g += sums[4];
    iv.samples += total_n;
    iv.wall += seconds_since(t0);
    iv.data_wait += data_wait;
    iv.allreduce_wait += allreduce_wait;
    iv.skew += busy_max - busy_min;
    const double epoch_f = static_cast<double>(consumed) / static_cast<double>(micro_per_epoch);
    const bool last = step == total_steps || stop_all;
    if (rank0() && (step % cfg.log_interval == 0 || last)) {
      const double k = static_cast<double>(iv.steps);
      const double ns = iv.samples > 0 ? iv.samples : 1;
      const double ips = iv.wall > 0 ? iv.samples / iv.wall : 0;
      const double eta = static_cast<double>(total_steps - step) * iv.wall / k;
      const int64_t epoch_now = (consumed - 1) / micro_per_epoch + 1;
      std::printf("step %lld/%lld | epoch %lld/%lld | loss_d %.4f | loss_g %.4f | D(x) %.3f | D(G(z)) %.3f / %.3f | "
                  "%.0f img/s | data %.1f ms | allreduce %.1f ms | skew %.1f ms | ETA %s\n",
                  static_cast<long long>(step), static_cast<long long>(total_steps),
                  static_cast<long long>(epoch_now), static_cast<long long>(epochs_total), iv.loss_d / ns,
                  iv.loss_g / ns, iv.d_real / ns, iv.d_fake / ns, iv.d_fake_g / ns, ips, 1e3 * iv.data_wait / k,
                  1e3 * iv.allreduce_wait / k, 1e3 * iv.skew / k, duration_text(eta).c_str());
      std::fflush(stdout);
      write_metrics("{\"kind\":\"train\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch_f) +
                    ",\"loss_d\":" + json_number(iv.loss_d / ns) + ",\"loss_g\":" + json_number(iv.loss_g / ns) +
                    ",\"d_real\":" + json_number(iv.d_real / ns) + ",\"d_fake\":" + json_number(iv.d_fake / ns) +
                    ",\"d_fake_g_step\":" + json_number(iv.d_fake_g / ns) + ",\"images_per_s\":" + json_number(ips) +
                    ",\"data_wait_s\":" + json_number(iv.data_wait / k) +
                    ",\"allreduce_wait_s\":" + json_number(iv.allreduce_wait / k) +
                    ",\"step_time_skew_s\":" + json_number(iv.skew / k) + ",\"steps_logged\":" +
                    std::to_string(iv.steps) + ",\"time_s\":" + json_number(seconds_since(start)) + "}");
      iv = Interval{};
    }
    if (stop_all && step < total_steps) {
      summary.stopped = true;
      summary.stop_kind = stop_kind;
      if (rank0()) {
        std::printf("stop requested: stopping after step %lld (dcgan: no checkpoint)\n", static_cast<long long>(step));
        std::fflush(stdout);
      }
      if (!knobs.pid_dir.empty()) {
        std::ofstream(knobs.pid_dir + "/rank" + std::to_string(world.rank()) + ".stopped") << step << "\n";
      }
      break;
    }
    // "Evaluation": the sample grid, rank 0 alone (no collective).
    const bool epoch_end = position.epoch > epoch_before;
    const bool due = cfg.eval_interval > 0 ? step % cfg.eval_interval == 0 : epoch_end;
    if (!cfg.gan.samples.empty() && (due || step == total_steps) && rank0()) {
      summary.samples = write_samples(step);
      summary.evaluated = true;
      std::printf("samples step %lld/%lld: %s (%lld images of G(fixed noise), G in eval mode)\n",
                  static_cast<long long>(step), static_cast<long long>(total_steps), summary.samples.c_str(),
                  static_cast<long long>(cfg.gan.samples_n));
      std::fflush(stdout);
      write_metrics("{\"kind\":\"samples\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch_f) +
                    ",\"path\":" + json_string(summary.samples) + ",\"images\":" + std::to_string(cfg.gan.samples_n) +
                    ",\"time_s\":" + json_number(seconds_since(start)) + "}");
    }
    if (step == knobs.crash_at_step) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    if (knobs.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(knobs.step_delay_ms));
  }
  summary.steps = step;
  summary.seconds = seconds_since(start);
  if (rank0()) {
    if (summary.stopped) {
      std::printf("stopped after step %lld of %lld (%.1f s); no checkpoint (dcgan)\n", static_cast<long long>(step),
                  static_cast<long long>(total_steps), summary.seconds);
    } else {
      std::printf("finished %lld steps in %.1f s; loss_d %.4f, loss_g %.4f%s%s\n", static_cast<long long>(step),
                  summary.seconds, summary.final_loss_d, summary.final_loss_g,
                  summary.samples.empty() ? "" : "; samples ", summary.samples.c_str());
    }
    std::fflush(stdout);
  }
  return summary;
}

}  // namespace dtrain::launcher
