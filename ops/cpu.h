#pragma once
// CPU kernels: plain loops (and OpenBLAS for gemm), the ground truth for the CUDA twins.
#include <cstdint>

#include "ops/bf16.h"
#include "ops/exec.h"
#include "ops/geometry.h"

namespace dtrain::ops::cpu {
#include "ops/kernels.inc"
}  // namespace dtrain::ops::cpu
