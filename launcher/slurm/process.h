#pragma once
// Running a program without a shell, for the Slurm commands (sbatch, scontrol).
#include <string>
#include <vector>

namespace dtrain::slurm {

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

}  // namespace dtrain::slurm
