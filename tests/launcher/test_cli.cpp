// The dtrain program end to end: the lecture demos' printed results, the CLI's handling
// of bad input (message and non-zero exit code), and the batch script `dtrain submit
// --dry-run` prints for the command lines users type.
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <string>

#include "tests/support/paths.h"
#include "tests/support/run.h"

namespace {

using CliRun = dtrain::testing::CommandResult;

CliRun dtrain(const std::string& args) { return dtrain::testing::run_dtrain(args); }

TEST(DemoAnd, PrintsTheAndTruthTable) {
  CliRun r = dtrain("demo and");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Rows "x1 x2 | z | y" for the four inputs.
  std::regex row(R"(^\s*([01])\s+([01])\s+\|\s+(-?[0-9.]+)\s+\|\s+([01])\s*$)");
  std::istringstream lines(r.output);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    int x1 = std::stoi(m[1]), x2 = std::stoi(m[2]), y = std::stoi(m[4]);
    double z = std::stod(m[3]);
    EXPECT_DOUBLE_EQ(z, x1 + x2 - 1.5) << line;
    EXPECT_EQ(y, x1 & x2) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 4) << r.output;
}

TEST(DemoXor, HasNineParametersAndLearnsXor) {
  CliRun r = dtrain("demo xor");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("parameters: 9"), std::string::npos) << r.output;
  std::regex row(R"(^\s*([01])\s+([01])\s+\|\s+([0-9.]+)\s+\|\s+([01])\s+\|\s+([01])\s*$)");
  std::istringstream lines(r.output);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    int x1 = std::stoi(m[1]), x2 = std::stoi(m[2]);
    double out = std::stod(m[3]);
    EXPECT_EQ(std::stoi(m[4]), x1 ^ x2) << line;
    EXPECT_NEAR(out, x1 ^ x2, 0.3) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 4) << r.output;
}

TEST(DemoXor, ReportsFailureWhenItCannotConverge) {
  CliRun r = dtrain("demo xor --max-steps 3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not solved after 3 steps"), std::string::npos) << r.output;
}

TEST(DemoLine, ConvergesToTheGeneratingLine) {
  CliRun r = dtrain("demo line");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Per-step rows: step a b dL/da dL/db loss.
  std::regex row(R"(^\s*(\d+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+([0-9.]+)\s*$)");
  std::istringstream lines(r.output);
  std::string line;
  int rows = 0;
  double first_loss = -1, last_a = 0, last_b = 0, last_loss = 0;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    if (rows == 0) {
      EXPECT_EQ(std::stoi(m[1]), 0);
      EXPECT_DOUBLE_EQ(std::stod(m[2]), -2.0);
      EXPECT_DOUBLE_EQ(std::stod(m[3]), 1.0);
      first_loss = std::stod(m[6]);
    }
    last_a = std::stod(m[2]);
    last_b = std::stod(m[3]);
    last_loss = std::stod(m[6]);
    ++rows;
  }
  ASSERT_GT(rows, 10) << r.output;
  EXPECT_NEAR(last_a, 3.0, 1e-3);
  EXPECT_NEAR(last_b, 0.5, 1e-3);
  EXPECT_LT(last_loss, 1e-6);
  EXPECT_GT(first_loss, 1.0);
  EXPECT_NE(r.output.find("converged within 1e-3"), std::string::npos);
}

TEST(DemoLine, FirstStepGradientsMatchTheClosedForm) {
  // At a = -2, b = 1 on samples of y = 3x + 0.5: r = y - (a x + b) = 5x - 0.5,
  // dL/da = mean(-2 x r), dL/db = mean(-2 r), loss = mean(r^2).
  CliRun r = dtrain("demo line --max-steps 1");
  std::vector<double> xs = {-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5};
  double ga = 0, gb = 0, loss = 0;
  for (double x : xs) {
    double res = 5 * x - 0.5;
    ga += -2 * x * res / 8;
    gb += -2 * res / 8;
    loss += res * res / 8;
  }
  std::regex row(R"(^\s*0\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+([0-9.]+)\s*$)");
  std::istringstream lines(r.output);
  std::string line;
  bool found = false;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    found = true;
    EXPECT_NEAR(std::stod(m[3]), ga, 1e-5);
    EXPECT_NEAR(std::stod(m[4]), gb, 1e-5);
    EXPECT_NEAR(std::stod(m[5]), loss, 1e-5);
  }
  EXPECT_TRUE(found) << r.output;
}

TEST(Cli, UnknownCommandIsAUsageError) {
  CliRun r = dtrain("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown command 'frobnicate'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dtrain --help"), std::string::npos) << r.output;
}

TEST(Cli, UnknownTopLevelOption) {
  CliRun r = dtrain("--frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown option '--frobnicate'"), std::string::npos) << r.output;
}

TEST(Cli, UnknownDemoAndUnknownFlag) {
  CliRun a = dtrain("demo nand");
  EXPECT_EQ(a.exit_code, 2);
  EXPECT_NE(a.output.find("unknown demo 'nand'"), std::string::npos) << a.output;
  CliRun b = dtrain("demo xor --learning-rate 3");
  EXPECT_EQ(b.exit_code, 2);
  EXPECT_NE(b.output.find("unknown option '--learning-rate'"), std::string::npos) << b.output;
  CliRun c = dtrain("demo xor --lr fast");
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.output.find("--lr expects a number, got 'fast'"), std::string::npos) << c.output;
  CliRun d = dtrain("demo line --lr");
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_NE(d.output.find("needs a value"), std::string::npos) << d.output;
}

TEST(Cli, NoArgumentsPrintsUsageAndFails) {
  CliRun r = dtrain("");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("usage: dtrain"), std::string::npos) << r.output;
}

