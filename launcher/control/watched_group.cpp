// The process group the watchdog sees through: watched_group.h.
#include "launcher/control/watched_group.h"

#include <utility>

namespace dtrain::control {
namespace {

class WatchedWork : public dist::Work {
 public:
  WatchedWork(dist::WorkPtr inner, Progress& progress, uint64_t seq, CollectiveKind kind)
      : inner_(std::move(inner)), progress_(progress), seq_(seq), kind_(kind) {}

  bool is_completed() override {
    const bool done = inner_->is_completed();
    if (done) progress_.completed(seq_);
    return done;
  }
  void wait() override { waited([&] { inner_->wait(); }); }
  void synchronize() override { waited([&] { inner_->synchronize(); }); }

 private:
  // The phase while blocked is "waiting in <kind> #seq"; afterwards the one before.
  template <typename Wait>
  void waited(Wait wait) {
    const ProgressSnapshot before = progress_.snapshot();
    progress_.waiting(seq_, kind_);
    wait();
    progress_.completed(seq_);
    progress_.phase(before.phase == Phase::Collective ? Phase::Boundary : before.phase, before.detail);
  }
  dist::WorkPtr inner_;
  Progress& progress_;
  uint64_t seq_;
  CollectiveKind kind_;
};

class WatchedGroup : public dist::ProcessGroup {
 public:
  WatchedGroup(std::unique_ptr<dist::ProcessGroup> inner, Progress& progress)
      : inner_(std::move(inner)), progress_(progress) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string backend() const override { return inner_->backend(); }
  Device device() const override { return inner_->device(); }
  void abort() override { inner_->abort(); }

  dist::WorkPtr all_reduce(const Tensor& t, dist::ReduceOp op) override {
    return issued(CollectiveKind::AllReduce, [&] { return inner_->all_reduce(t, op); });
  }
  dist::WorkPtr broadcast(const Tensor& t, int root) override {
    return issued(CollectiveKind::Broadcast, [&] { return inner_->broadcast(t, root); });
  }
  dist::WorkPtr all_gather(const Tensor& in, const Tensor& out) override {
    return issued(CollectiveKind::AllGather, [&] { return inner_->all_gather(in, out); });
  }
  dist::WorkPtr barrier() override {
    return issued(CollectiveKind::Barrier, [&] { return inner_->barrier(); });
  }

 private:
  template <typename Issue>
  dist::WorkPtr issued(CollectiveKind kind, Issue issue) {
    const uint64_t seq = progress_.issued(kind);
    return std::make_shared<WatchedWork>(issue(), progress_, seq, kind);
  }
  std::unique_ptr<dist::ProcessGroup> inner_;
  Progress& progress_;
};

}  // namespace

std::unique_ptr<dist::ProcessGroup> watch(std::unique_ptr<dist::ProcessGroup> inner, Progress& progress) {
  return std::make_unique<WatchedGroup>(std::move(inner), progress);
}

}  // namespace dtrain::control
