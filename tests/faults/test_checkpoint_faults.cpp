// I/O faults during a checkpoint write (core/checkpoint.h, Note [Checkpoint commit]):
// every open, write, pwrite, ftruncate, fsync, close and rename call that the write makes
// in the checkpoint directory is made to fail in turn (faultfs, tests/faults/faultfs.h),
// with EIO and with ENOSPC; a real full filesystem (a small tmpfs, when the tests run as
// root) and a file-size limit (RLIMIT_FSIZE) too. Each time the previous checkpoint must
// stay byte for byte what it was and verify, the error must name the file and the cause,
// nothing of the failed write may stay behind, and find_latest must pick the previous one.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "tests/faults/faultfs.h"

namespace {

namespace fs = std::filesystem;
using namespace dtrain;

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

void expect_same_tensors(const nn::NamedTensors& a, const nn::NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.shape(), b[i].second.shape()) << a[i].first;
    EXPECT_TRUE(a[i].second.dtype() == b[i].second.dtype() &&
                std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), a[i].second.nbytes()) == 0)
        << a[i].first << " differs from what was written";
  }
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A model of `hidden` x 3 floats, its momentum and two random streams.
ckpt::Contents contents(int64_t step, int64_t hidden = 5) {
  ckpt::Contents c;
  c.model = {{"0.weight", Tensor::from_vector<float>(std::vector<float>(static_cast<size_t>(3 * hidden), 0.25f),
                                                       {hidden, 3})},
             {"1.num_batches_tracked", Tensor::from_vector<int64_t>({step}, {})}};
  c.optimizer = {{"0.weight.momentum_buffer",
                  Tensor::from_vector<float>(std::vector<float>(static_cast<size_t>(3 * hidden), -1.5f), {hidden, 3})}};
  c.optimizer_steps = step;
  c.rng = {{0, "dropout", {11, 22}}};
  c.trainer.step = step;
  c.trainer.seed = 7;
  c.trainer.config = "seed = 7\n";
  c.trainer.build = "dtrain test";
  return c;
}

void expect_same_contents(const ckpt::Contents& read, const ckpt::Contents& written) {
  expect_same_tensors(read.model, written.model);
  expect_same_tensors(read.optimizer, written.optimizer);
  EXPECT_EQ(read.trainer.step, written.trainer.step);
  EXPECT_EQ(read.trainer.config, written.trainer.config);
}

class CheckpointFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("dtrain_ckfault_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    faultfs_disarm();
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }
  std::string path(int64_t step) const { return (fs::path(dir_) / ckpt::file_name(step)).string(); }
  std::string marker(int64_t step) const { return (fs::path(dir_) / ckpt::marker_name(step)).string(); }

  // The files of dir_, sorted.
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  // After a failed write of step `failed`: step `good` is unchanged (hash), verifies, is
  // what find_latest picks, and nothing of `failed` is left.
  void expect_previous_intact(int64_t good, uint64_t hash, int64_t failed, const std::string& what) {
    EXPECT_EQ(ckpt::hash_file(path(good)), hash) << what;
    EXPECT_NO_THROW(ckpt::verify(path(good))) << what;
    testing::internal::CaptureStderr();
    auto latest = ckpt::find_latest(dir_, Logger());
    const std::string warnings = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(latest.has_value()) << what;
    EXPECT_EQ(latest->first, good) << what;
    EXPECT_TRUE(warnings.empty()) << what << ": " << warnings;
    for (const std::string& f : files()) {
      EXPECT_FALSE(contains(f, "step-" + std::to_string(failed) + ".")) << what << ": left behind " << f;
      EXPECT_FALSE(contains(f, ".tmp")) << what << ": left behind " << f;
    }
  }

  // Every matching call of each kind, one at a time, fails with `err`; prints a table row
  // per injection (call, which one, outcome).
  void inject_each_call(int err, const char* err_text) {
    const std::string& dir = dir_;
    ckpt::write(dir, contents(1));
    const uint64_t hash = ckpt::hash_file(path(1));
    int64_t step = 2;
    for (const char* call : {"open", "write", "pwrite", "ftruncate", "fsync", "close", "rename"}) {
      // How many such calls a write makes in the directory: a write with counting only.
      faultfs_arm(call, dir.c_str(), 0, 0, 0);
      ckpt::write(dir, contents(step));
      const long n = faultfs_matched();
      faultfs_disarm();
      fs::remove(fs::path(dir) / ckpt::marker_name(step));
      fs::remove(path(step));
      if (std::string(call) != "ftruncate") {
      EXPECT_GT(n, 0) << call << ": the write makes no such call";
    }
      for (long i = 1; i <= n; ++i) {
        const std::string what = std::string(call) + " #" + std::to_string(i) + " of " + std::to_string(n) + " (" +
                                 err_text + ")";
        SCOPED_TRACE(what);
        faultfs_arm(call, dir.c_str(), i, 1, err);
        const std::string e = error_of([&] { ckpt::write(dir, contents(step)); });
        const long failed = faultfs_failed();
        faultfs_disarm();
        ASSERT_EQ(failed, 1) << "the fault was not injected";
        std::cout << "[fault] checkpoint | " << what << " | "
                  << (e.empty() ? "write succeeded (the failed call did not matter)" : e.substr(0, 160)) << "\n";
        if (e.empty()) {
          // A failure that did not matter (a probe HDF5 makes before creating the file, a
          // write it repeats later, the close of a descriptor opened for reading after the
          // fsync): the new checkpoint must then be complete and hold exactly what was
          // written, never a silently damaged file.
          EXPECT_NO_THROW(ckpt::verify(path(step)));
          expect_same_contents(ckpt::read(path(step)), contents(step));
          fs::remove(fs::path(dir) / ckpt::marker_name(step));
          fs::remove(path(step));
        } else {
          EXPECT_TRUE(contains(e, dir + "/step-" + std::to_string(step)) || contains(e, "'" + dir + "'"))
              << "the error names no file: " << e;
          EXPECT_TRUE(contains(e, err_text)) << "the error does not say why: " << e;
        }
        expect_previous_intact(1, hash, step, what);
        if (::testing::Test::HasFatalFailure()) return;
        ++step;  // a fresh step each time, as the training loop would write
      }
    }
  }

  std::string dir_;
  bool mounted_ = false;
};

