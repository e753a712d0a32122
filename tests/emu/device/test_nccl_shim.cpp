// The emulated NCCL (tests/emu/device/nccl.cpp, Note [Emulated NCCL] there), through the
// CUDA runtime API and nccl.h only, as dtrain calls them: ranks as threads of this process
// (each on its own device and stream) and as processes (fork). Results are compared
// bitwise with a reference that reduces in rank order.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// After the standard headers: the shim's `__noinline__` macro breaks libstdc++'s
// `__attribute__((__noinline__))` (in <memory>) when it comes first.
#include <cuda_runtime.h>
#include <nccl.h>

#include "ops/bf16.h"

namespace {

using dtrain::ops::bf16;

constexpr const char* kTimeoutVar = "DTRAIN_EMU_NCCL_TIMEOUT_S";
// Elements past one 1 MiB staging chunk for every type (three chunks of 4-byte types), odd.
constexpr size_t kLarge = 300001;

// The shim's segments named by this process that are still in /dev/shm.
std::vector<std::string> leftover_segments() {
  const std::string prefix = "dtrain-nccl-" + std::to_string(getpid()) + "-";
  std::vector<std::string> found;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) {
      if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) found.emplace_back(e->d_name);
    }
    closedir(d);
  }
  return found;
}

// Device memory of the calling thread's current device.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { EXPECT_EQ(cudaMalloc(&p_, bytes), cudaSuccess); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : bytes_(o.bytes_), p_(std::exchange(o.p_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  template <typename T>
  static DeviceBuffer of(const std::vector<T>& v) {
    DeviceBuffer b(v.size() * sizeof(T));
    b.upload(v);
    return b;
  }
  template <typename T>
  void upload(const std::vector<T>& v, size_t at_bytes = 0) {
    EXPECT_EQ(cudaMemcpy(static_cast<char*>(p_) + at_bytes, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  template <typename T>
  std::vector<T> download() const {
    std::vector<T> v(bytes_ / sizeof(T));
    EXPECT_EQ(cudaMemcpy(v.data(), p_, bytes_, cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
  void* get() const { return p_; }

 private:
  size_t bytes_;
  void* p_ = nullptr;
};

template <typename T>
testing::AssertionResult same_bytes(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) {
    return testing::AssertionFailure() << got.size() << " elements, expected " << want.size();
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      return testing::AssertionFailure() << "first difference at element " << i << " of " << got.size();
    }
  }
  return testing::AssertionSuccess();
}

// One rank per thread, thread r on device r with its own non-blocking stream; the body runs
// between init and destroy.
using RankBody = std::function<void(int rank, ncclComm_t comm, cudaStream_t stream)>;
void with_ranks(int nranks, const RankBody& body) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  std::vector<std::thread> threads;
  for (int r = 0; r < nranks; ++r) {
    threads.emplace_back([&, r] {
      ASSERT_EQ(cudaSetDevice(r), cudaSuccess);
      ncclComm_t comm = nullptr;
      ASSERT_EQ(ncclCommInitRank(&comm, nranks, id, r), ncclSuccess) << ncclGetLastError(nullptr);
      cudaStream_t stream = nullptr;
      ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
      body(r, comm, stream);
      EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      EXPECT_EQ(ncclCommDestroy(comm), ncclSuccess);
      EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
    });
  }
  for (auto& t : threads) t.join();
}

ncclResult_t async_error(ncclComm_t comm) {
  ncclResult_t e = ncclInternalError;
  EXPECT_EQ(ncclCommGetAsyncError(comm, &e), ncclSuccess);
  return e;
}

class NcclShim : public testing::Test {
 protected:
  // Long enough for a loaded machine, short enough that a broken test fails instead of
  // hanging for NCCL's default.
  void SetUp() override { setenv(kTimeoutVar, "60", 1); }
  void TearDown() override {
    unsetenv(kTimeoutVar);
    EXPECT_TRUE(leftover_segments().empty()) << "a shared-memory segment was left in /dev/shm";
  }
};

// ---- all-reduce of every op and type against a reference -----------------------------

// Floating-point values whose sums and products are exact only sometimes (so the rank order
// matters); int64 values past 32 bits, whose products wrap (two's complement, as on the GPU).
template <typename T>
struct Type;
template <>
struct Type<float> {
  static constexpr ncclDataType_t nccl = ncclFloat32;
  using Acc = float;
  static float make(int r, size_t i) { return static_cast<float>(static_cast<int>((i * 7 + r * 3) % 17) - 8) * 0.37f; }
  static Acc acc(float v) { return v; }
  static float round(Acc a) { return a; }
};
template <>
struct Type<double> {
  static constexpr ncclDataType_t nccl = ncclFloat64;
  using Acc = double;
  static double make(int r, size_t i) { return static_cast<double>(static_cast<int>((i * 5 + r * 11) % 19) - 9) / 3.0; }
  static Acc acc(double v) { return v; }
  static double round(Acc a) { return a; }
};
template <>
struct Type<int32_t> {
  static constexpr ncclDataType_t nccl = ncclInt32;
  using Acc = int32_t;
  static int32_t make(int r, size_t i) { return static_cast<int32_t>((i * 3 + r * 5) % 7) - 3; }
  static Acc acc(int32_t v) { return v; }
  static int32_t round(Acc a) { return a; }
};
template <>
struct Type<int64_t> {
  static constexpr ncclDataType_t nccl = ncclInt64;
  using Acc = int64_t;
  static int64_t make(int r, size_t i) { return static_cast<int64_t>((i * 13 + r * 7) % 9) - 4 + (int64_t{1} << 40); }
  static Acc acc(int64_t v) { return v; }
  static int64_t round(Acc a) { return a; }
};
template <>
struct Type<bf16> {
  static constexpr ncclDataType_t nccl = ncclBfloat16;
  using Acc = float;  // NCCL accumulates bf16 in float; the shim rounds once at the end
  static bf16 make(int r, size_t i) {
    return dtrain::ops::float_to_bf16(static_cast<float>(static_cast<int>((i * 7 + r * 5) % 23) - 11) * 1.0078125f);
  }
  static Acc acc(bf16 v) { return dtrain::ops::bf16_to_float(v); }
  static bf16 round(Acc a) { return dtrain::ops::float_to_bf16(a); }
};

template <typename T>
std::vector<T> reference(ncclRedOp_t op, int nranks, size_t n) {
  using A = typename Type<T>::Acc;
  std::vector<T> out(n);
  for (size_t i = 0; i < n; ++i) {
    A acc = Type<T>::acc(Type<T>::make(0, i));
    for (int r = 1; r < nranks; ++r) {
      const A x = Type<T>::acc(Type<T>::make(r, i));
      switch (op) {
        case ncclSum: case ncclAvg: acc = static_cast<A>(acc + x); break;
        case ncclProd:
          if constexpr (std::is_integral_v<A>) {
            acc = static_cast<A>(static_cast<uint64_t>(acc) * static_cast<uint64_t>(x));
          } else {
            acc = acc * x;
          }
          break;
        case ncclMax: acc = x > acc ? x : acc; break;
        case ncclMin: acc = x < acc ? x : acc; break;
        default: break;
      }
    }
    if (op == ncclAvg) acc = static_cast<A>(acc / static_cast<A>(nranks));
    out[i] = Type<T>::round(acc);
  }
  return out;
}

template <typename T>
void all_reduce_every_op(int rank, int nranks, ncclComm_t comm, cudaStream_t stream) {
  for (size_t n : {size_t{1}, size_t{7}, kLarge}) {
    std::vector<T> mine(n);
    for (size_t i = 0; i < n; ++i) mine[i] = Type<T>::make(rank, i);
    for (ncclRedOp_t op : {ncclSum, ncclProd, ncclMax, ncclMin, ncclAvg}) {
      const std::vector<T> want = reference<T>(op, nranks, n);
      for (bool in_place : {true, false}) {
        DeviceBuffer send = DeviceBuffer::of(mine);
        DeviceBuffer recv(n * sizeof(T));
        void* out = in_place ? send.get() : recv.get();
        ASSERT_EQ(ncclAllReduce(send.get(), out, n, Type<T>::nccl, op, comm, stream), ncclSuccess)
            << ncclGetLastError(nullptr);
        ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
        ASSERT_EQ(async_error(comm), ncclSuccess) << ncclGetLastError(comm);
        const std::vector<T> got = in_place ? send.download<T>() : recv.download<T>();
        EXPECT_TRUE(same_bytes(got, want)) << "rank " << rank << " of " << nranks << ", type " << Type<T>::nccl
                                           << ", op " << op << ", " << n << " elements, "
                                           << (in_place ? "in place" : "out of place");
        if (!in_place) {
          EXPECT_TRUE(same_bytes(send.download<T>(), mine)) << "the out-of-place send buffer changed";
        }
      }
    }
  }
}

void all_reduce_every_type(int nranks) {
  with_ranks(nranks, [nranks](int rank, ncclComm_t comm, cudaStream_t stream) {
    all_reduce_every_op<float>(rank, nranks, comm, stream);
    all_reduce_every_op<double>(rank, nranks, comm, stream);
    all_reduce_every_op<int32_t>(rank, nranks, comm, stream);
    all_reduce_every_op<int64_t>(rank, nranks, comm, stream);
    all_reduce_every_op<bf16>(rank, nranks, comm, stream);
  });
}

TEST_F(NcclShim, AllReduceEveryOpAndTypeTwoRanks) { all_reduce_every_type(2); }
TEST_F(NcclShim, AllReduceEveryOpAndTypeThreeRanks) { all_reduce_every_type(3); }

TEST_F(NcclShim, AllReduceIsBitIdenticalOnEveryRankAndRoundsBf16Once) {
  // Rank 0 has 1, ranks 1 and 2 have 2^-8 (all exact in bf16). Rounded to bf16 after each
  // addition, 1 + 2^-8 is a tie that goes back to 1, twice; accumulated in float and
  // rounded once, the sum is 1 + 2^-7, which bf16 holds.
  const bf16 want = dtrain::ops::float_to_bf16(1.0078125f);
  ASSERT_EQ(dtrain::ops::bf16_to_float(want), 1.0078125f);
  std::vector<std::vector<float>> sums(3);
  with_ranks(3, [&](int rank, ncclComm_t comm, cudaStream_t stream) {
    const float v = rank == 0 ? 1.0f : 0.00390625f;
    DeviceBuffer b = DeviceBuffer::of(std::vector<bf16>(5, dtrain::ops::float_to_bf16(v)));
    ASSERT_EQ(ncclAllReduce(b.get(), b.get(), 5, ncclBfloat16, ncclSum, comm, stream), ncclSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    for (bf16 x : b.download<bf16>()) EXPECT_EQ(x.bits, want.bits) << "rank " << rank;
    std::vector<float> f(kLarge);
    for (size_t i = 0; i < kLarge; ++i) f[i] = 1.0f / static_cast<float>(i + rank + 1);
    DeviceBuffer d = DeviceBuffer::of(f);
    ASSERT_EQ(ncclAllReduce(d.get(), d.get(), kLarge, ncclFloat32, ncclAvg, comm, stream), ncclSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    sums[static_cast<size_t>(rank)] = d.download<float>();
  });
  EXPECT_TRUE(same_bytes(sums[1], sums[0]));
  EXPECT_TRUE(same_bytes(sums[2], sums[0]));
}

// ---- broadcast and all-gather --------------------------------------------------------

TEST_F(NcclShim, BroadcastFromANonZeroRoot) {
  constexpr int kRoot = 2;
  const size_t bytes = 2 * (size_t{1} << 20) + 5;  // three chunks of uint8
  auto data = [](int r, size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + r * 7 + 1);
    return v;
  };
  std::vector<float> floats(kLarge);
  for (size_t i = 0; i < kLarge; ++i) floats[i] = static_cast<float>(i) * 0.5f;
  with_ranks(3, [&](int rank, ncclComm_t comm, cudaStream_t stream) {
    // In place, as dtrain's NCCL group calls it (the tensor's bytes as uint8).
    DeviceBuffer t = DeviceBuffer::of(data(rank, bytes));
    ASSERT_EQ(ncclBroadcast(t.get(), t.get(), bytes, ncclUint8, kRoot, comm, stream), ncclSuccess);
    // Out of place, floats: only the root's sendbuff is read.
    DeviceBuffer send = DeviceBuffer::of(rank == kRoot ? floats : std::vector<float>(kLarge, -1.0f));
    DeviceBuffer recv(kLarge * sizeof(float));
    ASSERT_EQ(ncclBroadcast(send.get(), recv.get(), kLarge, ncclFloat32, kRoot, comm, stream), ncclSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    ASSERT_EQ(async_error(comm), ncclSuccess) << ncclGetLastError(comm);
    EXPECT_TRUE(same_bytes(t.download<uint8_t>(), data(kRoot, bytes))) << "rank " << rank;
    EXPECT_TRUE(same_bytes(recv.download<float>(), floats)) << "rank " << rank;
  });
}

TEST_F(NcclShim, AllGatherInAndOutOfPlace) {
  constexpr int kRanks = 3;
  auto part = [](int r, size_t n) {
    std::vector<int64_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i) * 1000 + r;
    return v;
  };
  const size_t n = (size_t{1} << 17) + 3;  // int64: just past one chunk
  std::vector<int64_t> want;
  for (int r = 0; r < kRanks; ++r) {
    const std::vector<int64_t> p = part(r, n);
    want.insert(want.end(), p.begin(), p.end());
  }
  with_ranks(kRanks, [&](int rank, ncclComm_t comm, cudaStream_t stream) {
    DeviceBuffer send = DeviceBuffer::of(part(rank, n));
    DeviceBuffer out(kRanks * n * sizeof(int64_t));
    ASSERT_EQ(ncclAllGather(send.get(), out.get(), n, ncclInt64, comm, stream), ncclSuccess);
    // In place: sendbuff is this rank's part of recvbuff.
    DeviceBuffer in_place(kRanks * n * sizeof(int64_t));
    in_place.upload(part(rank, n), static_cast<size_t>(rank) * n * sizeof(int64_t));
    void* mine = static_cast<char*>(in_place.get()) + static_cast<size_t>(rank) * n * sizeof(int64_t);
    ASSERT_EQ(ncclAllGather(mine, in_place.get(), n, ncclInt64, comm, stream), ncclSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    ASSERT_EQ(async_error(comm), ncclSuccess) << ncclGetLastError(comm);
    EXPECT_TRUE(same_bytes(out.download<int64_t>(), want)) << "rank " << rank;
    EXPECT_TRUE(same_bytes(in_place.download<int64_t>(), want)) << "rank " << rank;
  });
}

// ---- what dtrain can get wrong --------------------------------------------------------

TEST_F(NcclShim, MismatchedCollectiveFailsOnEveryRankNamingBoth) {
  const std::string want =
      "collective #2: rank 0 called ncclAllReduce(1024 x float32, sum), rank 1 called ncclBroadcast(10 x uint8, "
      "root 0)";
  with_ranks(2, [&](int rank, ncclComm_t comm, cudaStream_t stream) {
    DeviceBuffer b(1024 * sizeof(float));
    ASSERT_EQ(ncclAllReduce(b.get(), b.get(), 1, ncclFloat32, ncclMax, comm, stream), ncclSuccess);
    // Both calls are well-formed on their own: the disagreement shows when they meet.
    if (rank == 0) {
      ASSERT_EQ(ncclAllReduce(b.get(), b.get(), 1024, ncclFloat32, ncclSum, comm, stream), ncclSuccess);
    } else {
      ASSERT_EQ(ncclBroadcast(b.get(), b.get(), 10, ncclUint8, 0, comm, stream), ncclSuccess);
    }
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(async_error(comm), ncclInvalidUsage) << "rank " << rank;
    EXPECT_NE(std::string(ncclGetLastError(comm)).find(want), std::string::npos) << ncclGetLastError(comm);
    // Sticky: the next call on the failed communicator fails at once.
    EXPECT_EQ(ncclAllReduce(b.get(), b.get(), 1, ncclFloat32, ncclSum, comm, stream), ncclInvalidUsage);
    EXPECT_NE(std::string(ncclGetLastError(nullptr)).find("has failed"), std::string::npos);
  });
}

TEST_F(NcclShim, TwoRanksOnOneDeviceAreRefused) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      ASSERT_EQ(cudaSetDevice(0), cudaSuccess);  // a launcher that gave both ranks one device
      ncclComm_t comm = nullptr;
      EXPECT_EQ(ncclCommInitRank(&comm, 2, id, r), ncclInvalidUsage);
      EXPECT_EQ(comm, nullptr);
      EXPECT_NE(std::string(ncclGetLastError(nullptr)).find("Duplicate GPU detected: rank 0 and rank 1 both on cuda:0 "
                                                            "of host "),
                std::string::npos)
          << ncclGetLastError(nullptr);
    });
  }
  for (auto& t : threads) t.join();
}

