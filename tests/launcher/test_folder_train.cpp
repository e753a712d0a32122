// The whole path of docs/TRAINING.md, "Your own images", end to end with the dtrain
// program: a generated folder of JPEGs and PNGs of mixed sizes -> `dtrain data convert
// folder` (encoded, with a held-out split) -> `dtrain data inspect --verify` -> `dtrain
// train` with random-resized-crop and flips, evaluating on the held-out file; a run killed
// mid-way and resumed ends bit-identical to an uninterrupted one; one process at batch 2b
// and two ranks at batch b train the same (when mpirun is present).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/io/image.h"
#include "tests/support/checkpoints.h"
#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;
namespace io = dtrain::io;

class FolderTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("folder_train");
    fs::path root = dir_ / "images";
    for (int k = 0; k < 3; ++k) {
      fs::path cls = root / (std::string("class_") + std::to_string(k));
      fs::create_directories(cls);
      for (int i = 0; i < 16; ++i) {
        io::Image img;
        img.height = 10 + i % 5;
        img.width = 12 + i % 3;
        img.channels = i % 6 == 0 ? 1 : 3;
        for (int64_t j = 0; j < img.height * img.width * img.channels; ++j) {
          img.pixels.push_back(static_cast<uint8_t>(40 * k + 60 + 30 * std::sin(0.5 * static_cast<double>(j + i))));
        }
        const std::string name = (cls / (std::string("img") + std::to_string(i))).string();
        if (i % 2 == 0) {
          io::write_image(name + ".png", img);
        } else {
          io::write_image(name + ".jpg", img);
        }
      }
    }
    train_ = (dir_ / "train.h5").string();
    val_ = (dir_ / "val.h5").string();
    CliRun c = shell(bin() + " data convert folder " + root.string() + " --out " + train_ + " --split 0.25 " +
                     "--split-out " + val_ + " --workers 2 --chunk-rows 8");
    ASSERT_EQ(c.exit_code, 0) << c.output;
    EXPECT_TRUE(contains(c.output, "wrote " + train_ + ": 36 images, 3 classes, encoded")) << c.output;
    EXPECT_TRUE(contains(c.output, val_ + ": 12 images")) << c.output;
    EXPECT_TRUE(contains(c.output, "converting [##############################] 100% 48/48")) << c.output;
    config_ = (dir_ / "folder.toml").string();
    std::ofstream(config_) << "batch_size = 8\nsteps = 12\nthreads = 1\nseed = 4\n"
                           << "[model]\nname = \"small_cnn\"\nhidden = 16\nbatch_norm = true\nfc_dropout = 0.2\n"
                           << "[data]\ntrain = \"" << train_ << "\"\ntest = \"" << val_ << "\"\n"
                           << "image_size = 8\neval_resize = 9\nworkers = 2\n"
                           << "augment.random_resized_crop = true\naugment.hflip = true\n"
                           << "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n"
                           << "[log]\ninterval = 4\n[eval]\ninterval = 6\n";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string train(const std::string& ck, const std::string& extra = "", const std::string& env = "") const {
    return (env.empty() ? "" : "env " + env + " ") + bin() + " train " + config_ + " --checkpoint-dir " + ck +
           " --checkpoint-every 4 --keep-last 0 " + extra;
  }
  fs::path dir_;
  std::string train_, val_, config_;
};

TEST_F(FolderTrain, ConvertInspectTrainAndResumeBitExactly) {
  CliRun inspect = shell(bin() + " data inspect " + train_ + " --verify");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_TRUE(contains(inspect.output, "images: encoded")) << inspect.output;
  EXPECT_TRUE(contains(inspect.output, "verify: all 36 images decode")) << inspect.output;

  const std::string ref = (dir_ / "ref").string();
  CliRun r = shell(train(ref));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "test accuracy")) << r.output;
  const std::string ck = (dir_ / "crash").string();
  CliRun crash = shell(train(ck, "", "DTRAIN_TEST_CRASH_AT_STEP=6"));
  ASSERT_NE(crash.exit_code, 0) << crash.output;
  CliRun res = shell(train(ck, "--resume auto"));
  ASSERT_EQ(res.exit_code, 0) << res.output;
  EXPECT_TRUE(contains(res.output, "resumed from " + ck + "/step-4.h5")) << res.output;
  dtrain::testing::expect_same_state(ref + "/step-12.h5", ck + "/step-12.h5");
}

TEST_F(FolderTrain, TwoRanksTrainAsOneProcessAtTheGlobalBatch) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not on PATH";
  // Without batch norm and dropout, whose statistics and draws are per rank.
  OneVersusTwo r = one_process_and_two_ranks(
      dir_, config_, " --set eval.interval=100 --set model.batch_norm=false --set model.fc_dropout=0", 4, 12);
  if (HasFatalFailure() || r.one.model.empty()) return;
  dtrain::testing::expect_close_models(r.one, r.two);
}

}  // namespace
