// `dtrain score` (launcher/cli/score.h): the score formula against hand-computed values, and
// the command end to end with a tiny classifier trained for a few steps: score within
// [1, K], a histogram summing to N, the accuracy when the file is labelled, and clear
// errors for images of another size, a missing checkpoint and a GAN's checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "launcher/cli/score.h"
#include "tests/support/paths.h"
#include "tests/support/run.h"

namespace {

namespace fs = std::filesystem;
using dtrain::cli::inception_score;
using dtrain::testing::contains;
using dtrain::testing::json_number;
using CliRun = dtrain::testing::CommandResult;

CliRun dtrain_cmd(const std::string& args) { return dtrain::testing::run_dtrain(args); }

TEST(InceptionScore, UniformPredictionsScoreOne) {
  const int64_t n = 5, k = 4;
  std::vector<double> p(static_cast<size_t>(n * k), 0.25);
  EXPECT_NEAR(inception_score(p, n, k), 1.0, 1e-12);
}

TEST(InceptionScore, IdenticalPredictionsScoreOneWhateverTheirShape) {
  // Every sample the same (confident) distribution: p(y|x) = p(y), every KL is 0.
  std::vector<double> p = {0.7, 0.2, 0.1, 0.7, 0.2, 0.1, 0.7, 0.2, 0.1};
  EXPECT_NEAR(inception_score(p, 3, 3), 1.0, 1e-12);
}

TEST(InceptionScore, OneHotPredictionsSpreadEvenlyScoreK) {
  // 8 samples, 4 classes, each class predicted with certainty twice: p(y) uniform, each
  // KL = ln 4, the score 4.
  const int64_t n = 8, k = 4;
  std::vector<double> p(static_cast<size_t>(n * k), 0.0);
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i * k + i % k)] = 1.0;
  EXPECT_NEAR(inception_score(p, n, k), 4.0, 1e-12);
}

TEST(InceptionScore, TwoClassHandExample) {
  // p(y|x1) = (0.9, 0.1), p(y|x2) = (0.3, 0.7); p(y) = (0.6, 0.4).
  // KL1 = 0.9 ln(0.9/0.6) + 0.1 ln(0.1/0.4) = 0.364919 - 0.138629 = 0.226289
  // KL2 = 0.3 ln(0.3/0.6) + 0.7 ln(0.7/0.4) = -0.207944 + 0.391731 = 0.183787
  // score = exp((KL1 + KL2) / 2) = exp(0.205038) = 1.227572
  std::vector<double> p = {0.9, 0.1, 0.3, 0.7};
  EXPECT_NEAR(inception_score(p, 2, 2), 1.227572, 1e-6);
}

TEST(InceptionScore, RejectsASizeThatIsNotNTimesK) {
  std::vector<double> p = {0.5, 0.5, 1.0};
  EXPECT_THROW(inception_score(p, 2, 2), dtrain::ValueError);
  EXPECT_THROW(inception_score({}, 0, 2), dtrain::ValueError);
}

class ScoreCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("score");
    train_ = (dir_ / "train.h5").string();
    CliRun r = dtrain_cmd("data synth images --out " + train_ +
                          " --n 96 --height 8 --width 8 --channels 1 --classes 3 --chunk-rows 16 --seed 2");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string cfg = (dir_ / "mlp.toml").string();
    std::ofstream(cfg) << "batch_size = 16\nsteps = 6\nthreads = 1\nseed = 1\n"
                          "[model]\nname = \"mlp\"\nhidden = 16\n"
                          "[optimizer]\nname = \"sgd\"\nlr = 0.1\nmomentum = 0.9\n"
                          "[data]\ntrain = \"" << train_ << "\"\n";
    const std::string ck = (dir_ / "ckpt").string();
    r = dtrain_cmd("train " + cfg + " --checkpoint-dir " + ck);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    classifier_ = ck + "/step-6.h5";
    ASSERT_TRUE(fs::exists(classifier_)) << r.output;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string train_, classifier_;
};

TEST_F(ScoreCli, ScoresALabelledFileWithHistogramAndAccuracy) {
  const std::string file = (dir_ / "eval.h5").string();
  ASSERT_EQ(dtrain_cmd("data synth images --out " + file + " --n 40 --height 8 --width 8 --channels 1 --classes 3 "
                       "--seed 9").exit_code,
            0);
  CliRun r = dtrain_cmd("score --classifier " + classifier_ + " " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "classifier " + classifier_ + ": mlp")) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m,
                                std::regex(file + R"(: 40 samples \| score ([0-9.]+) \(1 to 3\) \| accuracy ([0-9.]+)%)")))
      << r.output;
  const double score = std::stod(m[1]);
  EXPECT_GE(score, 1.0 - 1e-9);
  EXPECT_LE(score, 3.0 + 1e-9);
  EXPECT_TRUE(contains(r.output, "predicted classes:")) << r.output;

  // JSON: the same numbers, a histogram over the 3 classes summing to 40.
  CliRun j = dtrain_cmd("score --json --batch 7 --classifier " + classifier_ + " " + file + " " + train_);
  ASSERT_EQ(j.exit_code, 0) << j.output;
  std::vector<std::string> lines;
  std::istringstream in(j.output);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u) << j.output;
  EXPECT_NEAR(json_number(lines[0], "score"), score, 1e-4) << "the batch size does not change the score";
  EXPECT_EQ(json_number(lines[0], "samples"), 40);
  EXPECT_EQ(json_number(lines[0], "classes"), 3);
  EXPECT_TRUE(std::isfinite(json_number(lines[0], "accuracy"))) << lines[0];
  std::smatch h;
  ASSERT_TRUE(std::regex_search(lines[0], h, std::regex(R"("histogram":\[(\d+),(\d+),(\d+)\])"))) << lines[0];
  EXPECT_EQ(std::stoi(h[1]) + std::stoi(h[2]) + std::stoi(h[3]), 40) << lines[0];
  EXPECT_EQ(json_number(lines[1], "samples"), 96) << lines[1];
  // The training file's brightness encodes the class: 6 steps learn some of it.
  EXPECT_GT(json_number(lines[1], "accuracy"), 1.0 / 3) << lines[1];
}

