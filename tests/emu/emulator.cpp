// The emulator's scheduler, device memory and error reports (Note [Emulated launch] in
// tests/emu/emulator.h).
#include "tests/emu/emulator.h"

#include <sys/mman.h>
#if DT_EMU_ASAN
#include <sanitizer/asan_interface.h>
#define DT_EMU_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define DT_EMU_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define DT_EMU_POISON(p, n) ((void)(p), (void)(n))
#define DT_EMU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#include <unistd.h>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <exception>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>
#include <sstream>
#include <string_view>

namespace dtrain::emu {
namespace {

namespace ctx = boost::context;

constexpr int kWarp = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxSharedBytes = 48 * 1024;  // without the opt-in attribute
constexpr size_t kSharedGuard = 64;            // guard bytes on each side of dynamic shared memory
constexpr unsigned char kGuardByte = 0xa5;
#if DT_EMU_ASAN
constexpr size_t kStackBytes = 256 * 1024;  // instrumented frames are larger
#else
constexpr size_t kStackBytes = 64 * 1024;
#endif

// A source path as the build passed it, less leading "./" and "../" (Ninja names
// sources relative to the build folder).
std::string trim_path(const char* file) {
  std::string_view f = file;
  for (;;) {
    if (f.starts_with("./")) {
      f.remove_prefix(2);
    } else if (f.starts_with("../")) {
      f.remove_prefix(3);
    } else {
      return std::string(f);
    }
  }
}

std::string where(std::source_location loc) { return trim_path(loc.file_name()) + ":" + std::to_string(loc.line()); }

std::string dim_str(Dim3 d) {
  std::ostringstream os;
  os << "(" << d.x << "," << d.y << "," << d.z << ")";
  return os.str();
}

// Fiber stacks from mmap with a guard page below each, reused across blocks and launches.
class StackPool {
 public:
  ~StackPool() {
    for (void* base : free_) munmap(base, kStackBytes + page());
  }
  ctx::stack_context allocate() {
    void* base;
    if (!free_.empty()) {
      base = free_.back();
      free_.pop_back();
    } else {
      base = mmap(nullptr, kStackBytes + page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED) throw Error("emu: out of memory for fiber stacks");
      mprotect(base, page(), PROT_NONE);  // overflow faults instead of corrupting
    }
    ctx::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = static_cast<char*>(base) + page() + kStackBytes;
    return sc;
  }
  void deallocate(ctx::stack_context& sc) noexcept {
    free_.push_back(static_cast<char*>(sc.sp) - kStackBytes - page());
  }

 private:
  static size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
  std::vector<void*> free_;
};

// Boost.Context's stack-allocator interface over the shared pool.
struct PoolAllocator {
  StackPool* pool;
  ctx::stack_context allocate() { return pool->allocate(); }
  void deallocate(ctx::stack_context& sc) noexcept { pool->deallocate(sc); }
};

enum class State { NotStarted, Ready, AtBarrier, AtShuffle, Done, Direct };

struct Thread {
  ThreadView view;
  int linear = 0;
  State state = State::NotStarted;
  ctx::fiber fiber;  // the thread, while suspended
  ctx::fiber sink;   // the scheduler, while the thread runs
  // The pending barrier or shuffle.
  std::source_location loc;
  const char* shuffle_name = nullptr;
  ShuffleMode mode = ShuffleMode::Idx;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int b = 0, width = 0;
};

// DTRAIN_EMU_REVERSE and DTRAIN_EMU_FIBERS (Note [Emulated launch]).
enum class Reverse { All, First, Off };
enum class Fibers { Always, Auto };

class Emulator {
 public:
  static bool valid_config(Dim3 grid, Dim3 block, size_t smem);
  void execute(const KernelLaunch& l);
  void check_pointer(const LaunchSite& site, int index, const void* p) const;
  bool find(const void* p, const unsigned char** start, size_t* bytes) const;
  void install(const DeviceHooks& hooks);
  const DeviceHooks* hooks() const { return hooks_ ? &*hooks_ : nullptr; }
  void* malloc_device(size_t bytes);
  void free_device(void* p);
  const ThreadView& current() const;
  unsigned char* dynamic_shared() const;
  void syncthreads(std::source_location loc);
  uint64_t shuffle(ShuffleMode mode, const char* name, unsigned mask, uint64_t value, int b, int width,
                   std::source_location loc);

