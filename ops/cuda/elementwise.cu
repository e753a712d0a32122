// Elementwise CUDA kernels: fill, add/sub/mul/div, affine, axpby, scale_by.
// All buffers are (n) (g is (1), in device memory); outputs are written with `=` and
// may alias an input. Every kernel is a grid-stride loop of 256-thread blocks.
// Also detail::scale_matrix, C = beta C for gemm's k == 0 (ops/cuda/gemm.cu).
#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

struct AddOp {
  template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct SubOp {
  template <typename T> __device__ T operator()(T a, T b) const { return a - b; }
};
struct MulOp {
  template <typename T> __device__ T operator()(T a, T b) const { return a * b; }
};
struct DivOp {
  template <typename T> __device__ T operator()(T a, T b) const { return a / b; }
};
template <typename T>
struct AffineOp {
  T alpha, beta;
  __device__ T operator()(T x) const { return alpha * x + beta; }
};
template <typename T>
struct AxpbyOp {  // applied as op(x, y) and stored into y
  T alpha, beta;
  __device__ T operator()(T x, T y) const { return alpha * x + beta * y; }
};

// out[i] = value                                                             out: (n)
template <typename T>
__global__ void fill_kernel(T* out, T value, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = value;
}

// out[i] = x[i] * g[0]; g is read on the device, no host round trip. x, out: (n); g: (1)
template <typename T>
__global__ void scale_by_kernel(const T* x, const T* g, T* out, int64_t n) {
  const T s = *g;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = x[i] * s;
}

// c[r, col] = beta == 0 ? 0 : beta * c[r, col] (gemm with k == 0).         c: (M, ldc)
template <typename T>
__global__ void scale_matrix_kernel(T* c, int64_t m, int64_t n, int64_t ldc, T beta) {
  for (int64_t i = grid_start(); i < m * n; i += grid_stride()) {
    T& v = c[(i / n) * ldc + i % n];
    v = beta == T(0) ? T(0) : beta * v;
  }
}

}  // namespace

bool compiled() { return true; }

namespace detail {

template <typename T>
void scale_matrix(T* c, int64_t m, int64_t n, int64_t ldc, T beta, Exec ex) {
  if (m == 0 || n == 0) return;
  DT_LAUNCH(blocks_for(m * n), kThreads, 0, stream_of(ex), scale_matrix_kernel)(c, m, n, ldc, beta);
  check_launch("cuda::gemm (k == 0 scale)");
}
template void scale_matrix(float*, int64_t, int64_t, int64_t, float, Exec);
template void scale_matrix(double*, int64_t, int64_t, int64_t, double, Exec);

}  // namespace detail

template <typename T>
void fill(T* out, T value, int64_t n, Exec ex) {
  check_size("cuda::fill", "n", n);
  check_ptr("cuda::fill", "out", out, n);
  if (n == 0) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), fill_kernel)(out, value, n);
  check_launch("cuda::fill");
}

template <typename T>
void add(const T* a, const T* b, T* out, int64_t n, Exec ex) {
  launch_map2("cuda::add", "a", a, "b", b, out, n, ex, AddOp{});
}

template <typename T>
void sub(const T* a, const T* b, T* out, int64_t n, Exec ex) {
  launch_map2("cuda::sub", "a", a, "b", b, out, n, ex, SubOp{});
}

template <typename T>
void mul(const T* a, const T* b, T* out, int64_t n, Exec ex) {
  launch_map2("cuda::mul", "a", a, "b", b, out, n, ex, MulOp{});
}

template <typename T>
void div(const T* a, const T* b, T* out, int64_t n, Exec ex) {
  launch_map2("cuda::div", "a", a, "b", b, out, n, ex, DivOp{});
}

template <typename T>
void affine(const T* x, T* out, T alpha, T beta, int64_t n, Exec ex) {
  launch_map1("cuda::affine", "x", x, out, n, ex, AffineOp<T>{alpha, beta});
}

template <typename T>
void axpby(const T* x, T* y, T alpha, T beta, int64_t n, Exec ex) {
  launch_map2("cuda::axpby", "x", x, "y", static_cast<const T*>(y), y, n, ex, AxpbyOp<T>{alpha, beta});
}

template <typename T>
void scale_by(const T* x, const T* g, T* out, int64_t n, Exec ex) {
  check_size("cuda::scale_by", "n", n);
  check_ptr("cuda::scale_by", "x", x, n);
  check_ptr("cuda::scale_by", "g", g, n);
  check_ptr("cuda::scale_by", "out", out, n);
  if (n == 0) return;
  DT_LAUNCH(blocks_for(n), kThreads, 0, stream_of(ex), scale_by_kernel)(x, g, out, n);
  check_launch("cuda::scale_by");
}

DT_INSTANTIATE_KERNELS(DT_ELEMENTWISE_KERNELS)

}  // namespace dtrain::ops::cuda
