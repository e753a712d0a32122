// `dtrain train` with model.name = "dcgan" end to end on a tiny synthetic 28x28 image
// file: a single-process run (progress lines and JSON metrics with finite loss_d and
// loss_g, the sample grid PNG at each evaluation with the expected size), the same
// under mpirun with 2 ranks, and the configuration the recipe refuses (checkpoints).
// The mpirun test skips, visibly, without mpirun.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/paths.h"
#include "tests/support/run.h"

namespace {

namespace fs = std::filesystem;
using dtrain::testing::contains;
using dtrain::testing::have_mpirun;
using dtrain::testing::json_number;
using dtrain::testing::read_lines;
using CliRun = dtrain::testing::CommandResult;

CliRun shell(const std::string& cmd) { return dtrain::testing::run_shell(cmd); }
std::string bin() { return dtrain::testing::dtrain_bin(); }

// Width and height from a PNG's IHDR chunk; {-1, -1} when the file is not a PNG.
std::pair<int64_t, int64_t> png_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[24] = {};
  in.read(reinterpret_cast<char*>(h), sizeof h);
  if (!in || h[0] != 0x89 || h[1] != 'P' || h[2] != 'N' || h[3] != 'G') return {-1, -1};
  auto be32 = [&](int at) {
    return (int64_t{h[at]} << 24) | (int64_t{h[at + 1]} << 16) | (int64_t{h[at + 2]} << 8) | int64_t{h[at + 3]};
  };
  return {be32(16), be32(20)};
}

class GanRecipe : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dtrain_gan_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    train_ = (dir_ / "images.h5").string();
    CliRun r = shell(bin() + " data synth images --out " + train_ +
                     " --n 64 --height 28 --width 28 --channels 1 --classes 2 --chunk-rows 16 --seed 3");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    metrics_ = (dir_ / "out" / "metrics.jsonl").string();
    samples_ = (dir_ / "out" / "samples.png").string();
    config_ = (dir_ / "dcgan.toml").string();
    std::ofstream(config_) << "batch_size = 8\nsteps = 4\nthreads = 1\nseed = 1\n"
                              "[model]\nname = \"dcgan\"\nz_dim = 16\ng_channels = 8\nd_channels = 8\n"
                              "batch_norm = true\n"
                              "[data]\ntrain = \"" << train_ << "\"\n"
                              "[gan]\nsamples = \"" << samples_ << "\"\nsamples_n = 10\n"
                              "[log]\ninterval = 1\nmetrics = \"" << metrics_ << "\"\n"
                              "[eval]\ninterval = 2\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The checks both runs share: progress lines for steps 1..4 with finite losses, the
  // metrics records and the 10-image grid (4 columns x 3 rows of 28x28, 2-pixel borders).
  void expect_a_good_run(const CliRun& r) {
    std::regex progress(
        R"(step (\d+)/4 \| epoch \d+/\d+ \| loss_d ([0-9.]+) \| loss_g ([0-9.]+) \| D\(x\) [0-9.]+ \| D\(G\(z\)\) [0-9.]+ / [0-9.]+ \| \d+ img/s)");
    std::vector<int> steps;
    for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), progress); it != std::sregex_iterator();
         ++it) {
      steps.push_back(std::stoi((*it)[1]));
      EXPECT_TRUE(std::isfinite(std::stod((*it)[2])) && std::isfinite(std::stod((*it)[3]))) << it->str();
    }
    EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4})) << r.output;
    EXPECT_TRUE(contains(r.output, "samples step 2/4: " + samples_)) << r.output;
    EXPECT_TRUE(contains(r.output, "samples step 4/4: " + samples_)) << r.output;
    EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(finished 4 steps in [0-9.]+ s; loss_d [0-9.]+, loss_g [0-9.]+)")))
        << r.output;

    std::vector<std::string> lines = read_lines(metrics_);
    ASSERT_EQ(lines.size(), 1u + 4u + 2u) << "header, 4 train records, 2 samples records in " << metrics_;
    EXPECT_TRUE(contains(lines[0], "\"kind\":\"header\"")) << lines[0];
    EXPECT_TRUE(contains(lines[0], "\"model\":\"dcgan\"")) << lines[0];
    int train = 0, samples = 0;
    for (const std::string& l : lines) {
      if (contains(l, "\"kind\":\"train\"")) {
        ++train;
        for (const char* key : {"loss_d", "loss_g", "d_real", "d_fake", "d_fake_g_step"}) {
          double v = json_number(l, key);
          EXPECT_TRUE(std::isfinite(v)) << key << " in " << l;
        }
        EXPECT_GT(json_number(l, "loss_d"), 0) << l;
        EXPECT_GT(json_number(l, "loss_g"), 0) << l;
      } else if (contains(l, "\"kind\":\"samples\"")) {
        ++samples;
      }
    }
    EXPECT_EQ(train, 4);
    EXPECT_EQ(samples, 2);
    auto [w, h] = png_size(samples_);
    EXPECT_EQ(w, 4 * 28 + 5 * 2) << samples_;
    EXPECT_EQ(h, 3 * 28 + 4 * 2) << samples_;
  }

  fs::path dir_;
  std::string train_, metrics_, samples_, config_;
};

TEST_F(GanRecipe, SingleProcessLogsBothLossesAndWritesTheSampleGrid) {
  CliRun r = shell(bin() + " train " + config_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "1 rank (mpi, cpu, 1 thread per rank), dcgan 28x28x1")) << r.output;
  EXPECT_TRUE(contains(r.output, "optimizer_g adam lr 0.0002 betas (0.5, 0.999)")) << r.output;
  expect_a_good_run(r);
}

TEST_F(GanRecipe, TwoRanksUnderMpirunComplete) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  CliRun r = shell(dtrain::testing::mpirun_prefix(180) + " -np 2 " + bin() + " train " + config_ + " --set batch_size=4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "2 ranks (")) << r.output;
  EXPECT_TRUE(contains(r.output, "global batch 8 (2 x 4)")) << r.output;
  expect_a_good_run(r);
}

TEST_F(GanRecipe, RefusesWhatTheRecipeDoesNotSupport) {
  CliRun ckpt = shell(bin() + " train " + config_ + " --checkpoint-dir " + (dir_ / "ckpt").string());
  EXPECT_EQ(ckpt.exit_code, 2) << ckpt.output;
  EXPECT_TRUE(contains(ckpt.output, "checkpoint.dir is not supported for model.name = dcgan")) << ckpt.output;
  CliRun accum = shell(bin() + " train " + config_ + " --set grad_accum=2");
  EXPECT_EQ(accum.exit_code, 2) << accum.output;
  EXPECT_TRUE(contains(accum.output, "grad_accum must be 1 for model.name = dcgan")) << accum.output;
  CliRun typo = shell(bin() + " train " + config_ + " --set gan.sample=x.png");
  EXPECT_EQ(typo.exit_code, 2) << typo.output;
  EXPECT_TRUE(contains(typo.output, "unknown key 'gan.sample'")) << typo.output;
}

}  // namespace
