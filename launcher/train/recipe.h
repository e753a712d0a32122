#pragma once
// Recipe: what one kind of training run (a classifier, a translation model, a GAN, ...)
// adds to the one training loop (TrainLoop, loop.h). The loop owns everything that every
// run shares: the World, the training loader and its position, the number of steps,
// resume-or-broadcast, the step-boundary all_gather (the recipe's statistics, busy time,
// stop flag), the log / evaluation / checkpoint / stop schedule, the metrics file, the
// progress line and the test knobs. A recipe supplies what differs, through the hooks
// below, in the order the loop calls them (Note [Trainer step] in loop.h):
//
//   set-up      configure_loader, check_train_data, setup (models, optimizers, test data)
//   preflight   make_reducers, agreement
//   run         restore (on a resume) or broadcast_initial; header; then each step: step,
//               and at the loop's schedule: evaluate, fill_checkpoint; after the last
//               step: finish; then final_line.
//
// Every hook that the loop calls on every rank at the same point may issue collectives,
// and must issue the same ones on every rank (Note [Same call order] in
// distributed/process_group.h). A recipe is one file plus one line in the registry
// (registry.cpp).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/checkpoint.h"
#include "core/rng.h"
#include "datasets/loader.h"
#include "distributed/agreement.h"
#include "distributed/reducer.h"
#include "launcher/train/config.h"
#include "launcher/train/world.h"

namespace dtrain::launcher {

// Named numbers in a fixed order (statistics of a step, metrics of an evaluation).
struct Metrics {
  std::vector<std::pair<std::string, double>> items;
  void set(const std::string& name, double v);
  // The value of `name`; `fallback` when absent.
  double get(const std::string& name, double fallback = 0) const;
  bool has(const std::string& name) const;
};

// What every run returns (the same on every rank, except `checkpoint`: rank 0's).
struct TrainSummary {
  int64_t steps = 0;
  double seconds = 0;          // wall time of the loop, evaluations included
  Metrics last_step;           // the recipe's statistics of the last step over all ranks ("loss"; dcgan "loss_d", ...)
  bool evaluated = false;
  Metrics eval;                // the last evaluation's metrics ("test_accuracy", "test_loss", ...)
  bool stopped = false;        // a stop was requested before the last step
  int stop_kind = 0;           // the largest StopKind any rank requested (agreed by all)
  int64_t resumed_from = -1;   // the step of the checkpoint this run resumed from, -1 none
  std::string checkpoint;      // rank 0: the newest checkpoint this run wrote ("" none)
};

// What the loop shares with its recipe.
struct RunContext {
  const Config& cfg;
  World& world;
  int threads = 1;              // CPU kernel threads of this rank
  int64_t total_steps = 0;      // optimizer steps of the whole run (set before Recipe::setup)
  int64_t micro_per_epoch = 0;  // micro-batches per rank in an epoch
  // Rank 0: appends one JSON object to log.metrics (nothing without the file or elsewhere).
  std::function<void(const std::string&)> write_metrics;

  bool rank0() const { return world.rank() == 0; }
  int64_t global_micro_batch() const { return static_cast<int64_t>(world.size()) * cfg.batch_size; }
};

// Handed to Recipe::step: the loop's training loader.
class StepInput {
 public:
  virtual ~StepInput() = default;
  // The next micro-batch of this rank (the loop tracks the position, the epoch and the
  // test sample log).
  virtual data::Batch next() = 0;
};

struct StepResult {
  std::vector<double> sums;  // this rank's statistics (Recipe::stat_names() order), summed over ranks by the loop
  double units = 0;          // what the rate counts: samples (seq2seq: target tokens) of this rank
  double comm_wait = 0;      // seconds this rank waited for gradient all-reduces
};

// Where an evaluation runs: the loop's schedule position.
struct EvalPoint {
  int64_t step = 0;
  double epoch = 0;    // fractional epochs done
  double elapsed = 0;  // seconds since the loop started
};

// The text the loop prints and agrees on, from the recipe.
struct RunHeader {
  std::string model;           // one line: the network(s)
  int64_t parameters = 0;      // trained parameters, all networks
  std::string data;            // the training data after "data <file>: ", e.g. "60000 samples 28x28x1"
  std::string optimizer;       // the line after the data line, e.g. "optimizer sgd; constant lr 0.05"
  std::string metrics_fields;  // extra fields of the metrics header record: ",\"key\":value..." or ""
};

class Recipe {
 public:
  virtual ~Recipe() = default;

