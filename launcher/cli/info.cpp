// `dtrain info`: see commands.h.
#include <cstdio>

#include "core/error.h"
#include "core/runtime.h"
#include "launcher/cli/commands.h"
#include "launcher/train/common.h"

namespace dtrain::cli {

int info_main(const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    std::printf("usage: dtrain info\n\nPrints the build's backends and the CUDA devices it sees.\n");
    return 0;
  }
  if (!args.empty()) DT_THROW(ConfigError, "dtrain info: unexpected argument '", args[0], "'");
  std::string why;
  const int n = cuda::device_count(&why);
  std::printf("%s\n", launcher::build_id().c_str());
  std::printf("CUDA backend: %s\n", !cuda::compiled() ? "not compiled (CPU only)"
                                     : cuda::emulated() ? "emulated device (CPU code behind the CUDA API, not a GPU)"
                                                        : "compiled");
  if (n > 0) {
    std::printf("CUDA devices: %d\n", n);
  } else {
    std::printf("CUDA devices: none (%s)\n", why.c_str());
  }
  return 0;
}

}  // namespace dtrain::cli
