#pragma once
// A human-readable description of a dataset file: schema, shapes, storage, counts, class
// balance or vocabulary sizes, and the validation result.
#include <cstdint>
#include <functional>
#include <string>

namespace dtrain::data {

struct InspectResult {
  std::string text;
  bool valid = false;
};
struct InspectOptions {
  // Read every image: encoded images are decoded (on every core) and checked against
  // /shapes; each failure is listed by row and path, and makes the file invalid.
  bool verify = false;
  std::function<void(int64_t done, int64_t total, double elapsed_s)> progress;  // during verify
};
// Never throws for a bad file: the problem is the validation result.
InspectResult inspect(const std::string& path, const InspectOptions& options = {});

}  // namespace dtrain::data
