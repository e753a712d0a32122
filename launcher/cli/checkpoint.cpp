// `dtrain checkpoint verify`: see commands.h.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/io/h5.h"
#include "launcher/cli/args.h"
#include "launcher/cli/commands.h"

namespace dtrain::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kEpilog =
    "Checks what --resume would check before loading: the completeness marker, the byte\n"
    "count, the XXH64 checksum and the format version (docs/CHECKPOINTS.md). A file names\n"
    "one checkpoint; a directory lists every step-<N>.h5 in it, newest first, and names the\n"
    "one 'dtrain train --resume auto' would continue from, and leftovers of interrupted\n"
    "or failed writes (*.tmp), which --resume ignores.\n"
    "\n"
    "exit codes: 0 the checkpoint (or, for a directory, at least one) verifies; 1 none does\n"
    "\n"
    "example:\n"
    "  dtrain checkpoint verify runs/vgg16/ckpt\n";

// The reason an IoError gives, without the source location.
std::string reason(const std::exception& e) {
  std::string msg = e.what();
  if (auto at = msg.rfind(" ["); at != std::string::npos && msg.back() == ']') msg.resize(at);
  return msg;
}

// "ok: PATH: step N, B bytes" after verifying, or the error; returns whether it verified.
bool verify_one(const std::string& path) {
  try {
    ckpt::verify(path);
    const int64_t step = io::H5File::open_read(path).get_attribute<int64_t>("/trainer", "step");
    std::printf("ok: %s: step %lld, %llu bytes, checksum and marker match\n", path.c_str(),
                static_cast<long long>(step), static_cast<unsigned long long>(fs::file_size(path)));
    return true;
  } catch (const IoError& e) {
    std::printf("bad: %s\n", reason(e).c_str());
    return false;
  }
}

}  // namespace

int checkpoint_main(const std::vector<std::string>& args) {
  ArgParser p("dtrain checkpoint", "Verifies checkpoints written by 'dtrain train'.");
  p.add_positional("ACTION", "verify");
  p.add_positional("PATH", "a checkpoint file (step-<N>.h5) or a checkpoint directory");
  p.set_epilog(kEpilog);
  p.parse(args);
  if (p.help_requested()) {
    std::fputs(p.help().c_str(), stdout);
    return 0;
  }
  DT_CHECK_AS(p.get("ACTION") == "verify", ConfigError, "dtrain checkpoint: unknown action '", p.get("ACTION"),
              "'; the action is verify (see dtrain checkpoint --help)");
  const std::string path = p.get("PATH");
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    DT_CHECK_AS(fs::exists(path, ec), ConfigError, "dtrain checkpoint verify: '", path,
                "' does not exist (name a checkpoint file or the checkpoint directory)");
    return verify_one(path) ? 0 : 1;
  }
  std::vector<std::pair<int64_t, std::string>> files;
  std::vector<std::string> leftovers;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const std::string name = e.path().filename().string();
    if (std::optional<int64_t> step = ckpt::step_of(name)) {
      files.emplace_back(*step, e.path().string());
    } else if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      leftovers.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::sort(leftovers.begin(), leftovers.end());
  std::optional<std::string> resume_from;
  for (const auto& [step, file] : files) {
    if (verify_one(file) && !resume_from) resume_from = file;
  }
  for (const std::string& l : leftovers) {
    std::printf("leftover: %s (an interrupted or failed write; ignored by --resume, removed by the next prune)\n",
                l.c_str());
  }
  if (!resume_from) {
    std::printf("no checkpoint in %s verifies: --resume auto would start from step 0\n", path.c_str());
    return 1;
  }
  std::printf("--resume auto would continue from %s\n", resume_from->c_str());
  return 0;
}

}  // namespace dtrain::cli
