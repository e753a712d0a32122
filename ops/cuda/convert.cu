// Element type conversion on CUDA, the twin of ops/cpu/convert.cpp: out[i] = D(x[i]) for
// the pairs of DT_CONVERT_PAIRS (ops/kernels.inc), in one grid-stride loop of 256-thread
// blocks.
#include "ops/common/convert_value.h"
#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

// out[i] = D(x[i]), rounding rules in ops/common/convert_value.h.               x, out: (n)
template <typename S, typename D>
__global__ void convert_kernel(const S* x, D* out, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = ::dtrain::ops::detail::convert_value<S, D>(x[i]);
}

}  // namespace

template <typename S, typename D>
void convert(const S* x, D* out, int64_t n, Exec ex) {
  check_size("cuda::convert", "n", n);
  check_ptr("cuda::convert", "x", x, n);
  check_ptr("cuda::convert", "out", out, n);
  if (n == 0) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), convert_kernel<S, D>)(x, out, n);
  check_launch("cuda::convert");
}

DT_CONVERT_PAIRS(DT_INSTANTIATE_CONVERT)

}  // namespace dtrain::ops::cuda
