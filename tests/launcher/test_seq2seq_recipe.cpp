// `dtrain train` with model.name = "seq2seq" end to end on a tiny synthetic pair set
// (the target reverses the source): a single-process run (progress in tokens/s, the
// evaluation line with held-out loss, token accuracy, BLEU and printed translations, the
// JSON metrics), 2 ranks under mpirun training exactly like one process at the doubled
// batch (Note [Seq2seq loss over the global batch] in launcher/train/recipes/seq2seq.cpp), a
// resume that continues exactly, and the set-up errors. The mpirun tests
// skip, visibly, without mpirun.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;

class Seq2SeqRecipe : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("s2s");
    train_ = (dir_ / "train.h5").string();
    test_ = (dir_ / "test.h5").string();
    for (auto [path, n, seed] : {std::tuple{train_, 256, 1}, std::tuple{test_, 40, 2}}) {
      CliRun r = shell(bin() + " data synth pairs --out " + path + " --n " + std::to_string(n) +
                       " --max-len 6 --vocab 12 --chunk-rows 32 --seed " + std::to_string(seed));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    metrics_ = (dir_ / "out" / "metrics.jsonl").string();
    config_ = (dir_ / "s2s.toml").string();
    std::ofstream(config_) << "batch_size = 16\nsteps = 6\nthreads = 1\nseed = 3\n"
                              "[model]\nname = \"seq2seq\"\nemb_dim = 8\nhidden = 16\nattention = \"general\"\n"
                              "[data]\ntrain = \"" << train_ << "\"\ntest = \"" << test_ << "\"\n"
                              "[optimizer]\nname = \"adam\"\nlr = 0.01\n"
                              "[seq2seq]\ntranslations = 3\n"
                              "[log]\ninterval = 1\nmetrics = \"" << metrics_ << "\"\n"
                              "[eval]\ninterval = 3\nbatch_size = 16\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The per-step training losses of the metrics file.
  std::vector<double> train_losses() const {
    std::vector<double> out;
    for (const std::string& l : read_lines(metrics_)) {
      if (contains(l, "\"kind\":\"train\"")) out.push_back(json_number(l, "loss"));
    }
    return out;
  }
  std::vector<std::string> evals() const {
    std::vector<std::string> out;
    for (const std::string& l : read_lines(metrics_)) {
      if (contains(l, "\"kind\":\"eval\"")) out.push_back(l);
    }
    return out;
  }

  fs::path dir_;
  std::string train_, test_, metrics_, config_;
};

}  // namespace

