// The captioning recipe end to end (`dtrain train` with model.name = captioning,
// docs/CAPTIONING.md) on tiny captioned scenes made by `dtrain data synth captions` from
// synthetic item files: the evaluation (held-out loss, BLEU-4, exact captions, items in the
// right place, printed captions, the scene and attention pictures), 2 ranks at batch B
// against one process at 2B, a killed run resumed bit for bit, the data commands, refused
// input. The model itself: tests/core/test_captioner.cpp; the data: tests/datasets/test_captions.cpp.
#include <gtest/gtest.h>

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

class CaptioningRecipe : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("caption");
    const std::string items_train = (dir_ / "items_train.h5").string(), items_test = (dir_ / "items_test.h5").string();
    for (auto [path, n, seed] : {std::tuple{items_train, 64, 1}, std::tuple{items_test, 32, 2}}) {
      CliRun r = shell(bin() + " data synth images --out " + path + " --n " + std::to_string(n) +
                       " --height 8 --width 8 --channels 1 --classes 3 --seed " + std::to_string(seed));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    train_ = (dir_ / "train.h5").string();
    test_ = (dir_ / "test.h5").string();
    CliRun r = shell(bin() + " data synth captions --train-images " + items_train + " --test-images " + items_test +
                     " --out-train " + train_ + " --out-test " + test_ +
                     " --n-train 128 --n-test 24 --chunk-rows 16 --seed 4");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    metrics_ = (dir_ / "out" / "metrics.jsonl").string();
    samples_ = (dir_ / "out" / "scenes.png").string();
    attention_ = (dir_ / "out" / "attention.png").string();
    config_ = (dir_ / "caption.toml").string();
    std::ofstream(config_) << "batch_size = 8\nsteps = 8\nthreads = 1\nseed = 3\n"
                              "[model]\nname = \"captioning\"\n"
                              "[caption]\nconv_width = 4\nstages = 2\nemb_dim = 8\nhidden = 16\ncaptions = 3\n"
                              "samples = \"" << samples_ << "\"\nattention = \"" << attention_ << "\"\n"
                              "[data]\ntrain = \"" << train_ << "\"\ntest = \"" << test_ << "\"\n"
                              "[optimizer]\nname = \"adam\"\nlr = 0.01\n"
                              "[log]\ninterval = 1\nmetrics = \"" << metrics_ << "\"\n"
                              "[eval]\ninterval = 4\nbatch_size = 16\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> records(const char* kind) const {
    std::vector<std::string> out;
    for (const std::string& l : read_lines(metrics_)) {
      if (contains(l, std::string("\"kind\":\"") + kind + "\"")) out.push_back(l);
    }
    return out;
  }

  fs::path dir_;
  std::string train_, test_, metrics_, samples_, attention_, config_;
};

TEST_F(CaptioningRecipe, TrainsAndReportsLossBleuExactCaptionsItemsAndPictures) {
  CliRun r = shell(bin() + " train " + config_ + " --set steps=40 --set eval.interval=20 --set log.interval=10");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "captioning 1x16x16 -> conv 4x2 stages -> 4x4 positions")) << r.output;
  EXPECT_TRUE(contains(r.output, "tok/s")) << r.output;
  // The printed captions: the test file's first scenes, generated and (reference).
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(  #1 .* \((a|nothing) [^)]* below\))"))) << r.output;
  EXPECT_TRUE(contains(r.output, "  #3 ")) << r.output;
  EXPECT_FALSE(contains(r.output, "  #4 ")) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(held-out loss ([0-9.]+) \((\d+) tokens of 24 scenes\) \| BLEU-4 ([0-9.]+) .*\| exact ([0-9.]+)% \| items right ([0-9.]+)% \(cells ([0-9.]+)%, well-formed ([0-9.]+)%\))")))
      << r.output;
  EXPECT_TRUE(contains(r.output, "final held-out loss")) << r.output;

  std::vector<std::string> train = records("train");
  ASSERT_EQ(train.size(), 4u);
  EXPECT_GT(json_number(train.back(), "tokens_per_s"), 0);
  EXPECT_LT(json_number(train.back(), "loss"), json_number(train.front(), "loss"));
  std::vector<std::string> e = records("eval");
  ASSERT_EQ(e.size(), 2u);
  for (const std::string& l : e) {
    EXPECT_EQ(json_number(l, "test_samples"), 24) << l;
    // Every caption has at least "nothing above , x below </s>" after <s>.
    EXPECT_GE(json_number(l, "test_tokens"), 24 * 8) << l;
    for (const char* k : {"exact", "item_accuracy", "cell_accuracy", "well_formed"}) {
      EXPECT_GE(json_number(l, k), 0) << k;
      EXPECT_LE(json_number(l, k), 1) << k;
    }
    EXPECT_GE(json_number(l, "bleu"), 0);
    EXPECT_LE(json_number(l, "bleu"), 100);
    EXPECT_TRUE(contains(l, "\"captions\":[\"#1 ")) << l;
    EXPECT_TRUE(contains(l, "\"attention_png\":")) << l;
  }
  // Training lowers the held-out loss; the grammar is learnt before the items are.
  EXPECT_LT(json_number(e[1], "test_loss"), json_number(e[0], "test_loss"));
  EXPECT_GT(json_number(e[1], "well_formed"), 0.5) << e[1];
  // Three scenes of 16x16 at 3x in one row; the first scene and one panel per decoding step
  // at 2x, 8 a row.
  const dtrain::io::Image grid = dtrain::io::read_image(samples_);
  EXPECT_EQ(grid.width, 3 * 48 + 4 * 4);
  EXPECT_EQ(grid.height, 48 + 2 * 4);
  const dtrain::io::Image att = dtrain::io::read_image(attention_);
  EXPECT_EQ(att.channels, 3);
  EXPECT_EQ((att.width - 4) % 36, 0) << att.width;
  EXPECT_GE(att.width, 4 + 36 * 3);  // the scene and at least "nothing ... </s>"' first steps
}

