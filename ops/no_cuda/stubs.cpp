// The CUDA twins when dtrain is built without nvcc: every kernel throws, naming itself
// and the fix. Never a silent CPU fallback (STYLE.md item 1). The stubs are generated from
// the kernel lists of ops/kernels.inc, one line per section.
#include <stdexcept>

#include "ops/common/instantiate.h"
#include "ops/cuda.h"

namespace dtrain::ops::cuda {

bool compiled() { return false; }

#define DT_UNAVAILABLE(name)                                                                  \
  throw std::runtime_error("dtrain was built without CUDA: " name                             \
                           " is unavailable; rebuild with -DCMAKE_CUDA_COMPILER=/path/to/nvcc")

// The stub of one kernel (X of a list), and every kernel of a list, stubbed and instantiated.
#define DT_STUB(name, params) \
  template <typename T>       \
  void name params { DT_UNAVAILABLE("cuda::" #name); }
#define DT_STUBS(LIST) LIST(DT_STUB, T) DT_INSTANTIATE_KERNELS(LIST)

DT_STUBS(DT_ELEMENTWISE_KERNELS)
DT_STUBS(DT_ACTIVATION_KERNELS)
DT_STUBS(DT_REDUCE_KERNELS)
DT_STUBS(DT_GEMM_KERNELS)
DT_STUBS(DT_LOSS_KERNELS)
DT_STUBS(DT_OPTIM_KERNELS)
DT_STUBS(DT_RANDOM_KERNELS)
DT_STUBS(DT_CONV_KERNELS)
DT_STUBS(DT_POOL_KERNELS)
DT_STUBS(DT_BATCH_NORM_KERNELS)
DT_STUBS(DT_DROPOUT_KERNELS)
DT_STUBS(DT_SEQUENCE_KERNELS)

// The conversion has two element types.
#define DT_STUB_CONVERT(name, params) \
  template <typename S, typename D>   \
  void name params { DT_UNAVAILABLE("cuda::" #name); }
DT_CONVERT_KERNELS(DT_STUB_CONVERT, S, D)
DT_CONVERT_PAIRS(DT_INSTANTIATE_CONVERT)

#undef DT_STUB_CONVERT
#undef DT_STUBS
#undef DT_STUB
#undef DT_UNAVAILABLE

}  // namespace dtrain::ops::cuda
