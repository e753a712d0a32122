#pragma once
// The trainer's internals, shared by its translation units: trainer.cpp (set-up,
// preflight, evaluation, checkpoints and the step loop), trainer_gan.cpp (the dcgan
// recipe). Not an interface outside launcher/.
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

#include "launcher/trainer.h"

namespace dtrain::models {
class Seq2Seq;
}

namespace dtrain::launcher::detail {

using Clock = std::chrono::steady_clock;

struct BuiltModel {
  std::shared_ptr<nn::Module> module;
  std::string description;
};

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

double seconds_since(Clock::time_point t);
std::string basename_of(const std::string& path);

// The models of docs/TRAINING.md for images (C, H, W) and `classes` outputs. The initial
// values come from one stream for every rank (and rank 0's are broadcast anyway); dropout
// masks from a stream per rank.
BuiltModel build_model(const ModelConfig& m, int64_t channels, int64_t height, int64_t width, int64_t classes,
                       uint64_t seed, int rank);
std::unique_ptr<optim::Optimizer> build_optimizer(const OptimizerConfig& o, const nn::NamedTensors& params);
std::unique_ptr<optim::LrSchedule> build_schedule(const Config& c, int64_t total_steps);

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

}  // namespace dtrain::launcher::detail

namespace dtrain::launcher {

using namespace detail;

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
    // The training noise: one stream for all ranks, drawn for the global batch (Note
    // [Global GAN noise] in trainer_gan.cpp).
    std::unique_ptr<Generator> noise;
    Tensor fixed_z;                    // the grid's noise batch, the same on every rank
    std::string description;
  } gan_;
  void setup_gan();
  // Rank 0: the grid of G(fixed_z), G in eval mode; returns the path written.
  std::string write_samples(int64_t step);
  // Rank 0: gan.export_n samples of G (eval mode) as an image-only HDF5 file, written
  // atomically; returns the path written.
  std::string export_samples();
  // The dcgan counterparts of save() and load() (docs/CHECKPOINTS.md, "dcgan").
  void save_gan(int64_t step, data::Position pos);
  void load_gan(const std::string& path, int64_t step);
  TrainSummary run_gan();

  // Shared checkpoint steps (trainer_common.cpp), for recipes other than the classifier.
  // Collective: rank 0 picks the checkpoint of cfg.resume (Note [Resume agreement]) and
  // broadcasts its step; returns it with the path this rank reads, or -1 when there is
  // none (--resume auto on an empty directory: start fresh).
  int64_t choose_checkpoint(std::string& path);
  // Rank 0 only: writes `c` (ckpt::write, with the test crash hook), prunes, prints the
  // checkpoint line and its metrics record; sets last_checkpoint. Throws on failure (the
  // caller agrees on the outcome with check_all_ok).
  void commit_checkpoint(const ckpt::Contents& c);

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
  void setup_classifier(const data::LoaderConfig& lc);  // images: test loader and model
  struct Eval {
    double accuracy = 0, loss = 0;  // seq2seq: token accuracy and loss per target token
    int64_t samples = 0;            // seq2seq: sentence pairs
    // seq2seq only.
    int64_t tokens = 0;
    double bleu = 0;
    std::vector<double> bleu_precisions;    // n = 1..4
    std::vector<std::string> translations;  // rank 0: "source => hypothesis  (reference)"
  };
  Eval evaluate();

  // model.name = seq2seq (trainer_seq2seq.cpp): the classifier loop with these in place of
  // the image set-up, loss and evaluation.
  bool seq = false;
  models::Seq2Seq* seq_model = nullptr;  // model.module
  data::PairSchema train_pairs, test_pairs;
  void setup_seq2seq(const data::LoaderConfig& lc);
  // The micro-batch's objective (Note [Seq2seq loss over the global batch]); sets the
  // mean loss over this rank's target tokens and their count. Collective when the world
  // has several ranks.
  Tensor seq2seq_objective(const data::Batch& b, int64_t accum, Tensor& mean, int64_t& tokens);
  Eval evaluate_seq2seq();
  std::string pair_dataset_manifest() const;
  void write_metrics(const std::string& line) {
    if (!metrics) return;
    std::fputs(line.c_str(), metrics);
    std::fputc('\n', metrics);
    std::fflush(metrics);
  }
  bool rank0() const { return world.rank() == 0; }
};

}  // namespace dtrain::launcher
