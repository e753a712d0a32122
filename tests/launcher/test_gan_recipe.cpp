// `dtrain train` with model.name = "dcgan" end to end on a tiny synthetic 28x28 image
// file: a single-process run (progress lines and JSON metrics with finite loss_d and
// loss_g, the sample grid PNG at each evaluation with the expected size), the same
// under mpirun with 2 ranks, the configuration the recipe refuses; the global noise
// (2 ranks at batch B end with the parameters of 1 process at 2B, batch norm off);
// checkpoints (a killed or stopped run resumed with --resume auto ends bit-identical to
// an uninterrupted one, single-process and on 2 ranks); the gan.export file.
// The mpirun tests skip, visibly, without mpirun.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "core/checkpoint.h"
#include "core/io/h5.h"
#include "tests/support/checkpoints.h"
#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;

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
    dir_ = dtrain::testing::make_test_dir("gan");
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
  CliRun accum = shell(bin() + " train " + config_ + " --set grad_accum=2");
  EXPECT_EQ(accum.exit_code, 2) << accum.output;
  EXPECT_TRUE(contains(accum.output, "grad_accum must be 1 for model.name = dcgan")) << accum.output;
  CliRun typo = shell(bin() + " train " + config_ + " --set gan.sample=x.png");
  EXPECT_EQ(typo.exit_code, 2) << typo.output;
  EXPECT_TRUE(contains(typo.output, "unknown key 'gan.sample'")) << typo.output;
}

using dtrain::testing::compare_group;
using dtrain::testing::expect_same_state;

TEST_F(GanRecipe, CheckpointHoldsBothNetworksBothOptimizersAndTheNoiseStream) {
  const std::string ck = (dir_ / "ckpt").string();
  CliRun r = shell(bin() + " train " + config_ + " --checkpoint-dir " + ck + " --checkpoint-every 2 --keep-last 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "checkpoint step 2: " + ck + "/step-2.h5")) << r.output;
  EXPECT_TRUE(contains(r.output, "checkpoint step 4: " + ck + "/step-4.h5")) << r.output;
  const std::string path = ck + "/step-4.h5";
  dtrain::ckpt::Contents c = dtrain::ckpt::read(path);
  int g = 0, d = 0, g_opt = 0, d_opt = 0;
  for (const auto& [name, t] : c.model) {
    g += name.rfind("generator.main.", 0) == 0;
    d += name.rfind("discriminator.main.", 0) == 0;
  }
  for (const auto& [name, t] : c.optimizer) {
    g_opt += name.rfind("generator.main.", 0) == 0 && contains(name, ".exp_avg");
    d_opt += name.rfind("discriminator.main.", 0) == 0 && contains(name, ".exp_avg");
  }
  EXPECT_EQ(static_cast<size_t>(g + d), c.model.size()) << "every tensor under one of the two prefixes";
  // G: 4 conv weights, 3 batch norms x (weight, bias, running_mean, running_var,
  // num_batches_tracked); D: 4 conv weights, 2 batch norms.
  EXPECT_EQ(g, 4 + 3 * 5);
  EXPECT_EQ(d, 4 + 2 * 5);
  // Adam: exp_avg and exp_avg_sq of every parameter (G 4 + 3 x 2, D 4 + 2 x 2).
  EXPECT_EQ(g_opt, 2 * (4 + 3 * 2));
  EXPECT_EQ(d_opt, 2 * (4 + 2 * 2));
  EXPECT_EQ(c.optimizer_steps, 4);
  ASSERT_EQ(c.rng.size(), 1u);
  EXPECT_EQ(c.rng[0].name, "gan_noise");
  EXPECT_GT(c.rng[0].state.offset, 0u) << "the noise stream advanced";
  EXPECT_EQ(c.trainer.step, 4);
  EXPECT_EQ(c.trainer.cursor, 32) << "4 steps x batch 8 of the 64-sample epoch";
  EXPECT_EQ(c.trainer.global_batch, 8);

  // A classifier's checkpoint is refused, naming what is missing.
  const std::string cls = (dir_ / "cls").string();
  std::ofstream(dir_ / "mlp.toml") << "batch_size = 8\nsteps = 1\nthreads = 1\n[model]\nname = \"mlp\"\nhidden = 8\n"
                                      "[data]\ntrain = \"" << train_ << "\"\n";
  CliRun m = shell(bin() + " train " + (dir_ / "mlp.toml").string() + " --checkpoint-dir " + cls);
  ASSERT_EQ(m.exit_code, 0) << m.output;
  CliRun wrong = shell(bin() + " train " + config_ + " --resume " + cls + "/step-1.h5");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  EXPECT_TRUE(contains(wrong.output, "is of another model: it has no 'generator.main.0.weight'")) << wrong.output;
}

TEST_F(GanRecipe, KilledRunResumesBitExactly) {
  const std::string ref = (dir_ / "ref").string(), ck = (dir_ / "ck").string();
  const std::string flags = " --checkpoint-every 2 --keep-last 0 --set steps=6 --set log.metrics=";
  CliRun r = shell(bin() + " train " + config_ + " --checkpoint-dir " + ref + flags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Killed (SIGKILL) after step 3: the newest checkpoint is step 2.
  CliRun killed = shell("env DTRAIN_TEST_CRASH_AT_STEP=3 " + bin() + " train " + config_ + " --checkpoint-dir " + ck +
                        flags);
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_FALSE(fs::exists(ck + "/step-4.h5")) << killed.output;
  CliRun resumed = shell(bin() + " train " + config_ + " --checkpoint-dir " + ck + flags + " --resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resumed from " + ck + "/step-2.h5: step 2")) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "step 3/6 |")) << resumed.output;
  EXPECT_FALSE(contains(resumed.output, "step 2/6 |")) << resumed.output;
  expect_same_state(ref + "/step-6.h5", ck + "/step-6.h5");
  expect_same_state(ref + "/step-4.h5", ck + "/step-4.h5");
}

