#pragma once
// Trainer: the data-parallel training loop of `dtrain train` (docs/TRAINING.md).
//
// Note [Trainer step]: every rank runs the same sequence of collectives, so the
// contract of Note [Same call order] (distributed/process_group.h) holds by
// construction:
//
//   set-up      (local) model, loaders, optimizer, schedule; then one collective
//               "all ok" (World::check_all_ok), so a missing file on one rank stops all.
//   preflight   Reducer(params); dist::check_agreement over batch size, parameters,
//               bucket layout, training length, optimizer, dataset manifest and build
//               id. run() then first broadcasts rank 0's parameters and buffers: only
//               after the agreement, since a broadcast between ranks whose shapes differ
//               would fail or hang.
//   each step   grad_accum micro-batches, forward/backward under a Tape, the reducer
//               syncing on the last one only; reducer.finalize(); optimizer step at the
//               schedule's rate; then ONE all_gather on the control group of this rank's
//               [loss sum, samples, busy seconds, stop flag], from which every rank
//               derives the same mean loss, sample count, step-time skew and stop
//               decision (a stop on any rank stops all after the same step).
//   evaluation  at fixed steps (the same on every rank): buffers broadcast from rank 0,
//               each rank evaluates its shard of the test split (no drop_last), and
//               [correct, samples, loss sum] is all-reduced (Sum).
//
// Rank 0 prints progress lines and writes the metrics file; nothing else is rank
// dependent.
#include <cstdint>
#include <functional>
#include <memory>

#include "launcher/config.h"
#include "launcher/world.h"

namespace dtrain::launcher {

struct TrainSummary {
  int64_t steps = 0;
  double seconds = 0;          // wall time of the loop, evaluations included
  double final_loss = 0;       // mean training loss of the last step, over all ranks
  bool evaluated = false;
  double test_accuracy = 0;    // fraction in [0, 1]
  double test_loss = 0;
  int64_t test_samples = 0;
  bool stopped = false;        // a stop was requested before the last step
};

class Trainer {
 public:
  // Set-up on every rank. Collective: a failure on any rank throws on every rank.
  Trainer(const Config& config, World& world);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // The reducer and the agreement check. Collective; on a mismatch throws
  // DistributedError on every rank.
  void preflight();
  // Broadcasts rank 0's parameters and buffers, then trains for the configured steps.
  // Returns the same summary on every rank. An exception here may leave other ranks in
  // a collective: the caller ends the job (World::abort) when the world has several.
  TrainSummary run();

  // Polled once per step on every rank; true on any rank stops every rank after the
  // same step (issue 6 sets it from signals).
  void set_stop_request(std::function<bool()> stop);
  int64_t total_steps() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::launcher
