#pragma once
// Memory for tensor storage.
//
// Both devices use a size-binned caching allocator: a training step frees and
// re-allocates the same activation sizes every iteration, so freed blocks are kept in
// free lists and handed out again. On CUDA this avoids cudaMalloc/cudaFree, which
// synchronize the device; on the CPU it avoids mmap/munmap and page faults for blocks
// above glibc's mmap threshold.
//
// Note [Caching allocator and streams]: a cached block is reused by the next request of
// its size class regardless of stream. This is safe while every kernel that touches
// tensors runs on one compute stream per device (the thread's stream, core/runtime.h),
// because reuse is then ordered after the last use by stream order. Work on other
// streams (communication, copies) must keep the tensors it reads alive until that work
// is complete (record an Event and wait on it before dropping them).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

namespace dtrain {

// Size-binned cache over a raw allocator. Generic so it can be tested without a GPU.
class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(size_t)>;  // nullptr on out-of-memory
  using RawFree = std::function<void(void*)>;

  struct Stats {
    size_t bytes_in_use = 0;     // handed out and not yet freed
    size_t bytes_cached = 0;     // held in free lists
    size_t peak_bytes_in_use = 0;
    int64_t raw_allocs = 0;      // calls to the raw allocator
    int64_t cache_hits = 0;
  };

  CachingAllocator(RawAlloc alloc, RawFree free);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Returns a block of at least `bytes` (rounded to the size class). Throws
  // DeviceError when the raw allocator fails even after the cache was released.
  void* allocate(size_t bytes);
  void deallocate(void* ptr);
  // Returns every cached block to the raw allocator.
  void release_cache();
  Stats stats() const;

  // Size classes: multiples of 512 B up to 1 MiB, then multiples of 2 MiB.
  static size_t round_size(size_t bytes);

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;      // size class -> cached block
  std::map<void*, size_t> live_;            // block -> size class
  Stats stats_;
};

// The process-wide caching allocator of one CUDA device (created on first use).
CachingAllocator& cuda_allocator(int device);

// Host memory for CPU tensors: 64-byte aligned blocks from a caching pool (the same
// size classes as on the GPU).
CachingAllocator& cpu_allocator();
void* cpu_allocate(size_t bytes);
void cpu_deallocate(void* ptr);

}  // namespace dtrain