TEST_F(GanRecipe, KilledTwoRankRunResumesBitExactly) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  const std::string ref = (dir_ / "ref").string(), ck = (dir_ / "ck").string();
  const std::string run = dtrain::testing::mpirun_prefix(180) + " -np 2 " + bin() + " train " + config_ +
                          " --set batch_size=4 --checkpoint-every 2 --keep-last 0 --set steps=6 --set log.metrics=";
  CliRun r = shell(run + " --checkpoint-dir " + ref);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CliRun killed = shell("env DTRAIN_TEST_CRASH_AT_STEP=3 " + run + " --checkpoint-dir " + ck);
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_FALSE(fs::exists(ck + "/step-4.h5")) << killed.output;
  CliRun resumed = shell(run + " --checkpoint-dir " + ck + " --resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resumed from " + ck + "/step-2.h5: step 2")) << resumed.output;
  expect_same_state(ref + "/step-6.h5", ck + "/step-6.h5");
  dtrain::io::H5File f = dtrain::io::H5File::open_read(ck + "/step-6.h5");
  EXPECT_EQ(f.get_attribute<int64_t>("/trainer", "world_size"), 2);
}

TEST_F(GanRecipe, SigtermStopsWithACheckpointAndNoExportThenResumes) {
  const std::string ref = (dir_ / "ref").string(), ck = (dir_ / "ck").string();
  const std::string pids = (dir_ / "pids").string(), exported = (dir_ / "out" / "export.h5").string();
  fs::create_directories(pids);
  const std::string flags = " --set steps=40 --set log.interval=10 --set eval.interval=0 --set gan.samples= "
                            "--set gan.export=" + exported + " --set gan.export_n=5 --keep-last 0";
  CliRun r = shell(bin() + " train " + config_ + " --checkpoint-dir " + ref + flags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(exported)) << r.output;
  fs::remove(exported);

  CliRun run;
  std::thread t([&] {
    run = shell("env DTRAIN_TEST_PID_DIR=" + pids + " DTRAIN_TEST_STEP_DELAY_MS=40 " + bin() + " train " + config_ +
                " --checkpoint-dir " + ck + flags);
  });
  const auto t0 = std::chrono::steady_clock::now();
  long pid = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    std::ifstream in(pids + "/rank0.pid");
    if (in >> pid && pid > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(pid, 0) << "no " << pids << "/rank0.pid";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGTERM), 0);
  t.join();
  EXPECT_EQ(run.exit_code, 75) << run.output;
  long stopped = -1;
  std::ifstream(pids + "/rank0.stopped") >> stopped;
  ASSERT_GT(stopped, 0) << run.output;
  ASSERT_LT(stopped, 40) << run.output;
  EXPECT_TRUE(contains(run.output, "stop requested: stopping after step " + std::to_string(stopped))) << run.output;
  const std::string stop_ckpt = ck + "/step-" + std::to_string(stopped) + ".h5";
  EXPECT_NO_THROW(dtrain::ckpt::verify(stop_ckpt));
  EXPECT_FALSE(fs::exists(exported)) << "no gan.export on a stop";

  CliRun res = shell(bin() + " train " + config_ + " --checkpoint-dir " + ck + flags + " --resume auto");
  ASSERT_EQ(res.exit_code, 0) << res.output;
  EXPECT_TRUE(contains(res.output, "resumed from " + stop_ckpt)) << res.output;
  EXPECT_TRUE(fs::exists(exported)) << res.output;
  expect_same_state(ref + "/step-40.h5", ck + "/step-40.h5");
}