TEST_F(CheckpointFaults, EioAtEachCallLeavesThePreviousCheckpointIntact) {
  inject_each_call(EIO, "Input/output error");
}

TEST_F(CheckpointFaults, EnospcAtEachCallLeavesThePreviousCheckpointIntact) {
  inject_each_call(ENOSPC, "No space left on device");
}

TEST_F(CheckpointFaults, RewritingTheSameStepFailingKeepsNoStaleMarker) {
  // The newest checkpoint is rewritten (a resumed run reaching the same step again) and
  // the rename fails: the old file is still there and still vouched for by its marker,
  // or (once the old marker is removed) nothing of that step counts.
  ckpt::write(dir_, contents(4));
  faultfs_arm("rename", (dir_ + "/step-4.h5").c_str(), 1, 1, EIO);
  std::string e = error_of([&] { ckpt::write(dir_, contents(4, 6)); });
  faultfs_disarm();
  EXPECT_TRUE(contains(e, "cannot rename") && contains(e, path(4)) && contains(e, "Input/output error")) << e;
  if (fs::exists(marker(4))) {
    EXPECT_NO_THROW(ckpt::verify(path(4)));
    EXPECT_EQ(ckpt::read(path(4)).model[0].second.shape(), (Shape{5, 3}));
  } else {
    EXPECT_FALSE(ckpt::find_latest(dir_, Logger()).has_value());
  }
}

TEST_F(CheckpointFaults, AFullFilesystemLeavesThePreviousCheckpointAndRoomForTheNext) {
  // A real ENOSPC: a 256 KiB tmpfs. Needs root (CAP_SYS_ADMIN), as CI's tests have.
  if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs (" << std::strerror(errno)
                 << "; needs root): the real full-disk test is skipped; the injected ENOSPC tests still run";
  }
  mounted_ = true;
  ckpt::write(dir_, contents(1));
  const uint64_t hash = ckpt::hash_file(path(1));
  // 2 x 3 x 20000 floats = 480 KB: cannot fit.
  std::string e = error_of([&] { ckpt::write(dir_, contents(2, 20000)); });
  std::cout << "[fault] checkpoint | full tmpfs (ENOSPC) | " << e.substr(0, 200) << "\n";
  EXPECT_TRUE(contains(e, dir_ + "/step-2")) << e;
  EXPECT_TRUE(contains(e, "No space left on device")) << e;
  expect_previous_intact(1, hash, 2, "full tmpfs");
  // The failed write released its space: a checkpoint that fits still can be written.
  EXPECT_NO_THROW(ckpt::write(dir_, contents(3)));
  EXPECT_NO_THROW(ckpt::verify(path(3)));
  EXPECT_NO_THROW(ckpt::verify(path(1)));
}

TEST_F(CheckpointFaults, AFileSizeLimitLeavesThePreviousCheckpointIntact) {
  // RLIMIT_FSIZE (ulimit -f): writes past the limit fail with EFBIG once SIGXFSZ is ignored.
  ckpt::write(dir_, contents(1));
  const uint64_t hash = ckpt::hash_file(path(1));
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &previous), 0);
  rlimit small = old;
  small.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string e = error_of([&] { ckpt::write(dir_, contents(2, 20000)); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::sigaction(SIGXFSZ, &previous, nullptr);
  std::cout << "[fault] checkpoint | RLIMIT_FSIZE 64 KiB (EFBIG) | " << e.substr(0, 200) << "\n";
  EXPECT_TRUE(contains(e, dir_ + "/step-2")) << e;
  EXPECT_TRUE(contains(e, "File too large")) << e;
  expect_previous_intact(1, hash, 2, "RLIMIT_FSIZE");
}

}  // namespace
