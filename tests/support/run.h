#pragma once
// Runs a shell command or the dtrain program from a test and captures what it printed
// (stdout and stderr together), its exit code and how long it took.
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>

#include "tests/support/paths.h"

namespace dtrain::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when the command did not exit normally
  std::string output;  // stdout and stderr together
  double seconds = 0;
};

inline CommandResult run_shell(const std::string& cmd) {
  auto t0 = std::chrono::steady_clock::now();
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed: " + cmd, 0};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  int status = pclose(pipe);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, s};
}

// `dtrain ARGS` with the binary of this build (or $DTRAIN_BIN).
inline CommandResult run_dtrain(const std::string& args) { return run_shell(dtrain_bin() + " " + args); }

}  // namespace dtrain::testing