  Stats stats_;

 private:
  // The memory a launch may reach: (start, bytes) of each buffer.
  using Buffers = std::vector<std::pair<unsigned char*, size_t>>;
  using Snapshot = std::vector<std::vector<unsigned char>>;
  Buffers buffers_of(const KernelLaunch& l) const;
  static Snapshot save(const Buffers& b);
  static void restore(const Buffers& b, const Snapshot& s);
  void run_grid(bool reverse);
  void run_block(Dim3 block_idx, bool reverse);
  void resume(Thread& t);
  void yield(Thread& t);
  void try_resolve_shuffle(Thread& arrived);
  [[noreturn]] void fail(const std::string& what) const;
  std::string thread_str(const Thread& t) const;
  std::string state_str(const Thread& t) const;
  void check_guards() const;

  std::map<const unsigned char*, size_t> buffers_;  // device memory: start -> bytes
  std::optional<DeviceHooks> hooks_;
  Reverse reverse_ = Reverse::All;
  Fibers fibers_ = Fibers::Always;
  // Launch sites (kernel, file, line) seen, and whether one of their launches synchronised;
  // configurations that had their reverse run.
  using SiteKey = std::tuple<const char*, const char*, int>;
  std::map<SiteKey, bool> site_synchronises_;
  std::set<std::tuple<SiteKey, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, size_t>> reversed_;
  bool direct_ = false;   // this run calls threads one after another, without fibers
  bool synced_ = false;   // a barrier or shuffle happened in this launch
  std::mutex launch_mutex_;
  StackPool stacks_;
  // The launch in progress.
  const LaunchSite* site_ = nullptr;
  const std::function<void()>* body_ = nullptr;
  Dim3 grid_{}, block_{};
  size_t smem_ = 0;
  std::vector<unsigned char> shared_;  // guard, dynamic shared memory, guard
  std::vector<Thread> threads_;
  Thread* running_ = nullptr;
  std::exception_ptr thread_error_;
};

// Never destroyed: stream workers of an emulated device may still run at exit.
Emulator& emulator() {
  static Emulator* e = new Emulator;
  return *e;
}

void Emulator::fail(const std::string& what) const {
  std::ostringstream os;
  os << "emu: kernel " << site_->kernel << " (launched at " << trim_path(site_->file) << ":" << site_->line
     << "): " << what;
  throw Error(os.str());
}

std::string Emulator::thread_str(const Thread& t) const {
  return "thread " + dim_str(t.view.thread_idx) + " (warp " + std::to_string(t.linear / kWarp) + " lane " +
         std::to_string(t.linear % kWarp) + ") of block " + dim_str(t.view.block_idx);
}

std::string Emulator::state_str(const Thread& t) const {
  switch (t.state) {
    case State::Done: return "has exited";
    case State::AtBarrier: return "waits at __syncthreads() at " + where(t.loc);
    case State::AtShuffle: {
      std::ostringstream os;
      os << "waits at " << t.shuffle_name << " at " << where(t.loc) << " with mask 0x" << std::hex << t.mask;
      return os.str();
    }
    default: return "is running";
  }
}

bool Emulator::find(const void* p, const unsigned char** start, size_t* bytes) const {
  if (hooks_) return hooks_->find(p, start, bytes);
  const auto* c = static_cast<const unsigned char*>(p);
  auto it = buffers_.upper_bound(c);
  if (it == buffers_.begin()) return false;
  --it;
  if (c > it->first + it->second) return false;
  *start = it->first;
  *bytes = it->second;
  return true;
}

void Emulator::check_pointer(const LaunchSite& site, int index, const void* p) const {
  if (p == nullptr) return;
  const unsigned char* start = nullptr;
  size_t bytes = 0;
  if (find(p, &start, &bytes)) return;
  std::ostringstream os;
  os << "emu: kernel " << site.kernel << " (launched at " << trim_path(site.file) << ":" << site.line << "): argument "
     << index << " is " << p << ", which is in no device buffer"
     << (hooks_ ? " or pinned host allocation (a host pointer, or freed memory)" : " (a host pointer, or freed memory)");
  throw Error(os.str());
}

void Emulator::install(const DeviceHooks& hooks) {
  hooks_ = hooks;
  reverse_ = Reverse::First;
  fibers_ = Fibers::Auto;
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  const std::string reverse = env("DTRAIN_EMU_REVERSE"), fibers = env("DTRAIN_EMU_FIBERS");
  if (reverse == "all") reverse_ = Reverse::All;
  if (reverse == "off") reverse_ = Reverse::Off;
  if (!reverse.empty() && reverse != "all" && reverse != "first" && reverse != "off") {
    throw Error("emu: DTRAIN_EMU_REVERSE must be all, first or off, not '" + reverse + "'");
  }
  if (fibers == "always") fibers_ = Fibers::Always;
  if (!fibers.empty() && fibers != "always" && fibers != "auto") {
    throw Error("emu: DTRAIN_EMU_FIBERS must be always or auto, not '" + fibers + "'");
  }
}

void* Emulator::malloc_device(size_t bytes) {
  auto* p = static_cast<unsigned char*>(::operator new(std::max<size_t>(bytes, 1)));
  buffers_[p] = bytes;
  return p;
}

void Emulator::free_device(void* p) {
  auto it = buffers_.find(static_cast<unsigned char*>(p));
  if (it == buffers_.end()) throw Error("emu: device_free of a pointer that device_malloc did not return");
  buffers_.erase(it);
  ::operator delete(p);
}

Emulator::Buffers Emulator::buffers_of(const KernelLaunch& l) const {
  Buffers b;
  if (!hooks_) {
    // Without a device the emulator's own buffers are few and small: compare them all.
    for (const auto& [p, n] : buffers_) b.emplace_back(const_cast<unsigned char*>(p), n);
    return b;
  }
  for (const void* p : l.pointers) {
    const unsigned char* start = nullptr;
    size_t bytes = 0;
    if (find(p, &start, &bytes)) b.emplace_back(const_cast<unsigned char*>(start), bytes);
  }
  std::sort(b.begin(), b.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  return b;
}

Emulator::Snapshot Emulator::save(const Buffers& b) {
  Snapshot s;
  s.reserve(b.size());
  for (const auto& [p, n] : b) s.emplace_back(p, p + n);
  return s;
}

void Emulator::restore(const Buffers& b, const Snapshot& s) {
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i].second > 0) std::memcpy(b[i].first, s[i].data(), b[i].second);
  }
}

