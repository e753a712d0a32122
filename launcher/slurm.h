#pragma once
// Slurm integration: detecting a batch job, requeueing it after a checkpointed stop, and
// writing/submitting batch scripts (`dtrain submit`).
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"

namespace dtrain::slurm {

// The job this process runs in, from the environment Slurm sets (SLURM_JOB_ID, and for
// array tasks SLURM_ARRAY_JOB_ID / SLURM_ARRAY_TASK_ID). nullopt outside Slurm.
struct JobInfo {
  std::string job_id;       // SLURM_JOB_ID
  std::string requeue_id;   // what scontrol requeue needs: "<array job>_<task>" for array tasks
  bool is_array_task = false;
};
std::optional<JobInfo> current_job();

// After a checkpointed stop (rank 0 only): `scontrol requeue <requeue_id>`. Returns a
// description of what happened ("requeued job 42", or why not: not in a Slurm job,
// scontrol missing, scontrol failed with its message); logs it through `log`.
std::string requeue_current_job(const Logger& log);

// `dtrain submit ARGS...`: the subcommand (launcher/main.cpp dispatches here).
int submit_main(const std::vector<std::string>& args);

// Runs argv[0] (searched on PATH) with argv, without a shell (posix_spawnp), feeding it
// `input` on stdin and capturing stdout and stderr together. started is false, with the
// reason in `output`, when the program could not be run (e.g. not on PATH: not_found).
struct CommandResult {
  bool started = false;
  bool not_found = false;  // the program is not on PATH
  int exit_code = -1;      // -1 when it did not exit normally (a signal)
  std::string output;      // stdout and stderr together
};
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = "");

// The batch script `dtrain submit` writes (exposed for tests and --dry-run).
struct SubmitOptions {
  int nodes = 1;
  int ntasks_per_node = 1;
  bool ntasks_from_gpus = false;  // ntasks_per_node was not given and is gpus_per_node (a comment says so)
  int gpus_per_node = 0;          // 0: no --gpus-per-node line
  std::string time, partition, account, job_name = "dtrain", output = "dtrain-%j.out", chdir;
  int signal_seconds = 120;
  std::vector<std::string> extra_sbatch;  // "--constraint=a100" or "#SBATCH --constraint=a100"
  std::string dtrain_binary;              // absolute path of the dtrain to run
  std::vector<std::string> train_args;    // CONFIG [--set K=V ...] [other train options]
};
std::string batch_script(const SubmitOptions& o);

}  // namespace dtrain::slurm
