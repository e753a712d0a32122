#pragma once
// Picks an ops kernel by device and element type. The CPU and CUDA twins have identical
// signatures (ops/kernels.inc), so choosing one is choosing a function pointer:
//
//   dispatch_float(x.dtype(), "relu", [&]<typename T>() {
//     DT_KERNEL(x.device(), relu_forward<T>)(x.data<T>(), y.data<T>(), n, exec_for(x.device()));
//   });
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/runtime.h"
#include "ops/cpu.h"
#include "ops/cuda.h"

namespace dtrain {

template <typename Fn>
Fn* pick_kernel(Device device, Fn* cpu, Fn* cuda) {
  return device.is_cuda() ? cuda : cpu;
}

// The execution handle for kernels on `device`: the calling thread's current stream.
inline ops::Exec exec_for(Device device) {
  return device.is_cuda() ? cuda::thread_exec(device.index) : ops::Exec{};
}

// Calls f.template operator()<T>() with T = float or double for F32/F64 tensors.
template <typename F>
decltype(auto) dispatch_float(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::F32: return f.template operator()<float>();
    case DType::F64: return f.template operator()<double>();
    default:
      DT_THROW(ValueError, what, ": expected an f32 or f64 tensor, got ", dtype_name(dtype),
               " (convert with .to(DType::F32))");
  }
}

// Calls f.template operator()<T>() with T the C++ type of any dtype.
template <typename F>
decltype(auto) dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: return f.template operator()<float>();
    case DType::F64: return f.template operator()<double>();
    case DType::BF16: return f.template operator()<ops::bf16>();
    case DType::I32: return f.template operator()<int32_t>();
    case DType::I64: return f.template operator()<int64_t>();
    case DType::U8: return f.template operator()<uint8_t>();
  }
  DT_THROW(ValueError, "unknown dtype");
}

}  // namespace dtrain

#define DT_KERNEL(device, ...) ::dtrain::pick_kernel((device), &::dtrain::ops::cpu::__VA_ARGS__, &::dtrain::ops::cuda::__VA_ARGS__)
