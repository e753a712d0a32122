// dtrain: the one program. Subcommands dispatch here; this is the only place that turns
// exceptions into exit codes.
//
// Exit codes: 0 success, 1 a run failed (an error was reported), 2 bad usage (unknown
// command or option, bad value), 3 a feature this build lacks (e.g. CUDA).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/runtime.h"
#include "launcher/data.h"
#include "launcher/demos.h"
#include "launcher/score.h"
#include "launcher/slurm.h"
#include "launcher/train.h"

namespace {

constexpr const char* kUsage =
    "usage: dtrain [--help] [--version] COMMAND [ARGS]\n"
    "\n"
    "dtrain trains neural networks data-parallel across GPU nodes.\n"
    "\n"
    "commands:\n"
    "  data        convert public datasets to HDF5, make synthetic sets, inspect a file\n"
    "  demo NAME   the lecture's first networks: and, xor, line, sobel\n"
    "  info        what this build contains and which devices it sees\n"
    "  score FILE  sample quality of image files (a GAN's output) with a classifier trained by dtrain\n"
    "  submit      submit 'dtrain train' to Slurm as a batch job that checkpoints and requeues itself\n"
    "  train CFG   train a model data-parallel from a TOML config (one rank per process under mpirun/srun)\n"
    "\n"
    "Run 'dtrain COMMAND --help' for a command's options.\n"
    "Exit codes: 0 success, 1 run failed, 2 bad usage, 3 feature not built.\n";

int info() {
  std::string why;
  int n = dtrain::cuda::device_count(&why);
  std::printf("dtrain %s\n", DTRAIN_VERSION);
  std::printf("CUDA backend: %s\n", dtrain::cuda::compiled() ? "compiled" : "not compiled (CPU only)");
  if (n > 0) {
    std::printf("CUDA devices: %d\n", n);
  } else {
    std::printf("CUDA devices: none (%s)\n", why.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty()) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    const std::string& cmd = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (cmd == "--version") {
      std::printf("dtrain %s\n", DTRAIN_VERSION);
      return 0;
    }
    if (cmd == "data") return dtrain::data_cli::run(rest);
    if (cmd == "demo") return dtrain::demos::run(rest);
    if (cmd == "train") return dtrain::train_cli::run(rest);
    if (cmd == "submit") return dtrain::slurm::submit_main(rest);
    if (cmd == "score") return dtrain::score_cli::run(rest);
    if (cmd == "info") {
      if (!rest.empty() && (rest[0] == "-h" || rest[0] == "--help")) {
        std::printf("usage: dtrain info\n\nPrints the build's backends and the CUDA devices it sees.\n");
        return 0;
      }
      if (!rest.empty()) DT_THROW(dtrain::ConfigError, "dtrain info: unexpected argument '", rest[0], "'");
      return info();
    }
    if (cmd.rfind("-", 0) == 0) {
      DT_THROW(dtrain::ConfigError, "dtrain: unknown option '", cmd, "'; run 'dtrain --help' for the usage");
    }
    DT_THROW(dtrain::ConfigError, "dtrain: unknown command '", cmd, "'; run 'dtrain --help' for the commands");
  } catch (const dtrain::ConfigError& e) {
    // A usage error is the user's to fix: the source location would only be noise.
    std::string msg = e.what();
    if (auto at = msg.rfind(" ["); at != std::string::npos && msg.back() == ']') msg.resize(at);
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    return 2;
  } catch (const dtrain::NotBuiltError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