TEST(Cli, HelpAndVersionSucceed) {
  CliRun h = dtrain("--help");
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.output.find("demo NAME"), std::string::npos);
  CliRun dh = dtrain("demo xor --help");
  EXPECT_EQ(dh.exit_code, 0);
  EXPECT_NE(dh.output.find("--seed"), std::string::npos) << dh.output;
  CliRun v = dtrain("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("dtrain "), std::string::npos);
}

TEST(Cli, CudaDeviceWithoutAGpuIsAClearError) {
  CliRun info = dtrain("info");
  ASSERT_EQ(info.exit_code, 0) << info.output;
  if (info.output.find("CUDA devices: none") == std::string::npos) GTEST_SKIP() << "a CUDA device is present";
  CliRun r = dtrain("demo and --device cuda");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("cuda:0"), std::string::npos) << r.output;
}

// `dtrain submit --dry-run` with a fixed binary and directory: the script alone, no sbatch.
CliRun submit(const std::string& args) { return dtrain("submit --dry-run --binary /opt/dtrain --chdir /jobs " + args); }

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream lines(text);
  std::string l;
  while (std::getline(lines, l)) {
    if (l == line) return true;
  }
  return false;
}

TEST(Submit, TrainOptionsFollowTheConfigWithoutDoubleDash) {
  CliRun r = submit("--nodes 2 --sbatch --constraint=a100 configs/x.toml --set epochs=3 --checkpoint-dir ck");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has_line(r.output, "#SBATCH --nodes=2")) << r.output;
  EXPECT_TRUE(has_line(r.output, "#SBATCH --constraint=a100")) << r.output;
  EXPECT_TRUE(has_line(r.output, "srun --mpi=pmix --kill-on-bad-exit=1 /opt/dtrain train configs/x.toml --set epochs=3 "
                                 "--checkpoint-dir ck --resume auto &"))
      << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
}

TEST(Submit, DoubleDashBeforeTheConfigStillWorks) {
  const std::string mine = "--nodes 2 --sbatch=--mail-type=END --time 1:00:00";
  const std::string train = "configs/x.toml --set epochs=3 --resume auto";
  CliRun with = submit(mine + " -- " + train);
  CliRun without = submit(mine + " " + train);
  ASSERT_EQ(with.exit_code, 0) << with.output;
  ASSERT_EQ(without.exit_code, 0) << without.output;
  EXPECT_EQ(with.output, without.output);
  EXPECT_TRUE(has_line(with.output, "#SBATCH --time=1:00:00")) << with.output;
  EXPECT_TRUE(has_line(with.output, "#SBATCH --mail-type=END")) << with.output;
  EXPECT_TRUE(has_line(with.output, "srun --mpi=pmix --kill-on-bad-exit=1 /opt/dtrain train configs/x.toml --set "
                                    "epochs=3 --resume auto &"))
      << with.output;
}

TEST(Submit, NtasksPerNodeDefaultsToGpusPerNode) {
  CliRun gpus = submit("--nodes 2 --gpus-per-node 4 configs/x.toml");
  ASSERT_EQ(gpus.exit_code, 0) << gpus.output;
  EXPECT_TRUE(has_line(gpus.output, "#SBATCH --ntasks-per-node=4")) << gpus.output;
  EXPECT_TRUE(has_line(gpus.output, "#SBATCH --gpus-per-node=4")) << gpus.output;
  EXPECT_TRUE(has_line(gpus.output, "# --ntasks-per-node not given: one rank per GPU (--gpus-per-node)"))
      << gpus.output;

  CliRun given = submit("--gpus-per-node 4 --ntasks-per-node 2 configs/x.toml");
  ASSERT_EQ(given.exit_code, 0) << given.output;
  EXPECT_TRUE(has_line(given.output, "#SBATCH --ntasks-per-node=2")) << given.output;
  EXPECT_EQ(given.output.find("not given"), std::string::npos) << given.output;

  CliRun cpu = submit("configs/x.toml");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
  EXPECT_TRUE(has_line(cpu.output, "#SBATCH --ntasks-per-node=1")) << cpu.output;
  EXPECT_EQ(cpu.output.find("--gpus-per-node"), std::string::npos) << cpu.output;
}

TEST(Submit, SubmitOptionsAfterTheConfigGoToTrainWithAWarning) {
  CliRun r = submit("configs/x.toml --nodes 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has_line(r.output, "#SBATCH --nodes=1")) << r.output;
  EXPECT_NE(r.output.find("/opt/dtrain train configs/x.toml --nodes 2 --resume auto &"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("warning: '--nodes' comes after CONFIG"), std::string::npos) << r.output;
}

TEST(Submit, MissingConfigAndBadOptionsAreUsageErrors) {
  for (const char* args : {"", "--", "--nodes 2 --"}) {
    CliRun r = submit(args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_NE(r.output.find("missing CONFIG"), std::string::npos) << args << ": " << r.output;
  }
  CliRun bad = submit("--frobnicate configs/x.toml");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("unknown option '--frobnicate'"), std::string::npos) << bad.output;
}

TEST(Submit, HelpStatesWhereTrainOptionsStart) {
  CliRun h = dtrain("submit --help");
  ASSERT_EQ(h.exit_code, 0) << h.output;
  EXPECT_NE(h.output.find("usage: dtrain submit [options] CONFIG [TRAIN-OPTIONS...]"), std::string::npos) << h.output;
  EXPECT_NE(h.output.find("everything after it goes to 'dtrain train'"), std::string::npos) << h.output;
  EXPECT_NE(h.output.find("default: --gpus-per-node when that is given"), std::string::npos) << h.output;
}

}  // namespace
