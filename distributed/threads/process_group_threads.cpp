// The threads backend: ranks are threads of one process, for unit tests of everything
// above the transport (Reducer, agreement, the training loop) without mpirun.
//
// Design: the groups of one world share a Rendezvous. Each group numbers its calls
// 0, 1, 2, ...; call k of every rank meets in the Rendezvous's slot k (Note [Same call
// order] in process_group.h: calls are matched by position, as real backends do). The
// last rank to arrive checks that all ranks made the same call (kind, dtype, count,
// root), computes the result for everyone (reductions add contributions in rank order,
// so every rank gets bit-identical, deterministic values), marks the slot done and wakes
// the others. Every collective has therefore completed when it returns; the Work is
// already complete.
//
// A rank that waits longer than the timeout marks the slot failed with the ranks that
// never arrived; the ranks waiting in it, and any that arrive later, throw the same
// DistributedError. A mismatched call fails every rank at once. Neither case hangs.
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include "core/dispatch.h"
#include "distributed/checks.h"
#include "distributed/process_group.h"

namespace dtrain::dist {
namespace {

constexpr const char* kBackend = "threads";

struct Slot {
  explicit Slot(int world) : call(world), a(world), b(world), arrived(world, false) {}
  std::vector<std::string> call;  // per rank: what it called, for the same-call check
  std::vector<Tensor> a, b;       // per rank: the tensors (in place / in, out)
  std::vector<bool> arrived;
  int n_arrived = 0;
  int n_left = 0;
  bool done = false;
  std::string error;  // set when the collective failed (mismatch, timeout)
};

struct Rendezvous {
  Rendezvous(int w, double t) : world(w), timeout_seconds(t) {}
  const int world;
  const double timeout_seconds;
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::shared_ptr<Slot>> slots;  // by call number
};

std::string tensor_desc(const Tensor& t) { return dtype_name(t.dtype()) + " x " + std::to_string(t.numel()); }

std::string rank_list(const std::vector<int>& ranks) {
  std::ostringstream os;
  os << (ranks.size() == 1 ? "rank " : "ranks ");
  for (size_t i = 0; i < ranks.size(); ++i) os << (i ? ", " : "") << ranks[i];
  return os.str();
}

// Elementwise reduction of every rank's `a` into each of them, in rank order.
template <typename T>
void reduce_slot(Slot& s, ReduceOp op) {
  const int world = static_cast<int>(s.a.size());
  const size_t n = static_cast<size_t>(s.a[0].numel());
  std::vector<T> acc(s.a[0].data<T>(), s.a[0].data<T>() + n);
  for (int r = 1; r < world; ++r) {
    const T* x = s.a[r].data<T>();
    if (op == ReduceOp::Max) {
      for (size_t i = 0; i < n; ++i) acc[i] = x[i] > acc[i] ? x[i] : acc[i];
    } else {
      for (size_t i = 0; i < n; ++i) acc[i] = static_cast<T>(acc[i] + x[i]);
    }
  }
  if (op == ReduceOp::Average) {
    if constexpr (std::is_floating_point_v<T>) {
      for (size_t i = 0; i < n; ++i) acc[i] = static_cast<T>(acc[i] / static_cast<T>(world));
    }
  }
  for (int r = 0; r < world; ++r) std::memcpy(s.a[r].raw_data(), acc.data(), n * sizeof(T));
}

void reduce_any(Slot& s, ReduceOp op) {
  switch (s.a[0].dtype()) {
    case DType::F32: return reduce_slot<float>(s, op);
    case DType::F64: return reduce_slot<double>(s, op);
    case DType::I32: return reduce_slot<int32_t>(s, op);
    case DType::I64: return reduce_slot<int64_t>(s, op);
    case DType::U8: return reduce_slot<uint8_t>(s, op);
    case DType::BF16: break;
  }
  DT_THROW(ValueError, "threads all_reduce: unsupported dtype ", dtype_name(s.a[0].dtype()));
}

class ThreadsGroup : public ProcessGroup {
 public:
  ThreadsGroup(int rank, std::shared_ptr<Rendezvous> rv) : rank_(rank), rv_(std::move(rv)) {}
  int rank() const override { return rank_; }
  int size() const override { return rv_->world; }
  std::string backend() const override { return kBackend; }

  WorkPtr all_reduce(const Tensor& t, ReduceOp op) override {
    detail::check_reduce(kBackend, t, op, DeviceKind::CPU);
    std::string call = "all_reduce(" + reduce_op_name(op) + ") of " + tensor_desc(t);
    return meet(call, t, Tensor(), [op](Slot& s) { reduce_any(s, op); });
  }

