#pragma once
// Small helpers of the training loop and its recipes: optimizers and schedules from the
// config, random streams of a model, JSON and text formatting, the test knobs.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/checkpoint.h"
#include "core/models/image_classifier.h"
#include "core/nn/module.h"
#include "core/optim/lr_schedule.h"
#include "core/optim/optimizer.h"
#include "core/rng.h"
#include "datasets/schema.h"
#include "launcher/train/config.h"

namespace dtrain::launcher {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t);
std::string basename_of(const std::string& path);
// "dtrain <version> (<git hash>)": what checkpoints record and ranks agree on.
std::string build_id();

// The model.* keys of an image classifier (models::make_image_classifier).
models::ClassifierSpec classifier_spec(const ModelConfig& m);
std::unique_ptr<optim::Optimizer> build_optimizer(const OptimizerConfig& o, const nn::NamedTensors& params);
std::unique_ptr<optim::LrSchedule> build_schedule(const Config& c, int64_t total_steps);
// "sgd lr 0.05 momentum 0.9 nesterov 0 ...": every setting, for the agreement check.
std::string optimizer_settings(const OptimizerConfig& o);

// Every random stream of the model that later steps draw from, by a stable name
// ("dropout.classifier.2"), in module order. Data order and augmentation need none: they
// are functions of (seed, epoch, position) (datasets/augment.h, Note [Epoch stream]).
void collect_generators(nn::Module& m, const std::string& prefix,
                        std::vector<std::pair<std::string, Generator*>>& out);

// "key = value" lines of two canonical configs that differ, as "key: old -> new".
std::string config_changes(const std::string& before, const std::string& after);
std::string json_string(const std::string& s);
std::string json_number(double v);
std::string duration_text(double s);
std::string manifest_line(const std::string& split, const data::ImageSchema& s);
// Checks that checkpoint `path` (read into `c`) holds m's parameters and buffers by name
// and shape (ValueError naming the first mismatch) and copies them into m.
void load_model(const std::string& path, const ckpt::Contents& c, nn::Module& m);
// Throws ConfigError when checkpoint `path` was written with another seed than cfg.seed;
// `fixes` says what the seed fixes ("the data order").
void check_checkpoint_seed(const std::string& path, int64_t written_seed, const Config& cfg, const char* fixes);
// The agreement check's last dataset line: "augment pad_crop 0 hflip 0; inputs meanstd".
std::string augment_line(const Config& cfg, const char* inputs);
// printf into a std::string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Test-only knobs from the environment (tests/launcher/test_resume.cpp); none is set in
// normal runs.
struct TestKnobs {
  int64_t crash_at_step = -1;        // DTRAIN_TEST_CRASH_AT_STEP: every rank SIGKILLs itself after it
  int64_t crash_in_ckpt_step = -1;   // DTRAIN_TEST_CRASH_IN_CHECKPOINT=STEP:STAGE: rank 0 SIGKILLs
  std::string crash_in_ckpt_stage;   //   itself at that stage of that checkpoint's write
  std::string log_samples;           // DTRAIN_TEST_LOG_SAMPLES: append "step row" lines to <it>.rank<r>
  std::string pid_dir;               // DTRAIN_TEST_PID_DIR: rank<r>.pid at start, rank<r>.stopped at a stop
  int64_t step_delay_ms = 0;         // DTRAIN_TEST_STEP_DELAY_MS: sleep after each step
  int hold_rank = -1;                // DTRAIN_TEST_HOLD=RANK:STEP: that rank stays in forward of
  int64_t hold_step = -1;            //   that step (alive, no progress) until the watchdog ends it

  static TestKnobs from_env();
};

}  // namespace dtrain::launcher
