// CachingAllocator over a fake raw allocator (std::malloc with counters), so the caching,
// statistics and out-of-memory paths are tested without a GPU.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/error.h"

namespace dtrain::testing {
namespace {

constexpr size_t KiB = 1024, MiB = 1024 * 1024;

// Counts raw calls; can be told to fail (return nullptr) for the next `fail_next` calls.
struct FakeRaw {
  int mallocs = 0, frees = 0, failures = 0;
  int fail_next = 0;
  bool always_fail = false;
  std::set<void*> live;

  // CachingAllocator is not movable: this relies on guaranteed copy elision.
  CachingAllocator make() {
    return CachingAllocator(
        [this](size_t n) -> void* {
          ++mallocs;
          if (always_fail || fail_next > 0) {
            if (fail_next > 0) --fail_next;
            ++failures;
            return nullptr;
          }
          void* p = std::malloc(n);
          live.insert(p);
          return p;
        },
        [this](void* p) {
          ++frees;
          EXPECT_EQ(live.erase(p), 1u) << "raw free of a pointer the raw allocator did not hand out";
          std::free(p);
        });
  }
};

TEST(CachingAllocator, RoundSizeClasses) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(512), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size(1000), 1024u);
  EXPECT_EQ(CachingAllocator::round_size(1 * MiB - 1), 1 * MiB);
  EXPECT_EQ(CachingAllocator::round_size(1 * MiB), 1 * MiB);
  // Above 1 MiB: multiples of 2 MiB.
  EXPECT_EQ(CachingAllocator::round_size(1 * MiB + 1), 2 * MiB);
  EXPECT_EQ(CachingAllocator::round_size(2 * MiB), 2 * MiB);
  EXPECT_EQ(CachingAllocator::round_size(2 * MiB + 1), 4 * MiB);
  EXPECT_EQ(CachingAllocator::round_size(5 * MiB), 6 * MiB);
}

TEST(CachingAllocator, FreedBlockIsReusedForTheSameClass) {
  FakeRaw raw;
  CachingAllocator a = raw.make();
  void* p = a.allocate(700);
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(raw.mallocs, 1);
  a.deallocate(p);
  EXPECT_EQ(raw.frees, 0) << "deallocate must cache, not free";
  // 1000 bytes is the same 1024-byte class as 700.
  void* q = a.allocate(1000);
  EXPECT_EQ(q, p);
  auto s = a.stats();
  EXPECT_EQ(s.raw_allocs, 1);
  EXPECT_EQ(s.cache_hits, 1);
  EXPECT_EQ(raw.mallocs, 1);
  a.deallocate(q);
}

TEST(CachingAllocator, DifferentClassAllocatesFresh) {
  FakeRaw raw;
  CachingAllocator a = raw.make();
  void* p = a.allocate(512);
  a.deallocate(p);
  void* q = a.allocate(513);  // 1024 class: the cached 512 block does not fit
  EXPECT_NE(q, p);
  auto s = a.stats();
  EXPECT_EQ(s.raw_allocs, 2);
  EXPECT_EQ(s.cache_hits, 0);
  EXPECT_EQ(s.bytes_in_use, 1024u);
  EXPECT_EQ(s.bytes_cached, 512u);
  // A smaller request does not take a bigger cached block either (exact class match).
  a.deallocate(q);
  void* r = a.allocate(100);
  EXPECT_EQ(r, p);
  a.deallocate(r);
}

TEST(CachingAllocator, Stats) {
  FakeRaw raw;
  CachingAllocator a = raw.make();
  auto s0 = a.stats();
  EXPECT_EQ(s0.bytes_in_use, 0u);
  EXPECT_EQ(s0.bytes_cached, 0u);
  EXPECT_EQ(s0.peak_bytes_in_use, 0u);

  void* x = a.allocate(10);          // 512
  void* y = a.allocate(3 * KiB);     // 3072
  void* z = a.allocate(MiB + 5);     // 2 MiB
  auto s1 = a.stats();
  EXPECT_EQ(s1.bytes_in_use, 512u + 3 * KiB + 2 * MiB);
  EXPECT_EQ(s1.peak_bytes_in_use, s1.bytes_in_use);
  EXPECT_EQ(s1.bytes_cached, 0u);
  EXPECT_EQ(s1.raw_allocs, 3);

  a.deallocate(z);
  a.deallocate(x);
  auto s2 = a.stats();
  EXPECT_EQ(s2.bytes_in_use, 3 * KiB);
  EXPECT_EQ(s2.bytes_cached, 512u + 2 * MiB);
  EXPECT_EQ(s2.peak_bytes_in_use, s1.peak_bytes_in_use) << "peak must not fall when blocks are freed";

  void* w = a.allocate(MiB + 100);   // cache hit on the 2 MiB block
  auto s3 = a.stats();
  EXPECT_EQ(w, z);
  EXPECT_EQ(s3.bytes_in_use, 3 * KiB + 2 * MiB);
  EXPECT_EQ(s3.bytes_cached, 512u);
  EXPECT_EQ(s3.cache_hits, 1);
  EXPECT_EQ(s3.peak_bytes_in_use, s1.peak_bytes_in_use);
  a.deallocate(w);
  a.deallocate(y);
  EXPECT_EQ(a.stats().bytes_in_use, 0u);
  EXPECT_EQ(a.stats().bytes_cached, 512u + 3 * KiB + 2 * MiB);
}

