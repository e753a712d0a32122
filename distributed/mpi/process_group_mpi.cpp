// The MPI backend: CPU tensors, non-blocking collectives (MPI_Iallreduce, MPI_Ibcast,
// MPI_Iallgather, MPI_Ibarrier) so that the Reducer's all-reduces run while backward
// continues. The group works on its own duplicate of the caller's communicator, with
// MPI_ERRORS_RETURN so every failure becomes a DistributedError (MPI_CHECK).
//
// Progress: Open MPI advances non-blocking collectives only inside MPI calls. Work::
// is_completed() is MPI_Test, which is such a call; the Reducer tests its launched
// buckets from each ready-hook, so communication moves on while backward runs.
//
// Average is MPI_SUM followed, once the request has completed, by a scale by 1/size in
// place (in wait() or the is_completed() call that sees completion).
#include <type_traits>

#include "distributed/checks.h"
#include "distributed/mpi/mpi_check.h"
#include "distributed/process_group.h"

namespace dtrain::dist {
namespace {

constexpr const char* kBackend = "mpi";

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::U8: return MPI_UINT8_T;
    case DType::BF16: break;
  }
  DT_THROW(ValueError, "mpi: no MPI datatype for ", dtype_name(d));
}

int count_of(const Tensor& t) {
  DT_CHECK(t.numel() <= INT32_MAX, "mpi: ", t.str(), " has more than 2^31-1 elements; split it");
  return static_cast<int>(t.numel());
}

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

class MpiWork : public Work {
 public:
  // `keep` holds the buffers alive until the request completes; `average_over` > 0
  // divides `keep[0]` by it after completion.
  MpiWork(std::vector<Tensor> keep, int average_over) : keep_(std::move(keep)), average_over_(average_over) {}
  ~MpiWork() override {
    // The buffers must outlive the request: a Work dropped while in flight waits here
    // (without throwing) unless MPI is already gone.
    if (!done_ && request_ != MPI_REQUEST_NULL && !mpi_finalized()) MPI_Wait(&request_, MPI_STATUS_IGNORE);
  }
  MPI_Request* request() { return &request_; }

  bool is_completed() override {
    if (done_) return true;
    int flag = 0;
    MPI_CHECK(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE));
    if (flag) complete();
    return done_;
  }
  void wait() override {
    if (done_) return;
    MPI_CHECK(MPI_Wait(&request_, MPI_STATUS_IGNORE));
    complete();
  }

 private:
  void complete() {
    done_ = true;
    if (average_over_ > 0) detail::scale_in_place(keep_[0], 1.0 / average_over_);
  }
  std::vector<Tensor> keep_;
  int average_over_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

class MpiGroup : public ProcessGroup {
 public:
  explicit MpiGroup(MPI_Comm parent) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    DT_CHECK_AS(initialized && !mpi_finalized(), DistributedError,
                "make_mpi_group: MPI is not initialized (call MPI_Init_thread first, e.g. through the launcher's "
                "world setup)");
    MPI_CHECK(MPI_Comm_dup(parent, &comm_));
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiGroup() override {
    if (comm_ != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return kBackend; }

  WorkPtr all_reduce(const Tensor& t, ReduceOp op) override {
    detail::check_reduce(kBackend, t, op, DeviceKind::CPU);
    auto work = std::make_shared<MpiWork>(std::vector<Tensor>{t}, op == ReduceOp::Average ? size_ : 0);
    MPI_Op mop = op == ReduceOp::Max ? MPI_MAX : MPI_SUM;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), count_of(t), mpi_type(t.dtype()), mop, comm_,
                             work->request()));
    return work;
  }

  WorkPtr broadcast(const Tensor& t, int root) override {
    detail::check_broadcast(kBackend, t, root, size_, DeviceKind::CPU);
    auto work = std::make_shared<MpiWork>(std::vector<Tensor>{t}, 0);
    // Bytes, so that every dtype (bf16 included) can be broadcast.
    MPI_CHECK(MPI_Ibcast(t.raw_data(), byte_count(t), MPI_BYTE, root, comm_, work->request()));
    return work;
  }

  WorkPtr all_gather(const Tensor& in, const Tensor& out) override {
    detail::check_all_gather(kBackend, in, out, size_, DeviceKind::CPU);
    auto work = std::make_shared<MpiWork>(std::vector<Tensor>{in, out}, 0);
    MPI_CHECK(MPI_Iallgather(in.raw_data(), byte_count(in), MPI_BYTE, out.raw_data(), byte_count(in), MPI_BYTE,
                             comm_, work->request()));
    return work;
  }

  WorkPtr barrier() override {
    auto work = std::make_shared<MpiWork>(std::vector<Tensor>{}, 0);
    MPI_CHECK(MPI_Ibarrier(comm_, work->request()));
    return work;
  }

 private:
  static int byte_count(const Tensor& t) {
    DT_CHECK(t.nbytes() <= static_cast<size_t>(INT32_MAX), "mpi: ", t.str(), " is larger than 2 GiB; split it");
    return static_cast<int>(t.nbytes());
  }
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

// Open MPI's MPI_Comm is a pointer, MPICH's an int; a template so that only the branch
// for this MPI is compiled.
template <typename Comm>
Comm comm_from_handle(void* handle) {
  if constexpr (std::is_pointer_v<Comm>) {
    return reinterpret_cast<Comm>(handle);
  } else {
    return static_cast<Comm>(reinterpret_cast<intptr_t>(handle));
  }
}

}  // namespace

std::unique_ptr<ProcessGroup> make_mpi_group(void* mpi_comm) {
  return std::make_unique<MpiGroup>(comm_from_handle<MPI_Comm>(mpi_comm));
}

}  // namespace dtrain::dist