const ThreadView& Emulator::current() const {
  if (running_ == nullptr) throw Error("emu: a CUDA builtin (threadIdx, ...) was used outside a kernel");
  return running_->view;
}

unsigned char* Emulator::dynamic_shared() const {
  if (running_ == nullptr) throw Error("emu: dynamic shared memory used outside a kernel");
  return const_cast<unsigned char*>(shared_.data()) + kSharedGuard;
}

void Emulator::check_guards() const {
  for (size_t i = 0; i < kSharedGuard; ++i) {
    const bool before = shared_[i] != kGuardByte;
    const bool after = shared_[kSharedGuard + smem_ + i] != kGuardByte;
    if (before || after) {
      std::ostringstream os;
      os << "dynamic shared memory written out of bounds ("
         << (before ? std::to_string(kSharedGuard - i) + " bytes before its start"
                    : std::to_string(i) + " bytes past its end of " + std::to_string(smem_) + " bytes")
         << ") by a thread of block " << dim_str(threads_.front().view.block_idx);
      fail(os.str());
    }
  }
}

void Emulator::yield(Thread& t) {
  running_ = nullptr;
  t.sink = std::move(t.sink).resume();
  running_ = &t;
}

void Emulator::resume(Thread& t) {
  if (t.state == State::NotStarted) {
    t.fiber = ctx::fiber(std::allocator_arg, PoolAllocator{&stacks_}, [this, &t](ctx::fiber&& sink) {
      t.sink = std::move(sink);
      running_ = &t;
      try {
        (*body_)();
      } catch (const ctx::detail::forced_unwind&) {
        throw;  // the fiber is being destroyed: let Boost.Context unwind it
      } catch (...) {
        thread_error_ = std::current_exception();
      }
      running_ = nullptr;
      t.state = State::Done;
      return std::move(t.sink);
    });
  }
  t.state = State::Ready;
  running_ = &t;
  t.fiber = std::move(t.fiber).resume();
  running_ = nullptr;
  if (thread_error_) std::rethrow_exception(std::exchange(thread_error_, nullptr));
}