  WorkPtr broadcast(const Tensor& t, int root) override {
    detail::check_broadcast(kBackend, t, root, size(), DeviceKind::CPU);
    std::string call = "broadcast from rank " + std::to_string(root) + " of " + tensor_desc(t);
    return meet(call, t, Tensor(), [root](Slot& s) {
      for (size_t r = 0; r < s.a.size(); ++r) {
        if (static_cast<int>(r) != root) std::memcpy(s.a[r].raw_data(), s.a[root].raw_data(), s.a[root].nbytes());
      }
    });
  }

  WorkPtr all_gather(const Tensor& in, const Tensor& out) override {
    detail::check_all_gather(kBackend, in, out, size(), DeviceKind::CPU);
    std::string call = "all_gather of " + tensor_desc(in);
    return meet(call, in, out, [](Slot& s) {
      const size_t bytes = s.a[0].nbytes();
      for (size_t r = 0; r < s.b.size(); ++r) {
        auto* dst = static_cast<uint8_t*>(s.b[r].raw_data());
        for (size_t k = 0; k < s.a.size(); ++k) std::memcpy(dst + k * bytes, s.a[k].raw_data(), bytes);
      }
    });
  }

  WorkPtr barrier() override {
    return meet("barrier", Tensor(), Tensor(), [](Slot&) {});
  }

 private:
  template <typename Compute>
  WorkPtr meet(const std::string& call, const Tensor& a, const Tensor& b, Compute compute) {
    Rendezvous& rv = *rv_;
    const uint64_t k = next_call_++;
    std::unique_lock<std::mutex> lock(rv.mu);
    std::shared_ptr<Slot>& entry = rv.slots[k];
    if (!entry) entry = std::make_shared<Slot>(rv.world);
    std::shared_ptr<Slot> slot = entry;
    Slot& s = *slot;
    auto depart = [&] {
      if (++s.n_left == rv.world) rv.slots.erase(k);
    };
    if (!s.error.empty()) {
      depart();
      DT_THROW(DistributedError, s.error);
    }
    s.call[rank_] = call;
    s.a[rank_] = a;
    s.b[rank_] = b;
    s.arrived[rank_] = true;
    if (++s.n_arrived == rv.world) {
      std::vector<int> differ;
      for (int r = 1; r < rv.world; ++r) {
        if (s.call[r] != s.call[0]) differ.push_back(r);
      }
      if (!differ.empty()) {
        std::ostringstream os;
        os << "threads collective #" << k << " differs across ranks: rank 0 called " << s.call[0];
        for (int r : differ) os << "; rank " << r << " called " << s.call[r];
        os << ". Every rank must issue the same collectives in the same order (Note [Same call order])";
        s.error = os.str();
      } else {
        try {
          compute(s);
        } catch (const std::exception& e) {
          s.error = std::string("threads ") + call + " failed: " + e.what();
        }
      }
      s.done = true;
      rv.cv.notify_all();
    } else {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(rv.timeout_seconds);
      bool finished = rv.cv.wait_until(lock, deadline, [&] { return s.done || !s.error.empty(); });
      if (!finished) {
        std::vector<int> missing;
        for (int r = 0; r < rv.world; ++r) {
          if (!s.arrived[r]) missing.push_back(r);
        }
        std::ostringstream os;
        os << "threads " << call << " (collective #" << k << ") timed out after " << rv.timeout_seconds
           << " s: " << rank_list(missing) << " of " << rv.world
           << " did not arrive. A rank skipped a collective or stopped; every rank must issue the same "
              "collectives in the same order (Note [Same call order])";
        s.error = os.str();
        rv.cv.notify_all();
      }
    }
    std::string error = s.error;
    s.a[rank_] = Tensor();
    s.b[rank_] = Tensor();
    depart();
    if (!error.empty()) DT_THROW(DistributedError, error);
    return std::make_shared<detail::CompletedWork>();
  }

  int rank_;
  std::shared_ptr<Rendezvous> rv_;
  uint64_t next_call_ = 0;
};

}  // namespace

std::vector<std::unique_ptr<ProcessGroup>> make_thread_groups(int world, double timeout_seconds) {
  DT_CHECK(world >= 1, "make_thread_groups: world size must be at least 1, got ", world);
  DT_CHECK(timeout_seconds > 0, "make_thread_groups: timeout must be positive, got ", timeout_seconds);
  auto rv = std::make_shared<Rendezvous>(world, timeout_seconds);
  std::vector<std::unique_ptr<ProcessGroup>> groups;
  for (int r = 0; r < world; ++r) groups.push_back(std::make_unique<ThreadsGroup>(r, rv));
  return groups;
}

}  // namespace dtrain::dist