// Note [Global GAN noise]: without batch norm, 2 ranks at batch 4 and 1 process at batch
// 8 see the same samples and the same noise; only the all-reduce's rounding differs.
TEST_F(GanRecipe, TwoRanksAtBatchBEqualOneProcessAtTwiceB) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  const OneVersusTwo r = one_process_and_two_ranks(
      dir_, config_, " --set model.batch_norm=false --set steps=6 --set log.metrics= --set gan.samples=", 4, 6);
  if (::testing::Test::HasFailure()) return;
  const dtrain::ckpt::Contents& ca = r.one;
  const dtrain::ckpt::Contents& cb = r.two;
  ASSERT_EQ(ca.rng.size(), 1u);
  ASSERT_EQ(cb.rng.size(), 1u);
  EXPECT_EQ(ca.rng[0].state, cb.rng[0].state) << "the same noise drawn";
  const dtrain::testing::ModelDifference d = dtrain::testing::expect_close_models(ca, cb);
  // Not bit-equal in general (the all-reduce sums in another order), but close.
  std::printf("2 ranks x 4 vs 1 x 8 after 6 steps: max |diff| %.3g (in %s), max rel diff (values > 1e-4) %.3g\n",
              d.max_abs, d.worst.c_str(), d.max_rel);
  ::testing::Test::RecordProperty("max_abs_diff", std::to_string(d.max_abs));
}

TEST_F(GanRecipe, ExportWritesAnImageFileInTheDatasetSchema) {
  const std::string exported = (dir_ / "out" / "export.h5").string();
  CliRun r = shell(bin() + " train " + config_ + " --set gan.export=" + exported + " --set gan.export_n=37");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "export: 37 samples of G (eval mode, noise seed 1234) -> " + exported)) << r.output;
  EXPECT_FALSE(fs::exists(exported + ".tmp"));
  std::vector<std::string> lines = read_lines(metrics_);
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(contains(lines.back(), "\"kind\":\"export\"")) << lines.back();
  EXPECT_TRUE(contains(lines.back(), "\"path\":\"" + exported + "\"")) << lines.back();
  EXPECT_EQ(json_number(lines.back(), "samples"), 37) << lines.back();
  {
    dtrain::io::H5File f = dtrain::io::H5File::open_read(exported);
    EXPECT_EQ(f.list("/"), (std::vector<std::string>{"images"}));
    EXPECT_EQ(f.shape_of("/images"), (dtrain::Shape{37, 28, 28, 1}));
    EXPECT_EQ(f.dtype_of("/images"), dtrain::DType::U8);
    EXPECT_FALSE(f.layout_of("/images").chunks.empty()) << "chunked along N";
    std::vector<uint8_t> px = f.read("/images").to_vector<uint8_t>();
    const auto [lo, hi] = std::minmax_element(px.begin(), px.end());
    EXPECT_LT(*lo, *hi) << "the samples are not constant";
  }
  CliRun inspect = shell(bin() + " data inspect " + exported);
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_TRUE(contains(inspect.output, "37")) << inspect.output;

  // The same noise seed gives the same file; another seed other samples.
  const std::string again = (dir_ / "out" / "again.h5").string(), other = (dir_ / "out" / "other.h5").string();
  ASSERT_EQ(shell(bin() + " train " + config_ + " --set gan.export=" + again + " --set gan.export_n=37").exit_code, 0);
  ASSERT_EQ(shell(bin() + " train " + config_ + " --set gan.export=" + other +
                  " --set gan.export_n=37 --set gan.noise_seed=7").exit_code, 0);
  auto pixels = [](const std::string& p) {
    return dtrain::io::H5File::open_read(p).read("/images").to_vector<uint8_t>();
  };
  EXPECT_EQ(pixels(exported), pixels(again));
  EXPECT_NE(pixels(exported), pixels(other));
}

}  // namespace
