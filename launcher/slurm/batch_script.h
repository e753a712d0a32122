#pragma once
// The batch script `dtrain submit` writes (launcher/cli/submit.cpp; docs/SLURM.md, Note
// [Batch script] in batch_script.cpp).
#include <string>
#include <vector>

namespace dtrain::slurm {

// The batch script `dtrain submit` writes (exposed for tests and --dry-run).
struct SubmitOptions {
  int nodes = 1;
  int ntasks_per_node = 1;
  bool ntasks_from_gpus = false;  // ntasks_per_node was not given and is gpus_per_node (a comment says so)
  int gpus_per_node = 0;          // 0: no --gpus-per-node line
  std::string time, partition, account, job_name = "dtrain", output = "dtrain-%j.out", chdir;
  int signal_seconds = 120;
  int max_restarts = 3;  // requeues after the watchdog ended the step (exit code 86)
  std::vector<std::string> extra_sbatch;  // "--constraint=a100" or "#SBATCH --constraint=a100"
  std::string dtrain_binary;              // absolute path of the dtrain to run
  std::vector<std::string> train_args;    // CONFIG [--set K=V ...] [other train options]
};
std::string batch_script(const SubmitOptions& o);

// Throws ConfigError when `v` (an #SBATCH value or a training argument, named by `what`)
// holds a line break, which would end the directive early.
void check_script_value(const std::string& what, const std::string& v);

}  // namespace dtrain::slurm