TEST_F(NcclShim, RankThatNeverJoinsTimesOut) {
  setenv(kTimeoutVar, "0.5", 1);
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ncclComm_t comm = nullptr;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ncclCommInitRank(&comm, 3, id, 1), ncclSystemError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_NE(std::string(ncclGetLastError(nullptr)).find("waiting for ranks 0, 2 to join"), std::string::npos)
      << ncclGetLastError(nullptr);
}

TEST_F(NcclShim, RankThatSkipsACollectiveTimesOut) {
  setenv(kTimeoutVar, "0.5", 1);
  with_ranks(2, [](int rank, ncclComm_t comm, cudaStream_t stream) {
    if (rank == 1) return;  // never issues the all-reduce
    DeviceBuffer b(8 * sizeof(float));
    ASSERT_EQ(ncclAllReduce(b.get(), b.get(), 8, ncclFloat32, ncclSum, comm, stream), ncclSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(async_error(comm), ncclSystemError);
    EXPECT_NE(std::string(ncclGetLastError(comm))
                  .find("collective #1 ncclAllReduce(8 x float32, sum) on rank 0: rank 1 of 2 did not arrive"),
              std::string::npos)
        << ncclGetLastError(comm);
  });
}

TEST_F(NcclShim, AbortStopsACollectiveWaitingForAPeer) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  std::thread peer([&] {
    ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
    ncclComm_t comm = nullptr;
    ASSERT_EQ(ncclCommInitRank(&comm, 2, id, 1), ncclSuccess) << ncclGetLastError(nullptr);
    EXPECT_EQ(ncclCommDestroy(comm), ncclSuccess);  // issues nothing
  });
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ncclComm_t comm = nullptr;
  ASSERT_EQ(ncclCommInitRank(&comm, 2, id, 0), ncclSuccess) << ncclGetLastError(nullptr);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  {
    DeviceBuffer b(64);
    ASSERT_EQ(ncclAllReduce(b.get(), b.get(), 16, ncclFloat32, ncclSum, comm, stream), ncclSuccess);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(ncclCommAbort(comm), ncclSuccess);  // well before the 60 s timeout
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  }
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
  peer.join();
}

