#pragma once
// Trainer: the data-parallel training loop of `dtrain train` (docs/TRAINING.md).
//
// Note [Trainer step]: every rank runs the same sequence of collectives, so the
// contract of Note [Same call order] (distributed/process_group.h) holds by
// construction:
//
//   resume      (with --resume, first thing in run()) rank 0 picks the checkpoint and
//               broadcasts its step; every rank loads it (Note [Resume agreement]).
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
//   checkpoint  every checkpoint.every steps, after the last one and on a stop (Note
//               [Checkpoint protocol] in trainer.cpp): an all_gather of the random
//               streams, rank 0 writes, check_all_ok agrees on the outcome.
//   evaluation  at fixed steps (the same on every rank): buffers broadcast from rank 0,
//               each rank evaluates its shard of the test split (no drop_last), and
//               [correct, samples, loss sum] is all-reduced (Sum).
//
// Rank 0 prints progress lines and writes the metrics file; nothing else is rank
// dependent.
//
// model.name = "dcgan" (docs/GAN.md) runs the same protocol with two networks: set-up
// builds G and D, preflight makes one Reducer for each (on the same process group) and
// agrees on both networks' parameters and both bucket layouts, run() resumes (the same
// choice and agreement) or broadcasts both from rank 0, and each step is one
// dist::GanStep (the D step issues reducer_d's buckets, the G step reducer_g's) on this
// rank's rows of the global batch's noise, drawn from one stream shared by all ranks
// (Note [Global GAN noise] in trainer_gan.cpp), followed by the same all_gather of the
// step's statistics. The "evaluation" is rank 0 alone writing the grid of G(fixed noise)
// (gan.samples), with no collective. Checkpoints follow the same steps and protocol
// (both networks and optimizers under the prefixes "generator." and "discriminator.",
// and the noise stream; no all_gather, as no rank has a stream of its own); after the
// last step (not on a stop) rank 0 writes gan.export and check_all_ok agrees on it.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "launcher/config.h"
#include "launcher/world.h"

namespace dtrain::launcher {

struct TrainSummary {
  int64_t steps = 0;
  double seconds = 0;          // wall time of the loop, evaluations included
  double final_loss = 0;       // mean training loss of the last step, over all ranks (dcgan: loss_d)
  double final_loss_d = 0;     // dcgan: the last step's discriminator and generator losses, over all ranks
  double final_loss_g = 0;
  std::string samples;         // dcgan, rank 0: the last sample grid written ("" none)
  bool evaluated = false;
  double test_accuracy = 0;    // fraction in [0, 1] (seq2seq: of the target tokens)
  double test_loss = 0;        // seq2seq: per target token
  double test_bleu = 0;        // seq2seq: corpus BLEU-4 of greedy translations, in [0, 1]
  int64_t test_samples = 0;
  bool stopped = false;        // a stop was requested before the last step
  int stop_kind = 0;           // the largest StopKind any rank requested (agreed by all)
  int64_t resumed_from = -1;   // the step of the checkpoint this run resumed from, -1 none
  std::string checkpoint;      // rank 0: the newest checkpoint this run wrote ("" none)
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
  // Resumes from config.resume when set (collective), else broadcasts rank 0's
  // parameters and buffers; then trains for the configured steps, checkpointing as
  // configured.
  // Returns the same summary on every rank. An exception here may leave other ranks in
  // a collective: the caller ends the job (World::abort) when the world has several.
  TrainSummary run();

  // Polled once per step on every rank: a non-zero StopKind on any rank stops every rank
  // after the same step; the summary carries the largest kind requested.
  enum StopKind : int { kNoStop = 0, kStop = 1, kStopAndRequeue = 2 };
  void set_stop_request(std::function<int()> stop);
  int64_t total_steps() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::launcher
