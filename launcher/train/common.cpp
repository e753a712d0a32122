// Helpers of the training loop and its recipes: see common.h.
#include "launcher/train/common.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/nn/conv.h"
#include "core/nn/layers.h"

#ifndef DTRAIN_VERSION
#define DTRAIN_VERSION "unknown"
#endif
#ifndef DTRAIN_GIT_HASH
#define DTRAIN_GIT_HASH "unknown"
#endif

namespace dtrain::launcher {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string basename_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

std::string build_id() { return std::string("dtrain ") + DTRAIN_VERSION + " (" + DTRAIN_GIT_HASH + ")"; }

std::string format(const char* fmt, ...) {
  va_list a, b;
  va_start(a, fmt);
  va_copy(b, a);
  const int n = std::vsnprintf(nullptr, 0, fmt, a);
  va_end(a);
  std::string s(static_cast<size_t>(n > 0 ? n : 0), '\0');
  std::vsnprintf(s.data(), s.size() + 1, fmt, b);
  va_end(b);
  return s;
}

void load_model(const std::string& path, const ckpt::Contents& c, nn::Module& m) {
  nn::NamedTensors state = m.named_parameters();
  for (const auto& b : m.named_buffers()) state.push_back(b);
  ckpt::check_model(path, c.model, state);
  std::map<std::string, const Tensor*> in_file;
  for (const auto& [n, t] : c.model) in_file[n] = &t;
  for (const auto& [n, t] : state) t.copy_(in_file.at(n)->to(t.device()));
}

void check_checkpoint_seed(const std::string& path, int64_t written_seed, const Config& cfg, const char* fixes) {
  DT_CHECK_AS(written_seed == cfg.seed, ConfigError, "checkpoint '", path, "' was written with seed ", written_seed,
              ", this run has seed ", cfg.seed, ": resume with --set seed=", written_seed, " (the seed fixes ", fixes,
              ")");
}

std::string augment_line(const Config& cfg, const char* inputs) {
  std::ostringstream os;
  os << "augment pad_crop " << cfg.data.pad_crop << " hflip " << cfg.data.hflip;
  if (cfg.data.random_resized_crop) {
    os << " random_resized_crop scale " << cfg.data.rrc_scale[0] << " " << cfg.data.rrc_scale[1] << " ratio "
       << cfg.data.rrc_ratio[0] << " " << cfg.data.rrc_ratio[1];
  }
  if (cfg.data.image_size > 0 || cfg.data.eval_resize > 0) {
    os << " image_size " << cfg.data.image_size << " eval_resize " << cfg.data.eval_resize;
  }
  os << "; inputs " << inputs;
  return os.str();
}

TestKnobs TestKnobs::from_env() {
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
  if (auto v = env("DTRAIN_TEST_HOLD"); !v.empty()) {
    const auto colon = v.find(':');
    k.hold_rank = std::stoi(v.substr(0, colon));
    k.hold_step = colon == std::string::npos ? 1 : std::stoll(v.substr(colon + 1));
  }
  return k;
}

// ---- optimizers ------------------------------------------------------------------------

models::ClassifierSpec classifier_spec(const ModelConfig& m) {
  models::ClassifierSpec spec;
  spec.name = m.name;
  spec.hidden = m.hidden;
  spec.dropout = m.dropout;
  spec.batch_norm = m.batch_norm;
  spec.fc_dropout = m.fc_dropout;
  return spec;
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
  // Adam and AdamW take the same settings (they differ in how weight decay applies).
  auto adam = [&](auto options) {
    options.lr = o.lr;
    options.beta1 = o.betas[0];
    options.beta2 = o.betas[1];
    options.eps = o.eps;
    options.weight_decay = o.weight_decay;
    return options;
  };
  if (o.name == "adam") return std::make_unique<optim::Adam>(params, adam(optim::Adam::Options{}));
  return std::make_unique<optim::AdamW>(params, adam(optim::AdamW::Options{}));
}

std::string optimizer_settings(const OptimizerConfig& o) {
  std::ostringstream os;
  os << o.name << " lr " << o.lr << " momentum " << o.momentum << " nesterov " << o.nesterov << " weight_decay "
     << o.weight_decay << " betas " << o.betas[0] << " " << o.betas[1] << " eps " << o.eps;
  return os.str();
}

std::unique_ptr<optim::LrSchedule> build_schedule(const Config& c, int64_t total_steps) {
  const ScheduleConfig& s = c.schedule;
  if (s.name == "step") return std::make_unique<optim::StepLr>(c.optimizer.lr, s.step_size, s.gamma);
  if (s.name == "cosine") return std::make_unique<optim::CosineWarmupLr>(c.optimizer.lr, s.warmup, total_steps, s.min_lr);
  return std::make_unique<optim::ConstantLr>(c.optimizer.lr);
}

// ---- checkpoint helpers ----------------------------------------------------------------

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

}  // namespace dtrain::launcher
