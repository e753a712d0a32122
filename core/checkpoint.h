#pragma once
// Checkpoint files: the HDF5 layout of a training run's complete state, written
// atomically and verified on load (docs/CHECKPOINTS.md; DESIGN.md "Checkpoint").
//
// Layout of <dir>/step-<N>.h5 (every dataset in the native HDF5 type of its dtype):
//   /model/<name>               parameters and buffers ("features.0.weight",
//                               "features.1.running_mean", "...num_batches_tracked")
//   /optimizer/<param>.<slot>   optimizer state ("0.weight.momentum_buffer", "...exp_avg");
//                               attribute steps_taken on /optimizer
//   /rng/rank<r>/<stream>       int64 [2]: a Generator's (seed, offset), the uint64 bits
//   /trainer (group)            attributes: format_version, step, epoch, cursor, seed,
//                               world_size, schedule_step, global_batch, config, build
//
// Note [Checkpoint commit]: a checkpoint exists only once its marker does. write():
//   1. HDF5 writes <dir>/step-<N>.h5.tmp; the file is read back once to compute its
//      XXH64 checksum and fsync'ed;
//   2. a stale marker step-<N>.ok (from an earlier, abandoned run) is removed, then
//      step-<N>.h5.tmp is renamed to step-<N>.h5 and the directory fsync'ed;
//   3. the marker step-<N>.ok (file name, byte count, checksum) is written the same way:
//      .ok.tmp, fsync, rename, fsync the directory.
// A crash at any point leaves either no marker (the checkpoint does not count; older ones
// are untouched) or a complete, durable file with its marker. read()/verify() check the
// marker, the size, the checksum and the format version, each failure an IoError naming
// the file and what is wrong; check_model() compares names, shapes and dtypes.
// Only rank 0 writes; every rank may read (a shared filesystem is assumed).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/nn/module.h"
#include "core/rng.h"

namespace dtrain::ckpt {

constexpr int64_t kFormatVersion = 1;

// One random stream of one rank.
struct RngStream {
  int rank = 0;
  std::string name;  // e.g. "dropout.classifier.2"
  Generator::State state;
};

// Scalars of the training loop.
struct TrainerState {
  int64_t step = 0;           // optimizer steps completed
  int64_t epoch = 0;          // loader position after the last step: epoch ...
  int64_t cursor = 0;         // ... and global sample cursor within it
  int64_t seed = 0;
  int64_t world_size = 1;
  int64_t global_batch = 0;   // samples per optimizer step, all ranks
  int64_t schedule_step = 0;  // the LR schedule's step (lr_at(schedule_step) is next)
  std::string config;         // the canonical config text
  std::string build;          // "dtrain <version> (<git hash>)"
  int64_t format_version = kFormatVersion;
};

struct Contents {
  nn::NamedTensors model;      // parameters, then buffers
  nn::NamedTensors optimizer;  // optimizer state by name
  int64_t optimizer_steps = 0;
  std::vector<RngStream> rng;
  TrainerState trainer;
};

// Test hooks: called at each stage of write() with its name ("datasets": the .tmp file
// is open and its datasets are written; "synced": the .tmp is complete and fsync'ed, not
// yet renamed; "renamed": step-<N>.h5 is in place, the marker not yet written). A hook
// may throw (a failed write) or end the process (a crash).
using StageHook = std::function<void(const std::string& stage)>;

std::string file_name(int64_t step);    // "step-<N>.h5"
std::string marker_name(int64_t step);  // "step-<N>.ok"

// Writes `c` as <dir>/step-<c.trainer.step>.h5 per Note [Checkpoint commit], creating
// `dir`. Returns the path. Throws IoError (naming the file and the failed call) and then
// leaves no marker for this step; other checkpoints are untouched.
std::string write(const std::string& dir, const Contents& c, const StageHook& hook = {});

// Checks the marker (present, names this file, byte count, checksum) and the format
// version. Throws IoError saying what is wrong with which file.
void verify(const std::string& path);
// Reads a checkpoint; verifies it first unless `verified` (already done by the caller).
Contents read(const std::string& path, bool verified = false);
// The step a file name "step-<N>.h5" stands for; nullopt for other names.
std::optional<int64_t> step_of(const std::string& file_name);

// Throws ValueError naming the file and the first difference when the names, shapes or
// dtypes of the checkpoint's model differ from `model` (a checkpoint of another model).
void check_model(const std::string& path, const nn::NamedTensors& stored, const nn::NamedTensors& model);

// Complete checkpoints in `dir` (both step-<N>.h5 and step-<N>.ok present), newest first.
// Not verified. An empty list for a missing directory.
std::vector<std::pair<int64_t, std::string>> list_complete(const std::string& dir);

// The newest checkpoint in `dir` that verifies (marker, checksum, version), warning
// through `log` for each newer one skipped and why (a step-<N>.h5 without its marker is
// named too). nullopt when there is none.
std::optional<std::pair<int64_t, std::string>> find_latest(const std::string& dir, const Logger& log);

// Keeps the `keep_last` newest complete checkpoints of `dir` and deletes older ones (file
// and marker) together with leftovers of abandoned writes older than the newest complete
// one. keep_last <= 0 keeps everything. Returns the paths deleted.
std::vector<std::string> prune(const std::string& dir, int64_t keep_last);

// XXH64 (seed 0) of a byte stream, for the marker; exposed for tests.
class Xxh64 {
 public:
  Xxh64();
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  uint64_t v_[4];
  uint64_t total_ = 0;
  unsigned char buf_[32];
  size_t buffered_ = 0;
};
// The XXH64 of a whole file, and its size.
uint64_t hash_file(const std::string& path, uint64_t* size = nullptr);

}  // namespace dtrain::ckpt
