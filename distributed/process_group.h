#pragma once
// ProcessGroup: collectives among the ranks of one training job, returning Work handles.
//
// Note [Same call order]: every rank of a group must issue the same collectives, on
// tensors of the same element count and dtype, in the same order. The backends do not
// match calls by name: a rank that skips a collective or issues them in another order
// pairs its buffers with the wrong ones on the other ranks, which at best fails and at
// worst hangs. dtrain keeps the contract by construction (the Reducer launches buckets
// strictly in bucket order, and the training loop's per-step collectives are fixed), and checks
// what it can before the first step (distributed/agreement.h): parameter shapes, bucket
// layout, batch size, dataset and build, so a mismatch is an error message, not a hang.
//
// Backends (chosen by the caller, compiled by CMake):
//   - MPI: CPU tensors, non-blocking MPI_I* calls so communication overlaps backward.
//   - NCCL: CUDA tensors on the group's own stream, ordered after the caller's compute
//     stream by an event; Work::wait() makes the caller's current stream wait, never the
//     host. Built when CUDA is found; otherwise make_nccl_group throws NotBuiltError.
//   - threads: ranks are threads of one process (unit tests of everything above the
//     transport); reductions add contributions in rank order, so results are identical
//     on every rank and deterministic.
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dtrain::dist {

enum class ReduceOp { Sum, Average, Max };
std::string reduce_op_name(ReduceOp op);  // "sum", "average", "max"

// A collective in flight.
class Work {
 public:
  virtual ~Work() = default;
  // Non-blocking: true once the collective has completed (for NCCL: once its stream work
  // has finished). Throws DistributedError if it failed.
  virtual bool is_completed() = 0;
  // Waits for completion. CPU backends block the host; NCCL makes the calling thread's
  // current stream wait for the communication stream (use synchronize() to block the
  // host). Throws DistributedError if the collective failed.
  virtual void wait() = 0;
  // Blocks the host until the collective has completed, on every backend.
  virtual void synchronize() { wait(); }
};
using WorkPtr = std::shared_ptr<Work>;

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi", "nccl", "threads"
  // Where this group's tensors live: the CPU for MPI and threads, the group's CUDA device
  // for NCCL (collectives a caller makes on its own, like the agreement check, put their
  // buffers here).
  virtual Device device() const { return Device::cpu(); }

  // In place on `t` (contiguous f32/f64/i32/i64/u8 on the backend's device kind).
  // Average divides the sum by size() (floating types only).
  virtual WorkPtr all_reduce(const Tensor& t, ReduceOp op) = 0;
  // In place: every rank receives root's values.
  virtual WorkPtr broadcast(const Tensor& t, int root) = 0;
  // out (size() * in.numel() elements, same dtype) receives every rank's `in`, rank 0
  // first.
  virtual WorkPtr all_gather(const Tensor& in, const Tensor& out) = 0;
  virtual WorkPtr barrier() = 0;
  // Ends the group's communication at once, from any thread, so that a rank blocked in a
  // collective can be released before the process exits (the watchdog, docs/WATCHDOG.md):
  // NCCL aborts its communicator. The group is unusable afterwards. CPU backends: nothing
  // (the process exits and the MPI launcher ends the rest).
  virtual void abort() {}
};

// ---- backends ------------------------------------------------------------------------

// A group over an MPI communicator (an MPI_Comm passed as its integer/pointer handle, so
// this header needs no mpi.h: with Open MPI, `reinterpret_cast<void*>(MPI_COMM_WORLD)`).
// MPI must be initialized; the group does not finalize it. Collective over `mpi_comm`
// (it duplicates the communicator, so its traffic never mixes with the caller's, and
// sets MPI_ERRORS_RETURN on the duplicate); destroy it before MPI_Finalize.
std::unique_ptr<ProcessGroup> make_mpi_group(void* mpi_comm);

// `world` groups whose ranks are threads of this process: group i is rank i. Each group
// must be used by its own thread. Collectives wait at most `timeout_seconds` for the
// other ranks, then throw DistributedError naming the ranks that did not arrive.
std::vector<std::unique_ptr<ProcessGroup>> make_thread_groups(int world, double timeout_seconds = 60.0);

// A NCCL communicator for `rank` of `size` on CUDA device `device`, from the 128-byte
// ncclUniqueId that rank 0 created (nccl_unique_id()) and every rank received (by MPI
// broadcast, in launcher/). Throws NotBuiltError in builds without CUDA.
std::unique_ptr<ProcessGroup> make_nccl_group(int rank, int size, int device, const std::vector<uint8_t>& unique_id);
std::vector<uint8_t> nccl_unique_id();

}  // namespace dtrain::dist
