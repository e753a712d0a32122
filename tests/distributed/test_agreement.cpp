// Pre-flight agreement on the threads backend: mismatches stop every rank, fast, with a
// message naming the item, the ranks and their values.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/distributed/cases.h"
#include "tests/distributed/threads_runner.h"

namespace dtrain::dist {
namespace {

using testing::run_ranks;

TEST(Agreement, PassesWhenEveryRankAgrees) {
  for (int w : {1, 2, 4}) run_ranks(w, cases::agreement_passes_when_equal);
}

TEST(Agreement, BatchSizeMismatchFailsEveryRankWithinSeconds) {
  for (int w : {2, 3, 4}) {
    auto start = std::chrono::steady_clock::now();
    run_ranks(w, cases::agreement_batch_size_mismatch, /*timeout_seconds=*/10);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 3.0);
  }
}

TEST(Agreement, ShapeAndDatasetMismatchNameTheFirstDifferingLine) {
  run_ranks(3, cases::agreement_shape_and_dataset_mismatch);
}

// Ranks started from different dtrain builds (a node with an older install): every rank
// stops before the first step, naming the build of each rank.
TEST(Agreement, ADifferentBuildOnOneRankIsNamed) {
  std::vector<std::string> messages(2);
  run_ranks(2, [&](ProcessGroup& g) {
    try {
      check_agreement(g, {{"batch size", "32"},
                          {"build", g.rank() == 1 ? "dtrain 0.1.0 (0ld1234)" : "dtrain 0.1.0 (abcdef0)"}});
    } catch (const DistributedError& e) {
      messages[g.rank()] = e.what();
    }
  });
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("ranks disagree before the first step: build: rank 0 has 'dtrain 0.1.0 (abcdef0)'; rank 1 has "
                     "'dtrain 0.1.0 (0ld1234)'"),
              std::string::npos)
        << m;
  }
}

TEST(Agreement, FullMessageReadsWell) {
  std::vector<std::string> messages(3);
  run_ranks(3, [&](ProcessGroup& g) {
    try {
      check_agreement(g, {{"batch size", g.rank() == 2 ? "64" : "32"}, {"build", "dtrain 0.1.0"}});
    } catch (const DistributedError& e) {
      messages[g.rank()] = e.what();
    }
  });
  for (const std::string& m : messages) {
    EXPECT_EQ(m.substr(0, m.find(" [")),
              "ranks disagree before the first step: batch size: ranks 0, 1 have '32'; rank 2 has '64'. Every rank "
              "must run the same model, batch size, dataset and dtrain build.");
  }
}

TEST(Agreement, DifferentItemListsFailEveryRank) {
  std::vector<std::string> messages(2);
  run_ranks(2, [&](ProcessGroup& g) {
    AgreementItems items = {{"batch size", "32"}};
    if (g.rank() == 1) items.push_back({"dataset", "x.h5"});
    try {
      check_agreement(g, items);
    } catch (const DistributedError& e) {
      messages[g.rank()] = e.what();
    }
  });
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("do not check the same items: rank 0 check 1 items"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 1 check 2 items"), std::string::npos) << m;
  }
}

TEST(Agreement, LongValuesShowWhereTheyDiffer) {
  std::vector<std::string> messages(2);
  run_ranks(2, [&](ProcessGroup& g) {
    std::string value(1000, 'a');
    if (g.rank() == 1) value[700] = 'B';
    try {
      check_agreement(g, {{"manifest", value}});
    } catch (const DistributedError& e) {
      messages[g.rank()] = e.what();
    }
  });
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("manifest: rank 0 has '..."), std::string::npos) << m;
    EXPECT_NE(m.find(std::string(40, 'a') + "B"), std::string::npos) << m;
  }
}

TEST(Agreement, DescribeParameters) {
  Generator gen(1);
  nn::Linear lin(3, 2, gen);
  EXPECT_EQ(describe_parameters(lin.named_parameters()), "weight f32 (2, 3)\nbias f32 (2,)\n");
}

}  // namespace
}  // namespace dtrain::dist
