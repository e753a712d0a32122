// The NCCL backend: CUDA tensors, collectives on the group's own stream.
//
// Ordering without host synchronization (llm.c's multi_gpu_async_reduce_gradient idea):
// before each collective an event is recorded on the caller's current stream and the
// NCCL stream waits on it, so the collective reads the tensor only after the compute that
// wrote it; after the collective an event is recorded on the NCCL stream. Work::wait()
// makes the caller's current stream wait on that event (the host goes on);
// synchronize() blocks the host. The Work keeps its tensors alive, and the compute
// stream is ordered after the collective by wait(), as Note [Caching allocator and
// streams] (core/allocator.h) requires before a tensor's memory may be reused.
//
// Average uses ncclAvg (NCCL >= 2.10), so no extra kernel runs.
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <cstring>

#include "core/runtime.h"
#include "core/stream.h"
#include "distributed/checks.h"
#include "distributed/process_group.h"

#define NCCL_CHECK(call)                                                                                   \
  do {                                                                                                     \
    ncclResult_t dt_nccl_rc_ = (call);                                                                     \
    if (dt_nccl_rc_ != ncclSuccess) {                                                                      \
      DT_THROW(::dtrain::DistributedError, #call, " failed: ", ncclGetErrorString(dt_nccl_rc_), " (",       \
               ncclGetLastError(nullptr), "); set NCCL_DEBUG=INFO for details");                           \
    }                                                                                                      \
  } while (0)

namespace dtrain::dist {
namespace {

constexpr const char* kBackend = "nccl";

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::BF16: return ncclBfloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::U8: return ncclUint8;
  }
  DT_THROW(ValueError, "nccl: no NCCL datatype for ", dtype_name(d));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Average: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

class NcclWork : public Work {
 public:
  NcclWork(ncclComm_t comm, Device device, Event done, std::vector<Tensor> keep)
      : comm_(comm), device_(device), done_(std::move(done)), keep_(std::move(keep)) {}

  bool is_completed() override {
    check_async_error();
    return done_.query();
  }
  void wait() override {
    check_async_error();
    done_.wait(Stream::current(device_));
  }
  void synchronize() override {
    done_.synchronize();
    check_async_error();
  }

 private:
  void check_async_error() {
    ncclResult_t async = ncclSuccess;
    ncclResult_t rc = ncclCommGetAsyncError(comm_, &async);
    if (rc == ncclSuccess) rc = async;
    if (rc != ncclSuccess && rc != ncclInProgress) {
      DT_THROW(DistributedError, "nccl collective failed: ", ncclGetErrorString(rc), " (", ncclGetLastError(comm_),
               "); set NCCL_DEBUG=INFO for details");
    }
  }
  ncclComm_t comm_;
  Device device_;
  Event done_;
  std::vector<Tensor> keep_;
};

class NcclGroup : public ProcessGroup {
 public:
  NcclGroup(int rank, int size, int device, const std::vector<uint8_t>& unique_id)
      : rank_(rank), size_(size), device_(Device::cuda(device)) {
    DT_CHECK(size >= 1 && rank >= 0 && rank < size, "make_nccl_group: rank ", rank, " is not in a group of ", size);
    DT_CHECK(unique_id.size() == sizeof(ncclUniqueId), "make_nccl_group: the unique id has ", unique_id.size(),
             " bytes, expected ", sizeof(ncclUniqueId), " (from nccl_unique_id() on rank 0)");
    cuda::check_device(device);
    cuda::set_device(device);
    ncclUniqueId id;
    std::memcpy(&id, unique_id.data(), sizeof(id));
    NCCL_CHECK(ncclCommInitRank(&comm_, size, id, rank));
    stream_ = Stream::create(device_);
    scratch_ = Tensor::zeros({1}, DType::F32, device_);
  }
  ~NcclGroup() override {
    if (comm_ && !aborted_.load()) {
      stream_.synchronize();
      ncclCommDestroy(comm_);
    }
  }
  // The watchdog's call, from its thread while this rank may be blocked in a collective:
  // ncclCommAbort releases it (unverified on a GPU while none has been lent).
  void abort() override {
    if (comm_ && !aborted_.exchange(true)) ncclCommAbort(comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return kBackend; }
  Device device() const override { return device_; }

  WorkPtr all_reduce(const Tensor& t, ReduceOp op) override {
    detail::check_reduce(kBackend, t, op, DeviceKind::CUDA, /*allow_bf16=*/true);
    check_device(t);
    return launch({t}, [&](cudaStream_t s) {
      NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                               nccl_op(op), comm_, s));
    });
  }

  WorkPtr broadcast(const Tensor& t, int root) override {
    detail::check_broadcast(kBackend, t, root, size_, DeviceKind::CUDA);
    check_device(t);
    return launch({t}, [&](cudaStream_t s) {
      NCCL_CHECK(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, s));
    });
  }

  WorkPtr all_gather(const Tensor& in, const Tensor& out) override {
    detail::check_all_gather(kBackend, in, out, size_, DeviceKind::CUDA);
    check_device(in);
    return launch({in, out}, [&](cudaStream_t s) {
      NCCL_CHECK(ncclAllGather(in.raw_data(), out.raw_data(), in.nbytes(), ncclUint8, comm_, s));
    });
  }

  // NCCL has no barrier: a one-element all-reduce stands in for it. Its Work's
  // synchronize() blocks the host until every rank has arrived.
  WorkPtr barrier() override {
    return launch({scratch_}, [&](cudaStream_t s) {
      NCCL_CHECK(ncclAllReduce(scratch_.raw_data(), scratch_.raw_data(), 1, ncclFloat32, ncclSum, comm_, s));
    });
  }

 private:
  void check_device(const Tensor& t) const {
    DT_CHECK(t.device() == device_, "nccl: ", t.str(), " is not on this group's device ", device_.str());
  }

  template <typename Issue>
  WorkPtr launch(std::vector<Tensor> keep, Issue issue) {
    Event ready = Event::create(device_);
    ready.record(Stream::current(device_));
    ready.wait(stream_);
    issue(static_cast<cudaStream_t>(stream_.handle()));
    Event done = Event::create(device_);
    done.record(stream_);
    return std::make_shared<NcclWork>(comm_, device_, std::move(done), std::move(keep));
  }

  int rank_, size_;
  Device device_;
  ncclComm_t comm_ = nullptr;
  std::atomic<bool> aborted_{false};
  Stream stream_;
  Tensor scratch_;  // (1) f32, the barrier's operand
};

}  // namespace

std::unique_ptr<ProcessGroup> make_nccl_group(int rank, int size, int device, const std::vector<uint8_t>& unique_id) {
  return std::make_unique<NcclGroup>(rank, size, device, unique_id);
}

std::vector<uint8_t> nccl_unique_id() {
  ncclUniqueId id;
  NCCL_CHECK(ncclGetUniqueId(&id));
  std::vector<uint8_t> bytes(sizeof(id));
  std::memcpy(bytes.data(), &id, sizeof(id));
  return bytes;
}

}  // namespace dtrain::dist
