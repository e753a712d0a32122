#pragma once
// The emulated device's services for the library shims (cublas.cpp, cudnn.cpp,
// nccl.cpp) and the tests: work on streams, and what a pointer points to.
// Implemented by runtime.cpp (Note [Emulated device] there and docs/EMULATOR.md).
#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>

#include "tests/emu/emulator.h"

namespace dtrain::emu::device {

// A failure found by the emulated device or a shim: a bad call, a host/device mix-up
// (the emulator's error type).
using Error = ::dtrain::emu::Error;

// Number of emulated devices: DTRAIN_EMU_DEVICES (1 to 16), default 4.
int count();
// The calling thread's current device (cudaSetDevice / cudaGetDevice).
int current();

// Enqueues `op` on `stream` (a cudaStream_t; nullptr is the legacy default stream of the
// current device). It runs later, in stream order, on the stream's worker thread with
// device memory accessible. `what` names the call in reports. An exception from `op` is
// reported on stderr with `what` and makes the device's sticky error
// cudaErrorLaunchFailure, as a failed kernel does on a GPU.
void enqueue(void* stream, const char* what, std::function<void()> op);
// The device a stream belongs to.
int stream_device(void* stream);
// Blocks until everything enqueued on `stream` so far has run.
void synchronize(void* stream);

// What [p, p + bytes) is.
enum class Kind { Null, Device, Pinned, Host };
struct Region {
  Kind kind = Kind::Null;
  int device = -1;             // for Kind::Device
  const void* start = nullptr;  // the allocation holding p (Device, Pinned)
  size_t bytes = 0;             // its size
};
// Kind::Host is anything outside the device and pinned allocations (pageable memory, or
// no memory at all). A range that starts inside an allocation but runs past its end
// throws Error naming `call`.
Region classify(const char* call, const void* p, size_t bytes);
// Throws Error naming `call` and `name` unless [p, p + bytes) lies in one allocation on
// `device` (any device when -1). bytes == 0 accepts any pointer of a device allocation.
void require_device(const char* call, const char* name, const void* p, size_t bytes, int device = -1);

// How long work waits on its stream before it runs unless a host thread waits
// (Note [Emulated device]); DTRAIN_EMU_LAG_MS sets it at start.
void set_lag(std::chrono::milliseconds lag);

// This machine's name, as the emulated devices' "bus ids" use it (NCCL's duplicate-device
// check).
std::string host_name();

}  // namespace dtrain::emu::device
