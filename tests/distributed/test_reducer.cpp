// The Reducer on the threads backend: averaging, bucket layout, launch order and overlap
// with backward, and W ranks at batch B against one process at batch W * B.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "tests/distributed/cases.h"
#include "tests/distributed/threads_runner.h"

namespace dtrain::dist {
namespace {

using testing::run_ranks;

Tensor param(std::vector<double> v, DType dtype = DType::F32) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(dtype);
  t.set_requires_grad(true);
  return t;
}

TEST(ReadyHooks, RemoveByHandleKeepsTheOthers) {
  Tensor x = param({1.0, 2.0});
  int mine = 0, theirs = 0;
  GradReadyHookHandle h = x.register_grad_ready_hook([&](const Tensor&) { ++mine; });
  GradReadyHookHandle h2 = x.register_grad_ready_hook([&](const Tensor&) { ++theirs; });
  EXPECT_NE(h, 0u);
  EXPECT_NE(h, h2);
  EXPECT_TRUE(x.remove_grad_ready_hook(h));
  EXPECT_FALSE(x.remove_grad_ready_hook(h)) << "already removed";
  autograd::Tape tape;
  Tensor y;
  {
    autograd::GradRecorder rec(tape);
    y = fn::sum(x * x);
  }
  tape.backward(y);
  EXPECT_EQ(mine, 0);
  EXPECT_EQ(theirs, 1);
  x.clear_grad_ready_hooks();
  EXPECT_FALSE(x.remove_grad_ready_hook(h2));
}

TEST(Reducer, GradientsAreTheAverageOfTheRanks) {
  constexpr int W = 3;
  run_ranks(W, [](ProcessGroup& g) {
    const double r = g.rank();
    Tensor a = param({1, 1, 1, 1});                 // used: grad = c_r
    Tensor b = param({1, 1}, DType::F64);           // used, another dtype: grad = d_r
    Tensor unused = param({5, 5, 5});               // never on the tape, no grad: zeros
    Tensor local = param({0, 0});                   // not on the tape, a local grad: averaged
    local.set_grad(Tensor::from_vector(std::vector<float>{float(r), 1.0f}, {2}));
    Reducer reducer(g, {{"a", a}, {"b", b}, {"unused", unused}, {"local", local}}, {16, 16});
    // Two tapes (one per dtype); the hooks of both feed the same backward's buckets.
    autograd::Tape tape;
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      Tensor c = Tensor::from_vector(std::vector<float>{float(r), float(2 * r), -1.0f, float(r * r)}, {4});
      loss = fn::sum(a * c);
    }
    tape.backward(loss);
    autograd::Tape tape64;
    Tensor loss64;
    {
      autograd::GradRecorder rec(tape64);
      Tensor d = Tensor::from_vector(std::vector<double>{r + 0.5, 3.0}, {2});
      loss64 = fn::sum(b * d);
    }
    tape64.backward(loss64);
    reducer.finalize();
    // mean over r = 0, 1, 2 of (r, 2r, -1, r^2) = (1, 2, -1, 5/3); of (r + 0.5, 3) = (1.5, 3).
    std::vector<float> ga = a.grad().to_vector<float>();
    std::vector<float> wa = {1, 2, -1, 5.0f / 3};
    for (size_t i = 0; i < 4; ++i) DT_CASE_CHECK(std::abs(ga[i] - wa[i]) < 1e-6, "a.grad ", cases::join(ga));
    DT_CASE_CHECK((b.grad().to_vector<double>() == std::vector<double>{1.5, 3.0}), "b.grad");
    DT_CASE_CHECK((unused.grad().to_vector<float>() == std::vector<float>{0, 0, 0}), "unused.grad");
    DT_CASE_CHECK((local.grad().to_vector<float>() == std::vector<float>{1, 1}), "local.grad",
                  cases::join(local.grad().to_vector<float>()));
    DT_CASE_CHECK(reducer.last_wait_seconds() >= 0, "wait time");
  });
}