TEST_F(ScoreCli, AnUnlabelledFileHasNoAccuracy) {
  // A GAN's export is image-only: write one with a tiny dcgan run.
  const std::string img = (dir_ / "img28.h5").string(), exported = (dir_ / "export.h5").string();
  ASSERT_EQ(dtrain_cmd("data synth images --out " + img + " --n 32 --height 28 --width 28 --channels 1 --classes 2")
                .exit_code,
            0);
  const std::string cfg = (dir_ / "gan.toml").string();
  std::ofstream(cfg) << "batch_size = 8\nsteps = 1\nthreads = 1\n[model]\nname = \"dcgan\"\nz_dim = 8\n"
                        "g_channels = 4\nd_channels = 4\n[data]\ntrain = \"" << img << "\"\n[gan]\nexport = \""
                     << exported << "\"\nexport_n = 12\n";
  CliRun t = dtrain_cmd("train " + cfg);
  ASSERT_EQ(t.exit_code, 0) << t.output;
  // A classifier of 28x28 images for it.
  const std::string cfg2 = (dir_ / "mlp28.toml").string(), ck = (dir_ / "ck28").string();
  std::ofstream(cfg2) << "batch_size = 8\nsteps = 2\nthreads = 1\n[model]\nname = \"mlp\"\nhidden = 8\n"
                         "[data]\ntrain = \"" << img << "\"\n";
  ASSERT_EQ(dtrain_cmd("train " + cfg2 + " --checkpoint-dir " + ck).exit_code, 0);
  CliRun r = dtrain_cmd("score --json --classifier " + ck + "/step-2.h5 " + exported);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json_number(r.output, "samples"), 12) << r.output;
  const double score = json_number(r.output, "score");
  EXPECT_GE(score, 1.0 - 1e-9);
  EXPECT_LE(score, 2.0 + 1e-9);
  EXPECT_FALSE(contains(r.output, "accuracy")) << r.output;

  // The dcgan's own checkpoint is no classifier.
  const std::string gck = (dir_ / "gck").string();
  ASSERT_EQ(dtrain_cmd("train " + cfg + " --checkpoint-dir " + gck).exit_code, 0);
  CliRun g = dtrain_cmd("score --classifier " + gck + "/step-1.h5 " + exported);
  EXPECT_EQ(g.exit_code, 2) << g.output;
  EXPECT_TRUE(contains(g.output, "is a dcgan checkpoint; it needs a checkpoint of the classifier recipe")) << g.output;
}

TEST_F(ScoreCli, ClearErrorsForAnotherImageSizeAndAMissingCheckpoint) {
  const std::string big = (dir_ / "big.h5").string();
  ASSERT_EQ(dtrain_cmd("data synth images --out " + big + " --n 8 --height 10 --width 10 --channels 1 --classes 3")
                .exit_code,
            0);
  CliRun r = dtrain_cmd("score --classifier " + classifier_ + " " + big);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, big + " has 10x10x1 images, but the classifier takes 8x8x1")) << r.output;

  const std::string missing = (dir_ / "nope" / "step-1.h5").string();
  CliRun m = dtrain_cmd("score --classifier " + missing + " " + big);
  EXPECT_EQ(m.exit_code, 2) << m.output;
  EXPECT_TRUE(contains(m.output, "--classifier " + missing + " does not exist")) << m.output;

  CliRun none = dtrain_cmd("score " + big);
  EXPECT_EQ(none.exit_code, 2) << none.output;
  EXPECT_TRUE(contains(none.output, "--classifier CKPT is required")) << none.output;

  CliRun moved = dtrain_cmd("score --classifier " + classifier_ + " --classifier-data " + (dir_ / "x.h5").string() +
                            " " + train_);
  EXPECT_EQ(moved.exit_code, 2) << moved.output;
  EXPECT_TRUE(contains(moved.output, "(--classifier-data) does not exist")) << moved.output;

  CliRun help = dtrain_cmd("score --help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_TRUE(contains(help.output, "usage: dtrain score [options] FILE.h5 [FILE.h5 ...]")) << help.output;
  EXPECT_TRUE(contains(help.output, "--classifier CKPT")) << help.output;
}

}  // namespace
