#pragma once
// Where tests find the committed fixtures and the dtrain program. The build bakes in the
// source-tree and build-tree paths; the environment variables DTRAIN_FIXTURE_DIR and
// DTRAIN_BIN override them, so a test binary copied elsewhere (a bundle run on a GPU
// machine) still finds both.
#include <cstdlib>
#include <string>

#ifndef DTRAIN_FIXTURE_DIR
#error "DTRAIN_FIXTURE_DIR must be defined by the build (tests/CMakeLists.txt)"
#endif
#ifndef DTRAIN_BIN
#error "DTRAIN_BIN must be defined by the build (tests/CMakeLists.txt)"
#endif

namespace dtrain::testing {

inline std::string fixture_path(const std::string& name) {
  const char* dir = std::getenv("DTRAIN_FIXTURE_DIR");
  return std::string(dir && *dir ? dir : DTRAIN_FIXTURE_DIR) + "/" + name;
}

inline std::string dtrain_bin() {
  const char* bin = std::getenv("DTRAIN_BIN");
  return bin && *bin ? bin : DTRAIN_BIN;
}

}  // namespace dtrain::testing