TEST(Reducer, BucketLayoutIsReverseOrderWithASmallFirstBucket) {
  auto groups = make_thread_groups(1);
  // f32: a 40 B, b 80 B, c 20 B, d 120 B; e is f64 (24 B); frozen has no grad.
  Tensor a = param(std::vector<double>(10, 0)), b = param(std::vector<double>(20, 0));
  Tensor c = param(std::vector<double>(5, 0)), d = param(std::vector<double>(30, 0));
  Tensor e = param({0, 0, 0}, DType::F64);
  Tensor frozen = Tensor::zeros({7});
  Reducer reducer(*groups[0], {{"a", a}, {"b", b}, {"frozen", frozen}, {"c", c}, {"e", e}, {"d", d}},
                  {/*first_bucket_bytes=*/100, /*bucket_bytes=*/110});
  // Reverse order d, e, c, b, a: d (120 B) overflows the first cap alone; c + b = 100 B
  // fit 110 B, a does not; e (f64) has its own first bucket.
  const auto& bs = reducer.buckets();
  ASSERT_EQ(bs.size(), 4u) << reducer.layout();
  EXPECT_EQ(bs[0].params, (std::vector<std::string>{"d"}));
  EXPECT_EQ(bs[0].bytes, 120u);
  EXPECT_EQ(bs[1].params, (std::vector<std::string>{"e"}));
  EXPECT_EQ(bs[1].dtype, DType::F64);
  EXPECT_EQ(bs[2].params, (std::vector<std::string>{"c", "b"}));
  EXPECT_EQ(bs[2].bytes, 100u);
  EXPECT_EQ(bs[3].params, (std::vector<std::string>{"a"}));
  EXPECT_EQ(reducer.layout(),
            "bucket 0: 1 params, 120 bytes, f32 on cpu: d\n"
            "bucket 1: 1 params, 24 bytes, f64 on cpu: e\n"
            "bucket 2: 2 params, 100 bytes, f32 on cpu: c, b\n"
            "bucket 3: 1 params, 40 bytes, f32 on cpu: a\n");
  // Defaults: everything of a small model fits the 1 MiB first bucket.
  Reducer defaults(*groups[0], {{"a", a}, {"b", b}});
  ASSERT_EQ(defaults.buckets().size(), 1u);
  EXPECT_EQ(defaults.buckets()[0].params, (std::vector<std::string>{"b", "a"}));
}

TEST(Reducer, DestructorRemovesOnlyItsOwnHooks) {
  auto groups = make_thread_groups(1);
  Tensor a = param({1, 2});
  int others = 0;
  a.register_grad_ready_hook([&](const Tensor&) { ++others; });
  { Reducer reducer(*groups[0], {{"a", a}}); }
  EXPECT_EQ(a.impl().ready_hooks.size(), 1u);
  autograd::Tape tape;
  Tensor y;
  {
    autograd::GradRecorder rec(tape);
    y = fn::sum(a * a);
  }
  tape.backward(y);
  EXPECT_EQ(others, 1);
}

TEST(Reducer, RejectsSharedTensorsAndSecondBackwardWithoutFinalize) {
  auto groups = make_thread_groups(1);
  Tensor a = param({1, 2});
  EXPECT_THROW(Reducer(*groups[0], {{"a", a}, {"alias", a}}), ValueError);
  Reducer reducer(*groups[0], {{"a", a}});
  for (int pass = 0; pass < 2; ++pass) {
    autograd::Tape tape;
    Tensor y;
    {
      autograd::GradRecorder rec(tape);
      y = fn::sum(a * a);
    }
    if (pass == 0) {
      tape.backward(y);
    } else {
      EXPECT_THROW(tape.backward(y), DistributedError);
    }
  }
}

// Records every all_reduce and whether this rank's backward had returned when it began.
class InstrumentedGroup : public ProcessGroup {
 public:
  struct Call {
    int64_t numel;
    bool backward_done;
  };
  explicit InstrumentedGroup(ProcessGroup& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return "instrumented " + inner_.backend(); }
  WorkPtr all_reduce(const Tensor& t, ReduceOp op) override {
    calls.push_back({t.numel(), backward_done.load()});
    return inner_.all_reduce(t, op);
  }
  WorkPtr broadcast(const Tensor& t, int root) override { return inner_.broadcast(t, root); }
  WorkPtr all_gather(const Tensor& in, const Tensor& out) override { return inner_.all_gather(in, out); }
  WorkPtr barrier() override { return inner_.barrier(); }

