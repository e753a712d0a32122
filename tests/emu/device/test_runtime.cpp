// The emulated CUDA runtime (tests/emu/device/runtime.cpp, Note [Emulated device]):
// copies, asynchronous streams, events, the legacy stream's ordering, sticky errors, and
// the host/device mistakes it must catch: a host read of device memory, a host read
// before the work that writes it has completed, a kernel given a host pointer.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "core/runtime.h"
#include "core/functional.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "ops/cuda.h"
#include "tests/emu/device/device.h"
#include "tests/emu/emulator.h"

namespace dtrain::emu::device {
namespace {

using namespace std::chrono_literals;

// Work queued on a stream waits `lag` unless the host waits (Note [Emulated device]): a
// long lag makes "the host did not wait" show up every time.
class LagScope {
 public:
  explicit LagScope(std::chrono::milliseconds lag) { set_lag(lag); }
  ~LagScope() { set_lag(2ms); }
};

template <typename T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

template <typename T>
T* pinned_alloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMallocHost(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

cudaStream_t make_stream(unsigned flags = cudaStreamNonBlocking) {
  cudaStream_t s = nullptr;
  EXPECT_EQ(cudaStreamCreateWithFlags(&s, flags), cudaSuccess);
  return s;
}

TEST(EmuRuntime, DevicesAndCopies) {
  int n = 0;
  ASSERT_EQ(cudaGetDeviceCount(&n), cudaSuccess);
  EXPECT_GE(n, 2);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(cudaSetDevice(n), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "the last error is cleared when read";

  std::vector<float> host = {1, 2, 3, 4, 5}, back(5, 0);
  float* d = device_alloc<float>(5);
  float* e = device_alloc<float>(5);
  ASSERT_EQ(cudaMemcpy(d, host.data(), 20, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(e, d, 20, cudaMemcpyDefault), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(back.data(), e, 20, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(back, host);
  ASSERT_EQ(cudaMemset(e, 0, 20), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(back.data(), e, 20, cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(back, std::vector<float>(5, 0.0f));
  EXPECT_EQ(cudaFree(d), cudaSuccess);
  EXPECT_EQ(cudaFree(e), cudaSuccess);
}

TEST(EmuRuntime, FreshDeviceMemoryIsNotZero) {
  // cudaMalloc does not clear memory; the emulated device fills it with 0xff bytes, so
  // code that forgets to initialise reads NaN instead of a lucky zero.
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  float* d = device_alloc<float>(3);
  std::vector<float> back(3, 0.0f);
  ASSERT_EQ(cudaMemcpy(back.data(), d, 12, cudaMemcpyDeviceToHost), cudaSuccess);
  for (float v : back) EXPECT_TRUE(std::isnan(v));
  cudaFree(d);
}

TEST(EmuRuntime, BadCopiesAreRefused) {
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  float* d = device_alloc<float>(4);
  std::vector<float> host(8, 0.0f);
  EXPECT_EQ(cudaMemcpy(d, host.data(), 8 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue)
      << "32 bytes into an allocation of 16";
  EXPECT_EQ(cudaMemcpy(host.data(), d, 16, cudaMemcpyHostToDevice), cudaErrorInvalidValue)
      << "the kind contradicts the pointers";
  EXPECT_EQ(cudaMemsetAsync(host.data(), 0, 16, nullptr), cudaErrorInvalidValue) << "memset of host memory";
  EXPECT_EQ(cudaFree(host.data()), cudaErrorInvalidValue);
  cudaGetLastError();
  cudaFree(d);
}

TEST(EmuRuntime, StreamsRunAfterTheHostReturns) {
  // A missing synchronisation before a host read: the copy into pinned memory has not
  // run yet, so the host sees the old bytes; after cudaStreamSynchronize the new ones.
  LagScope lag(300ms);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  cudaStream_t s = make_stream();
  int* d = device_alloc<int>(4);
  int* pinned = pinned_alloc<int>(4);
  std::memset(pinned, 0, 16);
  ASSERT_EQ(cudaMemsetAsync(d, 1, 16, s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(pinned, d, 16, cudaMemcpyDeviceToHost, s), cudaSuccess);
  EXPECT_EQ(pinned[0], 0) << "read before the copy ran: the stale value, as a race on a GPU can give";
  EXPECT_EQ(cudaStreamQuery(s), cudaErrorNotReady);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(pinned[0], 0x01010101);
  EXPECT_EQ(cudaStreamQuery(s), cudaSuccess);
  cudaFreeHost(pinned);
  cudaFree(d);
  cudaStreamDestroy(s);
}

TEST(EmuRuntime, PinnedSourceIsReadWhenTheCopyRuns) {
  // An asynchronous copy from pinned memory reads it when the stream gets there:
  // overwriting the buffer first changes what arrives (the loader's double buffering
  // must wait for its copies). A pageable source is taken at the call.
  LagScope lag(300ms);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  cudaStream_t s = make_stream();
  int* d = device_alloc<int>(2);
  int* pinned = pinned_alloc<int>(1);
  int pageable = 7;
  *pinned = 7;
  ASSERT_EQ(cudaMemcpyAsync(d, pinned, 4, cudaMemcpyHostToDevice, s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(d + 1, &pageable, 4, cudaMemcpyHostToDevice, s), cudaSuccess);
  *pinned = 8;
  pageable = 8;
  std::vector<int> back(2);
  ASSERT_EQ(cudaMemcpyAsync(back.data(), d, 8, cudaMemcpyDeviceToHost, s), cudaSuccess)
      << "to pageable memory: complete on return";
  EXPECT_EQ(back, (std::vector<int>{8, 7}));
  cudaFreeHost(pinned);
  cudaFree(d);
  cudaStreamDestroy(s);
}

TEST(EmuRuntime, EventsOrderStreams) {
  LagScope lag(50ms);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  cudaStream_t producer = make_stream(), consumer = make_stream();
  int* d = device_alloc<int>(1);
  int* pinned = pinned_alloc<int>(1);
  cudaEvent_t written = nullptr;
  ASSERT_EQ(cudaEventCreateWithFlags(&written, cudaEventDisableTiming), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(written), cudaSuccess) << "never recorded";
  // The producer's work takes a while (a host op standing in for a long kernel).
  enqueue(producer, "slow producer", [d] {
    std::this_thread::sleep_for(200ms);
    *d = 42;
  });
  ASSERT_EQ(cudaEventRecord(written, producer), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(consumer, written, 0), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(pinned, d, 4, cudaMemcpyDeviceToHost, consumer), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(consumer), cudaSuccess);
  EXPECT_EQ(*pinned, 42) << "the consumer waited for the producer's event";
  EXPECT_EQ(cudaEventQuery(written), cudaSuccess);
  float ms = 0;
  EXPECT_EQ(cudaEventElapsedTime(&ms, written, written), cudaErrorInvalidResourceHandle) << "timing disabled";
  cudaGetLastError();

  // Without the wait, the consumer runs beside the producer and copies the old value.
  ASSERT_EQ(cudaMemset(d, 0, 4), cudaSuccess);
  enqueue(producer, "slow producer", [d] {
    std::this_thread::sleep_for(200ms);
    *d = 43;
  });
  ASSERT_EQ(cudaMemcpyAsync(pinned, d, 4, cudaMemcpyDeviceToHost, consumer), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(consumer), cudaSuccess);
  EXPECT_EQ(*pinned, 0) << "no event, no order";
  ASSERT_EQ(cudaStreamSynchronize(producer), cudaSuccess);

  cudaEvent_t a = nullptr, b = nullptr;
  ASSERT_EQ(cudaEventCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&b), cudaSuccess);
  cudaEventRecord(a, producer);
  enqueue(producer, "sleep", [] { std::this_thread::sleep_for(20ms); });
  cudaEventRecord(b, producer);
  ASSERT_EQ(cudaEventSynchronize(b), cudaSuccess);
  ASSERT_EQ(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
  EXPECT_GE(ms, 15.0f);
  for (cudaEvent_t e : {written, a, b}) cudaEventDestroy(e);
  cudaFreeHost(pinned);
  cudaFree(d);
  cudaStreamDestroy(producer);
  cudaStreamDestroy(consumer);
}

TEST(EmuRuntime, LegacyStreamWaitsForBlockingStreamsOnly) {
  // A blocking cudaMemcpy runs on the legacy stream: after work on a blocking stream, not
  // after work on a non-blocking one (where dtrain's streams are).
  LagScope lag(50ms);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  int* d = device_alloc<int>(1);
  ASSERT_EQ(cudaMemset(d, 0, 4), cudaSuccess);
  for (unsigned flags : {cudaStreamDefault, cudaStreamNonBlocking}) {
    cudaStream_t s = make_stream(flags);
    const int value = flags == cudaStreamDefault ? 5 : 6;
    enqueue(s, "slow writer", [d, value] {
      std::this_thread::sleep_for(200ms);
      *d = value;
    });
    int back = -1;
    ASSERT_EQ(cudaMemcpy(&back, d, 4, cudaMemcpyDeviceToHost), cudaSuccess);
    if (flags == cudaStreamDefault) {
      EXPECT_EQ(back, 5) << "ordered after the blocking stream";
    } else {
      EXPECT_EQ(back, 5) << "not ordered after the non-blocking stream: the old value";
    }
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    cudaStreamDestroy(s);
  }
  cudaFree(d);
}

TEST(EmuRuntime, AFailedWorkItemMakesTheDeviceErrorSticky) {
  // Device 3 is given over to this test: a failed device stays failed, as on a GPU.
  ASSERT_GE(count(), 4);
  ASSERT_EQ(cudaSetDevice(3), cudaSuccess);
  cudaStream_t s = make_stream();
  enqueue(s, "a planted failure", [] { throw std::runtime_error("something broke on the device"); });
  const cudaError_t e = cudaStreamSynchronize(s);
  EXPECT_EQ(e, cudaErrorLaunchFailure);
  EXPECT_NE(std::string(cudaGetErrorString(e)).find("emulated device reported"), std::string::npos)
      << cudaGetErrorString(e);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorLaunchFailure) << "later calls fail too";
  cudaGetLastError();
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
}

TEST(EmuRuntime, KernelsRunOnTheirStreamAndCheckTheirPointers) {
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  cudaStream_t s = make_stream();
  ops::Exec ex;
  ex.stream = s;
  float* d = device_alloc<float>(5);
  ops::cuda::fill<float>(d, 2.5f, 5, ex);
  std::vector<float> back(5, 0.0f);
  ASSERT_EQ(cudaMemcpyAsync(back.data(), d, 20, cudaMemcpyDeviceToHost, s), cudaSuccess);
  EXPECT_EQ(back, std::vector<float>(5, 2.5f));

  // Pinned host memory may be given to a kernel; pageable memory may not.
  float* pinned = pinned_alloc<float>(5);
  ops::cuda::fill<float>(pinned, 1.5f, 5, ex);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(pinned[4], 1.5f);
  try {
    ops::cuda::fill<float>(back.data(), 1.0f, 5, ex);
    ADD_FAILURE() << "a kernel was given pageable host memory";
  } catch (const emu::Error& e) {
    EXPECT_NE(std::string(e.what()).find("in no device buffer or pinned host allocation"), std::string::npos)
        << e.what();
  }
  // Memory of another device, and a stream of another device.
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  float* other = device_alloc<float>(5);
  try {
    ops::cuda::fill<float>(other, 1.0f, 5, ex);
    ADD_FAILURE() << "a kernel was launched on cuda:0's stream while cuda:1 is current";
  } catch (const emu::Error& e) {
    EXPECT_NE(std::string(e.what()).find("launched on a stream of cuda:0 while cuda:1 is the current device"),
              std::string::npos)
        << e.what();
  }
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  try {
    ops::cuda::fill<float>(other, 1.0f, 5, ex);
    ADD_FAILURE() << "a kernel on cuda:0 was given cuda:1's memory";
  } catch (const emu::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is memory of cuda:1"), std::string::npos) << e.what();
  }
  cudaFree(other);
  cudaFreeHost(pinned);
  ASSERT_EQ(cudaFree(d), cudaSuccess);
  EXPECT_THROW(ops::cuda::fill<float>(d, 1.0f, 5, ex), emu::Error) << "freed memory";
  cudaStreamDestroy(s);
}

TEST(EmuRuntime, TheCoreRuntimeSeesEmulatedDevices) {
  std::string why;
  EXPECT_TRUE(cuda::available(&why)) << why;
  EXPECT_GE(cuda::device_count(), 2);
  const int64_t launches = emu::stats().launches;
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}).to(Device::cuda(0));
  Tensor u = fn::mul(t, t).to(Device::cpu());
  EXPECT_EQ(u.to_vector<float>(), (std::vector<float>{1, 4, 9}));
  EXPECT_GT(emu::stats().launches, launches) << "the product ran on the grid emulator";
}

TEST(EmuRuntime, ATensorMadeFromHostValuesIsOrderedWithItsStream) {
  // A block of the caching allocator is reused as soon as its tensor dies, safely by the
  // order of the thread's stream (Note [Caching allocator and streams]). A copy into the
  // reused block on another stream (a blocking cudaMemcpy runs on the legacy stream,
  // unordered with dtrain's non-blocking streams) could overwrite it while a kernel
  // queued earlier still reads it. The lag holds the kernel back, so the copy would win.
  LagScope lag(300ms);
  const Device dev = Device::cuda(0);
  Tensor a = Tensor::from_vector(std::vector<float>{1, -2, 3, -4}, {4}, dev);
  const void* block = a.raw_data();
  Tensor y = fn::relu(a);  // queued on the thread's stream, reading a's block
  a = Tensor();            // the block returns to the cache
  Tensor b = Tensor::from_vector(std::vector<float>{-5, -5, -5, -5}, {4}, dev);
  ASSERT_EQ(b.raw_data(), block) << "the test needs the cache to hand the block out again";
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{1, 0, 3, 0}));
  EXPECT_EQ(b.to_vector<float>(), std::vector<float>(4, -5.0f));
}

// ---- the planted host/device mistakes -----------------------------------------------------
using EmuHostDeviceMistakesDeathTest = ::testing::Test;

TEST(EmuHostDeviceMistakesDeathTest, HostReadOfADevicePointerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* d = device_alloc<float>(4);
        volatile float x = d[1];
        (void)x;
      },
      "host code accessed device memory of cuda:0.*byte 4 of an allocation of 16 bytes");
}

TEST(EmuHostDeviceMistakesDeathTest, HostReadOfADeviceTensorWithoutACopyAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}).to(Device::cuda(0));
        cuda::stream_synchronize(cuda::thread_stream(0), 0);
        volatile float x = static_cast<const float*>(t.raw_data())[2];
        (void)x;
      },
      "host code accessed device memory of cuda:0");
}

}  // namespace
}  // namespace dtrain::emu::device
