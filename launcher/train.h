#pragma once
// `dtrain train CONFIG [--set KEY=VALUE ...]`: data-parallel training from a TOML config
// (docs/TRAINING.md). Run alone it is a world of one; under `mpirun -np N` or `srun` each
// process is one rank.
#include <string>
#include <vector>

namespace dtrain::train_cli {

// Runs `dtrain train ARGS...`; returns the process exit code.
int run(const std::vector<std::string>& args);

}  // namespace dtrain::train_cli