TEST_F(CaptioningRecipe, TwoRanksAtBatchBEqualOneProcessAtTwiceB) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  const OneVersusTwo r = one_process_and_two_ranks(
      dir_, config_, " --set log.metrics= --set caption.samples= --set caption.attention=", 4, 8);
  if (::testing::Test::HasFailure()) return;
  // The ranks' halves hold different numbers of caption tokens; the loss is normalized by
  // the global count, so only the all-reduce's rounding separates the two, carried up by
  // Adam to about 1e-6.
  const dtrain::testing::ModelDifference d = dtrain::testing::expect_close_models(r.one, r.two, 1e-5, 1e-4);
  std::printf("2 ranks x 4 vs 1 x 8 after 8 steps: max |diff| %.3g (in %s)\n", d.max_abs, d.worst.c_str());
}

TEST_F(CaptioningRecipe, KilledRunResumesBitExactly) {
  const std::string ref = (dir_ / "ref").string(), ck = (dir_ / "ck").string();
  const std::string flags = " --checkpoint-every 2 --keep-last 0 --set log.metrics= --set eval.interval=0";
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

TEST_F(CaptioningRecipe, DataCommandsDescribeAndValidateTheFiles) {
  CliRun help = shell(bin() + " data synth captions --help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  for (const char* s : {"--train-images", "--test-images", "--n-train", "--empty", "a bag and a sneaker above"}) {
    EXPECT_TRUE(contains(help.output, s)) << s << "\n" << help.output;
  }
  CliRun missing = shell(bin() + " data synth captions --out-train " + (dir_ / "x.h5").string());
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(contains(missing.output, "--out-test is required")) << missing.output;
  CliRun bad = shell(bin() + " data synth captions --out-train a.h5 --out-test b.h5 --empty 1");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  CliRun inspect = shell(bin() + " data inspect " + test_);
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  for (const char* s : {"schema: image captions", "images: u8 (24, 16, 16, 1)", "captions: i32 (24, 15)",
                        "items: 3 (class0, class1, class2), per cell in /items", "validation: OK"}) {
    EXPECT_TRUE(contains(inspect.output, s)) << s << "\n" << inspect.output;
  }
}

TEST_F(CaptioningRecipe, RefusesOtherFilesAndAugmentation) {
  const std::string items = (dir_ / "items_train.h5").string();
  CliRun r = shell(bin() + " train " + config_ + " --set data.train=" + items);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "model.name = captioning needs an image-caption file (dtrain data synth captions)"))
      << r.output;
  CliRun flip = shell(bin() + " train " + config_ + " --set data.augment.hflip=true");
  EXPECT_EQ(flip.exit_code, 2) << flip.output;
  EXPECT_TRUE(contains(flip.output, "captions say where each item is")) << flip.output;
  CliRun small = shell(bin() + " train " + config_ + " --set caption.stages=5");
  EXPECT_NE(small.exit_code, 0) << small.output;
  EXPECT_TRUE(contains(small.output, "too small for 5 poolings")) << small.output;
  CliRun other = shell(bin() + " train " + config_ + " --set model.name=small_cnn");
  EXPECT_EQ(other.exit_code, 2) << other.output;
  EXPECT_TRUE(contains(other.output, "caption.samples")) << other.output;
}

}  // namespace
