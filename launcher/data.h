#pragma once
// `dtrain data convert|synth|inspect`: public formats to dtrain's HDF5 dataset files,
// seeded synthetic sets, and a file's schema, counts and validation (docs/DATASETS.md).
#include <string>
#include <vector>

namespace dtrain::data_cli {

// Runs `dtrain data ARGS...`; returns the process exit code.
int run(const std::vector<std::string>& args);

}  // namespace dtrain::data_cli