void Emulator::syncthreads(std::source_location loc) {
  Thread* t = running_;
  if (t == nullptr) throw Error("emu: __syncthreads() called outside a kernel at " + where(loc));
  if (t->state == State::Direct) {
    fail(thread_str(*t) + ": __syncthreads() at " + where(loc) +
         " in a launch run without fibers, because the first launch from this site made no barrier or shuffle; "
         "set DTRAIN_EMU_FIBERS=always");
  }
  synced_ = true;
  t->state = State::AtBarrier;
  t->loc = loc;
  yield(*t);
}

// PTX's shfl.sync source lane (the c operand as sm_30_intrinsics.hpp encodes the width);
// a source outside the lane's segment gives the lane its own value.
int source_lane(ShuffleMode mode, int lane, int b, int width) {
  const int segmask = (kWarp - width) & 0x1f;
  const int cval = mode == ShuffleMode::Up ? 0 : 0x1f;
  const int max_lane = (lane & segmask) | (cval & ~segmask);
  const int min_lane = lane & segmask;
  int j = lane;
  bool valid = false;
  switch (mode) {
    case ShuffleMode::Up: j = lane - b; valid = j >= max_lane; break;
    case ShuffleMode::Down: j = lane + b; valid = j <= max_lane; break;
    case ShuffleMode::Xor: j = lane ^ b; valid = j <= max_lane; break;
    case ShuffleMode::Idx: j = min_lane | (b & 0x1f & ~segmask); valid = j <= max_lane; break;
  }
  return valid ? j : lane;
}

uint64_t Emulator::shuffle(ShuffleMode mode, const char* name, unsigned mask, uint64_t value, int b, int width,
                           std::source_location loc) {
  Thread* t = running_;
  if (t == nullptr) throw Error(std::string("emu: ") + name + " called outside a kernel at " + where(loc));
  if (t->state == State::Direct) {
    fail(thread_str(*t) + ": " + name + " at " + where(loc) +
         " in a launch run without fibers, because the first launch from this site made no barrier or shuffle; "
         "set DTRAIN_EMU_FIBERS=always");
  }
  synced_ = true;
  const int lane = t->linear % kWarp;
  if (width < 1 || width > kWarp || (width & (width - 1)) != 0) {
    fail(thread_str(*t) + ": " + name + " at " + where(loc) + " with width " + std::to_string(width) +
         " (must be a power of two from 1 to 32)");
  }
  if ((mask & (1u << lane)) == 0) {
    std::ostringstream os;
    os << thread_str(*t) << ": " << name << " at " << where(loc) << " with mask 0x" << std::hex << mask
       << ", which does not include the calling lane";
    fail(os.str());
  }
  t->state = State::AtShuffle;
  t->loc = loc;
  t->shuffle_name = name;
  t->mode = mode;
  t->mask = mask;
  t->value = value;
  t->b = b;
  t->width = width;
  try_resolve_shuffle(*t);
  if (t->state == State::AtShuffle) yield(*t);
  return t->result;
}

