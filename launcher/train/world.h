#pragma once
// World: this process's place in a training job, set up once by `dtrain train` and passed
// explicitly to everything that needs it (no globals).
//
// Construction initializes MPI (MPI_Init_thread; a process started without mpirun/srun
// is a world of one, MPI's singleton mode), finds the rank, the world size and the local
// rank (the rank among the processes of this node, MPI_Comm_split_type SHARED), picks
// the device (cpu, or cuda = the local rank's GPU) and creates the process groups:
//
//   - group():   gradients. MPI for cpu; NCCL for cuda, bootstrapped by broadcasting
//                rank 0's ncclUniqueId over MPI.
//   - control(): small CPU tensors at step boundaries and before the first step (the
//                agreement check, per-step loss / time / stop flag). Always MPI; each
//                MPI group duplicates MPI_COMM_WORLD, so control traffic never mixes
//                with gradient traffic.
//
// Every failure during set-up (no GPU, fewer GPUs than local ranks, ranks asking for
// different devices) is detected collectively: every rank throws, with a message naming
// the ranks, so a job never hangs half set up. Destruction frees the groups and
// finalizes MPI (when this World initialized it).
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "distributed/process_group.h"
#include "launcher/control/progress.h"

namespace dtrain::launcher {

// The placement text of World::placement(): `hosts[r]` and `devices[r]` are rank r's;
// hosts in the order of their first rank, consecutive ranks as ranges. A device list
// whose entries are all "cpu" is left out.
std::string describe_placement(const std::vector<std::string>& hosts, const std::vector<std::string>& devices);

class World {
 public:
  // `device_kind`: "cpu" or "cuda".
  explicit World(const std::string& device_kind);
  // A world over process groups made elsewhere, without MPI: rank `group.rank()` of
  // `group.size()`, every rank on one host (local rank = rank). Tests run the training
  // loop in process this way, with threads as ranks (dist::make_thread_groups, one set
  // for `group` and another for `control`).
  World(std::unique_ptr<dist::ProcessGroup> group, std::unique_ptr<dist::ProcessGroup> control,
        Device device = Device::cpu());
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const std::string& host() const { return host_; }
  // How many hosts the ranks run on, and which ranks (and devices) are where, e.g.
  // "node1: ranks 0-1 on cuda:0, cuda:1; node2: ranks 2-3 on cuda:0, cuda:1" (devices
  // named for cuda only). Gathered once at set-up; a world of threads is one host.
  int hosts() const { return hosts_; }
  const std::string& placement() const { return placement_; }
  Device device() const { return device_; }
  // The MPI thread level granted ("single", "funneled", "serialized", "multiple").
  std::string thread_level() const;

  // Both groups report their collectives to progress() (launcher/control/watched_group.h).
  dist::ProcessGroup& group() { return *group_; }
  dist::ProcessGroup& control() { return *control_; }
  // What this rank is doing, for the watchdog (docs/WATCHDOG.md).
  control::Progress& progress() { return *progress_; }

  // Collective over control(): every rank returns rank 0's `text`.
  std::string share_from_rank0(const std::string& text);

  // Collective: every rank passes what went wrong in its part of a set-up phase (null
  // when nothing did). Returns normally when every rank succeeded; otherwise throws on
  // every rank: a failed rank its own exception, the others a DistributedError naming
  // the ranks that failed. `phase` names the phase in that message ("set-up").
  void check_all_ok(std::exception_ptr error, const std::string& phase);

  // Ends the whole job at once (MPI_Abort; without MPI, _exit) with `code`: for an error on one rank in the
  // middle of training, when the other ranks may be waiting in a collective that this
  // rank will never join. Never returns.
  [[noreturn]] void abort(int code);

 private:
  void init(const std::string& device_kind);
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  int thread_level_ = 0, hosts_ = 1;
  bool owns_mpi_ = false;
  std::string host_, placement_;
  Device device_ = Device::cpu();
  std::unique_ptr<control::Progress> progress_ = std::make_unique<control::Progress>();
  std::unique_ptr<dist::ProcessGroup> group_, control_;
};

}  // namespace dtrain::launcher
