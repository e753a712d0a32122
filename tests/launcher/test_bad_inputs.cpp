// Bad inputs of `dtrain train --resume` that users hit and docs/BAD_INPUTS.md lists, on a
// world of one (no mpirun; a second each): a checkpoint of another seed, of another
// optimizer, of another model, a path that does not exist, and a bad
// checkpoint.tolerate_failures; and a global batch that does not divide the data (a
// note, not an error). Each must fail with its exit code and a message that
// names the file and says what to do.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;

class BadResume : public ::testing::Test {
 protected:
  // One data set and one checkpoint (step 2 of an SGD run, seed 3) for every test. A
  // failure here fails every test of the suite (SetUp), rather than leaving them skipped as
  // GoogleTest does for an assertion in SetUpTestSuite (CTest would count them skipped).
  static void SetUpTestSuite() {
    setup_error_ = new std::string;
    make_run();
  }
  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << "the suite's setup failed: " << *setup_error_; }
  static void make_run() {
    dir_ = new fs::path(fs::temp_directory_path() / ("dtrain_badresume_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    const std::string data = (*dir_ / "train.h5").string();
    CliRun r = shell(bin() + " data synth images --out " + data +
                     " --n 64 --height 8 --width 8 --channels 1 --classes 4 --chunk-rows 16 --seed 1");
    if (r.exit_code != 0) {
      *setup_error_ = "data synth images: " + r.output;
      return;
    }
    std::ofstream(config()) << "batch_size = 8\nsteps = 2\nthreads = 1\nseed = 3\n"
                            << "[model]\nname = \"small_cnn\"\nhidden = 8\n"
                            << "[data]\ntrain = \"" << data << "\"\n"
                            << "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n";
    CliRun t = shell(bin() + " train " + config() + " --checkpoint-dir " + (*dir_ / "ck").string());
    if (t.exit_code != 0) *setup_error_ = "train: " + t.output;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete setup_error_;
  }
  static std::string config() { return (*dir_ / "tiny.toml").string(); }
  static std::string checkpoint() { return (*dir_ / "ck" / "step-2.h5").string(); }
  CliRun resume(const std::string& extra) const {
    return shell(bin() + " train " + config() + " --set steps=4 --resume " + checkpoint() + " " + extra);
  }

  static fs::path* dir_;
  static std::string* setup_error_;
};
fs::path* BadResume::dir_ = nullptr;
std::string* BadResume::setup_error_ = nullptr;

TEST_F(BadResume, AnotherSeedSaysWhichSeedToSet) {
  CliRun r = resume("--set seed=4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "checkpoint '" + checkpoint() + "' was written with seed 3, this run has seed 4"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "resume with --set seed=3")) << r.output;
}

TEST_F(BadResume, AnotherOptimizerIsRefused) {
  CliRun r = resume("--set optimizer.name=adam");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "was it saved by another optimizer or model?")) << r.output;
}

TEST_F(BadResume, AnotherModelIsRefused) {
  CliRun r = resume("--set model.hidden=16");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "checkpoint '" + checkpoint() + "' is of another model")) << r.output;
  EXPECT_TRUE(contains(r.output, "in the file but")) << r.output;
}

TEST_F(BadResume, AMissingCheckpointIsNamed) {
  const std::string missing = (*dir_ / "ck" / "step-99.h5").string();
  CliRun r = shell(bin() + " train " + config() + " --resume " + missing);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "checkpoint '" + missing + "' does not exist")) << r.output;
}

TEST_F(BadResume, ANegativeToleranceOfFailedCheckpointsIsRefused) {
  CliRun r = shell(bin() + " train " + config() + " --set checkpoint.tolerate_failures=-1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "checkpoint.tolerate_failures must be >= 0")) << r.output;
}

// A world size and batch size whose product does not divide the data set: the tail of
// each epoch's order is left out, and the run says so once, in its header.
TEST_F(BadResume, AGlobalBatchThatDoesNotDivideTheDataIsNoted) {
  CliRun r = shell(bin() + " train " + config() + " --set batch_size=10 --set steps=1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "note: 4 of the 64 samples are left out of each epoch: 1 rank x batch_size 10 = 10 "
                                 "does not divide 64"))
      << r.output;
  CliRun even = shell(bin() + " train " + config() + " --set batch_size=8 --set steps=1");
  EXPECT_EQ(even.exit_code, 0) << even.output;
  EXPECT_FALSE(contains(even.output, "left out of each epoch")) << even.output;
}

// A data file whose chunk was damaged after it was written (Note [Checksummed chunks]):
// the run stops when the loader first reads that chunk, naming the file and the rows,
// instead of training on the damaged bytes. The same file without checksums trains.
TEST_F(BadResume, ADamagedChunkOfTheDataStopsTheRunNamingItsRows) {
  for (bool sums : {true, false}) {
    const std::string data = (*dir_ / (sums ? "damaged.h5" : "damaged_plain.h5")).string();
    CliRun w = shell(bin() + " data synth images --out " + data +
                     " --n 64 --height 8 --width 8 --channels 1 --classes 4 --chunk-rows 16 --seed 1" +
                     (sums ? "" : " --no-checksum"));
    ASSERT_EQ(w.exit_code, 0) << w.output;
    // The chunk of rows [16, 32) of /images.
    haddr_t addr = HADDR_UNDEF;
    {
      hid_t f = H5Fopen(data.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      hid_t d = H5Dopen2(f, "/images", H5P_DEFAULT);
      hsize_t offset[4] = {16, 0, 0, 0}, size = 0;
      unsigned mask = 0;
      ASSERT_GE(H5Dget_chunk_info_by_coord(d, offset, &mask, &addr, &size), 0);
      H5Dclose(d);
      H5Fclose(f);
    }
    {
      std::fstream io(data, std::ios::in | std::ios::out | std::ios::binary);
      io.seekg(static_cast<std::streamoff>(addr) + 5);
      const char c = static_cast<char>(io.get() ^ 0x40);
      io.seekp(static_cast<std::streamoff>(addr) + 5);
      io.put(c);
    }
    CliRun r = shell(bin() + " train " + config() + " --set data.train=" + data + " --set steps=8");
    if (sums) {
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_TRUE(contains(r.output, data + "', dataset '/images': rows [16, 32) fail their Fletcher-32 checksum"))
          << r.output;
    } else {
      EXPECT_EQ(r.exit_code, 0) << r.output;  // nothing can tell
    }
  }
}

}  // namespace
