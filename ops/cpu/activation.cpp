// Activation CPU kernels, forward and backward. Buffers are (n); outputs written with `=`.
// Backward kernels take the forward output y (sigmoid, tanh) or input x (relu, leaky_relu)
// as ops/kernels.inc states for each. Loops run on OpenMP threads from
// detail::kParallelMin elements on (ops/cpu/parallel.h).
#include <cmath>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"
#include "ops/cpu/math.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::cpu {
namespace {

using detail::check_ptr;
using detail::check_size;
using detail::parallel_for;

// out[i] = op(x[i]) after the usual checks.
template <typename T, typename Op>
void unary(const char* kernel, const T* x, T* out, int64_t n, Op op) {
  check_size(kernel, "n", n);
  check_ptr(kernel, "x", x, n);
  check_ptr(kernel, "out", out, n);
  parallel_for(n, [&](int64_t i) { out[i] = op(x[i]); });
}

// gx[i] = op(saved[i], gy[i]) after the usual checks.
template <typename T, typename Op>
void backward(const char* kernel, const char* saved_name, const T* saved, const T* gy, T* gx, int64_t n,
              Op op) {
  check_size(kernel, "n", n);
  check_ptr(kernel, saved_name, saved, n);
  check_ptr(kernel, "gy", gy, n);
  check_ptr(kernel, "gx", gx, n);
  parallel_for(n, [&](int64_t i) { gx[i] = op(saved[i], gy[i]); });
}

// exp() only ever sees a non-positive argument, so nothing overflows.
template <typename T>
T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

}  // namespace

template <typename T>
void sigmoid_forward(const T* x, T* y, int64_t n, Exec) {
  unary("cpu::sigmoid_forward", x, y, n, [](T v) { return stable_sigmoid(v); });
}

template <typename T>
void sigmoid_backward(const T* y, const T* gy, T* gx, int64_t n, Exec) {
  backward("cpu::sigmoid_backward", "y", y, gy, gx, n, [](T s, T g) { return g * s * (T(1) - s); });
}

template <typename T>
void tanh_forward(const T* x, T* y, int64_t n, Exec) {
  unary("cpu::tanh_forward", x, y, n, [](T v) { return detail::tanh_fast(v); });
}

template <typename T>
void tanh_backward(const T* y, const T* gy, T* gx, int64_t n, Exec) {
  backward("cpu::tanh_backward", "y", y, gy, gx, n, [](T t, T g) { return g * (T(1) - t * t); });
}

template <typename T>
void relu_forward(const T* x, T* y, int64_t n, Exec) {
  unary("cpu::relu_forward", x, y, n, [](T v) { return v > T(0) ? v : T(0); });
}

template <typename T>
void relu_backward(const T* x, const T* gy, T* gx, int64_t n, Exec) {
  backward("cpu::relu_backward", "x", x, gy, gx, n, [](T v, T g) { return v > T(0) ? g : T(0); });
}

template <typename T>
void leaky_relu_forward(const T* x, T* y, T slope, int64_t n, Exec) {
  unary("cpu::leaky_relu_forward", x, y, n, [slope](T v) { return v > T(0) ? v : slope * v; });
}

template <typename T>
void leaky_relu_backward(const T* x, const T* gy, T* gx, T slope, int64_t n, Exec) {
  backward("cpu::leaky_relu_backward", "x", x, gy, gx, n, [slope](T v, T g) { return v > T(0) ? g : slope * g; });
}

template <typename T>
void step_forward(const T* x, T* y, int64_t n, Exec) {
  unary("cpu::step_forward", x, y, n, [](T v) { return v >= T(0) ? T(1) : T(0); });
}

DT_INSTANTIATE_KERNELS(DT_ACTIVATION_KERNELS)

}  // namespace dtrain::ops::cpu
