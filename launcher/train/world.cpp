// World set-up: see world.h.
#include "launcher/train/world.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/runtime.h"
#include "core/tensor.h"
#include "launcher/control/watched_group.h"

namespace dtrain::launcher {

namespace {

// Only the main thread calls MPI: the trainer issues every collective, the reducer
// launches buckets from autograd ready-hooks that run on the thread calling backward,
// and the loader's worker threads never touch MPI. FUNNELED is therefore enough, and
// cheaper than MULTIPLE in Open MPI.
constexpr int kThreadLevel = MPI_THREAD_FUNNELED;

void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  DT_THROW(DistributedError, call, " failed: ", std::string(msg, len));
}
#define WORLD_MPI(call) mpi_check((call), #call)

void* handle(MPI_Comm c) { return reinterpret_cast<void*>(c); }  // Open MPI: a pointer

std::string ranks_text(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

// A fixed-width field for MPI_Allgather: names longer than this are cut.
constexpr int kNameField = 256;

std::vector<std::string> gather_names(const std::string& mine) {
  int size = 0;
  WORLD_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size));
  std::vector<char> field(kNameField, '\0'), all(static_cast<size_t>(size) * kNameField);
  std::memcpy(field.data(), mine.data(), std::min<size_t>(mine.size(), kNameField - 1));
  WORLD_MPI(MPI_Allgather(field.data(), kNameField, MPI_CHAR, all.data(), kNameField, MPI_CHAR, MPI_COMM_WORLD));
  std::vector<std::string> out;
  for (int r = 0; r < size; ++r) out.emplace_back(all.data() + static_cast<size_t>(r) * kNameField);
  return out;
}

}  // namespace

std::string describe_placement(const std::vector<std::string>& hosts, const std::vector<std::string>& devices) {
  std::vector<std::string> order;
  for (const auto& h : hosts) {
    if (std::find(order.begin(), order.end(), h) == order.end()) order.push_back(h);
  }
  const bool show_devices = std::any_of(devices.begin(), devices.end(), [](const auto& d) { return d != "cpu"; });
  std::string out;
  for (const auto& h : order) {
    std::vector<int> ranks;
    for (size_t r = 0; r < hosts.size(); ++r) {
      if (hosts[r] == h) ranks.push_back(static_cast<int>(r));
    }
    std::string list;
    for (size_t i = 0; i < ranks.size();) {
      size_t j = i;
      while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
      if (i > 0) list += ", ";
      list += std::to_string(ranks[i]);
      if (j > i) {
        list += '-';
        list += std::to_string(ranks[j]);
      }
      i = j + 1;
    }
    if (!out.empty()) out += "; ";
    out += h;
    out += ranks.size() == 1 ? ": rank " : ": ranks ";
    out += list;
    if (show_devices) {
      for (size_t i = 0; i < ranks.size(); ++i) {
        out += i ? ", " : " on ";
        out += static_cast<size_t>(ranks[i]) < devices.size() ? devices[ranks[i]] : "?";
      }
    }
  }
  return out;
}

World::World(const std::string& device_kind) {
  try {
    init(device_kind);
  } catch (...) {
    // The set-up errors below are collective (every rank throws), so finalizing here
    // lets every process exit cleanly instead of mpirun reporting a missing finalize.
    group_.reset();
    control_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
    throw;
  }
}

World::World(std::unique_ptr<dist::ProcessGroup> group, std::unique_ptr<dist::ProcessGroup> control, Device device)
    : rank_(group->rank()), size_(group->size()), local_rank_(group->rank()), local_size_(group->size()),
      thread_level_(MPI_THREAD_FUNNELED), host_("localhost"),
      placement_(describe_placement(std::vector<std::string>(static_cast<size_t>(size_), host_),
                                    std::vector<std::string>(static_cast<size_t>(size_), device.str()))),
      device_(device), group_(std::move(group)),
      control_(std::move(control)) {
  DT_CHECK(control_->rank() == rank_ && control_->size() == size_, "World: the control group is rank ",
           control_->rank(), " of ", control_->size(), ", the gradient group rank ", rank_, " of ", size_);
  group_ = control::watch(std::move(group_), *progress_);
  control_ = control::watch(std::move(control_), *progress_);
}

