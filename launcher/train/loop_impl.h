#pragma once
// The training loop's state, shared by loop.cpp (set-up, preflight, the step loop) and
// loop_checkpoint.cpp (checkpoint writes, resume). Not an interface outside launcher/train.
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/log.h"
#include "datasets/loader.h"
#include "launcher/train/common.h"
#include "launcher/train/loop.h"

namespace dtrain::launcher {

struct TrainLoop::Impl {
  Impl(const Config& c, World& w, std::unique_ptr<Recipe> r);
  ~Impl();

  const Config cfg;
  World& world;
  Logger log;
  std::unique_ptr<Recipe> recipe;
  RunContext ctx;
  std::unique_ptr<data::Loader> train;
  std::FILE* metrics = nullptr;
  std::FILE* sample_log = nullptr;
  std::function<int()> stop;
  std::function<void(const control::JobStatus&)> status_sink;
  control::JobStatus status;  // rank 0: what the sink last got
  std::mutex metrics_mu;      // the control thread may write a record too
  bool preflight_done = false;
  TestKnobs knobs = TestKnobs::from_env();

  // Checkpoints and resume (docs/CHECKPOINTS.md).
  int64_t start_step = 0;  // steps done before this run (a resumed checkpoint's step)
  bool resumed = false;
  int64_t resumed_step = -1;
  std::string last_checkpoint;  // path of the newest checkpoint this run wrote

  bool rank0() const { return world.rank() == 0; }
  void setup();
  void write_metrics(const std::string& line);
  void print_header();

  // Collective: writes the checkpoint of `step` (rank 0), prunes, and agrees on success.
  // Writes the checkpoint of `step` on rank 0 (Note [Checkpoint protocol]); returns
  // whether it was written. A failed periodic one may be tolerated (Note [Failed
  // checkpoints]); otherwise a failure throws on every rank.
  enum class SaveKind { Periodic, Final, Stop };
  bool save(int64_t step, data::Position pos, SaveKind kind);
  int64_t failed_checkpoints = 0;  // periodic checkpoints failed in a row
  // Collective: picks (rank 0) and loads (every rank) the checkpoint of cfg.resume.
  void resume();
  void load(const std::string& path, int64_t step);
  // Collective: rank 0 picks the checkpoint of cfg.resume (Note [Resume agreement]) and
  // broadcasts its step; returns it with the path this rank reads, or -1 when there is
  // none (--resume auto on an empty directory: start fresh).
  int64_t choose_checkpoint(std::string& path);
  // Rank 0 only: writes `c` (ckpt::write, with the test crash hook), prunes, prints the
  // checkpoint line and its metrics record; sets last_checkpoint. Throws on failure (the
  // caller agrees on the outcome with check_all_ok).
  void commit_checkpoint(const ckpt::Contents& c);
};

}  // namespace dtrain::launcher
