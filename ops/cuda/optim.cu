// Fused optimizer steps on CUDA, one grid-stride pass over a parameter. The update rules
// (PyTorch's SGD, Adam, AdamW) are stated in ops/kernels.inc and mirror ops/cpu/optim.cpp
// line for line; Adam's bias corrections 1 - beta^step are computed on the host in double.
//   param, grad, momentum_buf, m, v: (n), updated in place.
#include <cmath>
#include <string>

#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

template <typename T>
__global__ void sgd_step_kernel(T* param, const T* grad, T* momentum_buf, int64_t n, T lr, T momentum, T dampening,
                                T weight_decay, bool nesterov, bool first_step) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    T d = grad[i] + weight_decay * param[i];
    if (momentum != T(0)) {
      const T buf = first_step ? d : momentum * momentum_buf[i] + (T(1) - dampening) * d;
      momentum_buf[i] = buf;
      d = nesterov ? d + momentum * buf : buf;
    }
    param[i] -= lr * d;
  }
}

template <typename T>
__global__ void adam_step_kernel(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps,
                                 T weight_decay, bool decoupled, T bc1, T bc2) {
  const T decay = T(1) - lr * weight_decay;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    T g = grad[i];
    T p = param[i];
    if (decoupled) {
      p *= decay;
    } else {
      g += weight_decay * p;
    }
    const T mi = beta1 * m[i] + (T(1) - beta1) * g;
    const T vi = beta2 * v[i] + (T(1) - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = p - lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
  }
}

}  // namespace

template <typename T>
void sgd_step(T* param, const T* grad, T* momentum_buf, int64_t n, T lr, T momentum, T dampening, T weight_decay,
              bool nesterov, bool first_step, Exec ex) {
  const char* kernel = "cuda::sgd_step";
  check_size(kernel, "n", n);
  check_ptr(kernel, "param", param, n);
  check_ptr(kernel, "grad", grad, n);
  if (momentum != T(0)) check_ptr(kernel, "momentum_buf", momentum_buf, n);
  if (n == 0) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), sgd_step_kernel)(
      param, grad, momentum_buf, n, lr, momentum, dampening, weight_decay, nesterov, first_step);
  check_launch(kernel);
}

template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
               bool decoupled, int64_t step, Exec ex) {
  const char* kernel = "cuda::adam_step";
  check_size(kernel, "n", n);
  if (step < 1) invalid(kernel, "step counts from 1, got " + std::to_string(step));
  check_ptr(kernel, "param", param, n);
  check_ptr(kernel, "grad", grad, n);
  check_ptr(kernel, "m", m, n);
  check_ptr(kernel, "v", v, n);
  if (n == 0) return;
  const double s = static_cast<double>(step);
  const T bc1 = static_cast<T>(1.0 - std::pow(static_cast<double>(beta1), s));
  const T bc2 = static_cast<T>(1.0 - std::pow(static_cast<double>(beta2), s));
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), adam_step_kernel)(
      param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2);
  check_launch(kernel);
}

DT_INSTANTIATE_KERNELS(DT_OPTIM_KERNELS)

}  // namespace dtrain::ops::cuda
