#pragma once
// The CUDA runtime as dtrain uses it, behind a header that needs no CUDA headers.
// core/cuda/runtime.cpp implements it with the CUDA runtime API (never the driver API,
// so binaries start on machines without a driver); core/no_cuda/runtime.cpp implements
// it for builds without CUDA, where device_count() is 0 and everything else throws
// NotBuiltError.
#include <cstddef>
#include <string>

#include "core/device.h"
#include "ops/exec.h"

namespace dtrain::cuda {

// True when this binary contains the CUDA backend.
bool compiled();
// True when that backend is the emulated device of the tests (tests/emu/,
// docs/EMULATOR.md): CPU code behind the CUDA API, not a GPU.
bool emulated();
// Number of usable CUDA devices; 0 when the build has no CUDA, there is no driver or no
// device. When 0 and `why` is given, *why says which of these it was.
int device_count(std::string* why = nullptr);
inline bool available(std::string* why = nullptr) { return device_count(why) > 0; }
// Throws DeviceError naming the device when it does not exist.
void check_device(int device);
void set_device(int device);

// Raw device memory (uncached; the caching allocator sits on top). malloc returns
// nullptr when out of memory, so the caller can free its cache and retry.
void* raw_malloc(size_t bytes, int device);
void raw_free(void* ptr, int device);
// Page-locked host memory for fast asynchronous copies.
void* host_malloc_pinned(size_t bytes);
void host_free_pinned(void* ptr);

// Copies `bytes` between any two devices. With a stream it is asynchronous on it,
// otherwise it completes before returning.
void memcpy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
            void* stream = nullptr);
void memset_zero(void* dst, size_t bytes, int device, void* stream);

// Streams and events (opaque cudaStream_t / cudaEvent_t handles).
void* stream_create(int device);
void stream_destroy(void* stream, int device);
void stream_synchronize(void* stream, int device);
void* event_create(int device, bool timing);
void event_destroy(void* event, int device);
void event_record(void* event, void* stream, int device);
void stream_wait_event(void* stream, void* event, int device);
void event_synchronize(void* event);
bool event_query(void* event);
float event_elapsed_ms(void* start, void* end);

// The calling thread's compute stream, cuBLAS and cuDNN handles (bound to the current
// stream) and scratch memory for `device`, created on first use and owned by the thread
// (so threads-as-ranks tests each get their own). Kernels launched by core/ for tensors
// on `device` run here unless a StreamGuard (core/stream.h) selects another stream.
ops::Exec thread_exec(int device);
void set_thread_stream(int device, void* stream);
void* thread_stream(int device);

}  // namespace dtrain::cuda
