// dtrain: the one program. It picks the subcommand (launcher/cli/commands.h) and is the
// only place that turns exceptions into exit codes.
//
// Exit codes: 0 success, 1 a run failed (an error was reported), 2 bad usage (unknown
// command or option, bad value), 3 a feature this build lacks (e.g. CUDA).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "launcher/cli/commands.h"

namespace {

struct Command {
  const char* name;
  const char* usage;    // the name and its main argument, for the command list
  const char* summary;  // one line
  int (*main)(const std::vector<std::string>&);
};

constexpr Command kCommands[] = {
    {"data", "data", "convert public datasets to HDF5, make synthetic sets, inspect a file", dtrain::cli::data_main},
    {"demo", "demo NAME", "the lecture's first networks: and, xor, line, sobel", dtrain::cli::demo_main},
    {"encode", "encode DATA", "an autoencoder's code of every image of an HDF5 file (docs/AUTOENCODER.md)",
     dtrain::cli::encode_main},
    {"info", "info", "what this build contains and which devices it sees", dtrain::cli::info_main},
    {"predict", "predict WORD", "a text classifier's top classes for words, e.g. their language",
     dtrain::cli::predict_main},
    {"score", "score FILE", "sample quality of image files (a GAN's output) with a classifier trained by dtrain",
     dtrain::cli::score_main},
    {"status", "status DIR", "a running job's progress and what each rank is doing", dtrain::cli::status_main},
    {"style", "style", "neural style transfer: a photo's content in a painting's style (VGG16 features)",
     dtrain::cli::style_main},
    {"stop", "stop DIR", "ask a running job to checkpoint and stop", dtrain::cli::stop_main},
    {"submit", "submit", "submit 'dtrain train' to Slurm as a batch job that checkpoints and requeues itself",
     dtrain::cli::submit_main},
    {"train", "train CFG", "train a model data-parallel from a TOML config (one rank per process under mpirun/srun)",
     dtrain::cli::train_main},
};

std::string usage() {
  std::string u =
      "usage: dtrain [--help] [--version] COMMAND [ARGS]\n"
      "\n"
      "dtrain trains neural networks data-parallel across GPU nodes.\n"
      "\n"
      "commands:\n";
  for (const Command& c : kCommands) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-10s  %s\n", c.usage, c.summary);
    u += line;
  }
  return u +
         "\n"
         "Run 'dtrain COMMAND --help' for a command's options.\n"
         "Exit codes: 0 success, 1 run failed, 2 bad usage, 3 feature not built.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty()) {
      std::fputs(usage().c_str(), stderr);
      return 2;
    }
    const std::string& cmd = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    if (cmd == "--version") {
      std::printf("dtrain %s\n", DTRAIN_VERSION);
      return 0;
    }
    for (const Command& c : kCommands) {
      if (cmd == c.name) return c.main(rest);
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