bool same_site(std::source_location a, std::source_location b) {
  return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

// Resolves the shuffle `arrived` waits at once every lane of its mask waits there too.
// A lane of the mask waiting at the same call with another mask is an error now; one
// that exited or waits elsewhere is reported when the block can make no progress.
void Emulator::try_resolve_shuffle(Thread& arrived) {
  const int base = arrived.linear - arrived.linear % kWarp;
  std::vector<Thread*> lanes(kWarp, nullptr);
  for (int l = 0; l < kWarp; ++l) {
    if ((arrived.mask & (1u << l)) == 0) continue;
    const int linear = base + l;
    if (linear >= static_cast<int>(threads_.size())) return;  // reported as never arriving
    Thread& o = threads_[linear];
    if (o.state != State::AtShuffle || !same_site(o.loc, arrived.loc)) return;
    if (o.mask != arrived.mask) {
      std::ostringstream os;
      os << thread_str(arrived) << " and lane " << l << " call " << arrived.shuffle_name << " at "
         << where(arrived.loc) << " with different masks (0x" << std::hex << arrived.mask << " and 0x" << o.mask
         << ")";
      fail(os.str());
    }
    lanes[l] = &o;
  }
  for (int l = 0; l < kWarp; ++l) {
    if (lanes[l] == nullptr) continue;
    Thread& me = *lanes[l];
    const int j = source_lane(me.mode, l, me.b, me.width);
    if (lanes[j] == nullptr) {
      std::ostringstream os;
      os << thread_str(me) << ": " << me.shuffle_name << " at " << where(me.loc) << " reads lane " << j
         << ", which is not in its mask 0x" << std::hex << me.mask << " (an undefined value on a GPU)";
      fail(os.str());
    }
    me.result = lanes[j]->value;
  }
  for (Thread* p : lanes) {
    if (p != nullptr) p->state = State::Ready;
  }
  ++stats_.shuffles;
}

void Emulator::run_block(Dim3 block_idx, bool reverse) {
  const int n = static_cast<int>(block_.x * block_.y * block_.z);
  if (direct_) {
    // Plain calls, one thread after another: no barrier or shuffle can occur.
    threads_.resize(1);
    Thread& t = threads_[0];
    t.view.block_idx = block_idx;
    t.view.block_dim = block_;
    t.view.grid_dim = grid_;
    DT_EMU_UNPOISON(shared_.data(), shared_.size());
    std::fill(shared_.begin(), shared_.end(), kGuardByte);
    DT_EMU_POISON(shared_.data(), kSharedGuard);
    DT_EMU_POISON(shared_.data() + kSharedGuard + smem_, kSharedGuard);
    for (int k = 0; k < n; ++k) {
      const unsigned i = static_cast<unsigned>(reverse ? n - 1 - k : k);
      t.linear = static_cast<int>(i);
      t.view.thread_idx = {i % block_.x, (i / block_.x) % block_.y, i / (block_.x * block_.y)};
      t.state = State::Direct;
      running_ = &t;
      (*body_)();
      running_ = nullptr;
    }
    DT_EMU_UNPOISON(shared_.data(), shared_.size());
    if (smem_ > 0) check_guards();
    return;
  }
  threads_.clear();
  threads_.resize(n);
  for (int i = 0; i < n; ++i) {
    Thread& t = threads_[i];
    t.linear = i;
    t.view.thread_idx = {static_cast<unsigned>(i) % block_.x, (static_cast<unsigned>(i) / block_.x) % block_.y,
                         static_cast<unsigned>(i) / (block_.x * block_.y)};
    t.view.block_idx = block_idx;
    t.view.block_dim = block_;
    t.view.grid_dim = grid_;
  }
  // Guards around dynamic shared memory: checked after the block, and poisoned for ASan
  // (which then names the line of the stray access).
  DT_EMU_UNPOISON(shared_.data(), shared_.size());
  std::fill(shared_.begin(), shared_.end(), kGuardByte);
  DT_EMU_POISON(shared_.data(), kSharedGuard);
  DT_EMU_POISON(shared_.data() + kSharedGuard + smem_, kSharedGuard);
  // Note [Emulated launch]: sweeps in the run's order until nothing can run.
  for (;;) {
    bool progressed = true;
    while (progressed) {
      progressed = false;
      for (int k = 0; k < n; ++k) {
        Thread& t = threads_[reverse ? n - 1 - k : k];
        if (t.state == State::NotStarted || t.state == State::Ready) {
          resume(t);
          progressed = true;
        }
      }
    }
    // Nothing runnable: done, at one barrier, or stuck.
    const Thread* exited = nullptr;
    const Thread* barrier = nullptr;
    for (const Thread& t : threads_) {
      if (t.state == State::AtShuffle) {
        const int base = t.linear - t.linear % kWarp;
        for (int l = 0; l < kWarp; ++l) {
          if ((t.mask & (1u << l)) == 0) continue;
          const int linear = base + l;
          if (linear >= n) {
            std::ostringstream os;
            os << thread_str(t) << ": " << t.shuffle_name << " at " << where(t.loc) << " with mask 0x" << std::hex
               << t.mask << " names lane " << std::dec << l << ", which the block does not have";
            fail(os.str());
          }
          const Thread& o = threads_[linear];
          if (o.state != State::AtShuffle || !same_site(o.loc, t.loc)) {
            fail(thread_str(t) + ": " + t.shuffle_name + " at " + where(t.loc) + " waits for lane " +
                 std::to_string(l) + " of its mask, which never arrives: that lane " + state_str(o));
          }
        }
      }
      if (t.state == State::Done && exited == nullptr) exited = &t;
      if (t.state == State::AtBarrier && barrier == nullptr) barrier = &t;
    }
    if (barrier == nullptr) break;  // every thread has exited
    if (exited != nullptr) {
      fail(thread_str(*exited) + " exited while other threads wait at __syncthreads() at " + where(barrier->loc) +
           " (a barrier every thread of the block must reach)");
    }
    for (Thread& t : threads_) {
      if (!same_site(t.loc, barrier->loc)) {
        fail("threads wait at different barriers: " + thread_str(*barrier) + " at __syncthreads() at " +
             where(barrier->loc) + ", " + thread_str(t) + " at __syncthreads() at " + where(t.loc));
      }
    }
    for (Thread& t : threads_) t.state = State::Ready;
    ++stats_.barriers;
  }
  DT_EMU_UNPOISON(shared_.data(), shared_.size());
  if (smem_ > 0) check_guards();
}

void Emulator::run_grid(bool reverse) {
  const int64_t blocks = int64_t{grid_.x} * grid_.y * grid_.z;
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t b = reverse ? blocks - 1 - k : k;
    const Dim3 idx{static_cast<unsigned>(b % grid_.x), static_cast<unsigned>((b / grid_.x) % grid_.y),
                   static_cast<unsigned>(b / (int64_t{grid_.x} * grid_.y))};
    try {
      run_block(idx, reverse);
    } catch (...) {
      threads_.clear();  // destroys suspended fibers (unwinding their stacks)
      running_ = nullptr;
      throw;
    }
  }
  threads_.clear();
}

