// The grid emulator's own tests: CUDA semantics it must reproduce (indices, barriers,
// shuffles with masks and widths, atomics, dynamic shared memory, launch errors) and the
// planted bugs it must catch, each with the kernel's name and the source line.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "ops/cuda/common.cuh"
#include "tests/emu/emulator.h"

namespace dtrain::emu {
namespace {

using ::dtrain::ops::cuda::detail::block_sum;

// Runs `f`, expecting an emu::Error whose message contains every one of `parts`;
// prints the message (the note in docs/EMULATOR.md quotes them).
template <typename F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error reported";
  } catch (const Error& e) {
    const std::string msg = e.what();
    std::cout << "    reported: " << msg << "\n";
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in\n" << msg;
  }
}

std::string here(int line) { return "tests/emu/test_emulator.cpp:" + std::to_string(line); }

// ---- semantics --------------------------------------------------------------------------

__global__ void index_kernel(int* out) {
  const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int b = blockIdx.x + gridDim.x * blockIdx.y;
  const int threads = blockDim.x * blockDim.y * blockDim.z;
  out[b * threads + t] = b * 1000 + t;
}

TEST(EmuSemantics, IndicesCoverA2dGridOf3dBlocks) {
  DeviceBuffer<int> out(std::vector<int>(6 * 24, -1));
  DT_LAUNCH(dim3(3, 2), dim3(4, 3, 2), 0, nullptr, index_kernel)(out.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> got = out.to_vector();
  for (int b = 0; b < 6; ++b) {
    for (int t = 0; t < 24; ++t) EXPECT_EQ(got[b * 24 + t], b * 1000 + t);
  }
}

// Reverses each block's values through shared memory: needs the barrier.
__global__ void reverse_kernel(const float* in, float* out) {
  __shared__ float tile[128];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  tile[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = tile[blockDim.x - 1 - threadIdx.x];
}

TEST(EmuSemantics, BarrierOrdersSharedMemory) {
  std::vector<float> v(3 * 128);
  std::iota(v.begin(), v.end(), 0.0f);
  DeviceBuffer<float> in(v), out(v.size());
  const int64_t barriers = stats().barriers;
  DT_LAUNCH(3, 128, 0, nullptr, reverse_kernel)(in.data(), out.data());
  const std::vector<float> got = out.to_vector();
  for (int b = 0; b < 3; ++b) {
    for (int t = 0; t < 128; ++t) EXPECT_EQ(got[b * 128 + t], v[b * 128 + 127 - t]);
  }
  EXPECT_EQ(stats().barriers - barriers, 2 * 3);  // one per block, forward and reverse
}

__global__ void block_sum_kernel(const double* in, double* out) {
  const double s = block_sum<256>(in[threadIdx.x]);
  const double s2 = block_sum<256>(2.0 * in[threadIdx.x]);  // called twice: the leading barrier
  if (threadIdx.x == 0) out[0] = s;
  if (threadIdx.x == 1) out[1] = s2;
}

TEST(EmuSemantics, BlockSumOfCommonCuh) {
  std::vector<double> v(256);
  std::iota(v.begin(), v.end(), 1.0);
  DeviceBuffer<double> in(v), out(2);
  DT_LAUNCH(1, 256, 0, nullptr, block_sum_kernel)(in.data(), out.data());
  EXPECT_EQ(out.to_vector(), (std::vector<double>{256.0 * 257 / 2, 256.0 * 257}));
}

// Each lane records every shuffle variant at widths 32, 16 and 8, partial masks too.
__global__ void shuffle_kernel(int* out) {
  const int lane = threadIdx.x % 32;
  const int v = 100 + lane;
  int* o = out + threadIdx.x * 8;
  o[0] = __shfl_sync(0xffffffffu, v, 5);
  o[1] = __shfl_sync(0xffffffffu, v, 3, 8);
  o[2] = __shfl_up_sync(0xffffffffu, v, 2);
  o[3] = __shfl_up_sync(0xffffffffu, v, 2, 16);
  o[4] = __shfl_down_sync(0xffffffffu, v, 3);
  o[5] = __shfl_down_sync(0xffffffffu, v, 3, 8);
  o[6] = __shfl_xor_sync(0xffffffffu, v, 9, 16);
  o[7] = lane < 16 ? __shfl_xor_sync(0x0000ffffu, v, 1) : -1;
}

TEST(EmuSemantics, ShufflesFollowPtx) {
  DeviceBuffer<int> out(64 * 8);
  DT_LAUNCH(1, 64, 0, nullptr, shuffle_kernel)(out.data());
  const std::vector<int> got = out.to_vector();
  for (int t = 0; t < 64; ++t) {
    const int l = t % 32;
    const int* o = &got[t * 8];
    auto in_segment = [&](int j, int width) { return j / width == l / width && j >= 0 ? 100 + j : 100 + l; };
    EXPECT_EQ(o[0], 105) << t;
    EXPECT_EQ(o[1], 100 + (l / 8) * 8 + 3) << t;
    EXPECT_EQ(o[2], in_segment(l - 2, 32)) << t;
    EXPECT_EQ(o[3], in_segment(l - 2, 16)) << t;
    EXPECT_EQ(o[4], in_segment(l + 3, 32)) << t;
    EXPECT_EQ(o[5], in_segment(l + 3, 8)) << t;
    EXPECT_EQ(o[6], in_segment(l ^ 9, 16)) << t;
    EXPECT_EQ(o[7], l < 16 ? 100 + (l ^ 1) : -1) << t;
  }
}

__global__ void atomic_kernel(int* counter, unsigned* maximum) {
  atomicAdd(counter, 1);
  atomicMax(maximum, static_cast<unsigned>(blockIdx.x * blockDim.x + threadIdx.x));
}

TEST(EmuSemantics, Atomics) {
  DeviceBuffer<int> counter(std::vector<int>{5});
  DeviceBuffer<unsigned> maximum(std::vector<unsigned>{0});
  DT_LAUNCH(4, 96, 0, nullptr, atomic_kernel)(counter.data(), maximum.data());
  EXPECT_EQ(counter.to_vector()[0], 5 + 4 * 96);
  EXPECT_EQ(maximum.to_vector()[0], 4u * 96 - 1);
}

__global__ void dynamic_shared_kernel(const float* in, float* out, int n) {
  DT_DYNAMIC_SHARED(float, buf);
  buf[threadIdx.x] = in[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = buf[(threadIdx.x + 1) % n];
}

TEST(EmuSemantics, DynamicSharedMemory) {
  std::vector<float> v(40);
  std::iota(v.begin(), v.end(), 1.0f);
  DeviceBuffer<float> in(v), out(40);
  DT_LAUNCH(1, 40, 40 * sizeof(float), nullptr, dynamic_shared_kernel)(in.data(), out.data(), 40);
  const std::vector<float> got = out.to_vector();
  for (int t = 0; t < 40; ++t) EXPECT_EQ(got[t], v[(t + 1) % 40]);
}

TEST(EmuSemantics, InvalidConfigurationIsALaunchError) {
  DeviceBuffer<int> out(4);
  DT_LAUNCH(1, 1025, 0, nullptr, index_kernel)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // taken
  DT_LAUNCH(1, 32, 64 * 1024, nullptr, index_kernel)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
}

TEST(EmuSemantics, HostPointerArgumentIsAnError) {
  std::vector<int> host(32);
  expect_error([&] { DT_LAUNCH(1, 32, 0, nullptr, index_kernel)(host.data()); },
               {"index_kernel", "argument 0", "in no device buffer"});
}

// ---- planted bugs -------------------------------------------------------------------------

constexpr int kEarlyReturnBarrierLine = __LINE__ + 5;
__global__ void early_return_kernel(float* out) {
  __shared__ float tile[64];
  if (threadIdx.x == 7) return;  // planted: thread 7 skips the barrier
  tile[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = tile[63 - threadIdx.x];
}

TEST(EmuPlantedBugs, EarlyReturnBeforeABarrier) {
  DeviceBuffer<float> out(64);
  expect_error([&] { DT_LAUNCH(1, 64, 0, nullptr, early_return_kernel)(out.data()); },
               {"kernel early_return_kernel", "thread (7,0,0)",
                "exited while other threads wait at __syncthreads() at " + here(kEarlyReturnBarrierLine)});
}

constexpr int kDivergentBarrierLine = __LINE__ + 4;
__global__ void divergent_barrier_kernel(float* out) {
  __shared__ float tile[64];
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    tile[threadIdx.x] = 1.0f;
    __syncthreads();
  }
  out[threadIdx.x] = tile[threadIdx.x];
}

TEST(EmuPlantedBugs, ThreadsAtDifferentBarriers) {
  DeviceBuffer<float> out(64);
  expect_error([&] { DT_LAUNCH(1, 64, 0, nullptr, divergent_barrier_kernel)(out.data()); },
               {"kernel divergent_barrier_kernel", "wait at different barriers", here(kDivergentBarrierLine),
                here(kDivergentBarrierLine + 3)});
}

constexpr int kHalfWarpShuffleLine = __LINE__ + 5;
__global__ void half_warp_shuffle_kernel(float* out) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float v = static_cast<float>(lane);
  // planted: a full-mask shuffle that only lanes 0-15 reach
  if (lane < 16) v += __shfl_down_sync(0xffffffffu, v, 8);
  out[threadIdx.x] = v;
}

TEST(EmuPlantedBugs, FullMaskShuffleInsideABranch) {
  DeviceBuffer<float> out(32);
  expect_error([&] { DT_LAUNCH(1, 32, 0, nullptr, half_warp_shuffle_kernel)(out.data()); },
               {"kernel half_warp_shuffle_kernel", "__shfl_down_sync at " + here(kHalfWarpShuffleLine),
                "waits for lane 16 of its mask, which never arrives", "has exited"});
}

constexpr int kMaskMismatchLine = __LINE__ + 4;
__global__ void mask_mismatch_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const unsigned mask = lane == 3 ? 0x0000000fu : 0x000000ffu;  // planted: lane 3 disagrees
  if (lane < 8) out[lane] = __shfl_xor_sync(mask, lane, 1);
}

TEST(EmuPlantedBugs, ShuffleWithDifferentMasks) {
  DeviceBuffer<int> out(8);
  expect_error([&] { DT_LAUNCH(1, 32, 0, nullptr, mask_mismatch_kernel)(out.data()); },
               {"kernel mask_mismatch_kernel", "different masks", here(kMaskMismatchLine)});
}

// Thread t reads its neighbour's shared value without a barrier in between: in forward
// order the neighbour has not written it yet, in reverse order it has.
constexpr int kMissingBarrierLine = __LINE__ + 6;
__global__ void missing_barrier_kernel(const float* in, float* out) {
  __shared__ float tile[64];
  const int i = blockIdx.x * 64 + threadIdx.x;
  tile[threadIdx.x] = in[i];
  // planted: __syncthreads() missing here
  out[i] = tile[(threadIdx.x + 1) % 64];
}

TEST(EmuPlantedBugs, MissingBarrierIsARace) {
  std::vector<float> v(4 * 64);
  std::iota(v.begin(), v.end(), 1.0f);
  DeviceBuffer<float> in(v), out(v.size());
  expect_error([&] { DT_LAUNCH(4, 64, 0, nullptr, missing_barrier_kernel)(in.data(), out.data()); },
               {"kernel missing_barrier_kernel", "differ between forward and reverse", "test_emulator.cpp:"});
  (void)kMissingBarrierLine;
}

[[maybe_unused]] constexpr int kDynamicOverflowLine = __LINE__ + 4;
__global__ void dynamic_overflow_kernel(float* out) {
  DT_DYNAMIC_SHARED(float, buf);
  // planted: thread 31 writes buf[32], one past the end of 32 floats
  buf[threadIdx.x + 1] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = buf[threadIdx.x];
}

TEST(EmuPlantedBugs, DynamicSharedWriteOnePastTheEnd) {
#if DT_EMU_ASAN
  // ASan sees the guard (poisoned) and names the line.
  DeviceBuffer<float> out(32);
  EXPECT_DEATH(DT_LAUNCH(1, 32, 32 * sizeof(float), nullptr, dynamic_overflow_kernel)(out.data()),
               "use-after-poison(.|\n)*dynamic_overflow_kernel(.|\n)*test_emulator.cpp:" +
                   std::to_string(kDynamicOverflowLine));
#else
  // The emulator's guard bytes: the kernel is named; the line is ASan's to tell.
  DeviceBuffer<float> out(32);
  expect_error([&] { DT_LAUNCH(1, 32, 32 * sizeof(float), nullptr, dynamic_overflow_kernel)(out.data()); },
               {"kernel dynamic_overflow_kernel", "dynamic shared memory written out of bounds",
                "0 bytes past its end of 128 bytes"});
#endif
}

#if DT_EMU_ASAN
constexpr int kStaticOverflowLine = __LINE__ + 4;
__global__ void static_overflow_kernel(float* out) {
  __shared__ float tile[32];
  // planted: thread 31 writes tile[32], one past the end
  tile[threadIdx.x + 1] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = tile[threadIdx.x];
}
#endif

TEST(EmuPlantedBugs, StaticSharedWriteOnePastTheEnd) {
#if DT_EMU_ASAN
  // UBSan's bounds check (the array's size is known) stops at the line.
  DeviceBuffer<float> out(32);
  EXPECT_DEATH(DT_LAUNCH(1, 32, 0, nullptr, static_overflow_kernel)(out.data()),
               "test_emulator.cpp:" + std::to_string(kStaticOverflowLine) +
                   ":.*index 32 out of bounds for type 'float ?\\[32\\]'");
#else
  GTEST_SKIP() << "a static __shared__ array overflow is caught by the sanitizer build "
                  "(dtrain_emu_asan_tests), not by the emulator alone";
#endif
}

}  // namespace
}  // namespace dtrain::emu