TEST_F(NcclShim, CallTimeChecks) {
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  DeviceBuffer other_device(64);
  cudaStream_t other_stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&other_stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);

  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclUniqueId zero{};
  ncclComm_t comm = nullptr;
  EXPECT_EQ(ncclCommInitRank(&comm, 0, id, 0), ncclInvalidArgument);
  EXPECT_EQ(ncclCommInitRank(&comm, 2, id, 2), ncclInvalidArgument);
  EXPECT_EQ(ncclCommInitRank(&comm, 1, zero, 0), ncclInvalidArgument);
  ASSERT_EQ(ncclCommInitRank(&comm, 1, id, 0), ncclSuccess) << ncclGetLastError(nullptr);
  int count = 0, rank = -1;
  EXPECT_EQ(ncclCommCount(comm, &count), ncclSuccess);
  EXPECT_EQ(ncclCommUserRank(comm, &rank), ncclSuccess);
  EXPECT_EQ(count, 1);
  EXPECT_EQ(rank, 0);

  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer b(64);
  std::vector<float> host(16);
  auto refused = [](ncclResult_t got, ncclResult_t want, const char* says) {
    EXPECT_EQ(got, want) << says;
    EXPECT_NE(std::string(ncclGetLastError(nullptr)).find(says), std::string::npos) << ncclGetLastError(nullptr);
  };
  refused(ncclAllReduce(host.data(), b.get(), 16, ncclFloat32, ncclSum, comm, stream), ncclInvalidArgument,
          "sendbuff");
  refused(ncclAllReduce(b.get(), host.data(), 16, ncclFloat32, ncclSum, comm, stream), ncclInvalidArgument,
          "recvbuff");
  refused(ncclAllReduce(b.get(), other_device.get(), 16, ncclFloat32, ncclSum, comm, stream), ncclInvalidArgument,
          "recvbuff");
  refused(ncclAllReduce(b.get(), b.get(), 17, ncclFloat32, ncclSum, comm, stream), ncclInvalidArgument,
          "ncclAllReduce");
  refused(ncclAllReduce(b.get(), b.get(), 16, ncclFloat16, ncclSum, comm, stream), ncclInvalidArgument, "float16");
  refused(ncclAllReduce(b.get(), static_cast<float*>(b.get()) + 1, 8, ncclFloat32, ncclSum, comm, stream),
          ncclInvalidArgument, "overlap");
  refused(ncclAllReduce(b.get(), b.get(), 16, static_cast<ncclDataType_t>(12), ncclSum, comm, stream),
          ncclInvalidArgument, "datatype");
  refused(ncclAllReduce(b.get(), b.get(), 16, ncclFloat32, static_cast<ncclRedOp_t>(7), comm, stream),
          ncclInvalidArgument, "reduction op 7");
  refused(ncclBroadcast(b.get(), b.get(), 16, ncclFloat32, 1, comm, stream), ncclInvalidArgument, "root 1");
  refused(ncclAllGather(b.get(), b.get(), 16, ncclFloat16, comm, stream), ncclInvalidArgument, "float16");
  refused(ncclAllReduce(b.get(), b.get(), 16, ncclFloat32, ncclSum, comm, other_stream), ncclInvalidUsage,
          "cuda:1");
  refused(ncclAllReduce(b.get(), b.get(), 16, ncclFloat32, ncclSum, nullptr, stream), ncclInvalidArgument, "comm");

  // None of the refused calls reached the other ranks' (here: none) sequence: this one is #1.
  b.upload(std::vector<float>(16, 2.5f));
  ASSERT_EQ(ncclAllReduce(b.get(), b.get(), 16, ncclFloat32, ncclProd, comm, stream), ncclSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(async_error(comm), ncclSuccess);
  EXPECT_TRUE(same_bytes(b.download<float>(), std::vector<float>(16, 2.5f)));
  EXPECT_NE(std::string(ncclGetErrorString(ncclInvalidUsage)).find("ncclInvalidUsage"), std::string::npos);

  EXPECT_EQ(ncclCommDestroy(comm), ncclSuccess);
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(other_stream), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
}

