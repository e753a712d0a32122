#pragma once
// A CPU emulator of CUDA's execution model for dtrain's own kernels (docs/EMULATOR.md).
//
// The ops/cuda/*.cu files are compiled a second time by the host compiler with the shim
// headers of tests/emu/shim/ in place of the CUDA ones. A launch written with DT_LAUNCH
// (ops/cuda/common.cuh) comes here: every CUDA thread of a block is a fiber
// (Boost.Context) on the calling OS thread, blocks run one after another, and a fiber
// switches only at the synchronising calls (__syncthreads, the __shfl_*_sync family).
//
// Note [Emulated launch]
// - Every launch runs twice: threads and blocks in forward order, then, on restored
//   device memory, in reverse order. Device memory is every buffer allocated through
//   DeviceBuffer (the emulator's "device": host memory in this part); before the first
//   run it is saved, after it the results are saved, then the saved inputs are restored
//   and the reverse run compared byte for byte with the forward results. A difference is
//   a race between threads or blocks (or an order-dependent atomic), reported with the
//   kernel, the buffer and the first differing byte. Every pointer argument of a launch
//   must lie in such a buffer, so the comparison sees all the memory a kernel can reach.
// - A block runs in sweeps: each runnable thread, in the run's order, runs until it
//   exits or waits at a barrier or shuffle. A shuffle resolves as soon as every lane of
//   its mask waits at the same call with the same mask. When nothing can run, the
//   waiting threads must all be at one __syncthreads() (the same call site: file, line
//   and column), with none exited; anything else is an error, never a hang.
// - Errors are thrown as dtrain::emu::Error, naming the kernel, its launch site, the
//   thread and block, and the source line of the call that went wrong.
// - Launch geometry is checked as CUDA does (block size, grid limits, shared memory):
//   a bad configuration sets the last error (cudaErrorInvalidConfiguration) and runs
//   nothing, so the launchers' check_launch reports it as on a GPU.
//
// - With an emulated device installed (install_device; tests/emu/device/runtime.cpp),
//   a launch is checked and queued on its stream, and a stream's worker thread runs it
//   later (execute_launch); the pointers a kernel may reach are the device's and pinned
//   allocations, and the race check compares only the allocations its pointer
//   arguments lie in. Two settings trade checking for speed (environment, read once):
//     DTRAIN_EMU_REVERSE = all | first | off   the reverse run for every launch, for
//         the first launch of each (site, grid, block, shared bytes), or never
//         (default: all without a device, first with one)
//     DTRAIN_EMU_FIBERS = always | auto        auto: a launch site whose first launch
//         made no barrier or shuffle runs later launches as plain calls, one thread
//         after another; a barrier reached in such a launch is an error that says to
//         set `always` (default: always without a device, auto with one)
//
// Process-wide state: CUDA's builtins (threadIdx, ...) are implicitly global, so the
// emulator is one object per process (emulator()) and runs one launch at a time (a
// mutex); the last error is per host thread, as in CUDA.

// Whether this build has AddressSanitizer: GCC says so with __SANITIZE_ADDRESS__, Clang
// with __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
#define DT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DT_EMU_ASAN 1
#endif
#endif
#ifndef DT_EMU_ASAN
#define DT_EMU_ASAN 0
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <source_location>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dtrain::emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

// What the emulator found wrong: a synchronisation error, a race, a bad argument.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where and how a kernel was launched (DT_LAUNCH fills it in).
struct LaunchSite {
  const char* kernel;  // the kernel expression as written, e.g. "convert_kernel<S, D>"
  const char* file;
  int line;
};

enum class ShuffleMode { Idx, Up, Down, Xor };

// One launch: where, its geometry, one CUDA thread's work (the kernel applied to copies of
// its arguments) and the pointer arguments.
struct KernelLaunch {
  LaunchSite site;
  Dim3 grid, block;
  size_t smem = 0;
  std::function<void()> body;
  std::vector<const void*> pointers;
};

// Checks the configuration as CUDA does: false, with the last error set and nothing
// run, when it is invalid. Otherwise runs the launch at once, or queues it on `stream`
// when a device is installed. Throws Error when a pointer argument is not memory a kernel
// may reach.
bool submit_launch(KernelLaunch launch, const void* stream);
// Runs a launch now, twice when the reverse order is due (Note [Emulated launch]). Safe
// from any thread: launches run one at a time.
void execute_launch(const KernelLaunch& launch);
// Compatibility for the self-tests: a launch without pointer bookkeeping.
bool run_launch(const LaunchSite& site, Dim3 grid, Dim3 block, size_t dynamic_smem,
                const std::function<void()>& body);

