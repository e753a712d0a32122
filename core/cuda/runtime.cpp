// core/runtime.h implemented with the CUDA runtime API and cuBLAS.
#include "core/runtime.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>

#include "core/error.h"

#define CUDA_CHECK(expr)                                                                       \
  do {                                                                                         \
    cudaError_t err__ = (expr);                                                                \
    if (err__ != cudaSuccess) {                                                                \
      DT_THROW(::dtrain::DeviceError, #expr, " failed: ", cudaGetErrorName(err__), " (",        \
               cudaGetErrorString(err__), ")");                                                \
    }                                                                                          \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                     \
  do {                                                                                         \
    cublasStatus_t st__ = (expr);                                                              \
    if (st__ != CUBLAS_STATUS_SUCCESS) {                                                       \
      DT_THROW(::dtrain::DeviceError, #expr, " failed with cuBLAS status ", static_cast<int>(st__)); \
    }                                                                                          \
  } while (0)

namespace dtrain::cuda {

bool compiled() { return true; }

int device_count(std::string* why) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls report their own
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device is visible (check CUDA_VISIBLE_DEVICES)";
  return count;
}

void check_device(int device) {
  std::string why;
  int n = device_count(&why);
  if (n == 0) DT_THROW(DeviceError, "cuda:", device, " requested but no CUDA device is usable: ", why);
  if (device < 0 || device >= n) DT_THROW(DeviceError, "cuda:", device, " does not exist: this machine has ", n, " CUDA device(s)");
}

void set_device(int device) { CUDA_CHECK(cudaSetDevice(device)); }

namespace {
struct DeviceScope {
  int prev = -1;
  explicit DeviceScope(int device) {
    cudaGetDevice(&prev);
    if (prev != device) CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceScope() {
    int now = -1;
    cudaGetDevice(&now);
    if (prev >= 0 && now != prev) cudaSetDevice(prev);
  }
};
}  // namespace

void* raw_malloc(size_t bytes, int device) {
  DeviceScope scope(device);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;
  }
  CUDA_CHECK(err);
  return p;
}

void raw_free(void* ptr, int device) {
  DeviceScope scope(device);
  CUDA_CHECK(cudaFree(ptr));
}

void* host_malloc_pinned(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMallocHost(&p, bytes));
  return p;
}
void host_free_pinned(void* ptr) { CUDA_CHECK(cudaFreeHost(ptr)); }

void memcpy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes, void* stream) {
  if (bytes == 0) return;
  cudaMemcpyKind kind = cudaMemcpyDefault;  // unified addressing tells the direction
  int dev = dst_device.is_cuda() ? dst_device.index : src_device.index;
  DeviceScope scope(dev);
  if (stream) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, static_cast<cudaStream_t>(stream)));
  } else {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
  }
}

void memset_zero(void* dst, size_t bytes, int device, void* stream) {
  DeviceScope scope(device);
  CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, static_cast<cudaStream_t>(stream)));
}

void* stream_create(int device) {
  DeviceScope scope(device);
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}
void stream_destroy(void* stream, int device) {
  DeviceScope scope(device);
  CUDA_CHECK(cudaStreamDestroy(static_cast<cudaStream_t>(stream)));
}
void stream_synchronize(void* stream, int device) {
  DeviceScope scope(device);
  CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}
void* event_create(int device, bool timing) {
  DeviceScope scope(device);
  cudaEvent_t e;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  return e;
}
void event_destroy(void* event, int device) {
  DeviceScope scope(device);
  CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(event)));
}
void event_record(void* event, void* stream, int device) {
  DeviceScope scope(device);
  CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)));
}
void stream_wait_event(void* stream, void* event, int device) {
  DeviceScope scope(device);
  CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0));
}
void event_synchronize(void* event) { CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event))); }
bool event_query(void* event) {
  cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (err == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  CUDA_CHECK(err);
  return true;
}
float event_elapsed_ms(void* start, void* end) {
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return ms;
}

namespace {
// Per-thread, per-device compute stream and cuBLAS handle. Owned by the thread and
// released when it exits.
struct ThreadDeviceResources {
  int device = 0;
  cudaStream_t own_stream = nullptr;
  cudaStream_t current = nullptr;
  cublasHandle_t blas = nullptr;
  ~ThreadDeviceResources() {
    if (blas) cublasDestroy(blas);
    if (own_stream) cudaStreamDestroy(own_stream);
  }
};

ThreadDeviceResources& resources(int device) {
  thread_local std::map<int, std::unique_ptr<ThreadDeviceResources>> per_device;
  auto& slot = per_device[device];
  if (!slot) {
    check_device(device);
    DeviceScope scope(device);
    auto r = std::make_unique<ThreadDeviceResources>();
    r->device = device;
    CUDA_CHECK(cudaStreamCreateWithFlags(&r->own_stream, cudaStreamNonBlocking));
    r->current = r->own_stream;
    CUBLAS_CHECK(cublasCreate(&r->blas));
    slot = std::move(r);
  }
  return *slot;
}
}  // namespace

ops::Exec thread_exec(int device) {
  ThreadDeviceResources& r = resources(device);
  CUDA_CHECK(cudaSetDevice(device));
  CUBLAS_CHECK(cublasSetStream(r.blas, r.current));
  return ops::Exec{r.current, r.blas};
}

void set_thread_stream(int device, void* stream) {
  ThreadDeviceResources& r = resources(device);
  r.current = stream ? static_cast<cudaStream_t>(stream) : r.own_stream;
}

void* thread_stream(int device) { return resources(device).current; }

}  // namespace dtrain::cuda
