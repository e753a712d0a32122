// Activation CUDA kernels, forward and backward: grid-stride elementwise maps (see
// ops/cuda/common.cuh) with the functors below. Buffers are (n); outputs written with `=`.
// Backward kernels take the forward output y (sigmoid, tanh) or input x (relu,
// leaky_relu), as in ops/kernels.inc.
#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

// exp() only ever sees a non-positive argument, so nothing overflows.
struct SigmoidOp {
  template <typename T> __device__ T operator()(T x) const {
    if (x >= T(0)) return T(1) / (T(1) + exp(-x));
    const T e = exp(x);
    return e / (T(1) + e);
  }
};
struct SigmoidGradOp {  // (y, gy)
  template <typename T> __device__ T operator()(T y, T g) const { return g * y * (T(1) - y); }
};
struct TanhOp {
  template <typename T> __device__ T operator()(T x) const { return tanh(x); }
};
struct TanhGradOp {  // (y, gy)
  template <typename T> __device__ T operator()(T y, T g) const { return g * (T(1) - y * y); }
};
struct ReluOp {
  template <typename T> __device__ T operator()(T x) const { return x > T(0) ? x : T(0); }
};
struct ReluGradOp {  // (x, gy)
  template <typename T> __device__ T operator()(T x, T g) const { return x > T(0) ? g : T(0); }
};
template <typename T>
struct LeakyReluOp {
  T slope;
  __device__ T operator()(T x) const { return x > T(0) ? x : slope * x; }
};
template <typename T>
struct LeakyReluGradOp {  // (x, gy)
  T slope;
  __device__ T operator()(T x, T g) const { return x > T(0) ? g : slope * g; }
};
struct StepOp {
  template <typename T> __device__ T operator()(T x) const { return x >= T(0) ? T(1) : T(0); }
};

}  // namespace

template <typename T>
void sigmoid_forward(const T* x, T* y, int64_t n, Exec ex) {
  launch_map1("cuda::sigmoid_forward", "x", x, y, n, ex, SigmoidOp{});
}

template <typename T>
void sigmoid_backward(const T* y, const T* gy, T* gx, int64_t n, Exec ex) {
  launch_map2("cuda::sigmoid_backward", "y", y, "gy", gy, gx, n, ex, SigmoidGradOp{});
}

template <typename T>
void tanh_forward(const T* x, T* y, int64_t n, Exec ex) {
  launch_map1("cuda::tanh_forward", "x", x, y, n, ex, TanhOp{});
}

template <typename T>
void tanh_backward(const T* y, const T* gy, T* gx, int64_t n, Exec ex) {
  launch_map2("cuda::tanh_backward", "y", y, "gy", gy, gx, n, ex, TanhGradOp{});
}

template <typename T>
void relu_forward(const T* x, T* y, int64_t n, Exec ex) {
  launch_map1("cuda::relu_forward", "x", x, y, n, ex, ReluOp{});
}

template <typename T>
void relu_backward(const T* x, const T* gy, T* gx, int64_t n, Exec ex) {
  launch_map2("cuda::relu_backward", "x", x, "gy", gy, gx, n, ex, ReluGradOp{});
}

template <typename T>
void leaky_relu_forward(const T* x, T* y, T slope, int64_t n, Exec ex) {
  launch_map1("cuda::leaky_relu_forward", "x", x, y, n, ex, LeakyReluOp<T>{slope});
}

template <typename T>
void leaky_relu_backward(const T* x, const T* gy, T* gx, T slope, int64_t n, Exec ex) {
  launch_map2("cuda::leaky_relu_backward", "x", x, "gy", gy, gx, n, ex, LeakyReluGradOp<T>{slope});
}

template <typename T>
void step_forward(const T* x, T* y, int64_t n, Exec ex) {
  launch_map1("cuda::step_forward", "x", x, y, n, ex, StepOp{});
}

DT_INSTANTIATE_KERNELS(DT_ACTIVATION_KERNELS)

}  // namespace dtrain::ops::cuda
