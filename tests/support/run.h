#pragma once
// Runs a shell command or the dtrain program from a test and captures what it printed
// (stdout and stderr together), its exit code and how long it took.
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

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

inline bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

inline bool have_mpirun() { return run_shell("command -v mpirun").exit_code == 0; }

// The start of an mpirun command line for tests: Open MPI refuses root without the two
// ALLOW variables; oversubscription lets 2 ranks share 1 core; `timeout` turns a hang
// into a failure instead of a stuck test run; SLURM_JOB_ID is removed so that a stop
// never tries to requeue the job running the tests.
inline std::string mpirun_prefix(int timeout_seconds = 120) {
  return "env -u SLURM_JOB_ID OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
         "OMPI_MCA_rmaps_base_oversubscribe=1 timeout " +
         std::to_string(timeout_seconds) + " mpirun";
}

// A fresh folder for one test: <temp>/dtrain_<tag>_<pid>_<test name>, emptied first.
inline std::filesystem::path make_test_dir(const std::string& tag) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("dtrain_" + tag + "_" + std::to_string(::getpid()) + "_" +
       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A number field of a one-line JSON object ("key":value); NaN when absent or not a
// number (the trainer writes null for a non-finite value).
inline double json_number(const std::string& line, const std::string& key) {
  std::smatch m;
  std::regex re("\"" + key + "\":(-?[0-9.eE+-]+)");
  if (!std::regex_search(line, m, re)) return std::nan("");
  return std::stod(m[1]);
}

}  // namespace dtrain::testing