bool Emulator::valid_config(Dim3 grid, Dim3 block, size_t smem) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  return !(threads == 0 || threads > kMaxThreadsPerBlock || block.x > 1024 || block.y > 1024 || block.z > 64 ||
           grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 ||
           smem > kMaxSharedBytes);
}

void Emulator::execute(const KernelLaunch& l) {
  std::lock_guard<std::mutex> lock(launch_mutex_);
  if (running_ != nullptr) throw Error("emu: a kernel launched from inside a kernel (not emulated)");
  site_ = &l.site;
  body_ = &l.body;
  grid_ = l.grid;
  block_ = l.block;
  smem_ = l.smem;
  DT_EMU_UNPOISON(shared_.data(), shared_.size());
  shared_.assign(smem_ + 2 * kSharedGuard, kGuardByte);
  ++stats_.launches;

  const SiteKey key{l.site.kernel, l.site.file, l.site.line};
  auto seen = site_synchronises_.find(key);
  direct_ = fibers_ == Fibers::Auto && seen != site_synchronises_.end() && !seen->second;
  bool reverse = reverse_ == Reverse::All;
  if (reverse_ == Reverse::First) {
    reverse = reversed_.insert({key, grid_.x, grid_.y, grid_.z, block_.x, block_.y, block_.z, smem_}).second;
  }
  synced_ = false;
  const Buffers buffers = buffers_of(l);
  Snapshot inputs;
  if (reverse) inputs = save(buffers);
  run_grid(false);
  site_synchronises_[key] = (seen != site_synchronises_.end() && seen->second) || synced_;
  if (!reverse) return;
  const Snapshot forward = save(buffers);
  restore(buffers, inputs);
  run_grid(true);
  for (size_t i = 0; i < buffers.size(); ++i) {
    const auto [p, n] = buffers[i];
    const std::vector<unsigned char>& f = forward[i];
    if (n == 0 || std::memcmp(p, f.data(), n) == 0) continue;
    size_t at = 0;
    while (p[at] == f[at]) ++at;
    std::ostringstream os;
    os << "results differ between forward and reverse thread and block order (a race, or an order-dependent "
          "atomic): device buffer "
       << static_cast<const void*>(p) << " of " << n << " bytes, first at byte " << at << " (0x" << std::hex
       << int{f[at]} << " forward, 0x" << int{p[at]} << " reverse)";
    fail(os.str());
  }
}

