// The autoencoder recipe end to end (`dtrain train` with model.name = autoencoder,
// docs/AUTOENCODER.md): progress, held-out loss and PSNR, the reconstruction grid, 2 ranks
// at batch B against one process at 2B (denoising included: the noise is the global
// batch's), a killed run resumed bit for bit, `dtrain encode`, and refused input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/io/h5.h"
#include "core/io/image.h"
#include "tests/support/checkpoints.h"
#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;

class AutoencoderRecipe : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("ae");
    train_ = (dir_ / "train.h5").string();
    test_ = (dir_ / "test.h5").string();
    for (auto [path, n, seed] : {std::tuple{train_, 96, 1}, std::tuple{test_, 20, 2}}) {
      CliRun r = shell(bin() + " data synth images --out " + path + " --n " + std::to_string(n) +
                       " --height 12 --width 12 --channels 1 --classes 3 --chunk-rows 16 --seed " + std::to_string(seed));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    metrics_ = (dir_ / "out" / "metrics.jsonl").string();
    samples_ = (dir_ / "out" / "grid.png").string();
    config_ = (dir_ / "ae.toml").string();
    std::ofstream(config_) << "batch_size = 8\nsteps = 6\nthreads = 1\nseed = 1\n"
                              "[model]\nname = \"autoencoder\"\n"
                              "[autoencoder]\ncode = 6\nwidth = 4\nsamples = \"" << samples_ << "\"\nsamples_n = 5\n"
                              "[data]\ntrain = \"" << train_ << "\"\ntest = \"" << test_ << "\"\n"
                              "[optimizer]\nname = \"adam\"\nlr = 0.01\n"
                              "[log]\ninterval = 2\nmetrics = \"" << metrics_ << "\"\n"
                              "[eval]\ninterval = 3\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string train_, test_, metrics_, samples_, config_;
};

TEST_F(AutoencoderRecipe, TrainsEvaluatesAndWritesTheReconstructionGrid) {
  CliRun r = shell(bin() + " train " + config_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "autoencoder 12x12x1 -> code 6 (width 4, loss bce)")) << r.output;
  EXPECT_TRUE(contains(r.output, "96 images 12x12x1, pixels in [0, 1]")) << r.output;
  std::regex eval(R"(eval  step (\d)/6 \| epoch [0-9.]+ \| held-out loss ([0-9.]+) \| pixel MSE ([0-9.]+) \| PSNR ([0-9.]+) dB \(20 images\))");
  std::vector<int> at;
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), eval); it != std::sregex_iterator(); ++it) {
    at.push_back(std::stoi((*it)[1]));
    const double mse = std::stod((*it)[3]), psnr = std::stod((*it)[4]);
    EXPECT_GT(mse, 0) << it->str();
    EXPECT_NEAR(psnr, 10 * std::log10(1 / mse), 0.02) << it->str();  // printed to 5 and 2 decimals
  }
  EXPECT_EQ(at, (std::vector<int>{3, 6})) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(final held-out loss [0-9.]+, PSNR [0-9.]+ dB \(6 steps, 1 rank)")))
      << r.output;
  // Inputs and reconstructions of 5 test images: 2 rows of 5, 12x12 with 2-pixel borders.
  dtrain::io::Image grid = dtrain::io::read_image(samples_);
  EXPECT_EQ(grid.width, 5 * 12 + 6 * 2);
  EXPECT_EQ(grid.height, 2 * 12 + 3 * 2);
  std::vector<std::string> lines = read_lines(metrics_);
  int evals = 0;
  for (const std::string& l : lines) {
    if (!contains(l, "\"kind\":\"eval\"")) continue;
    ++evals;
    for (const char* key : {"test_loss", "test_mse", "psnr"}) EXPECT_TRUE(std::isfinite(json_number(l, key))) << l;
  }
  EXPECT_EQ(evals, 2);
  EXPECT_TRUE(contains(lines.at(0), "\"model\":\"autoencoder\"")) << lines.at(0);
}

TEST_F(AutoencoderRecipe, DenoisingAddsTheCorruptedRowAndTheLossFallsOnTheTrainingSet) {
  CliRun r = shell(bin() + " train " + config_ + " --set autoencoder.noise=mask --set autoencoder.noise_level=0.25" +
                   " --set steps=30 --set log.interval=10 --set eval.interval=30");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "denoising (mask noise 0.25)")) << r.output;
  dtrain::io::Image grid = dtrain::io::read_image(samples_);
  EXPECT_EQ(grid.height, 3 * 12 + 4 * 2) << "inputs, corrupted inputs, reconstructions";
  std::vector<double> losses;
  for (const std::string& l : read_lines(metrics_)) {
    if (contains(l, "\"kind\":\"train\"")) losses.push_back(json_number(l, "loss"));
  }
  ASSERT_EQ(losses.size(), 3u);
  EXPECT_LT(losses.back(), losses.front());
}

