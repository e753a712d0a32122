// core/runtime.h implemented with the CUDA runtime API, cuBLAS and cuDNN.
#include "core/runtime.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "core/allocator.h"
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

#define CUDNN_CHECK(expr)                                                                      \
  do {                                                                                         \
    cudnnStatus_t st__ = (expr);                                                               \
    if (st__ != CUDNN_STATUS_SUCCESS) {                                                        \
      DT_THROW(::dtrain::DeviceError, #expr, " failed: ", cudnnGetErrorString(st__));          \
    }                                                                                          \
  } while (0)

namespace dtrain::cuda {

bool compiled() { return true; }

bool emulated() {
#if defined(DTRAIN_CUDA_EMULATOR)
  return true;  // compiled against tests/emu/shim/ (docs/EMULATOR.md)
#else
  return false;
#endif
}

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
// Per-thread, per-device compute stream, cuBLAS and cuDNN handles and scratch memory.
// Owned by the thread and released when it exits.
//
// Scratch (ops::Exec::scratch) is one device block that grows to the largest request;
// kernels use it for workspace (cuDNN) enqueued on the Exec's stream. Growing returns
// the old block to the caching allocator, which is safe by stream order while every
// user of the block ran on the thread's own compute stream (Note [Caching allocator and
// streams] in core/allocator.h). Once an Exec for another stream (a StreamGuard) has
// been handed out, work there may still read the old block, so from then on a replaced
// block is retired instead (kept until the thread exits) and growth is geometric to
// bound what is retired.
struct ThreadDeviceResources {
  int device = 0;
  cudaStream_t own_stream = nullptr;
  cudaStream_t current = nullptr;
  cublasHandle_t blas = nullptr;
  cudnnHandle_t dnn = nullptr;
  void* scratch = nullptr;
  size_t scratch_bytes = 0;
  bool handed_out_other_stream = false;  // an Exec with current != own_stream existed
  std::vector<void*> retired_scratch;

  ~ThreadDeviceResources() {
    if (scratch || !retired_scratch.empty()) {
      // Work still queued may use the blocks; let it finish before they can be reused
      // by another thread. Errors are ignored: CUDA may be shutting down.
      cudaStreamSynchronize(own_stream);
      try {
        CachingAllocator& pool = cuda_allocator(device);
        pool.deallocate(scratch);
        for (void* p : retired_scratch) pool.deallocate(p);
      } catch (...) {
      }
    }
    if (dnn) cudnnDestroy(dnn);
    if (blas) cublasDestroy(blas);
    if (own_stream) cudaStreamDestroy(own_stream);
  }
};

// ops::Exec::scratch_fn: a block of at least `bytes` on the owner's device.
void* thread_scratch(void* owner, size_t bytes) {
  auto& r = *static_cast<ThreadDeviceResources*>(owner);
  bytes = std::max<size_t>(bytes, 1);
  if (r.scratch && bytes <= r.scratch_bytes) return r.scratch;
  CachingAllocator& pool = cuda_allocator(r.device);
  size_t want = bytes;
  if (r.scratch) {
    if (r.handed_out_other_stream) {
      want = std::max(bytes, 2 * r.scratch_bytes);
      r.retired_scratch.push_back(r.scratch);
    } else {
      pool.deallocate(r.scratch);
    }
    r.scratch = nullptr;
    r.scratch_bytes = 0;
  }
  r.scratch = pool.allocate(want);
  r.scratch_bytes = want;
  return r.scratch;
}

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
    CUDNN_CHECK(cudnnCreate(&r->dnn));
    slot = std::move(r);
  }
  return *slot;
}
}  // namespace

ops::Exec thread_exec(int device) {
  ThreadDeviceResources& r = resources(device);
  CUDA_CHECK(cudaSetDevice(device));
  CUBLAS_CHECK(cublasSetStream(r.blas, r.current));
  CUDNN_CHECK(cudnnSetStream(r.dnn, r.current));
  if (r.current != r.own_stream) r.handed_out_other_stream = true;
  ops::Exec ex;
  ex.stream = r.current;
  ex.blas = r.blas;
  ex.dnn = r.dnn;
  ex.scratch_fn = &thread_scratch;
  ex.scratch_owner = &r;
  return ex;
}

void set_thread_stream(int device, void* stream) {
  ThreadDeviceResources& r = resources(device);
  r.current = stream ? static_cast<cudaStream_t>(stream) : r.own_stream;
}

void* thread_stream(int device) { return resources(device).current; }

}  // namespace dtrain::cuda
