// ReducerOptions::overlap = false: the hooks only fill the buckets, every all-reduce
// starts in finalize() (after backward), in bucket order, and the training result is
// bitwise that of the overlapping Reducer.
#include <gtest/gtest.h>

#include <atomic>

#include "tests/distributed/cases.h"
#include "tests/distributed/threads_runner.h"

namespace dtrain::dist {
namespace {

using testing::run_ranks;

// Records, for every all_reduce, its element count and whether this rank's backward had
// returned when it began.
class RecordingGroup : public ProcessGroup {
 public:
  struct Call {
    int64_t numel;
    bool after_backward;
  };
  explicit RecordingGroup(ProcessGroup& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return "recording " + inner_.backend(); }
  WorkPtr all_reduce(const Tensor& t, ReduceOp op) override {
    calls.push_back({t.numel(), backward_done});
    return inner_.all_reduce(t, op);
  }
  WorkPtr broadcast(const Tensor& t, int root) override { return inner_.broadcast(t, root); }
  WorkPtr all_gather(const Tensor& in, const Tensor& out) override { return inner_.all_gather(in, out); }
  WorkPtr barrier() override { return inner_.barrier(); }

  std::vector<Call> calls;
  bool backward_done = false;

 private:
  ProcessGroup& inner_;
};

// One replica: the MLP, its Reducer (on a recording group) and SGD.
struct Replica {
  RecordingGroup group;
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<Reducer> reducer;
  std::unique_ptr<optim::SGD> opt;

  Replica(ProcessGroup& inner, bool overlap) : group(inner), model(cases::make_mlp(7)) {
    ReducerOptions o{64, 256};  // several buckets even for the tiny MLP
    o.overlap = overlap;
    reducer = std::make_unique<Reducer>(group, model->named_parameters(), o);
    opt = std::make_unique<optim::SGD>(model->named_parameters(), optim::SGD::Options{.lr = 0.1, .momentum = 0.9});
  }

  // One step on this rank's rows of the global batch, in `micro` micro-batches.
  void step(int step, int micro) {
    const int world = group.size();
    const int64_t rows = 4;
    auto [gx, gy] = cases::global_batch(step, rows * world);
    Tensor x = gx.rows(group.rank() * rows, rows), y = gy.rows(group.rank() * rows, rows);
    group.calls.clear();
    opt->zero_grad();
    const int64_t mrows = rows / micro;
    for (int m = 0; m < micro; ++m) {
      reducer->set_sync(m == micro - 1);
      group.backward_done = false;
      autograd::Tape tape;
      Tensor loss;
      {
        autograd::GradRecorder rec(tape);
        loss = fn::scale(fn::softmax_cross_entropy((*model)(x.rows(m * mrows, mrows)), y.rows(m * mrows, mrows)),
                         1.0 / micro);
      }
      tape.backward(loss);
      group.backward_done = true;
    }
    reducer->finalize();
    opt->step();
  }

  std::vector<std::vector<float>> values() const {
    std::vector<std::vector<float>> out;
    for (const Tensor& p : model->parameters()) out.push_back(p.to_vector<float>());
    return out;
  }
};

TEST(ReducerOverlapOption, WithoutOverlapEveryAllReduceStartsAfterBackwardAndResultsAreIdentical) {
  run_ranks(2, [](ProcessGroup& g) {
    Replica overlapped(g, true), deferred(g, false);
    const auto& buckets = deferred.reducer->buckets();
    DT_CASE_CHECK(buckets.size() >= 3, "expected several buckets: ", deferred.reducer->layout());
    DT_CASE_CHECK(overlapped.reducer->layout() == deferred.reducer->layout(), "the option changes no layout");
    for (int step = 0; step < 3; ++step) {
      const int micro = step == 2 ? 2 : 1;  // the last step accumulates over two micro-batches
      overlapped.step(step, micro);
      deferred.step(step, micro);
      DT_CASE_CHECK(deferred.group.calls.size() == buckets.size(), "step ", step, ": one all_reduce per bucket, got ",
                    deferred.group.calls.size());
      for (size_t i = 0; i < deferred.group.calls.size(); ++i) {
        DT_CASE_CHECK(deferred.group.calls[i].numel == static_cast<int64_t>(buckets[i].bytes / 4), "step ", step,
                      ": call ", i, " reduces bucket ", i, " (in order)");
        DT_CASE_CHECK(deferred.group.calls[i].after_backward, "step ", step, ": bucket ", i,
                      " started before backward ended with overlap = false");
      }
      // The default still overlaps (the contrast this option exists for).
      DT_CASE_CHECK(!overlapped.group.calls.at(0).after_backward, "step ", step,
                    ": with overlap = true the first bucket starts inside backward");
      const auto a = overlapped.values(), b = deferred.values();
      for (size_t k = 0; k < a.size(); ++k) {
        DT_CASE_CHECK(a[k] == b[k], "step ", step, ": parameter ", k, " differs between overlap = true and false");
      }
    }
  });
}

}  // namespace
}  // namespace dtrain::dist
