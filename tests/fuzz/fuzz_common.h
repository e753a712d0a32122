#pragma once
// Shared by the fuzz targets (tests/fuzz, docs/ROBUSTNESS.md): a scratch file per process
// for readers that take a path, and the rule that a clean refusal is a dtrain::Error.
//
// A target returns normally when the reader accepts the input or refuses it with a
// dtrain::Error (IoError, ConfigError, ...): both are correct behaviour. Anything else is
// a finding: a crash or a sanitizer report ends the process, and an exception of another
// type escapes to libFuzzer, which reports it as a crash ("deadly signal" after abort).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace dtrain::fuzz {

// $TMPDIR/dtrain-fuzz-<pid>-<tag><suffix>, removed at exit.
inline std::string scratch_path(const std::string& tag, const std::string& suffix = "") {
  const char* tmp = std::getenv("TMPDIR");
  std::string p = tmp && *tmp ? tmp : "/tmp";
  p += "/dtrain-fuzz-";
  p += std::to_string(::getpid());
  p += "-";
  p += tag;
  p += suffix;
  return p;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();  // the scratch directory must be writable
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// True when the inputs are a seed corpus of valid inputs (the replay tests set
// DTRAIN_FUZZ_SEEDS_VALID=1): a refusal is then a failure, so that the seeds are known to
// reach past the first check.
inline bool seeds_must_pass() {
  static const bool on = [] {
    const char* v = std::getenv("DTRAIN_FUZZ_SEEDS_VALID");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

// libFuzzer runs an empty input before the corpus; it is no seed.
inline bool empty_input_among_seeds(size_t size) { return size == 0 && seeds_must_pass(); }

[[noreturn]] inline void seed_refused(const std::string& why) {
  std::fprintf(stderr, "fuzz: a seed input was refused: %s\n", why.c_str());
  std::abort();
}

// Runs `body`; a dtrain::Error is a clean refusal.
template <typename F>
void refuse_cleanly(F&& body) {
  try {
    body();
  } catch (const dtrain::Error& e) {
    if (seeds_must_pass()) seed_refused(e.what());
  }
}

}  // namespace dtrain::fuzz
