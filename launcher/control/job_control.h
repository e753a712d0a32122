#pragma once
// The watchdog and the live status of one `dtrain train` run (docs/WATCHDOG.md), started
// by train after the World: the control plane on every rank (rank 0's endpoint and the
// job's token shared over the World's control group), rank 0's status server, and what
// happens when the job hangs: every rank that can prints the diagnosis, rank 0 records it
// in the metrics file, the gradient group is aborted (NCCL), and the process exits with
// kExitHung without waiting for the hung collective. The MPI launcher (mpirun, srun)
// then ends the ranks that cannot act, frozen ones included.
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "launcher/control/control_plane.h"
#include "launcher/control/status_server.h"
#include "launcher/train/config.h"
#include "launcher/train/world.h"

namespace dtrain::control {

// The exit code of a rank that the watchdog ended.
constexpr int kExitHung = 86;

class JobControl {
 public:
  // Collective over world.control(). `run_dir` receives status.json and control.token
  // (rank 0; "" = none); `request_stop` is what an authorised `dtrain stop` calls.
  JobControl(launcher::World& world, const launcher::Config& cfg, const std::string& run_name,
             std::function<void()> request_stop);
  ~JobControl();
  JobControl(const JobControl&) = delete;
  JobControl& operator=(const JobControl&) = delete;

  // Rank 0: what /status reports about the job from now on.
  void publish(const JobStatus& status);
  // Rank 0: where the diagnosis record goes (the metrics file).
  void set_record_writer(std::function<void(const std::string&)> write);
  // Rank 0: the status endpoint ("" when not serving).
  std::string status_url() const;

 private:
  void on_hang(const Diagnosis& d);

  launcher::World& world_;
  mutable std::mutex mu_;
  JobStatus job_;
  std::function<void(const std::string&)> write_record_;
  std::unique_ptr<ControlPlane> plane_;
  std::unique_ptr<StatusServer> status_;
};

}  // namespace dtrain::control
