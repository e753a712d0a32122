// The CUDA twins when dtrain is built without nvcc: every kernel throws, naming itself
// and the fix. Never a silent CPU fallback (STYLE.md item 1).
#include <stdexcept>

#include "ops/common/convert_value.h"  // DT_CONVERT_PAIRS
#include "ops/cuda.h"

namespace dtrain::ops::cuda {

#define DT_UNAVAILABLE(name)                                                                  \
  throw std::runtime_error("dtrain was built without CUDA: " name                             \
                           " is unavailable; rebuild with -DCMAKE_CUDA_COMPILER=/path/to/nvcc")

bool compiled() { return false; }

// DT_STUB(name, (parameter types...)) defines `template <typename T> void name(...)`.
#define DT_STUB(name, params) \
  template <typename T>       \
  void name params { DT_UNAVAILABLE("cuda::" #name); }

DT_STUB(fill, (T*, T, int64_t, Exec))
DT_STUB(add, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(sub, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(mul, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(div, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(affine, (const T*, T*, T, T, int64_t, Exec))
DT_STUB(axpby, (const T*, T*, T, T, int64_t, Exec))
DT_STUB(scale_by, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(sigmoid_forward, (const T*, T*, int64_t, Exec))
DT_STUB(sigmoid_backward, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(tanh_forward, (const T*, T*, int64_t, Exec))
DT_STUB(tanh_backward, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(relu_forward, (const T*, T*, int64_t, Exec))
DT_STUB(relu_backward, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(leaky_relu_forward, (const T*, T*, T, int64_t, Exec))
DT_STUB(leaky_relu_backward, (const T*, const T*, T*, T, int64_t, Exec))
DT_STUB(step_forward, (const T*, T*, int64_t, Exec))
DT_STUB(bias_add, (const T*, const T*, T*, int64_t, int64_t, int64_t, Exec))
DT_STUB(bias_grad, (const T*, T*, int64_t, int64_t, int64_t, Exec))
DT_STUB(sum_all, (const T*, T*, int64_t, Exec))
DT_STUB(gemm, (bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*, int64_t, Exec))
DT_STUB(softmax_xent_forward, (const T*, const int64_t*, T*, T*, int64_t, int64_t, Exec))
DT_STUB(softmax_xent_backward, (const T*, const int64_t*, const T*, T*, int64_t, int64_t, Exec))
DT_STUB(mse_forward, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(mse_backward, (const T*, const T*, const T*, T*, T*, int64_t, Exec))
DT_STUB(bce_logits_forward, (const T*, const T*, T*, int64_t, Exec))
DT_STUB(bce_logits_backward, (const T*, const T*, const T*, T*, T*, int64_t, Exec))
DT_STUB(sgd_step, (T*, const T*, T*, int64_t, T, T, T, T, bool, bool, Exec))
DT_STUB(adam_step, (T*, const T*, T*, T*, int64_t, T, T, T, T, T, bool, int64_t, Exec))
DT_STUB(philox_uniform, (T*, int64_t, uint64_t, uint64_t, T, T, Exec))
DT_STUB(philox_normal, (T*, int64_t, uint64_t, uint64_t, T, T, Exec))
DT_STUB(conv2d_forward, (const Conv2dGeom&, const T*, const T*, T*, Exec))
DT_STUB(conv2d_backward_data, (const Conv2dGeom&, const T*, const T*, T*, Exec))
DT_STUB(conv2d_backward_weight, (const Conv2dGeom&, const T*, const T*, T*, Exec))
DT_STUB(max_pool2d_forward, (const Pool2dGeom&, const T*, T*, int32_t*, Exec))
DT_STUB(max_pool2d_backward, (const Pool2dGeom&, const T*, const int32_t*, T*, Exec))
DT_STUB(avg_pool2d_forward, (const Pool2dGeom&, const T*, T*, Exec))
DT_STUB(avg_pool2d_backward, (const Pool2dGeom&, const T*, T*, Exec))
DT_STUB(adaptive_avg_pool2d_forward, (const AdaptivePoolGeom&, const T*, T*, Exec))
DT_STUB(adaptive_avg_pool2d_backward, (const AdaptivePoolGeom&, const T*, T*, Exec))
DT_STUB(batch_norm_forward_train,
        (const T*, const T*, const T*, T*, T*, T*, T*, T*, int64_t, int64_t, int64_t, T, T, Exec))
DT_STUB(batch_norm_forward_eval, (const T*, const T*, const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, T, Exec))
DT_STUB(batch_norm_backward, (const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t, Exec))
DT_STUB(dropout_forward, (const T*, T*, uint8_t*, int64_t, T, uint64_t, uint64_t, Exec))
DT_STUB(dropout_backward, (const T*, const uint8_t*, T*, int64_t, T, Exec))
#undef DT_STUB

template <typename S, typename D>
void convert(const S*, D*, int64_t, Exec) {
  DT_UNAVAILABLE("cuda::convert");
}

#define DT_INSTANTIATE(T)                                                                                         \
  template void fill<T>(T*, T, int64_t, Exec);                                                                    \
  template void add<T>(const T*, const T*, T*, int64_t, Exec);                                                    \
  template void sub<T>(const T*, const T*, T*, int64_t, Exec);                                                    \
  template void mul<T>(const T*, const T*, T*, int64_t, Exec);                                                    \
  template void div<T>(const T*, const T*, T*, int64_t, Exec);                                                    \
  template void affine<T>(const T*, T*, T, T, int64_t, Exec);                                                     \
  template void axpby<T>(const T*, T*, T, T, int64_t, Exec);                                                      \
  template void scale_by<T>(const T*, const T*, T*, int64_t, Exec);                                               \
  template void sigmoid_forward<T>(const T*, T*, int64_t, Exec);                                                  \
  template void sigmoid_backward<T>(const T*, const T*, T*, int64_t, Exec);                                       \
  template void tanh_forward<T>(const T*, T*, int64_t, Exec);                                                     \
  template void tanh_backward<T>(const T*, const T*, T*, int64_t, Exec);                                          \
  template void relu_forward<T>(const T*, T*, int64_t, Exec);                                                     \
  template void relu_backward<T>(const T*, const T*, T*, int64_t, Exec);                                          \
  template void leaky_relu_forward<T>(const T*, T*, T, int64_t, Exec);                                            \
  template void leaky_relu_backward<T>(const T*, const T*, T*, T, int64_t, Exec);                                 \
  template void step_forward<T>(const T*, T*, int64_t, Exec);                                                     \
  template void bias_add<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, Exec);                             \
  template void bias_grad<T>(const T*, T*, int64_t, int64_t, int64_t, Exec);                                      \
  template void sum_all<T>(const T*, T*, int64_t, Exec);                                                          \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,   \
                        int64_t, Exec);                                                                           \
  template void softmax_xent_forward<T>(const T*, const int64_t*, T*, T*, int64_t, int64_t, Exec);                \
  template void softmax_xent_backward<T>(const T*, const int64_t*, const T*, T*, int64_t, int64_t, Exec);         \
  template void mse_forward<T>(const T*, const T*, T*, int64_t, Exec);                                            \
  template void mse_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, Exec);                             \
  template void bce_logits_forward<T>(const T*, const T*, T*, int64_t, Exec);                                     \
  template void bce_logits_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, Exec);                      \
  template void sgd_step<T>(T*, const T*, T*, int64_t, T, T, T, T, bool, bool, Exec);                             \
  template void adam_step<T>(T*, const T*, T*, T*, int64_t, T, T, T, T, T, bool, int64_t, Exec);                  \
  template void philox_uniform<T>(T*, int64_t, uint64_t, uint64_t, T, T, Exec);                                   \
  template void philox_normal<T>(T*, int64_t, uint64_t, uint64_t, T, T, Exec);                                    \
  template void conv2d_forward<T>(const Conv2dGeom&, const T*, const T*, T*, Exec);                               \
  template void conv2d_backward_data<T>(const Conv2dGeom&, const T*, const T*, T*, Exec);                         \
  template void conv2d_backward_weight<T>(const Conv2dGeom&, const T*, const T*, T*, Exec);                       \
  template void max_pool2d_forward<T>(const Pool2dGeom&, const T*, T*, int32_t*, Exec);                           \
  template void max_pool2d_backward<T>(const Pool2dGeom&, const T*, const int32_t*, T*, Exec);                    \
  template void avg_pool2d_forward<T>(const Pool2dGeom&, const T*, T*, Exec);                                     \
  template void avg_pool2d_backward<T>(const Pool2dGeom&, const T*, T*, Exec);                                    \
  template void adaptive_avg_pool2d_forward<T>(const AdaptivePoolGeom&, const T*, T*, Exec);                      \
  template void adaptive_avg_pool2d_backward<T>(const AdaptivePoolGeom&, const T*, T*, Exec);                     \
  template void batch_norm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, int64_t, int64_t,   \
                                            int64_t, T, T, Exec);                                                 \
  template void batch_norm_forward_eval<T>(const T*, const T*, const T*, const T*, const T*, T*, int64_t,         \
                                           int64_t, int64_t, T, Exec);                                            \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t,     \
                                       int64_t, int64_t, Exec);                                                   \
  template void dropout_forward<T>(const T*, T*, uint8_t*, int64_t, T, uint64_t, uint64_t, Exec);                 \
  template void dropout_backward<T>(const T*, const uint8_t*, T*, int64_t, T, Exec);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

#define DT_INSTANTIATE_CONVERT(S, D) template void convert<S, D>(const S*, D*, int64_t, Exec);
DT_CONVERT_PAIRS(DT_INSTANTIATE_CONVERT)
#undef DT_INSTANTIATE_CONVERT
#undef DT_UNAVAILABLE

}  // namespace dtrain::ops::cuda

// ---- sequences (ops/kernels.inc, section "sequences") -------------------------------------
namespace dtrain::ops::cuda {

#define DT_SEQ_STUB(name, params)                                                                    \
  template <typename T>                                                                              \
  void name params {                                                                                 \
    throw std::runtime_error("dtrain was built without CUDA: cuda::" #name                           \
                             " is unavailable; rebuild with -DCMAKE_CUDA_COMPILER=/path/to/nvcc");   \
  }
DT_SEQ_STUB(embedding_forward, (const int64_t*, const T*, T*, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(embedding_backward, (const int64_t*, const T*, T*, int64_t, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(softmax_xent_masked_forward, (const T*, const int64_t*, T*, T*, T*, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(softmax_xent_masked_backward,
            (const T*, const int64_t*, const T*, const T*, T*, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(lstm_cell_forward, (const T*, const T*, T*, T*, T*, int64_t, int64_t, Exec))
DT_SEQ_STUB(lstm_cell_backward, (const T*, const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t, Exec))
DT_SEQ_STUB(length_select, (const int64_t*, int64_t, const T*, const T*, T*, int64_t, int64_t, Exec))
DT_SEQ_STUB(time_gather, (const T*, T*, int64_t, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(time_scatter, (const T*, T*, int64_t, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(batched_gemv, (bool, const T*, const T*, T*, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(batched_outer, (const T*, const T*, T*, int64_t, int64_t, int64_t, Exec))
DT_SEQ_STUB(masked_softmax_forward, (const T*, const int64_t*, T*, int64_t, int64_t, Exec))
DT_SEQ_STUB(masked_softmax_backward, (const T*, const T*, T*, int64_t, int64_t, Exec))
#undef DT_SEQ_STUB

#define DT_INSTANTIATE(T)                                                                                         \
  template void embedding_forward<T>(const int64_t*, const T*, T*, int64_t, int64_t, int64_t, Exec);             \
  template void embedding_backward<T>(const int64_t*, const T*, T*, int64_t, int64_t, int64_t, int64_t, Exec);   \
  template void softmax_xent_masked_forward<T>(const T*, const int64_t*, T*, T*, T*, int64_t, int64_t, int64_t,  \
                                               Exec);                                                            \
  template void softmax_xent_masked_backward<T>(const T*, const int64_t*, const T*, const T*, T*, int64_t,       \
                                                int64_t, int64_t, Exec);                                         \
  template void lstm_cell_forward<T>(const T*, const T*, T*, T*, T*, int64_t, int64_t, Exec);                    \
  template void lstm_cell_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t, \
                                      Exec);                                                                     \
  template void length_select<T>(const int64_t*, int64_t, const T*, const T*, T*, int64_t, int64_t, Exec);       \
  template void time_gather<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, Exec);                          \
  template void time_scatter<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, Exec);                         \
  template void batched_gemv<T>(bool, const T*, const T*, T*, int64_t, int64_t, int64_t, Exec);                  \
  template void batched_outer<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, Exec);                       \
  template void masked_softmax_forward<T>(const T*, const int64_t*, T*, int64_t, int64_t, Exec);                 \
  template void masked_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, Exec);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dtrain::ops::cuda
