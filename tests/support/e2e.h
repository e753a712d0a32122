#pragma once
// What the end-to-end tests of the dtrain program share (tests/launcher/test_*_recipe.cpp
// and the other program-level tests): `using namespace dtrain::testing::e2e;` brings the
// command runners and the helpers for their output into scope.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/checkpoint.h"
#include "tests/support/paths.h"
#include "tests/support/run.h"

namespace dtrain::testing::e2e {

namespace fs = std::filesystem;
using CliRun = CommandResult;
using dtrain::testing::contains;
using dtrain::testing::have_mpirun;
using dtrain::testing::json_number;
using dtrain::testing::read_lines;

// A shell command line; its output and exit code.
inline CliRun shell(const std::string& cmd) { return run_shell(cmd); }
// The dtrain program of this build.
inline std::string bin() { return dtrain_bin(); }

// The final checkpoints (step-<steps>.h5) of `dtrain train CONFIG FLAGS` run once as one
// process at batch 2b and once as 2 ranks at batch b under mpirun, in `dir`/one and
// `dir`/two; a failed run is a test failure and leaves both undefined (check
// HasFatalFailure()). The caller compares them (checkpoints.h).
struct OneVersusTwo {
  ckpt::Contents one, two;
};
inline OneVersusTwo one_process_and_two_ranks(const fs::path& dir, const std::string& config, const std::string& flags,
                                              int64_t b, int64_t steps) {
  OneVersusTwo r;
  const std::string one = (dir / "one").string(), two = (dir / "two").string();
  CliRun a = shell(bin() + " train " + config + flags + " --set batch_size=" + std::to_string(2 * b) +
                   " --checkpoint-dir " + one);
  EXPECT_EQ(a.exit_code, 0) << a.output;
  CliRun c = shell(mpirun_prefix(180) + " -np 2 " + bin() + " train " + config + flags +
                   " --set batch_size=" + std::to_string(b) + " --checkpoint-dir " + two);
  EXPECT_EQ(c.exit_code, 0) << c.output;
  if (a.exit_code != 0 || c.exit_code != 0) return r;
  const std::string name = "/step-" + std::to_string(steps) + ".h5";
  r.one = ckpt::read(one + name);
  r.two = ckpt::read(two + name);
  EXPECT_EQ(r.one.trainer.cursor, r.two.trainer.cursor) << "the same samples consumed";
  return r;
}

}  // namespace dtrain::testing::e2e
