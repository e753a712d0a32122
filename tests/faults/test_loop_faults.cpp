// The training loop's policy for a checkpoint that cannot be written (Note [Failed
// checkpoints] in launcher/train/loop_checkpoint.cpp), on the real `dtrain train` of a
// tiny classifier (12 steps, a checkpoint every 2), with faults injected into the
// program by faultfs (LD_PRELOAD, tests/faults/faultfs.h) or a real full tmpfs:
//   - a failed periodic checkpoint: a warning naming the file and the cause, training
//     continues, the next one is written, exit 0; on 2 ranks both continue;
//   - more failures in a row than checkpoint.tolerate_failures: exit 1 with the reason;
//   - a failed final checkpoint: exit 1, the previous one intact;
//   - every time, `--resume auto` afterwards continues from the newest good checkpoint and
//     no file of a failed write is left for it to consider.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;
using dtrain::testing::CommandResult;

class LoopFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("loopfault");
    train_ = (dir_ / "train.h5").string();
    CommandResult r = shell(bin() + " data synth images --out " + train_ +
                            " --n 96 --height 8 --width 8 --channels 1 --classes 4 --chunk-rows 16 --seed 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    config_ = (dir_ / "tiny.toml").string();
    std::ofstream(config_) << "batch_size = 8\nsteps = 12\nthreads = 1\nseed = 3\n"
                           << "[model]\nname = \"small_cnn\"\nhidden = 8\n"
                           << "[data]\ntrain = \"" << train_ << "\"\n"
                           << "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n"
                           << "[log]\ninterval = 4\n";
    ck_ = (dir_ / "ck").string();
  }
  void TearDown() override {
    if (mounted_) ::umount2(ck_.c_str(), MNT_DETACH);
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // `dtrain train` with faultfs loaded; `fault` is "CALL PATHS NTH COUNT ERRNO" or "".
  CommandResult train(const std::string& fault, const std::string& extra = "", int ranks = 1) const {
    std::string env;
    if (!fault.empty()) {
      std::istringstream in(fault);
      std::string call, paths, nth, count, err;
      in >> call >> paths >> nth >> count >> err;
      // In a sanitizer build faultfs comes before the sanitizer's runtime, which must not
      // refuse to start for that (its interceptors still run: they find faultfs next);
      // what the sanitized run preloads itself stays loaded after it.
      env = "env LD_PRELOAD=" DTRAIN_FAULTFS_LIB "${LD_PRELOAD:+:$LD_PRELOAD}"
            " ASAN_OPTIONS=\"$ASAN_OPTIONS:verify_asan_link_order=0\""
            " DTRAIN_FAULT_CALL=" + call + " DTRAIN_FAULT_PATH=" + paths +
            " DTRAIN_FAULT_NTH=" + nth + " DTRAIN_FAULT_COUNT=" + count + " DTRAIN_FAULT_ERRNO=" + err +
            " DTRAIN_FAULT_LOG=" + (dir_ / "faults.log").string() + " ";
    }
    const std::string cmd = bin() + " train " + config_ + " --checkpoint-dir " + ck_ +
                            " --checkpoint-every 2 --keep-last 0 --set log.metrics=" + (dir_ / "m.jsonl").string() +
                            " " + extra;
    if (ranks == 1) return shell(env + cmd);
    return shell(dtrain::testing::mpirun_prefix() + " -np " + std::to_string(ranks) + " " + env + cmd);
  }
  std::string ckpt(int64_t step) const { return ck_ + "/step-" + std::to_string(step) + ".h5"; }
  // The names in the checkpoint directory, sorted.
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(ck_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<int64_t> complete_steps() const {
    std::vector<int64_t> out;
    for (const auto& [s, p] : dtrain::ckpt::list_complete(ck_)) out.push_back(s);
    std::sort(out.begin(), out.end());
    return out;
  }
  // How many faults faultfs injected.
  size_t injected() const { return read_lines((dir_ / "faults.log").string()).size(); }
  void expect_no_leftovers(const std::string& what) const {
    for (const std::string& f : files()) {
      EXPECT_EQ(f.find(".tmp"), std::string::npos) << what << ": left behind " << f;
      if (auto s = dtrain::ckpt::step_of(f)) {
        EXPECT_TRUE(fs::exists(ck_ + "/step-" + std::to_string(*s) + ".ok")) << f;
      }
    }
  }

  fs::path dir_;
  std::string train_, config_, ck_;
  bool mounted_ = false;
};

TEST_F(LoopFaults, AFailedPeriodicCheckpointWarnsAndTrainingContinues) {
  // Every fsync of step 6's files fails with EIO.
  CommandResult r = train("fsync step-6. 1 -1 EIO");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GE(injected(), 1u);
  EXPECT_TRUE(contains(r.output, "the checkpoint of step 6 was not written")) << r.output;
  EXPECT_TRUE(contains(r.output, ckpt(6)) && contains(r.output, "Input/output error")) << r.output;
  EXPECT_TRUE(contains(r.output, "training continues (1 of 2 failed checkpoints in a row tolerated")) << r.output;
  EXPECT_TRUE(contains(r.output, "the newest complete checkpoint, " + ckpt(4) + ", is intact")) << r.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2, 4, 8, 10, 12}));
  expect_no_leftovers("after a failed periodic checkpoint");
  bool recorded = false;
  for (const std::string& line : read_lines((dir_ / "m.jsonl").string())) {
    recorded = recorded || (contains(line, "\"kind\":\"checkpoint_failed\"") && contains(line, "\"step\":6"));
  }
  EXPECT_TRUE(recorded) << "no checkpoint_failed record in the metrics";
  for (int64_t s : {2, 4, 8, 10, 12}) EXPECT_NO_THROW(dtrain::ckpt::verify(ckpt(s)));
  // `dtrain checkpoint verify` says the same, and names what --resume auto takes once
  // the newest is damaged.
  {
    std::fstream f(ckpt(12), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(ckpt(12)) / 2));
    f.put('\x5a');
  }
  CommandResult v = shell(bin() + " checkpoint verify " + ck_);
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_TRUE(contains(v.output, "bad: checkpoint '" + ckpt(12) + "' is corrupt: its checksum")) << v.output;
  EXPECT_TRUE(contains(v.output, "ok: " + ckpt(10) + ": step 10")) << v.output;
  EXPECT_FALSE(contains(v.output, "step-6")) << v.output;
  EXPECT_TRUE(contains(v.output, "--resume auto would continue from " + ckpt(10))) << v.output;
  CommandResult one = shell(bin() + " checkpoint verify " + ckpt(12));
  EXPECT_EQ(one.exit_code, 1) << one.output;
  EXPECT_TRUE(contains(one.output, "is corrupt")) << one.output;
  CommandResult usage = shell(bin() + " checkpoint check " + ck_);
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_TRUE(contains(usage.output, "dtrain checkpoint: unknown action 'check'")) << usage.output;
  CommandResult none = shell(bin() + " checkpoint verify " + ck_ + "/nothing");
  EXPECT_EQ(none.exit_code, 2) << none.output;
  EXPECT_TRUE(contains(none.output, "' does not exist (name a checkpoint file or the checkpoint directory)"))
      << none.output;
}