TEST_F(NcclShim, UniqueIdsAreDistinct) {
  ncclUniqueId a, b;
  ASSERT_EQ(ncclGetUniqueId(&a), ncclSuccess);
  ASSERT_EQ(ncclGetUniqueId(&b), ncclSuccess);
  EXPECT_NE(std::memcmp(&a, &b, sizeof a), 0);
}

// ---- ranks as processes ----------------------------------------------------------------

// One rank's all-reduce; 0 when the result is right, else which step failed.
int process_rank(const ncclUniqueId& id, int rank) {
  if (cudaSetDevice(rank) != cudaSuccess) return 10;
  ncclComm_t comm = nullptr;
  if (ncclCommInitRank(&comm, 2, id, rank) != ncclSuccess) return 11;
  cudaStream_t stream = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) return 12;
  std::vector<float> mine(kLarge), want(kLarge);
  for (size_t i = 0; i < kLarge; ++i) {
    mine[i] = Type<float>::make(rank, i);
    want[i] = Type<float>::make(0, i) + Type<float>::make(1, i);
  }
  int status = 0;
  {
    DeviceBuffer b = DeviceBuffer::of(mine);
    if (ncclAllReduce(b.get(), b.get(), kLarge, ncclFloat32, ncclSum, comm, stream) != ncclSuccess) status = 13;
    if (!status && cudaStreamSynchronize(stream) != cudaSuccess) status = 14;
    ncclResult_t e = ncclInternalError;
    if (!status && (ncclCommGetAsyncError(comm, &e) != ncclSuccess || e != ncclSuccess)) status = 15;
    if (!status && !same_bytes(b.download<float>(), want)) status = 16;
  }
  if (ncclCommDestroy(comm) != ncclSuccess && !status) status = 17;
  cudaStreamDestroy(stream);
  return status;
}

TEST_F(NcclShim, RanksAsProcesses) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  // Fork before this test's first CUDA call in either process; the child reports by its
  // exit status (no gtest in the child).
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(process_rank(id, 1));
  EXPECT_EQ(process_rank(id, 0), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child rank died (status " << status << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child rank failed (process_rank's step code)";
}

}  // namespace
