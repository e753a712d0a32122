// `dtrain train` end to end on a tiny synthetic dataset: --help, a single-process run
// (progress lines, evaluation, the JSON-lines metrics), a 2-rank run under mpirun, and
// the failures that must stop every rank within seconds instead of hanging: ranks with
// different batch sizes (the pre-flight agreement check) and a training file missing on
// one rank (the collective set-up check). The mpirun tests skip, visibly, without mpirun.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;

class TrainRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("train");
    train_ = (dir_ / "train.h5").string();
    test_ = (dir_ / "test.h5").string();
    metrics_ = (dir_ / "out" / "metrics.jsonl").string();
    for (auto [path, n, seed] : {std::tuple{train_, 384, 1}, std::tuple{test_, 100, 2}}) {
      CliRun r = shell(bin() + " data synth images --out " + path + " --n " + std::to_string(n) +
                       " --height 12 --width 12 --channels 1 --classes 4 --chunk-rows 32 --seed " +
                       std::to_string(seed));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    config_ = (dir_ / "tiny.toml").string();
    std::ofstream(config_) << "batch_size = 16\nsteps = 6\nthreads = 1\n"
                              "[model]\nname = \"small_cnn\"\nhidden = 16\n"
                              "[data]\ntrain = \"" << train_ << "\"\ntest = \"" << test_ << "\"\n"
                              "[optimizer]\nname = \"adam\"\nlr = 0.01\n"
                              "[log]\ninterval = 2\nmetrics = \"" << metrics_ << "\"\n"
                              "[eval]\ninterval = 3\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string train_, test_, metrics_, config_;
};

TEST(TrainCli, HelpListsTheConfigKeys) {
  CliRun r = shell(bin() + " train --help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"usage: dtrain train", "--set KEY=VALUE", "--print-config", "model.name", "data.train",
                        "data.augment.pad_crop", "optimizer.lr", "schedule.warmup", "log.metrics", "eval.interval",
                        "grad_accum", "buckets.first_mib", "mpirun"}) {
    EXPECT_TRUE(contains(r.output, s)) << "missing '" << s << "' in\n" << r.output;
  }
  CliRun top = shell(bin() + " --help");
  EXPECT_TRUE(contains(top.output, "train CFG")) << top.output;
}

TEST_F(TrainRun, SingleProcessPrintsProgressEvaluatesAndWritesMetrics) {
  CliRun r = shell(bin() + " train " + config_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::regex progress(R"(step (\d+)/6 \| epoch \d+/\d+ \| loss [0-9.]+ \| lr [0-9.e-]+ \| \d+ img/s \| data [0-9.]+ ms \| allreduce [0-9.]+ ms \| skew [0-9.]+ ms \| ETA \d+s)");
  std::vector<int> steps;
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), progress); it != std::sregex_iterator(); ++it) {
    steps.push_back(std::stoi((*it)[1]));
  }
  EXPECT_EQ(steps, (std::vector<int>{2, 4, 6})) << r.output;
  EXPECT_TRUE(contains(r.output, "1 rank (mpi, cpu, 1 thread per rank)")) << r.output;
  EXPECT_TRUE(contains(r.output, "eval  step 3/6")) << r.output;
  EXPECT_TRUE(contains(r.output, "eval  step 6/6")) << r.output;
  EXPECT_TRUE(contains(r.output, "(100 samples)")) << r.output;  // every test sample once
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(final test accuracy [0-9.]+%)"))) << r.output;

  std::vector<std::string> lines = read_lines(metrics_);
  ASSERT_EQ(lines.size(), 1u + 3u + 2u) << "header, 3 train records, 2 eval records in " << metrics_;
  EXPECT_TRUE(contains(lines[0], "\"kind\":\"header\"")) << lines[0];
  EXPECT_TRUE(contains(lines[0], "\"world_size\":1")) << lines[0];
  EXPECT_TRUE(contains(lines[0], "batch_size = 16")) << lines[0];  // the canonical config
  std::vector<double> train_steps, eval_steps;
  for (const std::string& l : lines) {
    ASSERT_EQ(l.front(), '{') << l;
    ASSERT_EQ(l.back(), '}') << l;
    if (contains(l, "\"kind\":\"train\"")) {
      train_steps.push_back(json_number(l, "step"));
      for (const char* key : {"epoch", "loss", "lr", "images_per_s", "data_wait_s", "allreduce_wait_s",
                              "step_time_skew_s"}) {
        EXPECT_GE(json_number(l, key), 0) << key << " in " << l;
      }
      EXPECT_GT(json_number(l, "images_per_s"), 0) << l;
      EXPECT_GT(json_number(l, "loss"), 0) << l;
    } else if (contains(l, "\"kind\":\"eval\"")) {
      eval_steps.push_back(json_number(l, "step"));
      double acc = json_number(l, "test_accuracy");
      EXPECT_GE(acc, 0) << l;
      EXPECT_LE(acc, 1) << l;
      EXPECT_EQ(json_number(l, "test_samples"), 100) << l;
    }
  }
  EXPECT_EQ(train_steps, (std::vector<double>{2, 4, 6}));
  EXPECT_EQ(eval_steps, (std::vector<double>{3, 6}));
}