TEST_F(Seq2SeqRecipe, SingleProcessReportsTokensLossAccuracyBleuAndTranslations) {
  CliRun r = shell(bin() + " train " + config_ + " --set steps=30 --set eval.interval=15 --set log.interval=5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "seq2seq words 12 -> 12")) << r.output;
  EXPECT_TRUE(contains(r.output, "tok/s")) << r.output;
  EXPECT_TRUE(contains(r.output, "held-out loss")) << r.output;
  EXPECT_TRUE(contains(r.output, "token accuracy")) << r.output;
  EXPECT_TRUE(contains(r.output, "BLEU")) << r.output;
  EXPECT_TRUE(contains(r.output, " => ")) << r.output;  // printed translations
  EXPECT_TRUE(contains(r.output, "final held-out loss")) << r.output;

  std::vector<std::string> train;
  for (const std::string& l : read_lines(metrics_)) {
    if (contains(l, "\"kind\":\"train\"")) train.push_back(l);
  }
  ASSERT_EQ(train.size(), 6u);
  EXPECT_GT(json_number(train.back(), "tokens_per_s"), 0);
  EXPECT_LT(json_number(train.back(), "loss"), json_number(train.front(), "loss"));  // it learns
  std::vector<std::string> e = evals();
  ASSERT_EQ(e.size(), 2u);  // steps 15 and 30
  for (const std::string& l : e) {
    EXPECT_EQ(json_number(l, "test_samples"), 40) << l;
    // Every pair's target is its reversed source plus </s>: at least one token each.
    EXPECT_GE(json_number(l, "test_tokens"), 40) << l;
    const double acc = json_number(l, "token_accuracy"), bleu = json_number(l, "bleu");
    EXPECT_GE(acc, 0);
    EXPECT_LE(acc, 1);
    EXPECT_GE(bleu, 0);
    EXPECT_LE(bleu, 100);  // BLEU in percent, as usually quoted
    EXPECT_TRUE(contains(l, "\"translations\":[\"")) << l;
  }
  // Training lowers the held-out loss and raises the token accuracy.
  EXPECT_LT(json_number(e[1], "test_loss"), json_number(e[0], "test_loss"));
  EXPECT_GT(json_number(e[1], "token_accuracy"), json_number(e[0], "token_accuracy"));
}

// 2 ranks at batch 8 train like 1 process at batch 16, step by step, although the ranks'
// halves hold different numbers of target tokens: the loss is normalized by the global
// token count. The held-out evaluation, sharded over the ranks, agrees too.
TEST_F(Seq2SeqRecipe, TwoRanksTrainLikeOneProcessWithTheGlobalBatch) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  auto run = [&](const std::string& cmd) {
    CliRun r = shell(cmd);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return std::pair{train_losses(), evals()};
  };
  auto [two, two_eval] = run(dtrain::testing::mpirun_prefix() + " -np 2 " + bin() + " train " + config_ +
                             " --set batch_size=8");
  auto [one, one_eval] = run(bin() + " train " + config_);
  ASSERT_EQ(two.size(), 6u);
  ASSERT_EQ(one.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(two[i], one[i], 1e-4 * one[i]) << "step " << i + 1;
  ASSERT_EQ(two_eval.size(), 2u);
  ASSERT_EQ(one_eval.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(json_number(two_eval[i], "test_loss"), json_number(one_eval[i], "test_loss"),
                1e-4 * json_number(one_eval[i], "test_loss"));
    EXPECT_EQ(json_number(two_eval[i], "test_tokens"), json_number(one_eval[i], "test_tokens"));
    EXPECT_EQ(json_number(two_eval[i], "test_samples"), 40);
  }
}

// The classifier's checkpoint machinery serves the recipe: 3 steps, then a resume to 6,
// gives the same per-step losses as 6 steps in one go (equal in all the 6 significant
// digits the metrics record; test_resume.cpp checks bit-exactness of the machinery).
TEST_F(Seq2SeqRecipe, ResumeContinuesExactlyWhereTheCheckpointLeftOff) {
  const std::string ckpt = (dir_ / "ckpt").string();
  CliRun full = shell(bin() + " train " + config_ + " --set eval.interval=0 --set data.test=\"\"");
  ASSERT_EQ(full.exit_code, 0) << full.output;
  std::vector<double> want = train_losses();
  ASSERT_EQ(want.size(), 6u);
  CliRun first = shell(bin() + " train " + config_ + " --set eval.interval=0 --set data.test=\"\" --set steps=3" +
                       " --set checkpoint.dir=" + ckpt);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  CliRun second = shell(bin() + " train " + config_ + " --set eval.interval=0 --set data.test=\"\"" +
                        " --set checkpoint.dir=" + ckpt + " --resume auto");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_TRUE(contains(second.output, "resumed from")) << second.output;
  std::vector<double> got = train_losses();  // the resumed run appends steps 4..6
  ASSERT_EQ(got.size(), 3u + 3u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(got[i], want[i]) << "step " << i + 1;
}

TEST_F(Seq2SeqRecipe, AnImageFileIsRefusedWithAClearMessage) {
  const std::string images = (dir_ / "images.h5").string();
  ASSERT_EQ(shell(bin() + " data synth images --out " + images + " --n 32 --height 8 --width 8 --channels 1" +
                  " --classes 2").exit_code,
            0);
  CliRun r = shell(bin() + " train " + config_ + " --set data.train=" + images);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "model.name = seq2seq needs a sequence-pair file")) << r.output;
  CliRun odd = shell(bin() + " train " + config_ + " --set model.hidden=15");
  EXPECT_NE(odd.exit_code, 0);
  EXPECT_TRUE(contains(odd.output, "model.hidden")) << odd.output;
  EXPECT_TRUE(contains(odd.output, "even")) << odd.output;
}
