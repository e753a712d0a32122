// The emulated CUDA device: the runtime API of tests/emu/shim/cuda_runtime.h on the CPU,
// for builds that run the whole `device = "cuda"` path without a GPU (docs/EMULATOR.md).
//
// Note [Emulated device]
// - Devices: DTRAIN_EMU_DEVICES of them (default 4), each a reserved range of address
//   space. Device memory comes from that range and is kept inaccessible (PROT_NONE)
//   except while the device runs something: a kernel, a copy, a library call. A host
//   access to a device pointer at any other time faults, and the SIGSEGV handler reports
//   it (address, device, allocation, backtrace) and aborts. While the device runs, every
//   thread could touch device memory: detection is certain only when the device is idle,
//   which a synchronised host usually finds it.
// - Fresh allocations are filled with 0xff bytes (NaN for floats, -1 for integers), so
//   code that assumes zeroed memory fails here as it may on a GPU.
// - Streams run asynchronously: each has a worker thread executing its work in order.
//   Work becomes due DTRAIN_EMU_LAG_MS (default 2) after it was enqueued, or at once when
//   a host thread waits for that stream (a synchronize, a blocking copy, an event or
//   stream query); work that a forced stream waits for (an event, the legacy stream's
//   order) is forced in turn. Other streams keep their lag. So a host that reads a result
//   without waiting for it reads stale data, and work wrongly left unordered with another
//   stream's runs in the wrong order, rather than winning the race by luck.
// - The legacy default stream (nullptr) is ordered after work on blocking streams
//   (cudaStreamCreate) and before later work on them, and not with non-blocking ones
//   (cudaStreamNonBlocking), as in CUDA: a blocking cudaMemcpy does not wait for a kernel
//   on a non-blocking stream.
// - Events complete when the stream reaches them; cudaStreamWaitEvent orders a stream
//   after the event's latest record, as CUDA defines.
// - Pinned host memory (cudaMallocHost) is ordinary host memory that kernels and
//   asynchronous copies may use; copies from it run when the stream gets to them, so
//   overwriting it before the copy completed changes what is copied. Asynchronous copies
//   from pageable memory take the data at the call; to pageable memory they complete
//   before returning (CUDA's staging behaviour).
// - Checks beyond what a GPU reports at once: a kernel argument in no device or pinned
//   allocation, or on another device than the stream's; a copy or memset past the end
//   of its allocation; a copy whose kind contradicts its pointers; work on a stream of
//   another device than the current one. A failure inside work on a stream (a kernel's
//   race, a library shim's error) is printed with what failed and makes the device's
//   error sticky (cudaErrorLaunchFailure), as a failed kernel does.
// - Each worker runs OpenMP and the BLAS on one thread: several streams do not fight
//   over the cores, and results do not depend on thread counts.
//
// The runtime lives as long as the process (never destroyed: workers may still run at exit).
#include <cuda_runtime.h>
#include <execinfo.h>
#include <omp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/emu/device/device.h"
#include "tests/emu/emulator.h"

struct CUstream_st {};  // handles are addresses of Stream objects, never dereferenced as these
struct CUevent_st {};

namespace dtrain::emu::device {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReserve = size_t{64} << 30;  // address space per device
constexpr size_t kAlign = 256;                  // cudaMalloc's alignment
constexpr int kMaxDevices = 16;

size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

std::string hex(const void* p) {
  std::ostringstream os;
  os << p;
  return os.str();
}

struct Stream;
struct Event {
  int device = 0;
  bool timing = true;
  uint64_t recorded = 0;   // records so far
  uint64_t completed = 0;  // the latest record the device has reached
  Clock::time_point when{};
  std::weak_ptr<Stream> stream;  // of the latest record
};

// Work waits until `stream` has completed `count` items.
struct After {
  std::shared_ptr<Stream> stream;
  uint64_t count = 0;
};

struct Op {
  std::function<void()> fn;  // empty for markers (event records and waits)
  const char* what = "";
  Clock::time_point due{};
  uint64_t index = 0;  // its position on the stream
  std::vector<After> after;
  std::shared_ptr<Event> wait_event;
  uint64_t wait_record = 0;
  std::shared_ptr<Event> record;
  uint64_t record_no = 0;
};

struct Stream {
  int device = 0;
  bool blocking = false;  // synchronises with the legacy stream
  bool legacy = false;
  std::deque<Op> queue;
  uint64_t enqueued = 0, done = 0;
  uint64_t flush = 0;  // work at positions below this is due now (a host waited for it)
  bool destroyed = false;
};

struct Allocation {
  size_t bytes = 0;
  int device = -1;  // -1: pinned host memory
};

struct DeviceState {
  unsigned char* base = nullptr;
  size_t capacity = 0;  // bytes that may be allocated
  size_t high = 0;      // page-rounded extent ever handed out
  size_t used = 0;
  std::map<size_t, size_t> free;  // offset -> bytes, below `high`
  std::shared_ptr<Stream> legacy;
  cudaError_t sticky = cudaSuccess;
};

thread_local int current_device = 0;

class Runtime {
 public:
  static Runtime& get() {
    static Runtime* rt = new Runtime;
    return *rt;
  }

