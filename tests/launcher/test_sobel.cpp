// `dtrain demo sobel IMAGE OUT` end to end: a synthetic image (a white square on black)
// goes in through core/io/image.h, the program writes the Sobel edge magnitudes, and the
// edges must be exactly the square's outline, symmetric, zero elsewhere.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/io/image.h"
#include "tests/support/run.h"

namespace {

namespace fs = std::filesystem;

using CliRun = dtrain::testing::CommandResult;

CliRun dtrain(const std::string& args) { return dtrain::testing::run_dtrain(args); }

class DemoSobel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dtrain_sobel_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // 32x32 black with a white 12x12 square at rows and columns 10..21 (centered).
  static dtrain::io::Image square() {
    dtrain::io::Image im;
    im.height = im.width = 32;
    im.channels = 1;
    im.pixels.assign(32 * 32, 0);
    for (int y = 10; y < 22; ++y) {
      for (int x = 10; x < 22; ++x) im.pixels[static_cast<size_t>(y * 32 + x)] = 255;
    }
    return im;
  }

  // The edge image must be nonzero exactly on the ring of pixels whose 3x3 neighborhood
  // meets both the square and the background, and symmetric like the square.
  static void check_edges(const dtrain::io::Image& e) {
    ASSERT_EQ(e.height, 32);
    ASSERT_EQ(e.width, 32);
    ASSERT_EQ(e.channels, 1);
    auto in = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
    uint8_t max_seen = 0;
    for (int y = 0; y < 32; ++y) {
      for (int x = 0; x < 32; ++x) {
        uint8_t v = e.at(y, x);
        max_seen = std::max(max_seen, v);
        bool near_square = in(y, 9, 22) && in(x, 9, 22);
        bool interior = in(y, 11, 20) && in(x, 11, 20);
        if (near_square && !interior) {
          EXPECT_GT(v, 0) << "edge pixel (" << y << ", " << x << ")";
        } else {
          EXPECT_EQ(v, 0) << "flat pixel (" << y << ", " << x << ")";
        }
        EXPECT_EQ(v, e.at(x, y)) << "transpose symmetry at (" << y << ", " << x << ")";
        EXPECT_EQ(v, e.at(31 - y, x)) << "vertical mirror symmetry at (" << y << ", " << x << ")";
        EXPECT_EQ(v, e.at(y, 31 - x)) << "horizontal mirror symmetry at (" << y << ", " << x << ")";
      }
    }
    EXPECT_EQ(max_seen, 255);
    // The maximum is at the square's corners, e.g. (10, 10): gx = gy = 3 * 255.
    EXPECT_EQ(e.at(10, 10), 255);
  }

  fs::path dir_;
};

TEST_F(DemoSobel, FindsTheSquaresOutlinePgm) {
  dtrain::io::write_image(path("square.pgm"), square());
  CliRun r = dtrain("demo sobel " + path("square.pgm") + " " + path("edges.pgm"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("32 x 32"), std::string::npos) << r.output;
  // 765 * sqrt(2) = 1081.873...
  EXPECT_NE(r.output.find("max gradient magnitude 1081.873"), std::string::npos) << r.output;
  check_edges(dtrain::io::read_image(path("edges.pgm")));
}

TEST_F(DemoSobel, ReadsColorPngAndWritesPng) {
  dtrain::io::Image gray = square();
  dtrain::io::Image rgb;
  rgb.height = rgb.width = 32;
  rgb.channels = 3;
  for (uint8_t p : gray.pixels) rgb.pixels.insert(rgb.pixels.end(), {p, p, p});
  dtrain::io::write_image(path("square.png"), rgb);
  CliRun r = dtrain("demo sobel " + path("square.png") + " " + path("edges.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  check_edges(dtrain::io::read_image(path("edges.png")));
}

TEST_F(DemoSobel, FlatImageStaysBlack) {
  dtrain::io::Image im;
  im.height = 8;
  im.width = 5;
  im.pixels.assign(40, 128);
  dtrain::io::write_image(path("flat.pgm"), im);
  CliRun r = dtrain("demo sobel " + path("flat.pgm") + " " + path("edges.pgm"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  dtrain::io::Image e = dtrain::io::read_image(path("edges.pgm"));
  // Zero padding makes the image's own border an edge; the inside is flat.
  for (int y = 1; y < 7; ++y) {
    for (int x = 1; x < 4; ++x) EXPECT_EQ(e.at(y, x), 0) << y << ", " << x;
  }
  dtrain::io::Image black = im;
  black.pixels.assign(40, 0);
  dtrain::io::write_image(path("black.pgm"), black);
  r = dtrain("demo sobel " + path("black.pgm") + " " + path("edges.pgm"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("max gradient magnitude 0.000"), std::string::npos) << r.output;
  for (uint8_t p : dtrain::io::read_image(path("edges.pgm")).pixels) EXPECT_EQ(p, 0);
}

TEST_F(DemoSobel, BadInputIsAClearError) {
  CliRun r = dtrain("demo sobel " + path("missing.png") + " " + path("edges.png"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot open image " + path("missing.png")), std::string::npos) << r.output;

  std::ofstream(path("notes.png")) << "this is not an image\n";
  r = dtrain("demo sobel " + path("notes.png") + " " + path("edges.png"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not a PNG, JPEG, binary PGM (P5) or binary PPM (P6)"), std::string::npos) << r.output;

  dtrain::io::write_image(path("square.pgm"), square());
  r = dtrain("demo sobel " + path("square.pgm") + " " + path("edges.tif"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("unknown image extension '.tif'"), std::string::npos) << r.output;

  r = dtrain("demo sobel " + path("square.pgm"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