TEST_F(LoopFaults, TooManyFailuresInARowStopTheRunAndResumeUsesTheNewestGoodOne) {
  // The rename of steps 4 and 6 fails (a filesystem gone read-only): with one failure
  // tolerated the second stops the run.
  CommandResult r = train("rename step-4.h5.tmp,step-6.h5.tmp 1 -1 EROFS", "--set checkpoint.tolerate_failures=1");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(injected(), 2u);
  EXPECT_TRUE(contains(r.output, "error: the checkpoint of step 6 was not written")) << r.output;
  EXPECT_TRUE(contains(r.output, "cannot rename '" + ckpt(6) + ".tmp'") && contains(r.output, "Read-only file system"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "2 failed checkpoints in a row, more than checkpoint.tolerate_failures = 1"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "the newest complete checkpoint, " + ckpt(2) + ", is intact")) << r.output;
  EXPECT_FALSE(contains(r.output, "step 8/12")) << "trained past the failure: " << r.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2}));
  expect_no_leftovers("after the run stopped");
  const uint64_t before = dtrain::ckpt::hash_file(ckpt(2));
  // --resume auto continues from step 2, with nothing to warn about.
  CommandResult again = train("", "--resume auto");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "resumed from " + ckpt(2))) << again.output;
  EXPECT_FALSE(contains(again.output, "skipping checkpoint")) << again.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2, 4, 6, 8, 10, 12}));
  EXPECT_EQ(dtrain::ckpt::hash_file(ckpt(2)), before);
}

