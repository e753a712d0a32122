#pragma once
// TrainLoop: the one data-parallel training loop of `dtrain train` (docs/TRAINING.md),
// with a Recipe (recipe.h) supplying what differs between kinds of runs.
//
// Note [Trainer step]: every rank runs the same sequence of collectives, so the
// contract of Note [Same call order] (distributed/process_group.h) holds by
// construction:
//
//   set-up      (local) the training loader, then the recipe's models, optimizers and
//               test data; then one collective "all ok" (World::check_all_ok), so a
//               missing file on one rank stops all.
//   preflight   the recipe's Reducer(s); dist::check_agreement over batch size, the
//               recipe's parameters, bucket layouts, optimizers and data manifest, the
//               training length and the build id. run() then first broadcasts rank 0's
//               parameters and buffers: only after the agreement, since a broadcast
//               between ranks whose shapes differ would fail or hang.
//   resume      (with --resume, first thing in run()) rank 0 picks the checkpoint and
//               broadcasts its step; every rank loads it (Note [Resume agreement]).
//   each step   the recipe's step (grad_accum micro-batches, its reducers syncing on the
//               last one); then ONE all_gather on the control group of this rank's
//               [recipe statistics..., units, busy seconds, stop flag], from which every
//               rank derives the same statistics, step-time skew and stop decision (a
//               stop on any rank stops all after the same step).
//   checkpoint  every checkpoint.every steps, after the last one and on a stop (Note
//               [Checkpoint protocol] in loop_checkpoint.cpp): an all_gather of the
//               recipe's per-rank random streams (when it has any), rank 0 writes,
//               check_all_ok agrees on the outcome.
//   evaluation  at fixed steps (the same on every rank): the recipe's evaluate(), which
//               may be collective (a classifier's sharded test set, all-reduced) or rank
//               0 alone (a GAN's sample grid).
//
// Rank 0 prints progress lines and writes the metrics file; nothing else is rank
// dependent.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "launcher/control/status_server.h"
#include "launcher/train/config.h"
#include "launcher/train/recipe.h"
#include "launcher/train/world.h"

namespace dtrain::launcher {

class TrainLoop {
 public:
  // Set-up on every rank with `recipe` (or, without one, the recipe that config's
  // model.name selects from the registry). Collective: a failure on any rank throws on
  // every rank.
  TrainLoop(const Config& config, World& world, std::unique_ptr<Recipe> recipe = nullptr);
  ~TrainLoop();
  TrainLoop(const TrainLoop&) = delete;
  TrainLoop& operator=(const TrainLoop&) = delete;

  // The reducers and the agreement check. Collective; on a mismatch throws
  // DistributedError on every rank.
  void preflight();
  // Resumes from config.resume when set (collective), else broadcasts rank 0's
  // parameters and buffers; then trains for the configured steps, checkpointing as
  // configured. Returns the same summary on every rank. An exception here may leave other
  // ranks in a collective: the caller ends the job (World::abort) when the world has
  // several.
  TrainSummary run();

  // Polled once per step on every rank: a non-zero StopKind on any rank stops every rank
  // after the same step; the summary carries the largest kind requested.
  enum StopKind : int { kNoStop = 0, kStop = 1, kStopAndRequeue = 2 };
  void set_stop_request(std::function<int()> stop);
  // Rank 0: called with the job's status at every progress line, checkpoint and the end
  // (the live status, launcher/control/job_control.h).
  void set_status_sink(std::function<void(const control::JobStatus&)> sink);
  // Rank 0: appends one JSON record to the metrics file, from any thread (nothing without
  // the file).
  void write_metrics_record(const std::string& line);
  int64_t total_steps() const;
  Recipe& recipe();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::launcher
