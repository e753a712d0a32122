// Helpers of the trainer (trainer_internal.h).
#include "launcher/trainer_internal.h"

namespace dtrain::launcher::detail {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string basename_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// ---- models ----------------------------------------------------------------------------

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

}  // namespace dtrain::launcher::detail

namespace dtrain::launcher {

// ---- checkpoint steps shared by the recipes --------------------------------------------

int64_t Trainer::Impl::choose_checkpoint(std::string& path) {
  std::exception_ptr error;
  int64_t step = -1;
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
  if (step >= 0 && !rank0()) {
    path = cfg.resume == "auto" ? (std::filesystem::path(cfg.checkpoint_dir) / ckpt::file_name(step)).string()
                                : cfg.resume;
  }
  return step;
}

void Trainer::Impl::commit_checkpoint(const ckpt::Contents& c) {
  const int64_t step = c.trainer.step;
  const auto t0 = Clock::now();
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
}

}  // namespace dtrain::launcher