thread_local int last_error = 0;

}  // namespace

bool submit_launch(KernelLaunch launch, const void* stream) {
  if (!Emulator::valid_config(launch.grid, launch.block, launch.smem)) {
    last_error = 9;  // cudaErrorInvalidConfiguration
    return false;
  }
  Emulator& e = emulator();
  if (const DeviceHooks* h = e.hooks()) {
    h->enqueue(stream, std::move(launch));
  } else {
    e.execute(launch);
  }
  return true;
}
void execute_launch(const KernelLaunch& launch) { emulator().execute(launch); }
bool run_launch(const LaunchSite& site, Dim3 grid, Dim3 block, size_t dynamic_smem,
                const std::function<void()>& body) {
  return submit_launch(KernelLaunch{site, grid, block, dynamic_smem, body, {}}, nullptr);
}
void check_device_pointer(const LaunchSite& site, int index, const void* p) {
  emulator().check_pointer(site, index, p);
}
void install_device(const DeviceHooks& hooks) { emulator().install(hooks); }
std::string source_path(const char* file) { return trim_path(file); }
void* device_malloc(size_t bytes) { return emulator().malloc_device(bytes); }
void device_free(void* p) { emulator().free_device(p); }
const ThreadView& current() { return emulator().current(); }
unsigned char* dynamic_shared() { return emulator().dynamic_shared(); }
void syncthreads(std::source_location loc) { emulator().syncthreads(loc); }
uint64_t shuffle(ShuffleMode mode, const char* name, unsigned mask, uint64_t value, int b, int width,
                 std::source_location loc) {
  return emulator().shuffle(mode, name, mask, value, b, width, loc);
}
Stats stats() { return emulator().stats_; }
int take_last_error() { return std::exchange(last_error, 0); }
int peek_last_error() { return last_error; }
void set_last_error(int error) { last_error = error; }

namespace {
std::mutex failure_mutex;
std::string* first_failure = nullptr;  // never freed: its c_str() is handed out
}  // namespace
void record_device_failure(const std::string& what) {
  std::lock_guard<std::mutex> lock(failure_mutex);
  if (first_failure == nullptr) first_failure = new std::string(what);
}
const char* device_failure() {
  std::lock_guard<std::mutex> lock(failure_mutex);
  return first_failure ? first_failure->c_str() : nullptr;
}

}  // namespace dtrain::emu
