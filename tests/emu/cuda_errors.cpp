// cudaGetErrorName and cudaGetErrorString of the shim (tests/emu/shim/cuda_runtime.h),
// with CUDA's names and messages for the errors the emulator and its device report.
#include <cuda_runtime.h>

#include <string>

namespace {

struct Text {
  const char* name;
  const char* message;
};

Text text_of(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return {"cudaSuccess", "no error"};
    case cudaErrorInvalidValue: return {"cudaErrorInvalidValue", "invalid argument"};
    case cudaErrorMemoryAllocation: return {"cudaErrorMemoryAllocation", "out of memory"};
    case cudaErrorInitializationError: return {"cudaErrorInitializationError", "initialization error"};
    case cudaErrorInvalidConfiguration: return {"cudaErrorInvalidConfiguration", "invalid configuration argument"};
    case cudaErrorInvalidDevicePointer: return {"cudaErrorInvalidDevicePointer", "invalid device pointer"};
    case cudaErrorInvalidMemcpyDirection: return {"cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"};
    case cudaErrorInsufficientDriver:
      return {"cudaErrorInsufficientDriver", "CUDA driver version is insufficient for CUDA runtime version"};
    case cudaErrorNoDevice: return {"cudaErrorNoDevice", "no CUDA-capable device is detected"};
    case cudaErrorInvalidDevice: return {"cudaErrorInvalidDevice", "invalid device ordinal"};
    case cudaErrorInvalidResourceHandle: return {"cudaErrorInvalidResourceHandle", "invalid resource handle"};
    case cudaErrorNotReady: return {"cudaErrorNotReady", "device not ready"};
    case cudaErrorIllegalAddress: return {"cudaErrorIllegalAddress", "an illegal memory access was encountered"};
    case cudaErrorLaunchFailure: return {"cudaErrorLaunchFailure", "unspecified launch failure"};
    case cudaErrorUnknown: return {"cudaErrorUnknown", "unknown error"};
  }
  return {"cudaErrorUnknown", "unrecognized error code"};
}

}  // namespace

const char* cudaGetErrorName(cudaError_t e) { return text_of(e).name; }

// A launch failure carries what the emulated device found (the first failure), since the
// caller reports only this string.
const char* cudaGetErrorString(cudaError_t e) {
  if (e == cudaErrorLaunchFailure) {
    if (const char* what = ::dtrain::emu::device_failure()) {
      static thread_local std::string text;
      text = std::string("unspecified launch failure; the emulated device reported: ") + what;
      return text.c_str();
    }
  }
  return text_of(e).message;
}