  std::mutex m;
  std::condition_variable cv;
  std::vector<DeviceState> devices;
  std::map<uintptr_t, Allocation> allocations;  // device and pinned, by start
  std::map<const void*, std::shared_ptr<Stream>> streams;
  std::map<const void*, std::shared_ptr<Event>> events;
  int open = 0;  // work items running: device memory is accessible while > 0
  std::chrono::milliseconds lag{2};

  // ---- memory protection --------------------------------------------------------------
  void protect_all(bool accessible) {
    for (DeviceState& d : devices) {
      if (d.high > 0) mprotect(d.base, d.high, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
    }
  }
  void open_memory() {  // with m held
    if (open++ == 0) protect_all(true);
  }
  void close_memory() {  // with m held
    if (--open == 0) protect_all(false);
  }

  // ---- streams ----------------------------------------------------------------------
  std::shared_ptr<Stream> legacy(int device) {  // with m held
    DeviceState& d = devices[static_cast<size_t>(device)];
    if (!d.legacy) {
      d.legacy = std::make_shared<Stream>();
      d.legacy->device = device;
      d.legacy->legacy = true;
      start_worker(d.legacy);
    }
    return d.legacy;
  }

  // The stream for a handle (nullptr and cudaStreamLegacy: the current device's legacy
  // stream), or null for an unknown handle. With m held.
  std::shared_ptr<Stream> resolve(const void* handle) {
    if (handle == nullptr || handle == cudaStreamLegacy) return legacy(current_device);
    auto it = streams.find(handle);
    return it == streams.end() ? nullptr : it->second;
  }

  void start_worker(const std::shared_ptr<Stream>& s) {
    std::thread([this, s] { work(s); }).detach();
  }

  // Queues `op` on `s`, with the legacy stream's ordering. With m held.
  void push(const std::shared_ptr<Stream>& s, Op op) {
    op.due = Clock::now() + lag;
    op.index = s->enqueued;
    const DeviceState& d = devices[static_cast<size_t>(s->device)];
    if (s->legacy) {
      for (auto& [h, other] : streams) {
        if (other->blocking && other->device == s->device && other->enqueued > other->done) {
          op.after.push_back({other, other->enqueued});
        }
      }
    } else if (s->blocking && d.legacy && d.legacy->enqueued > d.legacy->done) {
      op.after.push_back({d.legacy, d.legacy->enqueued});
    }
    s->queue.push_back(std::move(op));
    ++s->enqueued;
    cv.notify_all();
  }

  void work(std::shared_ptr<Stream> s) {
    omp_set_num_threads(1);
    std::unique_lock<std::mutex> lock(m);
    for (;;) {
      if (s->queue.empty()) {
        if (s->destroyed) return;
        cv.wait(lock);
        continue;
      }
      Op& head = s->queue.front();
      const bool forced = s->flush > head.index;
      if (!forced && Clock::now() < head.due) {
        cv.wait_until(lock, head.due);
        continue;
      }
      bool ready = true;
      if (head.wait_event && head.wait_event->completed < head.wait_record) {
        ready = false;
        if (forced) force(head.wait_event->stream.lock());
      }
      for (const After& a : head.after) {
        if (a.stream->done < a.count) {
          ready = false;
          if (forced) force(a.stream);
        }
      }
      if (!ready) {
        cv.wait(lock);
        continue;
      }
      Op op = std::move(head);
      s->queue.pop_front();
      DeviceState& d = devices[static_cast<size_t>(s->device)];
      if (op.fn && d.sticky == cudaSuccess) {
        open_memory();
        lock.unlock();
        std::string failure;
        try {
          op.fn();
        } catch (const std::exception& e) {
          failure = e.what();
        } catch (...) {
          failure = "an unknown exception";
        }
        lock.lock();
        close_memory();
        if (!failure.empty()) {
          const std::string what = std::string(op.what) + " on cuda:" + std::to_string(s->device) + ": " + failure;
          std::cerr << "emulated CUDA device: " << what << "\n" << std::flush;
          record_device_failure(what);
          d.sticky = cudaErrorLaunchFailure;
        }
      }
      if (op.record) {
        op.record->completed = std::max(op.record->completed, op.record_no);
        op.record->when = Clock::now();
      }
      ++s->done;
      cv.notify_all();
    }
  }

  // Makes the work queued on `s` so far due now (a host waits for it). With m held.
  void force(const std::shared_ptr<Stream>& s) {
    if (s && s->flush < s->enqueued) {
      s->flush = s->enqueued;
      cv.notify_all();
    }
  }

  // Blocks until `done` holds, forcing `streams` first (a host wait).
  template <typename Pred>
  void host_wait(std::unique_lock<std::mutex>& lock, const std::vector<std::shared_ptr<Stream>>& streams, Pred done) {
    for (const auto& s : streams) force(s);
    cv.wait(lock, done);
  }

  void synchronize_device(std::unique_lock<std::mutex>& lock, int device) {
    std::vector<std::pair<std::shared_ptr<Stream>, uint64_t>> targets;
    for (auto& [h, s] : streams) {
      if (s->device == device) targets.emplace_back(s, s->enqueued);
    }
    if (const auto& l = devices[static_cast<size_t>(device)].legacy) targets.emplace_back(l, l->enqueued);
    std::vector<std::shared_ptr<Stream>> streams;
    for (auto& t : targets) streams.push_back(t.first);
    host_wait(lock, streams, [&] {
      for (auto& [s, n] : targets) {
        if (s->done < n) return false;
      }
      return true;
    });
  }

  // ---- memory -----------------------------------------------------------------------
  // The allocation holding p, or nullptr. With m held.
  const std::pair<const uintptr_t, Allocation>* find(const void* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return nullptr;
    --it;
    // One past the end still belongs to the allocation (an end pointer, or a range of 0 bytes).
    if (a > it->first + it->second.bytes) return nullptr;
    return &*it;
  }

  int device_of_address(uintptr_t a) const {
    for (size_t i = 0; i < devices.size(); ++i) {
      const auto b = reinterpret_cast<uintptr_t>(devices[i].base);
      if (a >= b && a < b + kReserve) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  Runtime() {
    int n = 4;
    if (const char* env = std::getenv("DTRAIN_EMU_DEVICES"); env && *env) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (*end != '\0' || v < 0 || v > kMaxDevices) {
        std::cerr << "emulated CUDA device: DTRAIN_EMU_DEVICES must be 0 to " << kMaxDevices << ", not '" << env
                  << "'\n";
        std::abort();
      }
      n = static_cast<int>(v);
    }
    size_t capacity = size_t{16} << 30;
    if (const char* env = std::getenv("DTRAIN_EMU_DEVICE_MB"); env && *env) {
      capacity = static_cast<size_t>(std::strtoull(env, nullptr, 10)) << 20;
    }
    if (const char* env = std::getenv("DTRAIN_EMU_LAG_MS"); env && *env) {
      lag = std::chrono::milliseconds(std::strtol(env, nullptr, 10));
    }
    devices.resize(static_cast<size_t>(n));
    for (DeviceState& d : devices) {
      void* p = mmap(nullptr, kReserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        std::cerr << "emulated CUDA device: cannot reserve address space for a device\n";
        std::abort();
      }
      d.base = static_cast<unsigned char*>(p);
      d.capacity = std::min(capacity, kReserve);
    }
    install_fault_handler();
    install_device({&enqueue_launch, &find_for_kernels});
  }

  static void enqueue_launch(const void* stream, KernelLaunch launch);
  static bool find_for_kernels(const void* p, const unsigned char** start, size_t* bytes);
  static void install_fault_handler();
};

// ---- host accesses to device memory -------------------------------------------------------
struct sigaction previous_segv;

void on_segv(int sig, siginfo_t* info, void* context) {
  Runtime& rt = Runtime::get();
  const auto a = reinterpret_cast<uintptr_t>(info->si_addr);
  const int device = rt.device_of_address(a);
  if (device < 0) {
    // Not ours: let the previous handler (or the default action) have the fault.
    sigaction(SIGSEGV, &previous_segv, nullptr);
    (void)sig;
    (void)context;
    return;
  }
  char text[1024];
  int n = std::snprintf(text, sizeof(text),
                        "\nemulated CUDA device: host code accessed device memory of cuda:%d at %p outside any kernel, "
                        "copy or library call.\nOn a GPU this address is not host memory: copy the data to the host "
                        "first (Tensor::to(Device::cpu()), cudaMemcpy) after the work that writes it has completed.\n",
                        device, info->si_addr);
  if (rt.m.try_lock()) {
    if (const auto* alloc = rt.find(info->si_addr)) {
      n += std::snprintf(text + n, sizeof(text) - static_cast<size_t>(n),
                         "The address is byte %zu of an allocation of %zu bytes at %p.\n",
                         static_cast<size_t>(a - alloc->first), alloc->second.bytes,
                         reinterpret_cast<void*>(alloc->first));
    } else {
      n += std::snprintf(text + n, sizeof(text) - static_cast<size_t>(n),
                         "The address is in no live allocation (freed memory, or never allocated).\n");
    }
    rt.m.unlock();
  }
  n += std::snprintf(text + n, sizeof(text) - static_cast<size_t>(n), "Backtrace (innermost first):\n");
  if (write(STDERR_FILENO, text, static_cast<size_t>(n)) < 0) _exit(134);
  void* frames[64];
  const int depth = backtrace(frames, 64);
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  signal(SIGABRT, SIG_DFL);
  abort();
}

void Runtime::install_fault_handler() {
  void* warm[1];
  backtrace(warm, 1);  // loads the unwinder now, not inside the handler
  struct sigaction sa {};
  sa.sa_sigaction = &on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &previous_segv);
}

bool Runtime::find_for_kernels(const void* p, const unsigned char** start, size_t* bytes) {
  Runtime& rt = get();
  std::lock_guard<std::mutex> lock(rt.m);
  const auto* a = rt.find(p);
  if (a == nullptr) return false;
  *start = reinterpret_cast<const unsigned char*>(a->first);
  *bytes = a->second.bytes;
  return true;
}

void Runtime::enqueue_launch(const void* stream, KernelLaunch launch) {
  Runtime& rt = get();
  std::unique_lock<std::mutex> lock(rt.m);
  const int device = current_device;
  auto where = [&] {
    return std::string("emu: kernel ") + launch.site.kernel + " (launched at " + source_path(launch.site.file) + ":" +
           std::to_string(launch.site.line) + ")";
  };
  std::shared_ptr<Stream> s = rt.resolve(stream);
  if (!s) {
    set_last_error(cudaErrorInvalidResourceHandle);
    return;
  }
  if (rt.devices[static_cast<size_t>(device)].sticky != cudaSuccess) {
    set_last_error(rt.devices[static_cast<size_t>(device)].sticky);
    return;
  }
  if (s->device != device) {
    throw Error(where() + ": launched on a stream of cuda:" + std::to_string(s->device) + " while cuda:" +
                std::to_string(device) + " is the current device (cudaErrorInvalidResourceHandle on a GPU)");
  }
  for (size_t i = 0; i < launch.pointers.size(); ++i) {
    const auto* a = rt.find(launch.pointers[i]);
    if (a != nullptr && a->second.device >= 0 && a->second.device != device) {
      throw Error(where() + ": pointer argument " + hex(launch.pointers[i]) + " is memory of cuda:" +
                  std::to_string(a->second.device) + ", but the kernel runs on cuda:" + std::to_string(device) +
                  " (peer access is not enabled)");
    }
  }
  Op op;
  op.what = launch.site.kernel;
  op.fn = [l = std::move(launch)] { execute_launch(l); };
  rt.push(s, std::move(op));
}

Runtime& rt() { return Runtime::get(); }

cudaError_t fail(cudaError_t e) {
  set_last_error(e);
  return e;
}

// Reports a misuse on stderr and returns `e` (also the last error).
cudaError_t misuse(cudaError_t e, const std::string& what) {
  std::cerr << "emulated CUDA device: " << what << "\n" << std::flush;
  return fail(e);
}

cudaError_t sticky(int device) { return rt().devices[static_cast<size_t>(device)].sticky; }

}  // namespace

// ---- device.h -----------------------------------------------------------------------------
int count() { return static_cast<int>(rt().devices.size()); }
int current() { return current_device; }

void enqueue(void* stream, const char* what, std::function<void()> op) {
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (!s) throw Error(std::string(what) + ": stream " + hex(stream) + " is not a live stream");
  Op o;
  o.what = what;
  o.fn = std::move(op);
  r.push(s, std::move(o));
}

int stream_device(void* stream) {
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (!s) throw Error("stream " + hex(stream) + " is not a live stream");
  return s->device;
}

void synchronize(void* stream) {
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (!s) throw Error("synchronize: stream " + hex(stream) + " is not a live stream");
  const uint64_t target = s->enqueued;
  r.host_wait(lock, {s}, [&] { return s->done >= target; });
}

Region classify(const char* call, const void* p, size_t bytes) {
  if (p == nullptr) return {};
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  const auto* a = r.find(p);
  if (a == nullptr) {
    if (r.device_of_address(reinterpret_cast<uintptr_t>(p)) >= 0) {
      throw Error(std::string(call) + ": " + hex(p) + " is device address space in no live allocation (freed memory?)");
    }
    return {Kind::Host, -1, nullptr, 0};
  }
  const uintptr_t start = a->first, end = a->first + a->second.bytes;
  const uintptr_t q = reinterpret_cast<uintptr_t>(p);
  if (q + bytes > end) {
    throw Error(std::string(call) + ": " + std::to_string(bytes) + " bytes at " + hex(p) + " run " +
                std::to_string(q + bytes - end) + " bytes past the end of its " +
                (a->second.device >= 0 ? "device" : "pinned") + " allocation of " + std::to_string(a->second.bytes) +
                " bytes at " + hex(reinterpret_cast<void*>(start)));
  }
  return {a->second.device >= 0 ? Kind::Device : Kind::Pinned, a->second.device,
          reinterpret_cast<const void*>(start), a->second.bytes};
}

void require_device(const char* call, const char* name, const void* p, size_t bytes, int device) {
  Region r;
  try {
    r = classify(call, p, bytes);
  } catch (const Error& e) {
    // Name the argument: "<call>: <name>: <what is wrong>".
    const std::string what = e.what(), prefix = std::string(call) + ": ";
    throw Error(prefix + name + ": " + (what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what));
  }
  auto where = [&] { return std::string(call) + ": " + name + " (" + hex(p) + ")"; };
  if (r.kind == Kind::Null) throw Error(where() + " is null");
  if (r.kind != Kind::Device) {
    throw Error(where() + " is " + (r.kind == Kind::Pinned ? "pinned host" : "host") +
                " memory, not device memory" + (device >= 0 ? " of cuda:" + std::to_string(device) : ""));
  }
  if (device >= 0 && r.device != device) {
    throw Error(where() + " is memory of cuda:" + std::to_string(r.device) + ", expected cuda:" +
                std::to_string(device));
  }
}

std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

void set_lag(std::chrono::milliseconds lag) {
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  r.lag = lag;
}

}  // namespace dtrain::emu::device

