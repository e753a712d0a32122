// The NCCL backend with one rank on one GPU: collectives on CUDA tensors, stream
// ordering, and a Reducer step. Skipped, with the reason, without a usable CUDA device.
#include <gtest/gtest.h>

#include "core/runtime.h"
#include "tests/distributed/cases.h"

namespace dtrain::dist {
namespace {

void skip_without_gpu() {
  std::string why;
  if (!cuda::available(&why)) GTEST_SKIP() << "NCCL backend not exercised: " << why;
}

#define DT_NCCL_SKIP()            \
  do {                            \
    skip_without_gpu();           \
    if (IsSkipped()) return;      \
  } while (0)

TEST(Nccl, StubsSayBuiltWithoutCuda) {
  if (cuda::compiled()) GTEST_SKIP() << "this build has the NCCL backend";
  EXPECT_THROW(nccl_unique_id(), NotBuiltError);
  EXPECT_THROW(make_nccl_group(0, 1, 0, std::vector<uint8_t>(128)), NotBuiltError);
}

TEST(Nccl, CollectivesOnOneRank) {
  DT_NCCL_SKIP();
  auto g = make_nccl_group(0, 1, 0, nccl_unique_id());
  EXPECT_EQ(g->backend(), "nccl");
  EXPECT_EQ(g->device(), Device::cuda(0));
  const Device dev = Device::cuda(0);
  Tensor t = Tensor::from_vector(std::vector<float>{1, -2, 3}, {3}).to(dev);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average, ReduceOp::Max}) g->all_reduce(t, op)->wait();
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, -2, 3}));
  Tensor i = Tensor::from_vector(std::vector<int64_t>{7}, {1}).to(dev);
  g->broadcast(i, 0)->synchronize();
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{7}));
  Tensor out = Tensor::zeros({3}, DType::F32, dev);
  WorkPtr w = g->all_gather(t, out);
  w->wait();
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{1, -2, 3}));
  g->barrier()->synchronize();
  EXPECT_TRUE(w->is_completed());
  EXPECT_THROW(g->all_reduce(Tensor::zeros({2}), ReduceOp::Sum), ValueError) << "CPU tensors are rejected";
}

TEST(Nccl, ReducerStepOnOneRankKeepsTheLocalGradients) {
  DT_NCCL_SKIP();
  auto g = make_nccl_group(0, 1, 0, nccl_unique_id());
  const Device dev = Device::cuda(0);
  auto model = cases::make_mlp(7);
  auto reference = cases::make_mlp(7);
  model->to(dev);
  Reducer reducer(*g, model->named_parameters(), {64, 256});
  reducer.broadcast_from_rank0();
  auto [x, y] = cases::global_batch(0, 8);
  for (auto* m : {model.get(), reference.get()}) {
    bool on_gpu = m == model.get();
    autograd::Tape tape;
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      loss = fn::softmax_cross_entropy((*m)(on_gpu ? x.to(dev) : x), on_gpu ? y.to(dev) : y);
    }
    tape.backward(loss);
  }
  reducer.finalize();
  auto got = model->parameters();
  auto want = reference->parameters();
  for (size_t k = 0; k < got.size(); ++k) {
    std::vector<float> a = got[k].grad().to_vector<float>(), b = want[k].grad().to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::max(1.0f, std::abs(b[i]))) << k;
  }
}

}  // namespace
}  // namespace dtrain::dist
