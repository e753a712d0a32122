// Image files (core/io/image.h): PNG and PGM/PPM round trips, grayscale conversion,
// tensor conversion, and the errors for unreadable or unsupported files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/io/image.h"

namespace dtrain::io {
namespace {

namespace fs = std::filesystem;

class ImageIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dtrain_image_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static Image pattern(int64_t h, int64_t w, int64_t c) {
    Image im;
    im.height = h;
    im.width = w;
    im.channels = c;
    for (int64_t i = 0; i < h * w * c; ++i) im.pixels.push_back(static_cast<uint8_t>((i * 37 + 11) % 256));
    return im;
  }
  static void expect_equal(const Image& a, const Image& b) {
    EXPECT_EQ(a.height, b.height);
    EXPECT_EQ(a.width, b.width);
    EXPECT_EQ(a.channels, b.channels);
    EXPECT_EQ(a.pixels, b.pixels);
  }
  // The IoError message of f, or "" when it does not throw.
  template <typename F>
  static std::string io_error(F&& f) {
    try {
      f();
    } catch (const IoError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(ImageIo, RoundTripsPngGrayAndRgb) {
  Image gray = pattern(7, 13, 1), rgb = pattern(5, 9, 3);
  write_image(path("g.png"), gray);
  write_image(path("c.PNG"), rgb);  // the extension is case-insensitive
  expect_equal(read_image(path("g.png")), gray);
  expect_equal(read_image(path("c.PNG")), rgb);
}

TEST_F(ImageIo, RoundTripsPgmAndPpm) {
  Image gray = pattern(6, 11, 1), rgb = pattern(4, 3, 3);
  write_image(path("g.pgm"), gray);
  write_image(path("c.ppm"), rgb);
  expect_equal(read_image(path("g.pgm")), gray);
  expect_equal(read_image(path("c.ppm")), rgb);
  // The header is what other tools expect.
  std::ifstream in(path("g.pgm"), std::ios::binary);
  std::string magic, dims;
  std::getline(in, magic);
  std::getline(in, dims);
  EXPECT_EQ(magic, "P5");
  EXPECT_EQ(dims, "11 6");
}

TEST_F(ImageIo, ReadsByContentNotName) {
  Image gray = pattern(3, 4, 1);
  write_image(path("g.pgm"), gray);
  fs::rename(path("g.pgm"), path("really_a_pgm.png"));
  expect_equal(read_image(path("really_a_pgm.png")), gray);
}

TEST_F(ImageIo, PgmWithCommentsAndSmallMaxval) {
  std::ofstream(path("c.pgm"), std::ios::binary) << "P5\n# a comment\n2 1\n# another\n15\n" << '\x00' << '\x0f';
  Image im = read_image(path("c.pgm"));
  EXPECT_EQ(im.width, 2);
  EXPECT_EQ(im.height, 1);
  EXPECT_EQ(im.pixels, (std::vector<uint8_t>{0, 255}));  // rescaled to 0..255
}

TEST_F(ImageIo, GrayscaleAndTensorConversion) {
  Image rgb;
  rgb.height = 1;
  rgb.width = 2;
  rgb.channels = 3;
  rgb.pixels = {255, 0, 0, 10, 20, 30};
  Image g = to_grayscale(rgb);
  EXPECT_EQ(g.channels, 1);
  EXPECT_EQ(g.pixels, (std::vector<uint8_t>{76, 18}));  // 0.299*255; 2.99 + 11.74 + 3.42
  Tensor t = image_to_tensor(rgb);
  EXPECT_EQ(t.shape(), (Shape{1, 3, 1, 2}));
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{255, 10, 0, 20, 0, 30}));  // planar
  expect_equal(tensor_to_image(t), rgb);
  Image clamped = tensor_to_image(Tensor::from_vector<float>({-5.0f, 300.0f, 1.4f}, {1, 1, 3}));
  EXPECT_EQ(clamped.pixels, (std::vector<uint8_t>{0, 255, 1}));
}

TEST_F(ImageIo, ErrorsNameTheFileAndTheProblem) {
  std::string e = io_error([&] { read_image(path("missing.png")); });
  EXPECT_NE(e.find("cannot open image " + path("missing.png")), std::string::npos) << e;

  std::ofstream(path("text.pgm")) << "hello";
  e = io_error([&] { read_image(path("text.pgm")); });
  EXPECT_NE(e.find("not a PNG"), std::string::npos) << e;

  std::ofstream(path("deep.pgm"), std::ios::binary) << "P5 2 2 65535\n";
  e = io_error([&] { read_image(path("deep.pgm")); });
  EXPECT_NE(e.find("maxval 65535"), std::string::npos) << e;

  std::ofstream(path("short.pgm"), std::ios::binary) << "P5 4 4 255\n" << "abc";
  e = io_error([&] { read_image(path("short.pgm")); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  // A PNG cut in half.
  write_image(path("full.png"), pattern(64, 64, 3));
  std::string bytes;
  {
    std::ifstream in(path("full.png"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(path("half.png"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  e = io_error([&] { read_image(path("half.png")); });
  EXPECT_NE(e.find("cannot read PNG " + path("half.png")), std::string::npos) << e;

  e = io_error([&] { write_image(path("x.bmp"), pattern(2, 2, 1)); });
  EXPECT_NE(e.find("unknown image extension '.bmp'"), std::string::npos) << e;
  e = io_error([&] { write_image(path("x.pgm"), pattern(2, 2, 3)); });
  EXPECT_NE(e.find("PGM holds grayscale"), std::string::npos) << e;
  e = io_error([&] { write_image(path("no_such_dir/x.png"), pattern(2, 2, 1)); });
  EXPECT_NE(e.find("cannot write PNG"), std::string::npos) << e;
  Image bad = pattern(2, 2, 1);
  bad.pixels.pop_back();
  e = io_error([&] { write_image(path("bad.png"), bad); });
  EXPECT_NE(e.find("expected height * width * channels = 4"), std::string::npos) << e;
}

}  // namespace
}  // namespace dtrain::io
