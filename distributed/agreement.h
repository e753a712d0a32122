#pragma once
// Pre-flight agreement: before the first step, every rank all-gathers a fingerprint of
// what must be identical across ranks (Note [Same call order] in process_group.h), so a
// mismatch stops every rank with a message naming the differing ranks and items instead
// of hanging in a collective later.
#include <string>
#include <utility>
#include <vector>

#include "core/nn/module.h"
#include "distributed/process_group.h"

namespace dtrain::dist {

// An item: a name ("parameters", "bucket layout", "batch size", "dataset", "build") and
// this rank's value as text (any length: it is hashed; the first 200 characters are
// shown in the error).
using AgreementItems = std::vector<std::pair<std::string, std::string>>;

// Collective (every rank must call it with the same item names in the same order).
// Returns normally when every item agrees on every rank; otherwise throws
// DistributedError on every rank, e.g.
//   "ranks disagree before the first step: batch size: ranks 0, 1 have '32'; rank 2 has
//    '64'. Every rank must run the same model, batch size, dataset and dtrain build."
void check_agreement(ProcessGroup& group, const AgreementItems& items);

// Parameter names, shapes and dtypes as text, for the "parameters" item.
std::string describe_parameters(const nn::NamedTensors& params);

}  // namespace dtrain::dist
