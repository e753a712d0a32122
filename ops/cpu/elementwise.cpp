// Elementwise CPU kernels: fill, add/sub/mul/div, affine, axpby, scale_by.
// All buffers are (n); every output is written with `=`, and out may alias an input.
// Loops run on OpenMP threads from detail::kParallelMin elements on (ops/cpu/parallel.h).
#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::cpu {
namespace {

using detail::check_ptr;
using detail::check_size;
using detail::parallel_for;

template <typename T, typename Op>
void binary(const char* kernel, const T* a, const T* b, T* out, int64_t n, Op op) {
  check_size(kernel, "n", n);
  check_ptr(kernel, "a", a, n);
  check_ptr(kernel, "b", b, n);
  check_ptr(kernel, "out", out, n);
  parallel_for(n, [&](int64_t i) { out[i] = op(a[i], b[i]); });
}

}  // namespace

template <typename T>
void fill(T* out, T value, int64_t n, Exec) {
  check_size("cpu::fill", "n", n);
  check_ptr("cpu::fill", "out", out, n);
  parallel_for(n, [&](int64_t i) { out[i] = value; });
}

template <typename T>
void add(const T* a, const T* b, T* out, int64_t n, Exec) {
  binary("cpu::add", a, b, out, n, [](T x, T y) { return x + y; });
}

template <typename T>
void sub(const T* a, const T* b, T* out, int64_t n, Exec) {
  binary("cpu::sub", a, b, out, n, [](T x, T y) { return x - y; });
}

template <typename T>
void mul(const T* a, const T* b, T* out, int64_t n, Exec) {
  binary("cpu::mul", a, b, out, n, [](T x, T y) { return x * y; });
}

template <typename T>
void div(const T* a, const T* b, T* out, int64_t n, Exec) {
  binary("cpu::div", a, b, out, n, [](T x, T y) { return x / y; });
}

template <typename T>
void affine(const T* x, T* out, T alpha, T beta, int64_t n, Exec) {
  check_size("cpu::affine", "n", n);
  check_ptr("cpu::affine", "x", x, n);
  check_ptr("cpu::affine", "out", out, n);
  parallel_for(n, [&](int64_t i) { out[i] = alpha * x[i] + beta; });
}

template <typename T>
void axpby(const T* x, T* y, T alpha, T beta, int64_t n, Exec) {
  check_size("cpu::axpby", "n", n);
  check_ptr("cpu::axpby", "x", x, n);
  check_ptr("cpu::axpby", "y", y, n);
  parallel_for(n, [&](int64_t i) { y[i] = alpha * x[i] + beta * y[i]; });
}

template <typename T>
void scale_by(const T* x, const T* g, T* out, int64_t n, Exec) {
  check_size("cpu::scale_by", "n", n);
  check_ptr("cpu::scale_by", "x", x, n);
  check_ptr("cpu::scale_by", "g", g, n);
  check_ptr("cpu::scale_by", "out", out, n);
  if (n == 0) return;
  const T s = g[0];
  parallel_for(n, [&](int64_t i) { out[i] = x[i] * s; });
}

DT_INSTANTIATE_KERNELS(DT_ELEMENTWISE_KERNELS)

}  // namespace dtrain::ops::cpu
