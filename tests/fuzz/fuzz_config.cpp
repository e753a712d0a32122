// Fuzz target: the run configuration parser (launcher/train/config.h) with `--set`
// overrides. The input is TOML text, then optionally a NUL byte and override lines
// ("key=value", one per line), as `dtrain train CONFIG --set ...` passes them. A config
// that parses must print canonically and parse back to the same canonical text.
#include <string>
#include <vector>

#include "launcher/train/config.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (dtrain::fuzz::empty_input_among_seeds(size)) return 0;
  std::string input(reinterpret_cast<const char*>(data), size);
  std::string toml = input, rest;
  if (auto nul = input.find('\0'); nul != std::string::npos) {
    toml = input.substr(0, nul);
    rest = input.substr(nul + 1);
  }
  std::vector<std::string> overrides;
  size_t start = 0;
  while (start < rest.size() && overrides.size() < 16) {
    size_t end = rest.find('\n', start);
    if (end == std::string::npos) end = rest.size();
    overrides.push_back(rest.substr(start, end - start));
    start = end + 1;
  }
  namespace L = dtrain::launcher;
  std::string text;
  dtrain::fuzz::refuse_cleanly([&] { text = L::canonical(L::parse_config(toml, "fuzz.toml", overrides)); });
  if (text.empty()) return 0;
  // Accepted: its canonical text must be accepted too (an exception here is a finding).
  if (L::canonical(L::parse_config(text, "canonical")) != text) std::abort();
  return 0;
}
