// `dtrain style` end to end at tiny sizes: the images go in through core/io/image.h, the
// result comes out with the content image's shape, the losses fall, intermediate images
// are written when asked, and every bad input is refused before any work with a message
// naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "core/io/h5.h"
#include "core/io/image.h"
#include "tests/support/run.h"

namespace dtrain::testing {
namespace {

namespace fs = std::filesystem;

class StyleCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_test_dir("style");
    io::write_image(path("content.png"), content());
    io::write_image(path("style.png"), stripes());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CommandResult style(const std::string& more) {
    return run_dtrain("style --content " + path("content.png") + " --style " + path("style.png") + " " + more);
  }

  // 40x32 (wider than high): a smooth colour gradient with a dark disc.
  static io::Image content() {
    io::Image im;
    im.height = 32;
    im.width = 40;
    im.channels = 3;
    for (int y = 0; y < 32; ++y) {
      for (int x = 0; x < 40; ++x) {
        const bool disc = (x - 20) * (x - 20) + (y - 16) * (y - 16) < 64;
        im.pixels.push_back(static_cast<uint8_t>(disc ? 30 : 6 * x));
        im.pixels.push_back(static_cast<uint8_t>(disc ? 30 : 7 * y));
        im.pixels.push_back(static_cast<uint8_t>(disc ? 60 : 128));
      }
    }
    return im;
  }
  // 24x24 diagonal red and yellow stripes.
  static io::Image stripes() {
    io::Image im;
    im.height = im.width = 24;
    im.channels = 3;
    for (int y = 0; y < 24; ++y) {
      for (int x = 0; x < 24; ++x) {
        const bool a = ((x + y) / 3) % 2 == 0;
        im.pixels.insert(im.pixels.end(), {220, static_cast<uint8_t>(a ? 200 : 20), 20});
      }
    }
    return im;
  }

  // The total loss of each "step N/M" progress line, in order.
  static std::vector<double> losses(const std::string& out) {
    std::vector<double> v;
    const std::regex line(R"(step \d+/\d+  loss ([0-9.e+-]+))");
    for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator(); ++it) {
      v.push_back(std::stod((*it)[1]));
    }
    return v;
  }

  fs::path dir_;
};

TEST_F(StyleCli, AdamWritesAnImageOfTheContentShapeAndTheLossFalls) {
  const CommandResult r = style("--out " + path("out.png") + " --size 32 --steps 12 --log-every 4 --save-every 5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "VGG16 has random weights")) << r.output;
  EXPECT_TRUE(contains(r.output, "layers: content conv4_2 (weight 1), style conv1_1, conv2_1, conv3_1, conv4_1, "
                                 "conv5_1 (weight 1e+06 each)"))
      << r.output;
  const std::vector<double> l = losses(r.output);
  ASSERT_EQ(l.size(), 4u) << r.output;  // steps 1, 4, 8, 12
  EXPECT_LT(l.back(), 0.8 * l.front()) << r.output;
  const io::Image out = io::read_image(path("out.png"));
  EXPECT_EQ(out.width, 40);  // shorter side 32, aspect kept
  EXPECT_EQ(out.height, 32);
  EXPECT_EQ(out.channels, 3);
  EXPECT_NE(out.pixels, content().pixels);  // it changed
  EXPECT_TRUE(fs::exists(path("out.step5.png")));
  EXPECT_TRUE(fs::exists(path("out.step10.png")));
  EXPECT_FALSE(fs::exists(path("out.step12.png")));  // the last state is out.png itself
  EXPECT_TRUE(contains(r.output, "wrote " + path("out.png") + " (40x32) after 12 steps")) << r.output;
}

TEST_F(StyleCli, LbfgsFromNoiseAndAGrayscaleStyle) {
  io::write_image(path("gray.pgm"), io::to_grayscale(stripes()));
  const CommandResult r = run_dtrain("style --content " + path("content.png") + " --style " + path("gray.pgm") +
                                     " --out " + path("out.jpg") +
                                     " --size 16 --steps 8 --log-every 1 --optimizer lbfgs --init noise");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "is grayscale; it is used as an RGB image")) << r.output;
  const std::vector<double> l = losses(r.output);
  ASSERT_GE(l.size(), 2u) << r.output;
  EXPECT_LT(l.back(), l.front()) << r.output;
  const io::Image out = io::read_image(path("out.jpg"));
  EXPECT_EQ(out.width, 20);
  EXPECT_EQ(out.height, 16);
}

TEST_F(StyleCli, RefusesBadInputsBeforeWorking) {
  struct Case {
    std::string args, message;
    int code;
  };
  const std::string out = " --out " + path("o.png");
  const std::vector<Case> cases = {
      {"--out " + path("o.tif"), "--out " + path("o.tif") + " must end in .png, .jpg or .jpeg", 2},
      {"--out " + path("missing/o.png"), "the folder of --out", 2},
      {"--size 8" + out, "--size 8 is too small for layer conv5_1, which sees the image reduced 16 times: use --size "
                         "16 or more", 2},
      {"--size 8 --style-layers conv1_1,relu2_2 --content-layer conv2_1 --out " + path("small.png"), "", 0},
      {"--style-layers conv1_1,conv9_9" + out, "no VGG layer named 'conv9_9'; the layers are: conv1_1 relu1_1", 2},
      {"--style-layers conv1_1:x" + out, "the weight of conv1_1 'x' is not a number", 2},
      {"--optimizer sgd" + out, "--optimizer must be adam or lbfgs", 2},
      {"--init zeros" + out, "--init must be content or noise", 2},
      {"--device tpu" + out, "unknown --device 'tpu'", 2},
      {"--weights " + path("none.h5") + out, "--weights " + path("none.h5") + " does not exist", 2},
  };
  for (const Case& c : cases) {
    const CommandResult r = style(c.args + " --steps 1");
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.message)) << c.args << "\n" << r.output;
  }
  // Missing images and options.
  CommandResult r = run_dtrain("style --style " + path("style.png") + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.output, "--content is required")) << r.output;
  r = run_dtrain("style --content " + path("nope.png") + " --style " + path("style.png") + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.output, "--content " + path("nope.png") + " does not exist")) << r.output;
  // A file that is no image names the file.
  std::ofstream(path("bad.png")) << "not an image";
  r = run_dtrain("style --content " + path("content.png") + " --style " + path("bad.png") + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, path("bad.png"))) << r.output;
  // A weights file of another network names the tensor.
  {
    io::H5File f = io::H5File::create(path("other.h5"));
    f.write("/model/features.0.weight", Tensor::zeros({8, 3, 3, 3}));
  }
  r = style("--weights " + path("other.h5") + out + " --size 16 --steps 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "/model/features.0.weight is (8, 3, 3, 3) but the model's features.0.weight is "
                                 "(64, 3, 3, 3)"))
      << r.output;
  EXPECT_FALSE(fs::exists(path("o.png")));
}

TEST(StyleCliHelp, ExplainsWeightsAndOptions) {
  const CommandResult r = run_dtrain("style --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"--content", "--style-layers", "--optimizer", "scripts/import_torchvision.py",
                        "random weights", "--save-every"}) {
    EXPECT_TRUE(contains(r.output, s)) << s << "\n" << r.output;
  }
  EXPECT_TRUE(contains(run_dtrain("--help").output, "style")) << "not in the command list";
}

}  // namespace
}  // namespace dtrain::testing
