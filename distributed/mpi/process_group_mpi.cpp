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
//
// Note [Open MPI's iallreduce algorithm]: Open MPI's non-blocking collectives come from
// its libnbc component, whose MPI_Iallreduce picks the binomial algorithm (reduce to
// rank 0, then broadcast: the whole buffer travels twice, one after the other, and one
// rank does all the arithmetic) whenever the buffer is MPI_IN_PLACE or there are fewer
// than 4 ranks, i.e. always for dtrain's buckets. The blocking MPI_Allreduce (the tuned
// component) uses reduce-scatter + all-gather for large buffers, and on 2 ranks was
// about 1.5x faster from 256 KiB on (benchmarks/README.md, bench_allreduce). libnbc has the same algorithm
// ("rabenseifner", coll_libnbc_iallreduce_algorithm = 3), still non-blocking, and with
// it the group matches MPI_Allreduce's bandwidth. So each all_reduce sets that control
// variable (through the MPI tool interface, MPI_T) for the duration of its
// MPI_Iallreduce call, which is when libnbc builds its schedule, and restores it; other
// MPI_Iallreduce callers in the process keep Open MPI's default. A user who sets the
// variable (mpirun --mca coll_libnbc_iallreduce_algorithm N, or
// OMPI_MCA_coll_libnbc_iallreduce_algorithm=N) keeps their choice; other MPI
// implementations have no such variable and are left alone.
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

// libnbc's iallreduce algorithm (Note [Open MPI's iallreduce algorithm]), set around the
// group's own MPI_Iallreduce calls. Inactive (a no-op) without that control variable,
// when the user set it, or when the tool interface refuses.
class IallreduceAlgorithm {
 public:
  static constexpr int kRabenseifner = 3;  // reduce-scatter + all-gather

  IallreduceAlgorithm() {
    int provided = 0;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return;
    tool_ = true;
    int index = -1, count = 0, value = 0;
    MPI_Datatype type = MPI_DATATYPE_NULL;
    if (MPI_T_cvar_get_index("coll_libnbc_iallreduce_algorithm", &index) != MPI_SUCCESS) return;
    if (MPI_T_cvar_get_info(index, nullptr, nullptr, nullptr, &type, nullptr, nullptr, nullptr, nullptr, nullptr) !=
            MPI_SUCCESS ||
        type != MPI_INT) {
      return;
    }
    if (MPI_T_cvar_handle_alloc(index, nullptr, &handle_, &count) != MPI_SUCCESS) return;
    // 0 is "ignore" (libnbc decides): anything else is the user's choice.
    if (count != 1 || MPI_T_cvar_read(handle_, &value) != MPI_SUCCESS || value != 0) return;
    // Check that it can be written (and leave it as it was).
    if (MPI_T_cvar_write(handle_, &kRabenseifner) != MPI_SUCCESS) return;
    active_ = MPI_T_cvar_write(handle_, &value) == MPI_SUCCESS;
  }
  ~IallreduceAlgorithm() {
    if (handle_ != MPI_T_CVAR_HANDLE_NULL && !mpi_finalized()) MPI_T_cvar_handle_free(&handle_);
    if (tool_) MPI_T_finalize();
  }
  IallreduceAlgorithm(const IallreduceAlgorithm&) = delete;
  IallreduceAlgorithm& operator=(const IallreduceAlgorithm&) = delete;

  // Calls `start` (which starts one MPI_Iallreduce) with the algorithm set.
  template <typename F>
  int with_algorithm(F&& start) {
    if (!active_) return start();
    static constexpr int kDefault = 0;
    MPI_T_cvar_write(handle_, &kRabenseifner);
    const int rc = start();
    MPI_T_cvar_write(handle_, &kDefault);
    return rc;
  }

 private:
  bool tool_ = false;    // MPI_T initialized (by this object)
  bool active_ = false;  // the variable exists, was at its default and is writable
  MPI_T_cvar_handle handle_ = MPI_T_CVAR_HANDLE_NULL;
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
    const int count = count_of(t);
    const MPI_Datatype type = mpi_type(t.dtype());
    MPI_CHECK(algorithm_.with_algorithm(
        [&] { return MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), count, type, mop, comm_, work->request()); }));
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
  IallreduceAlgorithm algorithm_;  // Note [Open MPI's iallreduce algorithm]
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