TEST_F(LoopFaults, AFailedFinalCheckpointFailsTheRun) {
  // The first write of step 12's HDF5 data fails with ENOSPC.
  CommandResult r = train("pwrite step-12.h5 1 1 ENOSPC");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(injected(), 1u);
  EXPECT_TRUE(contains(r.output, "error: the checkpoint of step 12 was not written")) << r.output;
  EXPECT_TRUE(contains(r.output, ckpt(12)) && contains(r.output, "No space left on device")) << r.output;
  EXPECT_TRUE(contains(r.output, "the final checkpoint must be written")) << r.output;
  EXPECT_TRUE(contains(r.output, "continue with --resume auto")) << r.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2, 4, 6, 8, 10}));
  expect_no_leftovers("after a failed final checkpoint");
  EXPECT_NO_THROW(dtrain::ckpt::verify(ckpt(10)));
  CommandResult again = train("", "--resume auto");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "resumed from " + ckpt(10))) << again.output;
  EXPECT_NO_THROW(dtrain::ckpt::verify(ckpt(12)));
}

TEST_F(LoopFaults, ZeroToleratedFailuresStopAtTheFirst) {
  CommandResult r = train("close step-4.h5 1 -1 EIO", "--set checkpoint.tolerate_failures=0");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  EXPECT_GE(injected(), 1u);
  EXPECT_TRUE(contains(r.output, "error: the checkpoint of step 4 was not written")) << r.output;
  EXPECT_TRUE(contains(r.output, "Input/output error")) << r.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2}));
  expect_no_leftovers("tolerate_failures = 0");
}

TEST_F(LoopFaults, BothRanksContinueAfterRankZerosFailedCheckpoint) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not on PATH: the 2-rank case needs it";
  CommandResult r = train("pwrite step-4.h5 1 -1 EIO", "--set batch_size=4", 2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "the checkpoint of step 4 was not written")) << r.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2, 6, 8, 10, 12}));
  EXPECT_EQ(dtrain::ckpt::read(ckpt(12)).trainer.world_size, 2);
  expect_no_leftovers("2 ranks");
  // A failed final checkpoint stops both ranks, rank 1 saying that rank 0 failed.
  fs::remove_all(ck_);
  CommandResult f = train("rename step-12.h5.tmp 1 1 EIO", "--set batch_size=4", 2);
  EXPECT_NE(f.exit_code, 0) << f.output;
  EXPECT_NE(f.exit_code, 124) << "a hang:\n" << f.output;
  EXPECT_TRUE(contains(f.output, "the final checkpoint must be written")) << f.output;
  EXPECT_TRUE(contains(f.output, "writing the checkpoint of step 12 failed on rank 0")) << f.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2, 4, 6, 8, 10}));
}

TEST_F(LoopFaults, AFullDiskSkipsCheckpointsUntilTheFinalOneFails) {
  // A real ENOSPC: the checkpoint directory is a tmpfs with room for one checkpoint and a
  // half. keep_last 1 deletes the older one only after a new one is complete, so every
  // write after the first finds the disk full.
  CommandResult first = train("", "--set steps=2");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const uintmax_t size = fs::file_size(ckpt(2));
  fs::remove_all(ck_);
  fs::create_directories(ck_);
  const std::string opts = "size=" + std::to_string((size * 3 / 2 + 4095) / 4096 * 4096);
  if (::mount("tmpfs", ck_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs (" << std::strerror(errno)
                 << "; needs root): the real full-disk run is skipped; the injected faults above still run";
  }
  mounted_ = true;
  CommandResult r = train("", "--keep-last 1 --set checkpoint.tolerate_failures=9");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "the checkpoint of step 4 was not written")) << r.output;
  EXPECT_TRUE(contains(r.output, "No space left on device")) << r.output;
  EXPECT_TRUE(contains(r.output, "error: the checkpoint of step 12 was not written")) << r.output;
  EXPECT_EQ(complete_steps(), (std::vector<int64_t>{2}));
  expect_no_leftovers("a full disk");
  EXPECT_NO_THROW(dtrain::ckpt::verify(ckpt(2)));
}

}  // namespace
