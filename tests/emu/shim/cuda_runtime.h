#pragma once
// The emulator's stand-in for CUDA's runtime header (tests/emu/emulator.h): what the
// ops/cuda kernels use of the CUDA language and runtime, on the host compiler.
// Only the emulator's targets have this folder on their include path, ahead of any
// CUDA toolkit.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>

#include "tests/emu/emulator.h"

#define DTRAIN_CUDA_EMULATOR 1

// ---- qualifiers ----------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) alignas(n)
// One block runs at a time on one OS thread, so a function-local static is the block's
// shared array. `extern __shared__` does not compile here (use DT_DYNAMIC_SHARED).
#define __shared__ static
#define __constant__ static

// ---- runtime types and errors ----------------------------------------------------------
// Error numbers as CUDA's driver_types.h has them. The runtime API below is the emulated
// device's (tests/emu/device/runtime.cpp); the kernel emulator alone (Part 1's tests)
// uses only the launch and its last error.
struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorUnknown = 999,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
constexpr unsigned cudaStreamDefault = 0x0, cudaStreamNonBlocking = 0x1;
constexpr unsigned cudaEventDefault = 0x0, cudaEventBlockingSync = 0x1, cudaEventDisableTiming = 0x2;
#define cudaStreamLegacy (reinterpret_cast<cudaStream_t>(0x1))

inline cudaError_t cudaGetLastError() { return static_cast<cudaError_t>(::dtrain::emu::take_last_error()); }
inline cudaError_t cudaPeekAtLastError() { return static_cast<cudaError_t>(::dtrain::emu::peek_last_error()); }
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(size_t* free, size_t* total);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

using uint3 = ::dtrain::emu::Dim3;
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
namespace dtrain::emu {
inline Dim3 to_dim3(dim3 d) { return {d.x, d.y, d.z}; }
}  // namespace dtrain::emu

// ---- builtin variables -----------------------------------------------------------------
#define threadIdx (::dtrain::emu::current().thread_idx)
#define blockIdx (::dtrain::emu::current().block_idx)
#define blockDim (::dtrain::emu::current().block_dim)
#define gridDim (::dtrain::emu::current().grid_dim)
constexpr int warpSize = 32;

// ---- synchronisation -------------------------------------------------------------------
inline void __syncthreads(std::source_location loc = std::source_location::current()) {
  ::dtrain::emu::syncthreads(loc);
}

namespace dtrain::emu {
template <typename T>
T shuffle_as(ShuffleMode mode, const char* name, unsigned mask, T var, int b, int width, std::source_location loc) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move 4- and 8-byte values");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = shuffle(mode, name, mask, bits, b, width, loc);
  std::memcpy(&var, &bits, sizeof(T));
  return var;
}
}  // namespace dtrain::emu

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              std::source_location loc = std::source_location::current()) {
  return ::dtrain::emu::shuffle_as(::dtrain::emu::ShuffleMode::Idx, "__shfl_sync", mask, var, src_lane, width, loc);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 std::source_location loc = std::source_location::current()) {
  return ::dtrain::emu::shuffle_as(::dtrain::emu::ShuffleMode::Up, "__shfl_up_sync", mask, var,
                                   static_cast<int>(delta), width, loc);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   std::source_location loc = std::source_location::current()) {
  return ::dtrain::emu::shuffle_as(::dtrain::emu::ShuffleMode::Down, "__shfl_down_sync", mask, var,
                                   static_cast<int>(delta), width, loc);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  std::source_location loc = std::source_location::current()) {
  return ::dtrain::emu::shuffle_as(::dtrain::emu::ShuffleMode::Xor, "__shfl_xor_sync", mask, var, lane_mask, width,
                                   loc);
}

// ---- atomics ---------------------------------------------------------------------------
// Fibers switch only at barriers and shuffles, so a read-modify-write is atomic here.
// The types are CUDA's overloads.
namespace dtrain::emu {
template <typename T, typename... U>
concept OneOf = (std::is_same_v<T, U> || ...);
template <typename T>
concept AtomicInt = OneOf<T, int, unsigned, unsigned long long>;
template <typename T>
concept AtomicAddable = AtomicInt<T> || OneOf<T, float, double>;
}  // namespace dtrain::emu

template <dtrain::emu::AtomicAddable T>
T atomicAdd(T* address, T val) {
  const T old = *address;
  *address = old + val;
  return old;
}
template <dtrain::emu::OneOf<int, unsigned> T>
T atomicSub(T* address, T val) {
  const T old = *address;
  *address = old - val;
  return old;
}
template <dtrain::emu::OneOf<int, unsigned, long long, unsigned long long> T>
T atomicMax(T* address, T val) {
  const T old = *address;
  *address = old < val ? val : old;
  return old;
}
template <dtrain::emu::OneOf<int, unsigned, long long, unsigned long long> T>
T atomicMin(T* address, T val) {
  const T old = *address;
  *address = val < old ? val : old;
  return old;
}
template <dtrain::emu::OneOf<int, unsigned, unsigned long long, float> T>
T atomicExch(T* address, T val) {
  const T old = *address;
  *address = val;
  return old;
}
template <dtrain::emu::OneOf<int, unsigned, unsigned long long, unsigned short> T>
T atomicCAS(T* address, T compare, T val) {
  const T old = *address;
  if (old == compare) *address = val;
  return old;
}
template <dtrain::emu::AtomicInt T>
T atomicAnd(T* address, T val) {
  const T old = *address;
  *address = old & val;
  return old;
}
template <dtrain::emu::AtomicInt T>
T atomicOr(T* address, T val) {
  const T old = *address;
  *address = old | val;
  return old;
}
template <dtrain::emu::AtomicInt T>
T atomicXor(T* address, T val) {
  const T old = *address;
  *address = old ^ val;
  return old;
}

// ---- math: CUDA's overloads ------------------------------------------------------------
// nvcc provides float overloads of the math functions at global scope (sqrt(float) is
// sqrtf); the host's <cmath> puts them in std only, and an unqualified call would take
// the double one. Bring them all into the global namespace.
using std::acos, std::asin, std::atan, std::atan2, std::cbrt, std::ceil, std::copysign, std::cos, std::cosh,
    std::erf, std::erfc, std::exp, std::exp2, std::expm1, std::fabs, std::floor, std::fma, std::fmax, std::fmin,
    std::fmod, std::hypot, std::isfinite, std::isinf, std::isnan, std::log, std::log10, std::log1p, std::log2,
    std::nextafter, std::pow, std::round, std::signbit, std::sin, std::sinh, std::sqrt, std::tan, std::tanh,
    std::trunc;

// CUDA's min and max: integer arguments of mixed types take the usual arithmetic
// conversions (common_type); floating-point ones are fmin/fmax.
template <typename A, typename B>
  requires(std::is_arithmetic_v<A> && std::is_arithmetic_v<B>)
constexpr std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>) {
    return std::fmin(static_cast<C>(a), static_cast<C>(b));
  } else {
    return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
  }
}
template <typename A, typename B>
  requires(std::is_arithmetic_v<A> && std::is_arithmetic_v<B>)
constexpr std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>) {
    return std::fmax(static_cast<C>(a), static_cast<C>(b));
  } else {
    return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
  }
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
// The _rn intrinsics round each operation and are never contracted to an FMA.
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }

inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
