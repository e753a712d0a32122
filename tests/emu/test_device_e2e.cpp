// What a GPU user runs, on the emulated device (dtrain-emu, docs/EMULATOR.md): the
// demos with --device cuda, a short training run of every recipe with device = "cuda" on
// one process and on 2 ranks under mpirun (the NCCL process group), each compared with
// the same run on the CPU, `dtrain style` on the device against the CPU, and a checkpoint
// that resumes bit for bit on the device.
// The mpirun cases skip, visibly, without mpirun.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>
#include <fstream>
#include <string>
#include <vector>

#include "core/io/image.h"
#include "tests/support/checkpoints.h"
#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;
using dtrain::testing::expect_close_models;
using dtrain::testing::expect_same_state;

TEST(EmuProgram, InfoListsTheEmulatedDevices) {
  CliRun r = shell(bin() + " info");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "CUDA devices: 4")) << r.output;
}

TEST(EmuProgram, DemosRunOnTheDevice) {
  for (const char* demo : {"and", "xor", "line"}) {
    CliRun r = shell(bin() + " demo " + demo + " --device cuda");
    EXPECT_EQ(r.exit_code, 0) << demo << ":\n" << r.output;
    CliRun cpu = shell(bin() + " demo " + demo + " --device cpu");
    EXPECT_EQ(cpu.exit_code, 0) << demo << ":\n" << cpu.output;
  }
  const fs::path dir = dtrain::testing::make_test_dir("emu-sobel");
  const std::string in = (dir / "in.pgm").string();
  {
    std::ofstream f(in, std::ios::binary);
    f << "P5\n8 8\n255\n";
    for (int i = 0; i < 64; ++i) f.put(static_cast<char>((i % 8) < 4 ? 0 : 200));
  }
  for (const char* device : {"cuda", "cpu"}) {
    CliRun r = shell(bin() + " demo sobel " + in + " " + (dir / (std::string(device) + ".pgm")).string() +
                     " --device " + device);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  std::ifstream a(dir / "cuda.pgm", std::ios::binary), b(dir / "cpu.pgm", std::ios::binary);
  const std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
  EXPECT_FALSE(sa.empty());
  EXPECT_EQ(sa, sb) << "the edge image on the device and on the CPU";
  fs::remove_all(dir);
}

// `dtrain style --device cuda`: VGG16's features, the Gram matrices, Adam and the clamp on
// the device give the CPU's losses and, within rounding, its image.
TEST(EmuProgram, StyleTransferRunsOnTheDeviceLikeOnTheCpu) {
  const fs::path dir = dtrain::testing::make_test_dir("emu-style");
  dtrain::io::Image content, style;
  content.height = content.width = style.height = style.width = 16;
  content.channels = style.channels = 3;
  for (int i = 0; i < 16 * 16; ++i) {
    const int y = i / 16, x = i % 16;
    content.pixels.insert(content.pixels.end(), {static_cast<uint8_t>(16 * x), static_cast<uint8_t>(16 * y), 90});
    const bool stripe = ((x + y) / 2) % 2 == 0;
    style.pixels.insert(style.pixels.end(), {220, static_cast<uint8_t>(stripe ? 200 : 30), 20});
  }
  dtrain::io::write_image((dir / "content.png").string(), content);
  dtrain::io::write_image((dir / "style.png").string(), style);
  std::vector<std::vector<double>> losses;
  for (const char* device : {"cuda", "cpu"}) {
    std::string cmd = bin();
    cmd += " style --content ";
    cmd += (dir / "content.png").string();
    cmd += " --style ";
    cmd += (dir / "style.png").string();
    cmd += " --out ";
    cmd += (dir / device).string();
    cmd += ".png";
    cmd += " --size 16 --steps 4 --log-every 1 --device ";
    cmd += device;
    CliRun r = shell(cmd);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::vector<double> l;
    const std::regex line(R"(step \d+/\d+  loss ([0-9.e+-]+))");
    for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), line); it != std::sregex_iterator(); ++it) {
      l.push_back(std::stod((*it)[1]));
    }
    ASSERT_EQ(l.size(), 4u) << r.output;
    losses.push_back(l);
  }
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(losses[0][i], losses[1][i], 2e-3 * std::fabs(losses[1][i])) << "step " << i + 1;
  }
  const dtrain::io::Image a = dtrain::io::read_image((dir / "cuda.png").string());
  const dtrain::io::Image b = dtrain::io::read_image((dir / "cpu.png").string());
  ASSERT_EQ(a.pixels.size(), b.pixels.size());
  int worst = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(a.pixels[i] - b.pixels[i]));
  EXPECT_LE(worst, 2) << "the largest pixel difference between the device's and the CPU's image";
  fs::remove_all(dir);
}

