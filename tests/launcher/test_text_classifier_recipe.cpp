// The text classifier recipe end to end (`dtrain train` with model.name = text_classifier,
// docs/TEXT_CLASSIFIER.md) on a tiny language-identification set made by `dtrain data
// convert words` from synthetic dictionary indexes: evaluation with the majority baseline,
// per-class precision/recall and the confusion matrix, 2 ranks at batch B against one
// process at 2B, a killed run resumed bit for bit, `dtrain predict`, refused input. The
// model's padding invariance is tested in tests/core/test_text_classifier.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/io/image.h"
#include "tests/support/checkpoints.h"
#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;

class TextClassifierRecipe : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("text");
    // Two "languages" told apart by their letters: words of a..h and words of p..w.
    for (auto [lang, first] : {std::pair{"aaa", 'a'}, std::pair{"bbb", 'p'}}) {
      std::ofstream f(dir_ / ("freedict-" + std::string(lang) + "-eng.index"));
      for (int i = 0; i < 60; ++i) {
        std::string w;
        for (int j = 0, x = i; j < 3 + i % 4; ++j, x = x * 7 + 3) w += static_cast<char>(first + x % 8);
        f << w << "\tA\tB\n";
      }
    }
    train_ = (dir_ / "train.h5").string();
    test_ = (dir_ / "test.h5").string();
    CliRun r = shell(bin() + " data convert words --dict-dir " + dir_.string() + " --out-train " + train_ +
                     " --out-test " + test_ + " --test-fraction 0.25 --chunk-rows 8");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    metrics_ = (dir_ / "out" / "metrics.jsonl").string();
    confusion_ = (dir_ / "out" / "confusion.png").string();
    config_ = (dir_ / "text.toml").string();
    std::ofstream(config_) << "batch_size = 8\nsteps = 8\nthreads = 1\nseed = 1\n"
                              "[model]\nname = \"text_classifier\"\n"
                              "[text]\nemb_dim = 8\nhidden = 8\nconfusion = \"" << confusion_ << "\"\n"
                              "[data]\ntrain = \"" << train_ << "\"\ntest = \"" << test_ << "\"\n"
                              "[optimizer]\nname = \"adam\"\nlr = 0.02\n"
                              "[log]\ninterval = 4\nmetrics = \"" << metrics_ << "\"\n"
                              "[eval]\ninterval = 4\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string train_, test_, metrics_, confusion_, config_;
};

TEST_F(TextClassifierRecipe, TrainsAndReportsAccuracyPerClassScoresAndTheConfusionMatrix) {
  CliRun r = shell(bin() + " train " + config_ + " --set steps=40 --set eval.interval=40");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "text_classifier chars")) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(test accuracy ([0-9.]+)% \((\d+) samples; majority class ([0-9.]+)%\))")))
      << r.output;
  // Letters a..h against p..w: learnt well above the majority class within 40 steps.
  EXPECT_GT(std::stod(m[1]), std::stod(m[3]) + 20) << r.output;
  EXPECT_TRUE(contains(r.output, "precision / recall: aaa ")) << r.output;
  std::vector<std::string> lines = read_lines(metrics_);
  std::string eval;
  for (const std::string& l : lines) {
    if (contains(l, "\"kind\":\"eval\"")) eval = l;
  }
  ASSERT_FALSE(eval.empty());
  // The confusion matrix's entries add up to the test samples.
  std::smatch cm;
  ASSERT_TRUE(std::regex_search(eval, cm, std::regex(R"("confusion":\[\[(\d+),(\d+)\],\[(\d+),(\d+)\]\])"))) << eval;
  EXPECT_EQ(std::stoi(cm[1]) + std::stoi(cm[2]) + std::stoi(cm[3]) + std::stoi(cm[4]), std::stoi(m[2])) << eval;
  EXPECT_TRUE(contains(eval, "\"class\":\"bbb\",\"precision\":")) << eval;
  dtrain::io::Image img = dtrain::io::read_image(confusion_);
  EXPECT_EQ(img.width, 2 * 25 + 1);
  EXPECT_EQ(img.height, img.width);
  EXPECT_TRUE(contains(r.output, "final test accuracy")) << r.output;
}

