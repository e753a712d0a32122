#pragma once
// CUDA kernels: the twins of ops/cpu.h with identical signatures. When dtrain is built
// without CUDA, ops/no_cuda/ defines them all to throw "built without CUDA".
#include <cstdint>

#include "ops/bf16.h"
#include "ops/exec.h"
#include "ops/geometry.h"

namespace dtrain::ops::cuda {
#include "ops/kernels.inc"

// True when this build contains the CUDA kernels (false for the no_cuda stubs).
bool compiled();
}  // namespace dtrain::ops::cuda
