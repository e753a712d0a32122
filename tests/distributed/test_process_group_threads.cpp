// The threads backend: every shared collective case (tests/distributed/cases.h) at
// several world sizes, and the failure modes that must not hang.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/distributed/cases.h"
#include "tests/distributed/threads_runner.h"

namespace dtrain::dist {
namespace {

using testing::run_ranks;

class ThreadsCollectives : public ::testing::TestWithParam<int> {};

TEST_P(ThreadsCollectives, EveryCase) {
  for (const auto& [name, body] : cases::collective_cases()) {
    SCOPED_TRACE(name);
    run_ranks(GetParam(), body);
  }
}

INSTANTIATE_TEST_SUITE_P(World, ThreadsCollectives, ::testing::Values(1, 2, 3, 4),
                         [](const auto& info) { return "W" + std::to_string(info.param); });

TEST(ThreadsGroup, Identity) {
  auto groups = make_thread_groups(3);
  ASSERT_EQ(groups.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(groups[r]->rank(), r);
    EXPECT_EQ(groups[r]->size(), 3);
    EXPECT_EQ(groups[r]->backend(), "threads");
    EXPECT_TRUE(groups[r]->device().is_cpu());
  }
  EXPECT_THROW(make_thread_groups(0), ValueError);
}

TEST(ThreadsGroup, ReductionIsInRankOrderAndIdenticalOnEveryRank) {
  // 1e8 + 1 - 1e8 in f32 depends on the order; every rank must get the same bits.
  std::vector<std::vector<float>> results(3);
  run_ranks(3, [&](ProcessGroup& g) {
    float v[] = {1e8f, 1.0f, -1e8f};
    Tensor t = Tensor::from_vector(std::vector<float>{v[g.rank()]}, {1});
    g.all_reduce(t, ReduceOp::Sum)->wait();
    results[g.rank()] = t.to_vector<float>();
  });
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
  EXPECT_EQ(results[0][0], (1e8f + 1.0f) - 1e8f);
}

TEST(ThreadsGroup, SkippedCollectiveTimesOutNamingTheMissingRank) {
  std::vector<std::string> messages(3);
  auto start = std::chrono::steady_clock::now();
  run_ranks(
      3,
      [&](ProcessGroup& g) {
        Tensor t = Tensor::ones({4});
        g.all_reduce(t, ReduceOp::Sum)->wait();  // everyone
        if (g.rank() == 2) return;                // rank 2 skips the second one
        try {
          g.all_reduce(t, ReduceOp::Sum)->wait();
        } catch (const DistributedError& e) {
          messages[g.rank()] = e.what();
        }
      },
      /*timeout_seconds=*/0.3);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 5.0);
  for (int r : {0, 1}) {
    EXPECT_NE(messages[r].find("timed out"), std::string::npos) << messages[r];
    EXPECT_NE(messages[r].find("rank 2 of 3 did not arrive"), std::string::npos) << messages[r];
    EXPECT_NE(messages[r].find("all_reduce(sum) of f32 x 4"), std::string::npos) << messages[r];
  }
}

TEST(ThreadsGroup, DifferentCollectivesFailEveryRank) {
  std::vector<std::string> messages(2);
  run_ranks(2, [&](ProcessGroup& g) {
    Tensor t = Tensor::ones({4});
    try {
      if (g.rank() == 0) {
        g.all_reduce(t, ReduceOp::Sum)->wait();
      } else {
        g.broadcast(t, 0)->wait();
      }
    } catch (const DistributedError& e) {
      messages[g.rank()] = e.what();
    }
  });
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("differs across ranks: rank 0 called all_reduce(sum) of f32 x 4; rank 1 called broadcast"),
              std::string::npos)
        << m;
  }
}

TEST(ThreadsGroup, RejectsBadArgumentsBeforeCommunicating) {
  // No second rank is needed: argument checks come before the rendezvous.
  auto groups = make_thread_groups(2, 0.1);
  EXPECT_THROW(groups[0]->broadcast(Tensor::zeros({2}), 5), ValueError);
  EXPECT_THROW(groups[0]->all_gather(Tensor::zeros({2}), Tensor::zeros({4}, DType::F64)), ValueError);
  EXPECT_THROW(groups[0]->all_reduce(Tensor::zeros({2}, DType::BF16), ReduceOp::Sum), ValueError);
}

}  // namespace
}  // namespace dtrain::dist