TEST_F(TrainRun, SetupErrorsAreReportedOnAWorldOfOne) {
  CliRun r = shell(bin() + " train " + config_ + " --set data.train=" + (dir_ / "missing.h5").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "missing.h5")) << r.output;
  CliRun big = shell(bin() + " train " + config_ + " --set batch_size=400");
  EXPECT_EQ(big.exit_code, 1) << big.output;
  EXPECT_TRUE(contains(big.output, "lower the batch size")) << big.output;
  CliRun accum = shell(bin() + " train " + config_ + " --set grad_accum=30");  // 24 batches per epoch
  EXPECT_EQ(accum.exit_code, 2) << accum.output;
  EXPECT_TRUE(contains(accum.output, "too few for an optimizer step")) << accum.output;
}

TEST_F(TrainRun, TwoRanksUnderMpirunWithGradientAccumulation) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  CliRun r = shell(dtrain::testing::mpirun_prefix() + " -np 2 " + bin() + " train " + config_ + " --set grad_accum=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "2 ranks (mpi, cpu, 1 thread per rank)")) << r.output;
  EXPECT_TRUE(contains(r.output, "global batch 64 (2 x 16 x 2 micro-batches)")) << r.output;
  EXPECT_TRUE(contains(r.output, "step 6/6")) << r.output;
  EXPECT_TRUE(contains(r.output, "(100 samples)")) << r.output;  // the shards cover the test set once
  EXPECT_TRUE(contains(r.output, "final test accuracy")) << r.output;
  std::vector<std::string> lines = read_lines(metrics_);
  ASSERT_EQ(lines.size(), 6u) << r.output;
  EXPECT_TRUE(contains(lines[0], "\"world_size\":2")) << lines[0];
  int train_records = 0;
  for (const std::string& l : lines) train_records += contains(l, "\"kind\":\"train\"");
  EXPECT_EQ(train_records, 3);
}

// Data parallelism's promise, end to end: 2 ranks at batch 16 train exactly like 1 rank
// at batch 32, and like 1 rank accumulating 4 micro-batches of 8 (the sampler gives the
// same global batches; the reducer averages).
TEST_F(TrainRun, TwoRanksTrainLikeOneRankWithTheGlobalBatch) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  auto losses = [&](const std::string& cmd) {
    CliRun r = shell(cmd + " --set log.interval=1 --set data.test=\"\" --set optimizer.name=sgd"
                           " --set optimizer.lr=0.1 --set optimizer.momentum=0.9");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::vector<double> out;
    for (const std::string& l : read_lines(metrics_)) {
      if (contains(l, "\"kind\":\"train\"")) out.push_back(json_number(l, "loss"));
    }
    return out;
  };
  std::vector<double> two = losses(dtrain::testing::mpirun_prefix() + " -np 2 " + bin() + " train " + config_);
  std::vector<double> one = losses(bin() + " train " + config_ + " --set batch_size=32");
  std::vector<double> accum = losses(bin() + " train " + config_ + " --set batch_size=8 --set grad_accum=4");
  ASSERT_EQ(two.size(), 6u);
  ASSERT_EQ(one.size(), 6u);
  ASSERT_EQ(accum.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(two[i], one[i], 1e-4 * one[i]) << "step " << i + 1;
    EXPECT_NEAR(accum[i], one[i], 1e-4 * one[i]) << "step " << i + 1;
  }
  EXPECT_LT(one[5], one[0]);  // and it learns
}

TEST_F(TrainRun, RanksWithDifferentBatchSizesFailFastNamingTheItemAndRanks) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  std::string cmd = bin() + " train " + config_;
  CliRun r = shell(dtrain::testing::mpirun_prefix() + " -np 1 " + cmd + " --set batch_size=8 : -np 1 " + cmd + " --set batch_size=16");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 124) << "timed out (a hang):\n" << r.output;
  EXPECT_LT(r.seconds, 30) << r.output;
  EXPECT_TRUE(contains(r.output, "batch size")) << r.output;
  EXPECT_TRUE(contains(r.output, "'8'")) << r.output;
  EXPECT_TRUE(contains(r.output, "'16'")) << r.output;
  EXPECT_TRUE(contains(r.output, "rank 0")) << r.output;
  EXPECT_TRUE(contains(r.output, "rank 1")) << r.output;
  EXPECT_FALSE(contains(r.output, "step 1/")) << "no rank may start training:\n" << r.output;
}

TEST_F(TrainRun, AFileMissingOnOneRankStopsEveryRank) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  std::string cmd = bin() + " train " + config_;
  CliRun r = shell(dtrain::testing::mpirun_prefix() + " -np 1 " + cmd + " : -np 1 " + cmd + " --set data.train=" +
                   (dir_ / "missing.h5").string());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 124) << "timed out (a hang):\n" << r.output;
  EXPECT_LT(r.seconds, 30) << r.output;
  EXPECT_TRUE(contains(r.output, "missing.h5")) << r.output;
  EXPECT_TRUE(contains(r.output, "set-up failed on rank 1")) << r.output;
}

}  // namespace