  // ---- set-up (local; the loop agrees on the outcome across ranks) ---------------------
  // Before the training loader opens: e.g. reading image files without their labels.
  virtual void configure_loader(data::LoaderConfig& lc) const { (void)lc; }
  // The training file is open: check its kind and read its schema. Throws ConfigError.
  virtual void check_train_data(const RunContext& ctx, data::Loader& train) = 0;
  // Models, optimizers, test data. ctx.total_steps is known.
  virtual void setup(const RunContext& ctx, const data::LoaderConfig& lc) = 0;

  // ---- preflight (collective) ----------------------------------------------------------
  virtual void make_reducers(dist::ProcessGroup& group, const dist::ReducerOptions& options) = 0;
  // The recipe's parts of the agreement check: its parameters, bucket layouts, optimizers,
  // data manifest, and any training settings the loop does not know.
  struct Agreement {
    std::string parameters, layout, optimizer, dataset, training;
  };
  virtual Agreement agreement() const = 0;

  // ---- run -------------------------------------------------------------------------
  // A fresh run: rank 0's parameters and buffers to every rank (collective).
  virtual void broadcast_initial() = 0;
  virtual RunHeader header() const = 0;
  // One optimizer step over cfg.grad_accum micro-batches from `in`. `step` counts the
  // steps done before this one.
  virtual StepResult step(StepInput& in, int64_t step) = 0;
  // Names of StepResult::sums, in order.
  virtual std::vector<std::string> stat_names() const = 0;
  // The progress line's recipe part ("loss 0.1234 | lr 0.05") and the metrics record's
  // fields (",\"loss\":...") from statistics summed over ranks and the logged steps.
  virtual std::string progress(const std::vector<double>& sums, double units) const = 0;
  virtual std::string progress_fields(const std::vector<double>& sums, double units) const = 0;
  // What StepResult::units count, as the progress line shows their rate ("img/s") and the
  // metrics record names it ("images_per_s").
  struct RateUnit {
    const char* shown;
    const char* metrics_key;
  };
  virtual RateUnit rate_unit() const { return {"img/s", "images_per_s"}; }
  // The statistics of one step (sums over ranks) as the summary reports them.
  virtual Metrics step_metrics(const std::vector<double>& sums, double units) const = 0;

  // Whether evaluate() has anything to do (a test file, a sample grid).
  virtual bool evaluates() const = 0;
  // Called on every rank at the same steps; prints its line and writes its metrics record
  // on rank 0.
  virtual Metrics evaluate(const RunContext& ctx, const EvalPoint& at) = 0;

  // ---- checkpoints (docs/CHECKPOINTS.md) -----------------------------------------------
  // This rank's random streams that later steps draw from, by stable names: every rank's
  // are saved (/rng/rank<r>/<name>) and each rank restores its own.
  virtual std::vector<std::pair<std::string, Generator*>> rank_streams() { return {}; }
  // Rank 0: the model, optimizer state and any streams shared by all ranks.
  virtual void fill_checkpoint(ckpt::Contents& c) const = 0;
  // Every rank, on a resume: checks that `c` (read from `path`) fits, its seed included
  // (check_checkpoint_seed), and loads it. Per-rank streams are the loop's.
  virtual void restore(const std::string& path, const ckpt::Contents& c) = 0;
  // Rank 0's note when the checkpoint was written by another world size (after "this run
  // has N: ").
  virtual std::string world_size_note(int64_t written_by) const = 0;

  // ---- the end ---------------------------------------------------------------------
  // After the last step (not after a stop), on every rank: e.g. an export (collective).
  virtual void finish(const RunContext& ctx, int64_t step) { (void)ctx, (void)step; }
  // Rank 0's last line for a run that trained to its end.
  virtual std::string final_line(const TrainSummary& s, int world_size) const = 0;
};

}  // namespace dtrain::launcher
