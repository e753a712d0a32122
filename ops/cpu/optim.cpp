// Fused optimizer steps on the CPU, one pass over a parameter (see ops/kernels.inc for
// the exact update rules, which follow PyTorch's SGD, Adam and AdamW).
//   param, grad, momentum_buf, m, v: (n); param and the state buffers are updated in place.
#include <cmath>
#include <string>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"

namespace dtrain::ops::cpu {

using detail::check_ptr;
using detail::check_size;

template <typename T>
void sgd_step(T* param, const T* grad, T* momentum_buf, int64_t n, T lr, T momentum, T dampening, T weight_decay,
              bool nesterov, bool first_step, Exec) {
  const char* kernel = "cpu::sgd_step";
  check_size(kernel, "n", n);
  check_ptr(kernel, "param", param, n);
  check_ptr(kernel, "grad", grad, n);
  if (momentum != T(0)) check_ptr(kernel, "momentum_buf", momentum_buf, n);
  for (int64_t i = 0; i < n; ++i) {
    T d = grad[i] + weight_decay * param[i];
    if (momentum != T(0)) {
      T& buf = momentum_buf[i];
      buf = first_step ? d : momentum * buf + (T(1) - dampening) * d;
      d = nesterov ? d + momentum * buf : buf;
    }
    param[i] -= lr * d;
  }
}

template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
               bool decoupled, int64_t step, Exec) {
  const char* kernel = "cpu::adam_step";
  check_size(kernel, "n", n);
  if (step < 1) detail::invalid(kernel, "step counts from 1, got " + std::to_string(step));
  check_ptr(kernel, "param", param, n);
  check_ptr(kernel, "grad", grad, n);
  check_ptr(kernel, "m", m, n);
  check_ptr(kernel, "v", v, n);
  const double s = static_cast<double>(step);
  const T bc1 = static_cast<T>(1.0 - std::pow(static_cast<double>(beta1), s));
  const T bc2 = static_cast<T>(1.0 - std::pow(static_cast<double>(beta2), s));
  const T decay = T(1) - lr * weight_decay;
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    T p = param[i];
    if (decoupled) {
      p *= decay;
    } else {
      g += weight_decay * p;
    }
    m[i] = beta1 * m[i] + (T(1) - beta1) * g;
    v[i] = beta2 * v[i] + (T(1) - beta2) * g * g;
    const T m_hat = m[i] / bc1;
    const T v_hat = v[i] / bc2;
    param[i] = p - lr * m_hat / (std::sqrt(v_hat) + eps);
  }
}

DT_INSTANTIATE_KERNELS(DT_OPTIM_KERNELS)

}  // namespace dtrain::ops::cpu