  std::vector<Call> calls;
  std::atomic<bool> backward_done{false};

 private:
  ProcessGroup& inner_;
};

TEST(Reducer, LaunchesBucketsInOrderWhileBackwardRuns) {
  run_ranks(2, [](ProcessGroup& inner) {
    InstrumentedGroup g(inner);
    auto model = cases::make_mlp(7);
    // Caps of 64 / 256 bytes split the MLP (4-16-8-3) into several buckets.
    Reducer reducer(g, model->named_parameters(), {64, 256});
    const auto& buckets = reducer.buckets();
    DT_CASE_CHECK(buckets.size() >= 3, "expected several buckets: ", reducer.layout());
    DT_CASE_CHECK(buckets[0].params.front() == "4.bias", "first bucket holds the last layer: ", reducer.layout());
    for (int step = 0; step < 2; ++step) {
      g.calls.clear();
      g.backward_done = false;
      auto [x, y] = cases::global_batch(step, 6);
      autograd::Tape tape;
      Tensor loss;
      {
        autograd::GradRecorder rec(tape);
        loss = fn::softmax_cross_entropy((*model)(x), y);
      }
      tape.backward(loss);
      g.backward_done = true;
      reducer.finalize();
      DT_CASE_CHECK(g.calls.size() == buckets.size(), "one all_reduce per bucket, got ", g.calls.size());
      for (size_t i = 0; i < buckets.size(); ++i) {
        DT_CASE_CHECK(g.calls[i].numel == static_cast<int64_t>(buckets[i].bytes / 4), "call ", i,
                      " reduces bucket ", i, " (in order)");
      }
      DT_CASE_CHECK(!g.calls[0].backward_done, "the first bucket's all_reduce must start before backward ends");
      // Every bucket's last parameter is ready before the tape ends, so all launch inside backward.
      for (size_t i = 0; i < buckets.size(); ++i) {
        DT_CASE_CHECK(!g.calls[i].backward_done, "bucket ", i, " launched only in finalize()");
      }
      model->zero_grad();
    }
  });
}

struct EquivalenceCase {
  int world;
  int micro;
};

class ReducerEquivalence : public ::testing::TestWithParam<EquivalenceCase> {};

TEST_P(ReducerEquivalence, WRanksAtBatchBMatchOneRankAtBatchWB) {
  const EquivalenceCase c = GetParam();
  run_ranks(c.world, [&](ProcessGroup& g) { cases::reducer_matches_single_process(g, c.micro); });
}

INSTANTIATE_TEST_SUITE_P(Threads, ReducerEquivalence,
                         ::testing::Values(EquivalenceCase{2, 1}, EquivalenceCase{4, 1}, EquivalenceCase{2, 2},
                                           EquivalenceCase{4, 2}),
                         [](const auto& info) {
                           return "W" + std::to_string(info.param.world) + "_micro" + std::to_string(info.param.micro);
                         });

TEST(Reducer, BroadcastFromRank0MakesModelsEqual) {
  std::vector<std::vector<float>> weights(3);
  run_ranks(3, [&](ProcessGroup& g) {
    auto model = cases::make_mlp(100 + g.rank());
    Reducer reducer(g, model->named_parameters());
    reducer.broadcast_from_rank0(model->named_buffers());
    weights[g.rank()] = model->parameters()[0].to_vector<float>();
  });
  EXPECT_EQ(weights[0], weights[1]);
  EXPECT_EQ(weights[0], weights[2]);
  std::vector<float> want = cases::make_mlp(100)->parameters()[0].to_vector<float>();
  EXPECT_EQ(weights[0], want);
}

}  // namespace
}  // namespace dtrain::dist
