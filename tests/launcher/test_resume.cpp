// Checkpoint and resume of `dtrain train` end to end (docs/CHECKPOINTS.md), under mpirun
// with 2 ranks on a tiny synthetic set and a small CNN with batch norm and dropout (so
// parameters, buffers, optimizer state, the LR schedule, per-rank dropout streams and
// the data cursor all have to survive):
//   - bit-exact resume: runs killed with SIGKILL at several points, among them inside a
//     checkpoint write, then resumed with --resume auto, end with the same parameters and
//     optimizer state, byte for byte, as an uninterrupted run;
//   - corrupt checkpoints: --resume auto falls back to the previous good one with a
//     warning; --resume PATH of a damaged file or of another model fails with the message;
//   - a different world size continues on exactly the samples the uninterrupted run
//     trains on, none twice, none skipped;
//   - SIGUSR1 to one rank stops both after the same step with a checkpoint and exit code
//     75; resuming finishes with the uninterrupted run's parameters.
// The trainer's test-only environment knobs (DTRAIN_TEST_*) are described in
// launcher/train/common.h (TestKnobs). The tests skip, visibly, without mpirun.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/checkpoint.h"
#include "core/io/h5.h"
#include "tests/support/checkpoints.h"
#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;
using dtrain::testing::CommandResult;

// `mpirun -np RANKS dtrain train` with extra environment variables.
std::string mpirun(int ranks, const std::string& env = "") {
  return (env.empty() ? "" : "env " + env + " ") + dtrain::testing::mpirun_prefix() + " -np " +
         std::to_string(ranks) + " " + bin() + " train ";
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_mpirun()) GTEST_SKIP() << "mpirun not on PATH: the checkpoint/resume tests need it";
    dir_ = dtrain::testing::make_test_dir("resume");
    train_ = (dir_ / "train.h5").string();
    CommandResult r = shell(bin() + " data synth images --out " + train_ +
                            " --n 384 --height 8 --width 8 --channels 1 --classes 4 --chunk-rows 32 --seed 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    config_ = (dir_ / "tiny.toml").string();
    write_config("sgd");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // 12 steps of global batch 16; Nesterov SGD (the momentum buffer's first step is
  // special) or Adam (bias correction counts steps); a cosine schedule with warm-up.
  void write_config(const std::string& optimizer, int steps = 12) {
    std::ofstream(config_) << "batch_size = 8\nsteps = " << steps << "\nthreads = 1\nseed = 3\n"
                           << "[model]\nname = \"small_cnn\"\nhidden = 16\nbatch_norm = true\nfc_dropout = 0.3\n"
                           << "[data]\ntrain = \"" << train_ << "\"\naugment.hflip = true\n"
                           << "[optimizer]\nname = \"" << optimizer << "\"\nlr = 0.05\n"
                           << (optimizer == "sgd" ? "momentum = 0.9\nnesterov = true\n" : "")
                           << "[schedule]\nname = \"cosine\"\nwarmup = 3\n"
                           << "[log]\ninterval = 4\n";
  }
  std::string ckdir(const std::string& name) const { return (dir_ / name).string(); }
  std::string train(const std::string& ck, const std::string& extra = "", int ranks = 2,
                    const std::string& env = "") const {
    return mpirun(ranks, env) + config_ + " --checkpoint-dir " + ck + " --checkpoint-every 4 --keep-last 0 " + extra;
  }

  fs::path dir_;
  std::string train_, config_;
};

// Both ranks' streams and the schedule's counter too.
void expect_same_state(const std::string& a, const std::string& b) {
  dtrain::testing::expect_same_state(a, b, {"/model", "/optimizer", "/rng/rank0", "/rng/rank1"},
                                     {"step", "epoch", "cursor", "optimizer_steps", "schedule_step"});
}