// One recipe's tiny run: data made in SetUp, a config, the flags that choose it.
struct RecipeCase {
  const char* name;
  const char* data;    // the `dtrain data ...` arguments after "--out FILE"
  const char* config;  // the TOML after the data lines
  int64_t b;           // per-rank batch of the 2-rank run
};

std::string print_case(const ::testing::TestParamInfo<RecipeCase>& info) { return info.param.name; }
void PrintTo(const RecipeCase& c, std::ostream* os) { *os << c.name; }

class EmuRecipe : public ::testing::TestWithParam<RecipeCase> {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir(std::string("emu-") + GetParam().name);
    const std::string train = (dir_ / "train.h5").string();
    std::string make = bin() + " data " + GetParam().data + " --out " + train;
    if (std::string(GetParam().data) == "words") {
      // Two "languages" told apart by their letters, as dictionary indexes to convert.
      for (auto [lang, first] : {std::pair{"aaa", 'a'}, std::pair{"bbb", 'p'}}) {
        std::ofstream f(dir_ / ("freedict-" + std::string(lang) + "-eng.index"));
        uint32_t x = 12345;
        for (int i = 0; i < 80; ++i) {
          std::string w;
          for (int j = 0; j < 3 + i % 5; ++j) {
            x = x * 1664525u + 1013904223u;
            w += static_cast<char>(first + (x >> 24) % 8);
          }
          f << w << "\tA\tB\n";
        }
      }
      make = bin() + " data convert words --dict-dir " + dir_.string() + " --out-train " + train + " --out-test " +
             (dir_ / "test.h5").string() + " --test-fraction 0.2";
    }
    if (std::string(GetParam().data) == "captions") {
      // Scenes of 8x8 items of 3 classes: 16x16 captioned images.
      for (const char* split : {"train", "test"}) {
        CliRun items = shell(bin() + " data synth images --n 48 --height 8 --width 8 --channels 1 --classes 3 --out " +
                             (dir_ / (std::string("items_") + split + ".h5")).string());
        ASSERT_EQ(items.exit_code, 0) << items.output;
      }
      make = bin() + " data synth captions --train-images " + (dir_ / "items_train.h5").string() + " --test-images " +
             (dir_ / "items_test.h5").string() + " --out-train " + train + " --out-test " +
             (dir_ / "test.h5").string() + " --n-train 64 --n-test 16 --seed 1";
    }
    CliRun r = shell(make);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    config_ = (dir_ / "recipe.toml").string();
    std::ofstream(config_) << "steps = 3\nthreads = 1\nseed = 2\n"
                           << "[data]\ntrain = \"" << train << "\"\n"
                           << GetParam().config << "[log]\ninterval = 1\n[eval]\ninterval = 0\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `dtrain-emu train` on one process at batch 2b; its final checkpoint.
  dtrain::ckpt::Contents run_one(const std::string& device, const std::string& sub) {
    const std::string out = (dir_ / sub).string();
    CliRun r = shell(bin() + " train " + config_ + " --set device=" + device + " --set batch_size=" +
                     std::to_string(2 * GetParam().b) + " --checkpoint-dir " + out);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, device == "cuda" ? "cuda:0" : "cpu")) << "the run's device\n" << r.output;
    if (r.exit_code != 0) return {};
    return dtrain::ckpt::read(out + "/step-3.h5");
  }

  fs::path dir_;
  std::string config_;
};

