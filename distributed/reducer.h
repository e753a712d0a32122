#pragma once
// Reducer: averages gradients across the ranks of a ProcessGroup while backward runs.
//
// Note [Bucket order]: parameters are assigned to flat buckets in reverse registration
// order (backward produces the gradients of the last layers first), the first bucket
// capped at `first_bucket_bytes` (so communication starts early) and the others at
// `bucket_bytes`; a bucket holds one dtype and one device (with several dtypes/devices,
// the first bucket of each has the small cap). A parameter larger than the cap gets a
// bucket of its own. Parameters that do not require grad get no bucket (they are still
// broadcast). The layout is fixed at construction, identical on every rank (checked by
// distributed/agreement.h).
//
// Each parameter's autograd ready-hook (core/autograd.h, Note [Ready-hooks]) copies its
// gradient into its bucket slice, multiplied by 1/world during the copy. When every
// parameter of bucket i is in and buckets 0..i-1 have been launched, bucket i's all-reduce
// (sum) is launched; buckets are launched strictly in bucket order, whatever order the
// hooks fire in (Note [Same call order]). finalize(), called after backward, launches any
// bucket not yet launched (in order), waits for all, and copies the averaged values back
// into the parameters' gradients. With ReducerOptions::overlap = false the hooks only
// copy, and finalize() launches every bucket.
//
// Parameters that received no gradient in a backward (unused this step) have zeros
// (core's ready-hooks fire for every parameter used on the tape; a parameter absent from
// the tape entirely contributes, in finalize(), its local gradient if it has one, e.g.
// accumulated in an earlier micro-batch, and zeros otherwise), so every rank reduces the
// same buckets every step and there is no "unused parameter" failure mode. A hook
// firing twice before finalize() (two synchronizing backwards) is a DistributedError.
//
// Gradient accumulation: with set_sync(false), hooks do nothing and gradients accumulate
// locally across micro-batches; set_sync(true) before the last micro-batch's backward
// makes that backward reduce the accumulated gradients.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/nn/module.h"
#include "distributed/process_group.h"

namespace dtrain::dist {

struct ReducerOptions {
  size_t first_bucket_bytes = size_t{1} << 20;  // ~1 MiB
  size_t bucket_bytes = size_t{25} << 20;       // ~25 MiB
  // true: a bucket's all-reduce is launched from the ready-hook that completes it, while
  // backward continues. false: the hooks only copy gradients into the buckets and
  // finalize() launches every all-reduce (the same buckets, order and results; for
  // measuring what the overlap hides, benchmarks/bench_allreduce.cpp).
  bool overlap = true;
};

struct BucketInfo {
  std::vector<std::string> params;  // names, in slice order
  size_t bytes = 0;
  DType dtype = DType::F32;
  Device device;
};

class Reducer {
 public:
  Reducer(ProcessGroup& group, nn::NamedTensors params, ReducerOptions options = {});
  ~Reducer();  // removes its hooks
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Broadcasts every parameter (and each buffer in `buffers`) from rank 0, so all ranks
  // start from the same model.
  void broadcast_from_rank0(const nn::NamedTensors& buffers = {});

  void set_sync(bool sync);
  bool sync() const;
  // Call after backward of a synchronizing step: completes the reduction and writes the
  // averaged gradients into the parameters. A no-op when sync() is false.
  void finalize();

  const std::vector<BucketInfo>& buckets() const;
  // One line per bucket ("bucket 0: 3 params, 1048576 bytes, f32 on cpu: a, b, c"): the
  // layout hashed by the pre-flight agreement check. It names the device kind ("cuda"),
  // not the index, so ranks driving different GPUs of a node agree.
  std::string layout() const;
  // Seconds spent waiting for all-reduces in finalize() in the last step (how much
  // communication was not hidden behind backward).
  double last_wait_seconds() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::dist