TEST_F(Resume, KilledRunsResumeBitExactly) {
  const std::string ref = ckdir("ref");
  CommandResult r = shell(train(ref));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string final_ref = ref + "/step-12.h5";
  ASSERT_NO_THROW(dtrain::ckpt::verify(final_ref));

  std::random_device rd;
  const int random_step = 1 + static_cast<int>(rd() % 11);
  struct Case {
    std::string name, env;
    int expect_from;  // step resumed from; 0 = starts fresh
    std::string damage;  // "flip8": flip a byte of step-8.h5 after the crash
  };
  std::vector<Case> cases = {
      {"kill -9 between checkpoints", "DTRAIN_TEST_CRASH_AT_STEP=6", 4, ""},
      {"kill -9 right after a checkpoint", "DTRAIN_TEST_CRASH_AT_STEP=8", 8, ""},
      {"kill -9 at random step " + std::to_string(random_step),
       "DTRAIN_TEST_CRASH_AT_STEP=" + std::to_string(random_step), random_step / 4 * 4, ""},
      {"kill -9 inside a write: datasets half written", "DTRAIN_TEST_CRASH_IN_CHECKPOINT=8:datasets", 4, ""},
      {"kill -9 inside a write: .tmp complete, not renamed", "DTRAIN_TEST_CRASH_IN_CHECKPOINT=8:synced", 4, ""},
      {"kill -9 inside a write: renamed, no marker", "DTRAIN_TEST_CRASH_IN_CHECKPOINT=8:renamed", 4, ""},
      {"kill -9 inside the first write", "DTRAIN_TEST_CRASH_IN_CHECKPOINT=4:synced", 0, ""},
      {"newest checkpoint corrupt", "DTRAIN_TEST_CRASH_AT_STEP=10", 4, "flip8"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.name);
    const std::string ck = ckdir("run" + std::to_string(i));
    CommandResult crash = shell(train(ck, "", 2, c.env));
    ASSERT_NE(crash.exit_code, 0) << crash.output;
    EXPECT_FALSE(fs::exists(ck + "/step-12.h5")) << crash.output;
    if (c.damage == "flip8") {
      std::fstream f(ck + "/step-8.h5", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(4000);
      f.put('\x5a');
    }
    CommandResult res = shell(train(ck, "--resume auto"));
    ASSERT_EQ(res.exit_code, 0) << res.output;
    if (c.expect_from > 0) {
      EXPECT_TRUE(contains(res.output, "resumed from " + ck + "/step-" + std::to_string(c.expect_from) + ".h5"))
          << res.output;
    } else {
      EXPECT_TRUE(contains(res.output, "no complete checkpoint in " + ck + "; starting from step 0")) << res.output;
    }
    if (c.damage == "flip8") {
      EXPECT_TRUE(contains(res.output, "skipping checkpoint '" + ck + "/step-8.h5'") && contains(res.output, "corrupt"))
          << res.output;
    }
    if (c.env.find(":renamed") != std::string::npos) {
      EXPECT_TRUE(contains(res.output, "no completeness marker")) << res.output;
    }
    expect_same_state(final_ref, ck + "/step-12.h5");
  }
}

TEST_F(Resume, AdamAndResumeFromAPath) {
  write_config("adam");
  const std::string ref = ckdir("ref");
  CommandResult r = shell(train(ref));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ck = ckdir("b");
  CommandResult crash = shell(train(ck, "", 2, "DTRAIN_TEST_CRASH_AT_STEP=9"));
  ASSERT_NE(crash.exit_code, 0) << crash.output;
  // --resume PATH: the older checkpoint of step 4, not the newest (8).
  CommandResult res = shell(train(ck, "--resume " + ck + "/step-4.h5"));
  ASSERT_EQ(res.exit_code, 0) << res.output;
  EXPECT_TRUE(contains(res.output, "resumed from " + ck + "/step-4.h5: step 4")) << res.output;
  expect_same_state(ref + "/step-12.h5", ck + "/step-12.h5");
  // Already finished: nothing to train, still exit 0.
  res = shell(train(ck, "--resume auto"));
  EXPECT_EQ(res.exit_code, 0) << res.output;
  EXPECT_TRUE(contains(res.output, "nothing to train")) << res.output;
}

TEST_F(Resume, DamagedOrForeignCheckpointsAreRefused) {
  const std::string ck = ckdir("a");
  CommandResult r = shell(train(ck, "", 2, "DTRAIN_TEST_CRASH_AT_STEP=8"));
  ASSERT_NE(r.exit_code, 0) << r.output;
  // Another model: the hidden width differs.
  CommandResult other = shell(train(ck, "--resume auto --set model.hidden=32"));
  EXPECT_EQ(other.exit_code, 1) << other.output;
  EXPECT_TRUE(contains(other.output, "is of another model") && contains(other.output, "classifier.0.weight"))
      << other.output;
  // A truncated file named explicitly.
  fs::resize_file(ck + "/step-8.h5", 1000);
  CommandResult bad = shell(train(ck, "--resume " + ck + "/step-8.h5"));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_TRUE(contains(bad.output, ck + "/step-8.h5") && contains(bad.output, "truncated")) << bad.output;
  // --resume auto needs a directory.
  CommandResult usage = shell(mpirun(1) + config_ + " --resume auto");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_TRUE(contains(usage.output, "checkpoint.dir")) << usage.output;
}

// "step row" lines of every rank's sample log, sorted.
std::vector<std::pair<long, long>> samples(const std::string& prefix) {
  std::vector<std::pair<long, long>> out;
  for (const char* rank : {".rank0", ".rank1"}) {
    std::ifstream in(prefix + rank);
    long s, r;
    while (in >> s >> r) out.emplace_back(s, r);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(Resume, ADifferentWorldSizeContinuesOnTheSameSamples) {
  const std::string ref_log = (dir_ / "ref.samples").string(), log = (dir_ / "run.samples").string();
  CommandResult r = shell(train(ckdir("ref"), "", 2, "DTRAIN_TEST_LOG_SAMPLES=" + ref_log));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ck = ckdir("b");
  r = shell(train(ck, "", 2, "DTRAIN_TEST_LOG_SAMPLES=" + log + " DTRAIN_TEST_CRASH_AT_STEP=6"));
  ASSERT_NE(r.exit_code, 0) << r.output;
  // One rank with the same global batch (16): it takes both ranks' shares.
  r = shell(train(ck, "--resume auto --set batch_size=16", 1, "DTRAIN_TEST_LOG_SAMPLES=" + log));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "resumed from " + ck + "/step-4.h5")) << r.output;
  EXPECT_TRUE(contains(r.output, "written by 2 ranks, this run has 1")) << r.output;
  EXPECT_TRUE(contains(r.output, "batch_size: 8 -> 16")) << r.output;
  std::vector<std::pair<long, long>> want = samples(ref_log), got = samples(log);
  ASSERT_EQ(want.size(), 12u * 16u);
  // got = steps 1-6 of the killed 2-rank run (it trained steps 5 and 6 after the
  // checkpoint of step 4) and steps 5-12 of the 1-rank run: steps 5 and 6 appear twice,
  // each time with the uninterrupted run's rows; everything else once.
  std::vector<std::pair<long, long>> expected = want;
  for (const auto& p : want) {
    if (p.first == 5 || p.first == 6) expected.push_back(p);
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected) << "the continued run must train on the uninterrupted run's samples, step for step";
  // Within the 12 steps (one epoch's share) no row twice.
  std::vector<long> rows;
  for (const auto& p : want) rows.push_back(p.second);
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(std::adjacent_find(rows.begin(), rows.end()), rows.end());
}

TEST_F(Resume, SigusrOnOneRankStopsAllWithACheckpoint) {
  write_config("sgd", 120);
  const std::string ref = ckdir("ref");
  CommandResult r = shell(train(ref));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const std::string ck = ckdir("b"), pids = (dir_ / "pids").string();
  fs::create_directories(pids);
  CommandResult run;
  std::thread t([&] {
    run = shell(train(ck, "", 2, "DTRAIN_TEST_PID_DIR=" + pids + " DTRAIN_TEST_STEP_DELAY_MS=25"));
  });
  // Wait for rank 1's pid, let a few steps pass, then signal rank 1 only.
  const auto t0 = std::chrono::steady_clock::now();
  std::string pid_file = pids + "/rank1.pid";
  long pid = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    std::ifstream in(pid_file);
    if (in >> pid && pid > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(pid, 0) << "no " << pid_file;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGUSR1), 0);
  t.join();
  EXPECT_EQ(run.exit_code, 75) << run.output;
  long s0 = -1, s1 = -2;
  std::ifstream(pids + "/rank0.stopped") >> s0;
  std::ifstream(pids + "/rank1.stopped") >> s1;
  EXPECT_EQ(s0, s1) << "both ranks must stop after the same step";
  ASSERT_GT(s0, 0);
  ASSERT_LT(s0, 120) << run.output;
  EXPECT_TRUE(contains(run.output, "stop requested: stopping after step " + std::to_string(s0))) << run.output;
  EXPECT_TRUE(contains(run.output, "continue with --resume auto")) << run.output;
  const std::string stop_ckpt = ck + "/step-" + std::to_string(s0) + ".h5";
  EXPECT_NO_THROW(dtrain::ckpt::verify(stop_ckpt));

  CommandResult res = shell(train(ck, "--resume auto"));
  ASSERT_EQ(res.exit_code, 0) << res.output;
  EXPECT_TRUE(contains(res.output, "resumed from " + stop_ckpt)) << res.output;
  expect_same_state(ref + "/step-120.h5", ck + "/step-120.h5");
}

TEST(ResumeCli, HelpDocumentsResumeAndExitCodes) {
  CommandResult r = shell(bin() + " train --help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"--resume auto|PATH", "--checkpoint-every", "--keep-last", "--checkpoint-dir",
                        "checkpoint.dir", "checkpoint.keep_last", "75 stopped", "SIGUSR1"}) {
    EXPECT_TRUE(contains(r.output, s)) << "missing '" << s << "' in\n" << r.output;
  }
}

}  // namespace
