#include "core/allocator.h"

#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "core/runtime.h"

namespace dtrain {

CachingAllocator::CachingAllocator(RawAlloc alloc, RawFree free) : raw_alloc_(std::move(alloc)), raw_free_(std::move(free)) {}

CachingAllocator::~CachingAllocator() {
  // Live blocks belong to tensors that outlive the allocator only at process exit;
  // cached ones are returned.
  try {
    release_cache();
  } catch (...) {
  }
}

size_t CachingAllocator::round_size(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallLimit) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t bytes) {
  size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* ptr = nullptr;
  auto it = free_.find(size);
  if (it != free_.end()) {
    ptr = it->second;
    free_.erase(it);
    stats_.bytes_cached -= size;
    ++stats_.cache_hits;
  } else {
    ptr = raw_alloc_(size);
    if (!ptr) {
      // Out of memory: give the cache back and try once more.
      for (auto& [s, p] : free_) raw_free_(p);
      free_.clear();
      stats_.bytes_cached = 0;
      ptr = raw_alloc_(size);
      if (!ptr) {
        DT_THROW(DeviceError, "out of memory allocating ", size, " bytes (", stats_.bytes_in_use,
                 " bytes in use by tensors); reduce the batch size or the model");
      }
    }
    ++stats_.raw_allocs;
  }
  live_[ptr] = size;
  stats_.bytes_in_use += size;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  DT_CHECK(it != live_.end(), "CachingAllocator::deallocate: pointer was not allocated here");
  size_t size = it->second;
  live_.erase(it);
  stats_.bytes_in_use -= size;
  stats_.bytes_cached += size;
  free_.emplace(size, ptr);
}

void CachingAllocator::release_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [s, p] : free_) raw_free_(p);
  free_.clear();
  stats_.bytes_cached = 0;
}

CachingAllocator::Stats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

CachingAllocator& cuda_allocator(int device) {
  // One pool per device for the whole process, like the device itself. Deliberately
  // leaked: CUDA may be torn down before static destructors run.
  static std::mutex mu;
  static auto* pools = new std::map<int, std::unique_ptr<CachingAllocator>>();
  std::lock_guard<std::mutex> lock(mu);
  auto found = pools->find(device);
  if (found != pools->end()) return *found->second;
  cuda::check_device(device);  // throws before anything is cached for a bad ordinal
  auto& slot = (*pools)[device];
  slot = std::make_unique<CachingAllocator>([device](size_t n) { return cuda::raw_malloc(n, device); },
                                            [device](void* p) { cuda::raw_free(p, device); });
  return *slot;
}

namespace {
CachingAllocator& cpu_pool() {
  // Host blocks above glibc's mmap threshold would otherwise be mapped and unmapped (and
  // page-faulted anew) on every step; caching them keeps a step's allocations free.
  // Leaked deliberately, like the CUDA pools: tensors may outlive static destruction.
  static auto* pool = new CachingAllocator(
      [](size_t n) -> void* { return std::aligned_alloc(64, (n + 63) / 64 * 64); }, [](void* p) { std::free(p); });
  return *pool;
}
}  // namespace

CachingAllocator& cpu_allocator() { return cpu_pool(); }

void* cpu_allocate(size_t bytes) { return cpu_pool().allocate(bytes); }

void cpu_deallocate(void* ptr) { cpu_pool().deallocate(ptr); }

}  // namespace dtrain