TEST_P(EmuRecipe, TrainsOnTheDeviceLikeOnTheCpu) {
  dtrain::ckpt::Contents cpu = run_one("cpu", "cpu");
  dtrain::ckpt::Contents cuda = run_one("cuda", "cuda");
  if (HasFailure()) return;
  // Different kernels (the CUDA twins, cuDNN's and cuBLAS's stand-ins) sum in other orders:
  // three Adam steps keep the parameters within float rounding of each other.
  const auto d = expect_close_models(cpu, cuda, 2e-5, 2e-4);
  std::cout << GetParam().name << ": cuda vs cpu max |diff| " << d.max_abs << " (" << d.worst << ")\n";
}

TEST_P(EmuRecipe, TwoRanksWithTheNcclGroupTrainLikeOneProcess) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
  OneVersusTwo r = one_process_and_two_ranks(dir_, config_, " --set device=cuda", GetParam().b, 3);
  if (HasFailure()) return;
  const auto d = expect_close_models(r.one, r.two, 2e-5, 2e-4);
  std::cout << GetParam().name << ": 2 ranks vs 1 process max |diff| " << d.max_abs << " (" << d.worst << ")\n";
}

TEST_P(EmuRecipe, ResumesBitForBitOnTheDevice) {
  const std::string full = (dir_ / "full").string(), part = (dir_ / "part").string();
  const std::string base = bin() + " train " + config_ + " --set device=cuda --set steps=4 --set batch_size=" +
                           std::to_string(2 * GetParam().b);
  CliRun a = shell(base + " --checkpoint-dir " + full);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  CliRun b = shell(base + " --set steps=2 --checkpoint-dir " + part);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  CliRun c = shell(base + " --checkpoint-dir " + part + " --resume auto");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_TRUE(contains(c.output, "resumed from")) << c.output;
  expect_same_state(full + "/step-4.h5", part + "/step-4.h5", {"/model", "/optimizer"});
}

INSTANTIATE_TEST_SUITE_P(
    Recipes, EmuRecipe,
    ::testing::Values(
        RecipeCase{"classifier", "synth images --n 64 --height 12 --width 12 --channels 1 --classes 4 --seed 1",
                   "[model]\nname = \"small_cnn\"\nhidden = 16\n[optimizer]\nname = \"adam\"\nlr = 0.01\n", 8},
        RecipeCase{"seq2seq", "synth pairs --n 64 --max-len 6 --vocab 12 --seed 1",
                   "[model]\nname = \"seq2seq\"\nemb_dim = 8\nhidden = 16\nattention = \"general\"\n"
                   "[optimizer]\nname = \"adam\"\nlr = 0.01\n",
                   8},
        RecipeCase{"dcgan", "synth images --n 64 --height 28 --width 28 --channels 1 --classes 2 --seed 3",
                   "[model]\nname = \"dcgan\"\nz_dim = 16\ng_channels = 8\nd_channels = 8\nbatch_norm = false\n", 4},
        RecipeCase{"autoencoder", "synth images --n 64 --height 12 --width 12 --channels 1 --classes 3 --seed 1",
                   "[model]\nname = \"autoencoder\"\n[autoencoder]\ncode = 6\nwidth = 4\n"
                   "[optimizer]\nname = \"adam\"\nlr = 0.01\n",
                   8},
        RecipeCase{"text_classifier", "words",
                   "[model]\nname = \"text_classifier\"\n[text]\nemb_dim = 8\nhidden = 8\n"
                   "[optimizer]\nname = \"adam\"\nlr = 0.02\n",
                   8},
        RecipeCase{"captioning", "captions",
                   "[model]\nname = \"captioning\"\n[caption]\nconv_width = 4\nstages = 2\nemb_dim = 8\nhidden = 8\n"
                   "[optimizer]\nname = \"adam\"\nlr = 0.01\n",
                   8}),
    print_case);

}  // namespace