// ---- the CUDA runtime API -----------------------------------------------------------------
using namespace dtrain::emu::device;
using dtrain::emu::set_last_error;

namespace {

cudaError_t check_device_index(int device) {
  if (device < 0 || device >= count()) return fail(cudaErrorInvalidDevice);
  return cudaSuccess;
}

// Which way a copy goes, from where its pointers lie; cudaErrorInvalidValue (reported)
// when a range is bad or contradicts `kind`.
struct Direction {
  Region dst, src;
  bool device_involved() const { return dst.kind == Kind::Device || src.kind == Kind::Device; }
};

cudaError_t direction(const char* call, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, Direction* d) {
  try {
    d->dst = classify(call, dst, bytes);
    d->src = classify(call, src, bytes);
  } catch (const Error& e) {
    return misuse(cudaErrorInvalidValue, e.what());
  }
  if (d->dst.kind == Kind::Null || d->src.kind == Kind::Null) {
    return misuse(cudaErrorInvalidValue, std::string(call) + ": a null pointer");
  }
  const bool dst_dev = d->dst.kind == Kind::Device, src_dev = d->src.kind == Kind::Device;
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToHost: ok = !dst_dev && !src_dev; break;
    case cudaMemcpyHostToDevice: ok = dst_dev && !src_dev; break;
    case cudaMemcpyDeviceToHost: ok = !dst_dev && src_dev; break;
    case cudaMemcpyDeviceToDevice: ok = dst_dev && src_dev; break;
    case cudaMemcpyDefault: break;
    default: return misuse(cudaErrorInvalidMemcpyDirection, std::string(call) + ": an unknown cudaMemcpyKind");
  }
  if (!ok) {
    return misuse(cudaErrorInvalidValue, std::string(call) + ": the kind says " +
                                             (kind == cudaMemcpyHostToHost       ? "host to host"
                                              : kind == cudaMemcpyHostToDevice   ? "host to device"
                                              : kind == cudaMemcpyDeviceToHost   ? "device to host"
                                                                                 : "device to device") +
                                             ", but the destination is " + (dst_dev ? "device" : "host") +
                                             " memory and the source " + (src_dev ? "device" : "host") + " memory");
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaGetDeviceCount(int* n) {
  if (n == nullptr) return fail(cudaErrorInvalidValue);
  if (count() == 0) return fail(cudaErrorNoDevice);
  *n = count();
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (cudaError_t e = check_device_index(device)) return e;
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  if (count() == 0) return fail(cudaErrorNoDevice);
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  if (count() == 0) return fail(cudaErrorNoDevice);
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  r.synchronize_device(lock, current_device);
  return sticky(current_device);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  if (count() == 0) return fail(cudaErrorNoDevice);
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  const DeviceState& d = r.devices[static_cast<size_t>(current_device)];
  if (free_bytes) *free_bytes = d.capacity - d.used;
  if (total) *total = d.capacity;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  if (count() == 0) return fail(cudaErrorNoDevice);
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  DeviceState& d = r.devices[static_cast<size_t>(current_device)];
  if (d.sticky != cudaSuccess) return fail(d.sticky);
  const size_t size = round_up(std::max<size_t>(bytes, 1), kAlign);
  if (d.used + size > d.capacity) return fail(cudaErrorMemoryAllocation);
  // First fit among freed blocks, else past the extent handed out so far.
  size_t offset = d.high;
  for (auto it = d.free.begin(); it != d.free.end(); ++it) {
    if (it->second < size) continue;
    offset = it->first;
    const size_t rest = it->second - size;
    d.free.erase(it);
    if (rest > 0) d.free[offset + size] = rest;
    break;
  }
  if (offset == d.high) {
    const size_t high = round_up(offset + size, page_size());
    if (high > kReserve) return fail(cudaErrorMemoryAllocation);
    if (r.open > 0) mprotect(d.base + d.high, high - d.high, PROT_READ | PROT_WRITE);
    if (high > offset + size) d.free[offset + size] = high - offset - size;
    d.high = high;
  }
  unsigned char* q = d.base + offset;
  d.used += size;
  r.allocations[reinterpret_cast<uintptr_t>(q)] = {bytes, current_device};
  r.open_memory();
  std::memset(q, 0xff, size);
  r.close_memory();
  *p = q;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  auto it = r.allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == r.allocations.end() || it->second.device < 0) {
    return misuse(cudaErrorInvalidValue, "cudaFree(" + hex(p) + "): not the start of a device allocation");
  }
  const int device = it->second.device;
  r.synchronize_device(lock, device);  // cudaFree waits for the device, as CUDA's does
  it = r.allocations.find(reinterpret_cast<uintptr_t>(p));
  DeviceState& d = r.devices[static_cast<size_t>(device)];
  const size_t size = round_up(std::max<size_t>(it->second.bytes, 1), kAlign);
  r.allocations.erase(it);
  d.used -= size;
  // Return the block to the free list, merged with its neighbours.
  size_t offset = static_cast<size_t>(static_cast<unsigned char*>(p) - d.base), bytes = size;
  auto next = d.free.lower_bound(offset);
  if (next != d.free.end() && next->first == offset + bytes) {
    bytes += next->second;
    next = d.free.erase(next);
  }
  if (next != d.free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      bytes += prev->second;
      d.free.erase(prev);
    }
  }
  d.free[offset] = bytes;
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  const size_t size = round_up(std::max<size_t>(bytes, 1), page_size());
  void* q = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (q == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  r.allocations[reinterpret_cast<uintptr_t>(q)] = {bytes, -1};
  *p = q;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) {
  if (p == nullptr) return cudaSuccess;
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  auto it = r.allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == r.allocations.end() || it->second.device >= 0) {
    return misuse(cudaErrorInvalidValue, "cudaFreeHost(" + hex(p) + "): not a pinned allocation");
  }
  // Copies from or to it may still be queued: wait for every device, as CUDA's does.
  for (int dev = 0; dev < count(); ++dev) r.synchronize_device(lock, dev);
  it = r.allocations.find(reinterpret_cast<uintptr_t>(p));
  const size_t size = round_up(std::max<size_t>(it->second.bytes, 1), page_size());
  r.allocations.erase(it);
  munmap(p, size);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  Direction d;
  if (cudaError_t e = direction("cudaMemcpyAsync", dst, src, bytes, kind, &d)) return e;
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = sticky(s->device)) return fail(e);
  Op op;
  op.what = "cudaMemcpyAsync";
  if (d.src.kind == Kind::Host) {
    // Pageable source: taken now, as CUDA stages it before returning.
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                                static_cast<const unsigned char*>(src) + bytes);
    op.fn = [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); };
  } else {
    op.fn = [dst, src, bytes] { std::memcpy(dst, src, bytes); };
  }
  r.push(s, std::move(op));
  if (d.dst.kind == Kind::Host) {
    // Pageable destination: complete before returning.
    const uint64_t target = s->enqueued;
    r.host_wait(lock, {s}, [&] { return s->done >= target; });
    return sticky(s->device);
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  Direction d;
  if (cudaError_t e = direction("cudaMemcpy", dst, src, bytes, kind, &d)) return e;
  if (!d.device_involved()) {
    std::memcpy(dst, src, bytes);
    return cudaSuccess;
  }
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  // On the legacy stream of the current device: ordered after blocking streams, not after
  // non-blocking ones.
  std::shared_ptr<Stream> s = r.legacy(current_device);
  if (cudaError_t e = sticky(s->device)) return fail(e);
  Op op;
  op.what = "cudaMemcpy";
  op.fn = [dst, src, bytes] { std::memcpy(dst, src, bytes); };
  r.push(s, std::move(op));
  const uint64_t target = s->enqueued;
  r.host_wait(lock, {s}, [&] { return s->done >= target; });
  return sticky(s->device);
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  try {
    require_device("cudaMemsetAsync", "the destination", dst, bytes);
  } catch (const Error& e) {
    return misuse(cudaErrorInvalidValue, e.what());
  }
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = sticky(s->device)) return fail(e);
  Op op;
  op.what = "cudaMemsetAsync";
  op.fn = [dst, value, bytes] { std::memset(dst, value, bytes); };
  r.push(s, std::move(op));
  return cudaSuccess;
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (cudaError_t e = cudaMemsetAsync(dst, value, bytes, nullptr)) return e;
  return cudaStreamSynchronize(nullptr);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (stream == nullptr || (flags & ~cudaStreamNonBlocking) != 0) return fail(cudaErrorInvalidValue);
  if (count() == 0) return fail(cudaErrorNoDevice);
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  auto s = std::make_shared<Stream>();
  s->device = current_device;
  s->blocking = (flags & cudaStreamNonBlocking) == 0;
  r.start_worker(s);
  *stream = reinterpret_cast<cudaStream_t>(s.get());
  r.streams[s.get()] = s;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  auto it = r.streams.find(stream);
  if (it == r.streams.end()) return misuse(cudaErrorInvalidResourceHandle, "cudaStreamDestroy of an unknown stream");
  // Queued work still completes (as in CUDA); the worker ends when the queue is empty.
  it->second->destroyed = true;
  r.streams.erase(it);
  r.cv.notify_all();
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  const uint64_t target = s->enqueued;
  r.host_wait(lock, {s}, [&] { return s->done >= target; });
  return sticky(s->device);
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = sticky(s->device)) return e;
  if (s->done >= s->enqueued) return cudaSuccess;
  r.force(s);  // a host that polls is waiting: release the queued work
  return cudaErrorNotReady;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  if (event == nullptr || (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming)) != 0) {
    return fail(cudaErrorInvalidValue);
  }
  if (count() == 0) return fail(cudaErrorNoDevice);
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  auto e = std::make_shared<Event>();
  e->device = current_device;
  e->timing = (flags & cudaEventDisableTiming) == 0;
  *event = reinterpret_cast<cudaEvent_t>(e.get());
  r.events[e.get()] = e;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  if (r.events.erase(event) == 0) return misuse(cudaErrorInvalidResourceHandle, "cudaEventDestroy of an unknown event");
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  auto it = r.events.find(event);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (it == r.events.end() || !s) return fail(cudaErrorInvalidResourceHandle);
  if (it->second->device != s->device) {
    return misuse(cudaErrorInvalidResourceHandle, "cudaEventRecord: the event belongs to cuda:" +
                                                      std::to_string(it->second->device) + ", the stream to cuda:" +
                                                      std::to_string(s->device));
  }
  Op op;
  op.what = "cudaEventRecord";
  op.record = it->second;
  op.record_no = ++it->second->recorded;
  it->second->stream = s;
  r.push(s, std::move(op));
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  if (flags != 0) return fail(cudaErrorInvalidValue);
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  auto it = r.events.find(event);
  std::shared_ptr<Stream> s = r.resolve(stream);
  if (it == r.events.end() || !s) return fail(cudaErrorInvalidResourceHandle);
  if (it->second->recorded == 0) return cudaSuccess;  // never recorded: nothing to wait for
  Op op;
  op.what = "cudaStreamWaitEvent";
  op.wait_event = it->second;
  op.wait_record = it->second->recorded;
  r.push(s, std::move(op));
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Runtime& r = rt();
  std::unique_lock<std::mutex> lock(r.m);
  auto it = r.events.find(event);
  if (it == r.events.end()) return fail(cudaErrorInvalidResourceHandle);
  std::shared_ptr<Event> e = it->second;
  const uint64_t target = e->recorded;
  r.host_wait(lock, {e->stream.lock()}, [&] { return e->completed >= target; });
  return sticky(e->device);
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  auto it = r.events.find(event);
  if (it == r.events.end()) return fail(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = sticky(it->second->device)) return e;
  if (it->second->completed >= it->second->recorded) return cudaSuccess;
  r.force(it->second->stream.lock());
  return cudaErrorNotReady;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return fail(cudaErrorInvalidValue);
  Runtime& r = rt();
  std::lock_guard<std::mutex> lock(r.m);
  auto a = r.events.find(start), b = r.events.find(end);
  if (a == r.events.end() || b == r.events.end()) return fail(cudaErrorInvalidResourceHandle);
  if (!a->second->timing || !b->second->timing) return fail(cudaErrorInvalidResourceHandle);
  if (a->second->recorded == 0 || b->second->recorded == 0) return fail(cudaErrorInvalidResourceHandle);
  if (a->second->completed < a->second->recorded || b->second->completed < b->second->recorded) {
    return fail(cudaErrorNotReady);
  }
  *ms = std::chrono::duration<float, std::milli>(b->second->when - a->second->when).count();
  return cudaSuccess;
}