void World::init(const std::string& device_kind) {
  int initialized = 0;
  WORLD_MPI(MPI_Initialized(&initialized));
  if (!initialized) {
    WORLD_MPI(MPI_Init_thread(nullptr, nullptr, kThreadLevel, &thread_level_));
    owns_mpi_ = true;
  } else {
    WORLD_MPI(MPI_Query_thread(&thread_level_));
  }
  if (thread_level_ < kThreadLevel) {
    DT_THROW(DistributedError, "MPI granted thread level ", thread_level(),
             " but dtrain needs at least funneled (the loader runs threads next to MPI); "
             "use an MPI build with thread support");
  }
  WORLD_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  WORLD_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm local;
  WORLD_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  WORLD_MPI(MPI_Comm_rank(local, &local_rank_));
  WORLD_MPI(MPI_Comm_size(local, &local_size_));
  MPI_Comm_free(&local);
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  WORLD_MPI(MPI_Get_processor_name(name, &len));
  host_.assign(name, len);

  // Errors from here on are collective: every rank learns that set-up failed.
  control_ = control::watch(dist::make_mpi_group(handle(MPI_COMM_WORLD)), *progress_);

  // The same device kind everywhere: an MPI rank and a NCCL rank cannot reduce together.
  int want_cuda = device_kind == "cuda" ? 1 : 0;
  std::vector<int> kinds(size_);
  WORLD_MPI(MPI_Allgather(&want_cuda, 1, MPI_INT, kinds.data(), 1, MPI_INT, MPI_COMM_WORLD));
  std::vector<int> cpu_ranks, cuda_ranks;
  for (int r = 0; r < size_; ++r) (kinds[r] ? cuda_ranks : cpu_ranks).push_back(r);
  if (!cpu_ranks.empty() && !cuda_ranks.empty()) {
    DT_THROW(DistributedError, "ranks disagree on the device: ", ranks_text(cpu_ranks), " chose cpu, ",
             ranks_text(cuda_ranks), " chose cuda; give every rank the same config");
  }

  std::exception_ptr error;
  if (want_cuda) {
    std::string why;
    int n = cuda::device_count(&why);
    try {
      if (n == 0) {
        DT_THROW(DeviceError, "device = cuda, but host ", host_, " has no usable CUDA device (", why, ")");
      }
      if (n < local_size_) {
        DT_THROW(DeviceError, "device = cuda with ", local_size_, " ranks on host ", host_, ", but it has only ", n,
                 " CUDA device(s): start at most one rank per GPU on each node");
      }
      cuda::set_device(local_rank_);
      device_ = Device::cuda(local_rank_);
    } catch (...) {
      error = std::current_exception();
    }
  }
  check_all_ok(error, "device set-up");

  // Where every rank runs, for the run header: a job that landed on the wrong nodes, or
  // with its local ranks on the wrong GPUs, shows it in its first lines.
  const std::vector<std::string> hosts = gather_names(host_);
  placement_ = describe_placement(hosts, gather_names(device_.str()));
  std::vector<std::string> distinct(hosts);
  std::sort(distinct.begin(), distinct.end());
  hosts_ = static_cast<int>(std::unique(distinct.begin(), distinct.end()) - distinct.begin());

  if (want_cuda) {
    // NCCL bootstrap: rank 0's unique id travels to every rank over MPI.
    std::vector<uint8_t> id(128);
    if (rank_ == 0) {
      try {
        id = dist::nccl_unique_id();
      } catch (...) {
        error = std::current_exception();
      }
    }
    check_all_ok(error, "NCCL bootstrap");
    DT_CHECK(id.size() == 128, "nccl_unique_id returned ", id.size(), " bytes, expected 128");
    WORLD_MPI(MPI_Bcast(id.data(), 128, MPI_BYTE, 0, MPI_COMM_WORLD));
    group_ = control::watch(dist::make_nccl_group(rank_, size_, local_rank_, id), *progress_);
  } else {
    group_ = control::watch(dist::make_mpi_group(handle(MPI_COMM_WORLD)), *progress_);
  }
}

World::~World() {
  group_.reset();
  control_.reset();
  if (owns_mpi_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

std::string World::thread_level() const {
  switch (thread_level_) {
    case MPI_THREAD_SINGLE: return "single";
    case MPI_THREAD_FUNNELED: return "funneled";
    case MPI_THREAD_SERIALIZED: return "serialized";
    case MPI_THREAD_MULTIPLE: return "multiple";
  }
  return "unknown (" + std::to_string(thread_level_) + ")";
}

void World::check_all_ok(std::exception_ptr error, const std::string& phase) {
  // Over the control group (MPI_COMM_WORLD's duplicate under MPI), so that a world of
  // threads agrees the same way.
  Tensor mine = Tensor::from_vector<int64_t>({error ? 0 : 1}, {1});
  Tensor all = Tensor::zeros({static_cast<int64_t>(size_)}, DType::I64);
  control_->all_gather(mine, all)->wait();
  const std::vector<int64_t> ok = all.to_vector<int64_t>();
  std::vector<int> failed;
  for (int r = 0; r < size_; ++r) {
    if (!ok[static_cast<size_t>(r)]) failed.push_back(r);
  }
  if (failed.empty()) return;
  if (error) std::rethrow_exception(error);
  DT_THROW(DistributedError, phase, " failed on ", ranks_text(failed),
           "; this rank stops too (that rank's message says why)");
}

std::string World::share_from_rank0(const std::string& text) {
  Tensor n = Tensor::from_vector<int64_t>({static_cast<int64_t>(text.size())}, {1});
  control_->broadcast(n, 0)->wait();
  const int64_t bytes = n.to_vector<int64_t>()[0];
  Tensor t = Tensor::zeros({bytes}, DType::U8);
  if (rank_ == 0 && bytes > 0) std::memcpy(t.raw_data(), text.data(), static_cast<size_t>(bytes));
  control_->broadcast(t, 0)->wait();
  return std::string(static_cast<const char*>(t.raw_data()), static_cast<size_t>(bytes));
}

void World::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code);  // MPI_Abort does not return; a world without MPI ends here
}

}  // namespace dtrain::launcher