TEST(CachingAllocator, ReleaseCacheFreesEveryCachedBlock) {
  FakeRaw raw;
  {
    CachingAllocator a = raw.make();
    void* p1 = a.allocate(100);
    void* p2 = a.allocate(100);
    void* p3 = a.allocate(5000);
    void* kept = a.allocate(64);
    a.deallocate(p1);
    a.deallocate(p2);
    a.deallocate(p3);
    EXPECT_EQ(raw.frees, 0);
    a.release_cache();
    EXPECT_EQ(raw.frees, 3);
    EXPECT_EQ(raw.live.size(), 1u);
    EXPECT_EQ(raw.live.count(kept), 1u) << "a block in use must not be released";
    auto s = a.stats();
    EXPECT_EQ(s.bytes_cached, 0u);
    EXPECT_EQ(s.bytes_in_use, 512u);
    // After the release the next request goes to the raw allocator again.
    void* p4 = a.allocate(100);
    EXPECT_EQ(a.stats().raw_allocs, 5);
    a.deallocate(p4);
    a.deallocate(kept);
  }
  // The destructor returns the cache.
  EXPECT_EQ(raw.frees, raw.mallocs);
  EXPECT_TRUE(raw.live.empty());
}

TEST(CachingAllocator, OutOfMemoryReleasesTheCacheAndRetries) {
  FakeRaw raw;
  CachingAllocator a = raw.make();
  void* small = a.allocate(512);
  void* mid = a.allocate(4096);
  a.deallocate(small);
  a.deallocate(mid);
  ASSERT_EQ(a.stats().bytes_cached, 512u + 4096u);
  raw.fail_next = 1;
  void* big = a.allocate(3 * MiB);  // a class that is not cached: raw fails once
  EXPECT_NE(big, nullptr);
  EXPECT_EQ(raw.failures, 1);
  EXPECT_EQ(raw.frees, 2) << "both cached blocks are returned before the retry";
  auto s = a.stats();
  EXPECT_EQ(s.bytes_cached, 0u);
  EXPECT_EQ(s.bytes_in_use, 4 * MiB);
  EXPECT_EQ(s.raw_allocs, 3);
  a.deallocate(big);
}

TEST(CachingAllocator, PersistentOutOfMemoryThrowsDeviceErrorWithTheSize) {
  FakeRaw raw;
  CachingAllocator a = raw.make();
  void* held = a.allocate(2048);
  raw.always_fail = true;
  std::string msg;
  try {
    a.allocate(5 * MiB);
    ADD_FAILURE() << "expected DeviceError";
  } catch (const DeviceError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find(std::to_string(6 * MiB)), std::string::npos) << msg;  // the rounded size
  EXPECT_NE(msg.find("2048 bytes in use"), std::string::npos) << msg;
  EXPECT_EQ(raw.failures, 2) << "one attempt, then one retry after releasing the cache";
  auto s = a.stats();
  EXPECT_EQ(s.bytes_in_use, 2048u);
  EXPECT_EQ(s.raw_allocs, 1);
  raw.always_fail = false;
  a.deallocate(held);
}

TEST(CachingAllocator, DeallocatingAnUnknownPointerThrows) {
  FakeRaw raw;
  CachingAllocator a = raw.make();
  int local = 0;
  EXPECT_THROW(a.deallocate(&local), ValueError);
  void* p = a.allocate(10);
  a.deallocate(p);
  EXPECT_THROW(a.deallocate(p), ValueError) << "a double free must be caught";
  EXPECT_NO_THROW(a.deallocate(nullptr));
  EXPECT_EQ(a.stats().bytes_cached, 512u);
}

TEST(CpuAllocate, AlignedAndUsable) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{1000}}) {
    void* p = cpu_allocate(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << n;
    cpu_deallocate(p);
  }
}

}  // namespace
}  // namespace dtrain::testing