TEST_F(TextClassifierRecipe, TwoRanksAtBatchBEqualOneProcessAtTwiceB) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  const OneVersusTwo r = one_process_and_two_ranks(dir_, config_, " --set log.metrics= --set text.confusion=", 4, 8);
  if (::testing::Test::HasFailure()) return;
  // Adam at lr 0.02 carries the all-reduce's rounding (about 1e-7) up to about 1e-6.
  const dtrain::testing::ModelDifference d = dtrain::testing::expect_close_models(r.one, r.two, 1e-5, 1e-4);
  std::printf("2 ranks x 4 vs 1 x 8 after 8 steps: max |diff| %.3g (in %s)\n", d.max_abs, d.worst.c_str());
}

TEST_F(TextClassifierRecipe, KilledRunResumesBitExactly) {
  const std::string ref = (dir_ / "ref").string(), ck = (dir_ / "ck").string();
  const std::string flags = " --checkpoint-every 2 --keep-last 0 --set log.metrics=";
  CliRun r = shell(bin() + " train " + config_ + " --checkpoint-dir " + ref + flags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CliRun killed = shell("env DTRAIN_TEST_CRASH_AT_STEP=5 " + bin() + " train " + config_ + " --checkpoint-dir " + ck +
                        flags);
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  CliRun resumed = shell(bin() + " train " + config_ + " --checkpoint-dir " + ck + flags + " --resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resumed from " + ck + "/step-4.h5: step 4")) << resumed.output;
  dtrain::testing::expect_same_state(ref + "/step-8.h5", ck + "/step-8.h5", {"/model", "/optimizer"});
}

TEST_F(TextClassifierRecipe, PredictPrintsTheTopClassesOfEachWord) {
  const std::string ck = (dir_ / "ck").string();
  CliRun r = shell(bin() + " train " + config_ + " --set steps=40 --set eval.interval=40 --checkpoint-dir " + ck);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CliRun p = shell(bin() + " predict --checkpoint " + ck + "/step-40.h5 --top 2 abcdef QRSTUV");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(p.output, m, std::regex(R"(abcdef: (\w+) ([0-9.]+)% (\w+) ([0-9.]+)%)"))) << p.output;
  EXPECT_EQ(m[1], "aaa") << p.output;
  EXPECT_NEAR(std::stod(m[2]) + std::stod(m[4]), 100.0, 0.11) << p.output;
  ASSERT_TRUE(std::regex_search(p.output, m, std::regex(R"(QRSTUV: (\w+))"))) << p.output;
  EXPECT_EQ(m[1], "bbb") << "upper case is lowered as in the training file: " << p.output;
  CliRun none = shell(bin() + " predict --checkpoint " + ck + "/step-40.h5");
  EXPECT_EQ(none.exit_code, 2) << none.output;
}

TEST_F(TextClassifierRecipe, RefusesImageFilesAndMismatchedVocabularies) {
  const std::string images = (dir_ / "images.h5").string();
  ASSERT_EQ(shell(bin() + " data synth images --out " + images + " --n 32 --height 8 --width 8 --channels 1" +
                  " --classes 2").exit_code,
            0);
  CliRun r = shell(bin() + " train " + config_ + " --set data.train=" + images + " --set data.test=");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "needs a sequence-classification file")) << r.output;
  // A test file of other languages: another vocabulary.
  for (auto [lang, first] : {std::pair{"ccc", 'i'}, std::pair{"ddd", 'x'}}) {
    fs::create_directories(dir_ / "other");
    std::ofstream f(dir_ / "other" / ("freedict-" + std::string(lang) + "-eng.index"));
    for (int i = 0; i < 27; ++i) {
      f << static_cast<char>(first + i % 3) << static_cast<char>(first + i / 3 % 3) << static_cast<char>(first + i / 9)
        << "\tA\tB\n";
    }
  }
  const std::string other = (dir_ / "other.h5").string();
  CliRun c = shell(bin() + " data convert words --dict-dir " + (dir_ / "other").string() + " --out-train " + other +
                   " --out-test " + (dir_ / "unused.h5").string() + " --test-fraction 0");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  CliRun mismatch = shell(bin() + " train " + config_ + " --set data.test=" + other);
  EXPECT_EQ(mismatch.exit_code, 2) << mismatch.output;
  EXPECT_TRUE(contains(mismatch.output, "have different vocabularies")) << mismatch.output;
  // An autoencoder on this file: the reverse.
  CliRun ae = shell(bin() + " train " + config_ + " --set model.name=autoencoder --set text.confusion= --set data.test=");
  EXPECT_EQ(ae.exit_code, 2) << ae.output;
  EXPECT_TRUE(contains(ae.output, "model.name = autoencoder needs an image file")) << ae.output;
}

}  // namespace