// A source path as messages show it: relative to the project root.
std::string source_path(const char* file);

// Throws Error unless p is null or lies in (or one past the end of) memory a kernel may
// reach: an emulated device buffer, or with a device installed its device and pinned
// allocations.
void check_device_pointer(const LaunchSite& site, int index, const void* p);

// An emulated device (tests/emu/device/runtime.cpp) installs these once.
struct DeviceHooks {
  // Queues a checked launch on a stream; may throw Error (a stream of another device).
  void (*enqueue)(const void* stream, KernelLaunch launch);
  // The device or pinned allocation holding p: true with its start and size.
  bool (*find)(const void* p, const unsigned char** start, size_t* bytes);
};
void install_device(const DeviceHooks& hooks);

// ---- device memory ----------------------------------------------------------------
void* device_malloc(size_t bytes);
void device_free(void* p);

// A typed device buffer; the values are reachable from the host (Part 1 has no
// host/device separation), through data().
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n), p_(static_cast<T*>(device_malloc(n * sizeof(T)))) {}
  explicit DeviceBuffer(const std::vector<T>& v) : DeviceBuffer(v.size()) {
    if (!v.empty()) std::memcpy(p_, v.data(), v.size() * sizeof(T));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : n_(std::exchange(o.n_, 0)), p_(std::exchange(o.p_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
    return *this;
  }
  ~DeviceBuffer() {
    if (p_) device_free(p_);
  }
  T* data() const { return p_; }
  size_t size() const { return n_; }
  std::vector<T> to_vector() const { return std::vector<T>(p_, p_ + n_); }

 private:
  size_t n_ = 0;
  T* p_ = nullptr;
};

// ---- what the shim's device functions call ------------------------------------------
struct ThreadView {
  Dim3 thread_idx, block_idx, block_dim, grid_dim;
};
// The current thread's indices; throws Error outside a kernel.
const ThreadView& current();
// The block's dynamic shared memory (the launch's size; guarded at both ends).
unsigned char* dynamic_shared();
void syncthreads(std::source_location loc);
uint64_t shuffle(ShuffleMode mode, const char* name, unsigned mask, uint64_t value, int b, int width,
                 std::source_location loc);

// Counters for the self-tests: launches run, barrier releases, shuffles resolved.
struct Stats {
  int64_t launches = 0, barriers = 0, shuffles = 0;
};
Stats stats();

// CUDA's last error as an int (the shim's cudaError_t), per host thread; 0 is success.
int take_last_error();
int peek_last_error();
void set_last_error(int error);
// The first failure of work on an emulated device (a kernel's error, a shim's), which
// cudaGetErrorString(cudaErrorLaunchFailure) then includes; null when none.
void record_device_failure(const std::string& what);
const char* device_failure();

// The launch object DT_LAUNCH builds: called with the kernel's arguments, it copies
// them (kernel parameters are by value), checks the pointers and submits the grid.
template <typename Call>
struct Launch {
  LaunchSite site;
  Dim3 grid, block;
  size_t smem;
  const void* stream;
  Call call;

  template <typename... A>
  void operator()(A... args) const {
    KernelLaunch l{site, grid, block, smem, {}, {}};
    int index = 0;
    (check_arg(l, index++, args), ...);
    l.body = [call = call, args...] { call(args...); };
    submit_launch(std::move(l), stream);
  }

 private:
  template <typename A>
  void check_arg(KernelLaunch& l, int index, const A& a) const {
    if constexpr (std::is_pointer_v<A>) {
      check_device_pointer(site, index, static_cast<const void*>(a));
      if (a != nullptr) l.pointers.push_back(static_cast<const void*>(a));
    }
  }
};

template <typename Call>
Launch<Call> make_launch(const char* kernel, const char* file, int line, Dim3 grid, Dim3 block, size_t smem,
                         const void* stream, Call call) {
  return Launch<Call>{{kernel, file, line}, grid, block, smem, stream, std::move(call)};
}

}  // namespace dtrain::emu
