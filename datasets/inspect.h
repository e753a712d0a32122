#pragma once
// A human-readable description of a dataset file: schema, shapes, storage, counts, class
// balance or vocabulary sizes, and the validation result.
#include <string>

namespace dtrain::data {

struct InspectResult {
  std::string text;
  bool valid = false;
};
// Never throws for a bad file: the problem is the validation result.
InspectResult inspect(const std::string& path);

}  // namespace dtrain::data