TEST_F(AutoencoderRecipe, TwoRanksAtBatchBEqualOneProcessAtTwiceBWithDenoising) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  const OneVersusTwo r = one_process_and_two_ranks(
      dir_, config_, " --set autoencoder.noise=gaussian --set log.metrics= --set autoencoder.samples=", 4, 6);
  if (::testing::Test::HasFailure()) return;
  const dtrain::ckpt::Contents& ca = r.one;
  const dtrain::ckpt::Contents& cb = r.two;
  ASSERT_EQ(ca.rng.size(), 1u);
  ASSERT_EQ(cb.rng.size(), 1u);
  EXPECT_EQ(ca.rng[0].state, cb.rng[0].state) << "the same noise drawn";
  const dtrain::testing::ModelDifference d = dtrain::testing::expect_close_models(ca, cb);
  std::printf("2 ranks x 4 vs 1 x 8 after 6 steps: max |diff| %.3g (in %s)\n", d.max_abs, d.worst.c_str());
}

TEST_F(AutoencoderRecipe, KilledRunResumesBitExactlyWithDenoising) {
  const std::string ref = (dir_ / "ref").string(), ck = (dir_ / "ck").string();
  const std::string flags = " --checkpoint-every 2 --keep-last 0 --set log.metrics= --set autoencoder.noise=gaussian";
  CliRun r = shell(bin() + " train " + config_ + " --checkpoint-dir " + ref + flags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CliRun killed = shell("env DTRAIN_TEST_CRASH_AT_STEP=3 " + bin() + " train " + config_ + " --checkpoint-dir " + ck +
                        flags);
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_FALSE(fs::exists(ck + "/step-4.h5")) << killed.output;
  CliRun resumed = shell(bin() + " train " + config_ + " --checkpoint-dir " + ck + flags + " --resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resumed from " + ck + "/step-2.h5: step 2")) << resumed.output;
  dtrain::testing::expect_same_state(ref + "/step-6.h5", ck + "/step-6.h5");
}

TEST_F(AutoencoderRecipe, EncodeWritesOneCodePerImage) {
  const std::string ck = (dir_ / "ck").string(), codes = (dir_ / "codes.h5").string();
  CliRun r = shell(bin() + " train " + config_ + " --checkpoint-dir " + ck);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CliRun e = shell(bin() + " encode --checkpoint " + ck + "/step-6.h5 " + test_ + " --out " + codes);
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_TRUE(contains(e.output, "encode: 20 images -> " + codes)) << e.output;
  dtrain::io::H5File f = dtrain::io::H5File::open_read(codes);
  dtrain::Tensor c = f.read("/codes");
  EXPECT_EQ(c.shape(), (dtrain::Shape{20, 6}));
  std::vector<float> v = c.to(dtrain::DType::F32).to_vector<float>();
  bool varied = false;
  for (size_t i = 6; i < v.size(); ++i) varied = varied || v[i] != v[i % 6];
  EXPECT_TRUE(varied) << "different images get different codes";
  EXPECT_EQ(f.read("/labels").numel(), 20);  // the data file's labels, for plotting
  // Bad input: not an autoencoder checkpoint, a missing file.
  CliRun missing = shell(bin() + " encode --checkpoint " + ck + "/nope.h5 " + test_ + " --out " + codes);
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(contains(missing.output, "nope.h5")) << missing.output;
}

TEST_F(AutoencoderRecipe, RefusesWhatItCannotTrainOn) {
  // A sequence-pair file is not an image file.
  const std::string tsv = (dir_ / "p.tsv").string(), pairs = (dir_ / "pairs.h5").string();
  {
    std::ofstream out(tsv);
    for (int i = 0; i < 40; ++i) out << "a b " << i << "\tc d " << i << "\n";
  }
  ASSERT_EQ(shell(bin() + " data convert pairs --input " + tsv + " --out-train " + pairs + " --out-test " +
                  (dir_ / "pt.h5").string() + " --test-fraction 0.25")
                .exit_code,
            0);
  CliRun r = shell(bin() + " train " + config_ + " --set data.train=" + pairs + " --set data.test=");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "model.name = autoencoder needs an image file")) << r.output;
  CliRun norm = shell(bin() + " train " + config_ + " --set data.normalize=tanh");
  EXPECT_EQ(norm.exit_code, 2) << norm.output;
  EXPECT_TRUE(contains(norm.output, "data.normalize must be auto for model.name = autoencoder")) << norm.output;
  CliRun level = shell(bin() + " train " + config_ + " --set autoencoder.noise=mask --set autoencoder.noise_level=1.5");
  EXPECT_EQ(level.exit_code, 2) << level.output;
  EXPECT_TRUE(contains(level.output, "autoencoder.noise_level must be in (0, 1)")) << level.output;
}

}  // namespace
