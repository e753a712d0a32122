#pragma once
// `dtrain demo NAME`: the lecture's first networks, run through the normal library path
// (modules, autograd, optimizers) so they double as end-to-end checks.
#include <string>
#include <vector>

namespace dtrain::demos {

// Runs the demo named by args[0] with its options; returns the process exit code.
int run(const std::vector<std::string>& args);

}  // namespace dtrain::demos
