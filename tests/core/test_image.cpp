// Image files (core/io/image.h): PNG, JPEG and PGM/PPM round trips, decoding from memory,
// progressive and CMYK JPEGs made by Pillow, resampling and crops, grayscale and tensor
// conversion, and the errors for unreadable or unsupported files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <cmath>

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

// A smooth picture (values 10..240), so that JPEG's error stays small and comparable.
Image ramp(int64_t h, int64_t w, int64_t c) {
  Image im;
  im.height = h;
  im.width = w;
  im.channels = c;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t ch = 0; ch < c; ++ch) im.pixels.push_back(static_cast<uint8_t>(10 + 90 * x / w + 60 * y / h + 40 * ch));
    }
  }
  return im;
}

// The largest and mean absolute difference of two same-shaped images.
std::pair<int, double> difference(const Image& a, const Image& b) {
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.channels, b.channels);
  if (a.pixels.size() != b.pixels.size()) return {256, 256.0};
  int worst = 0;
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    int d = std::abs(int{a.pixels[i]} - int{b.pixels[i]});
    worst = std::max(worst, d);
    sum += d;
  }
  return {worst, sum / static_cast<double>(a.pixels.size())};
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string fixture(const std::string& name) { return std::string(DTRAIN_FIXTURE_DIR) + "/images/" + name; }

TEST_F(ImageIo, RoundTripsJpegWithinTheCodecsError) {
  Image rgb = ramp(37, 53, 3), gray = ramp(20, 30, 1);
  write_image(path("c.jpg"), rgb);
  write_image(path("g.JPEG"), gray);
  auto [worst, mean] = difference(read_image(path("c.jpg")), rgb);
  EXPECT_LE(worst, 12);
  EXPECT_LE(mean, 2.0);
  auto [gworst, gmean] = difference(read_image(path("g.JPEG")), gray);
  EXPECT_LE(gworst, 6);
  EXPECT_LE(gmean, 1.0);
  // Quality matters: 100 is closer than 30, and smaller files come from lower quality.
  std::vector<uint8_t> q100 = encode_jpeg(rgb, 100), q30 = encode_jpeg(rgb, 30);
  EXPECT_LT(q30.size(), q100.size());
  double mean100 = difference(decode_image(q100.data(), q100.size(), "q100"), rgb).second;
  double mean30 = difference(decode_image(q30.data(), q30.size(), "q30"), rgb).second;
  EXPECT_LT(mean100, mean30);
  EXPECT_EQ(sniff_image(q100.data(), q100.size()), ImageFormat::Jpeg);
}

TEST_F(ImageIo, DecodesFromMemoryAsFromFiles) {
  Image rgb = pattern(9, 14, 3);
  std::vector<uint8_t> png = encode_png(rgb);
  EXPECT_EQ(sniff_image(png.data(), png.size()), ImageFormat::Png);
  expect_equal(decode_image(png.data(), png.size(), "row 3"), rgb);
  write_image(path("c.jpg"), rgb);
  std::vector<uint8_t> jpg = file_bytes(path("c.jpg"));
  expect_equal(decode_image(jpg.data(), jpg.size(), "row 4"), read_image(path("c.jpg")));
  write_image(path("c.ppm"), rgb);
  std::vector<uint8_t> ppm = file_bytes(path("c.ppm"));
  expect_equal(decode_image(ppm.data(), ppm.size(), "row 5"), rgb);
  // The header alone gives the shape.
  for (auto* bytes : {&png, &jpg, &ppm}) {
    ImageShape shape = peek_image(bytes->data(), bytes->size(), "x");
    EXPECT_EQ(shape.height, 9);
    EXPECT_EQ(shape.width, 14);
    EXPECT_EQ(shape.channels, 3);
  }
  std::string e = io_error([&] { decode_image(png.data(), 5, "row 6 of data.h5"); });
  EXPECT_NE(e.find("row 6 of data.h5"), std::string::npos) << e;
}

TEST_F(ImageIo, DecodesJpegAtAReducedScaleWhenAsked) {
  Image rgb = ramp(96, 128, 3);
  std::vector<uint8_t> jpg = encode_jpeg(rgb);
  // 96 / 4 = 24 >= 20, 96 / 8 = 12 < 20: a quarter of the size.
  Image quarter = decode_image(jpg.data(), jpg.size(), "x", DecodeOptions{20});
  EXPECT_EQ(quarter.height, 24);
  EXPECT_EQ(quarter.width, 32);
  Image full = decode_image(jpg.data(), jpg.size(), "x", DecodeOptions{97});
  EXPECT_EQ(full.height, 96);
  // The reduced decode is close to the full decode resampled to the same size.
  auto [worst, mean] = difference(quarter, resize(full, 24, 32));
  EXPECT_LE(mean, 3.0) << worst;
}

TEST_F(ImageIo, ReadsPillowsProgressiveAndCmykJpegs) {
  // Both decoders are libjpeg-turbo's with the same settings: equal, byte for byte.
  expect_equal(read_image(fixture("progressive.jpg")), read_image(fixture("progressive_decoded.png")));
  Image cmyk = read_image(fixture("cmyk.jpg"));
  EXPECT_EQ(cmyk.channels, 3);
  auto [worst, mean] = difference(cmyk, read_image(fixture("source.png")));
  EXPECT_LE(worst, 16);
  EXPECT_LE(mean, 3.0);
}

TEST_F(ImageIo, RefusesTruncatedAndCorruptJpegs) {
  std::vector<uint8_t> jpg = encode_jpeg(ramp(64, 64, 3));
  std::ofstream(path("cut.jpg"), std::ios::binary)
      .write(reinterpret_cast<const char*>(jpg.data()), static_cast<std::streamsize>(jpg.size() * 2 / 3));
  std::string e = io_error([&] { read_image(path("cut.jpg")); });
  EXPECT_NE(e.find("cannot read JPEG " + path("cut.jpg")), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // Only the start-of-image marker.
  e = io_error([&] { decode_image(jpg.data(), 3, "three bytes"); });
  EXPECT_NE(e.find("cannot read JPEG three bytes"), std::string::npos) << e;
  e = io_error([&] { encode_jpeg(ramp(2, 2, 3), 0); });
  EXPECT_NE(e.find("quality must be 1..100"), std::string::npos) << e;
}

TEST(ImageResize, KeepsConstantsAndLinearRampsAndAveragesWhenShrinking) {
  Image flat;
  flat.height = 10;
  flat.width = 7;
  flat.channels = 3;
  flat.pixels.assign(10 * 7 * 3, 77);
  for (auto [h, w] : {std::pair<int64_t, int64_t>{3, 2}, {10, 7}, {25, 13}}) {
    Image r = resize(flat, h, w);
    EXPECT_EQ(r.height, h);
    EXPECT_EQ(r.width, w);
    EXPECT_EQ(r.pixels, std::vector<uint8_t>(static_cast<size_t>(h * w * 3), 77));
  }
  // A horizontal ramp 0, 4, 8, ... halved: away from the edges each output pixel is the
  // ramp's value at its centre (a triangle filter reproduces linear functions).
  Image ramp_x;
  ramp_x.height = 1;
  ramp_x.width = 40;
  ramp_x.channels = 1;
  for (int x = 0; x < 40; ++x) ramp_x.pixels.push_back(static_cast<uint8_t>(4 * x));
  Image half = resize(ramp_x, 1, 20);
  for (int x = 1; x < 19; ++x) EXPECT_EQ(half.pixels[static_cast<size_t>(x)], 8 * x + 2) << x;
  // Shrinking 8x averages every source pixel: a fine checkerboard becomes flat gray.
  Image checker;
  checker.height = 32;
  checker.width = 32;
  checker.channels = 1;
  for (int y = 0; y < 32; ++y) {
    for (int x = 0; x < 32; ++x) checker.pixels.push_back((x + y) % 2 ? 200 : 0);
  }
  Image small = resize(checker, 4, 4);
  for (uint8_t p : small.pixels) EXPECT_NEAR(p, 100, 2);
}

TEST(ImageResize, ShorterSideAndCropsFollowTorchvision) {
  Image im;
  im.height = 100;
  im.width = 150;
  im.channels = 1;
  im.pixels.resize(100 * 150);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>(i % 251);
  Image r = resize_shorter_side(im, 32);
  EXPECT_EQ(r.height, 32);
  EXPECT_EQ(r.width, 48);  // int(32 * 150 / 100)
  Image tall = resize_shorter_side(crop(im, 0, 0, 100, 33), 10);
  EXPECT_EQ(tall.width, 10);
  EXPECT_EQ(tall.height, 30);  // int(10 * 100 / 33) = 30, truncated as torchvision does
  // CenterCrop: offsets rounded half to even; (100 - 97) / 2 = 1.5 -> 2, (150 - 147) / 2 -> 2.
  Image c = center_crop(im, 97, 147);
  EXPECT_EQ(c.pixels[0], im.at(2, 2));
  EXPECT_EQ(c.at(96, 146), im.at(98, 148));
  Image c2 = center_crop(im, 95, 145);  // 2.5 -> 2
  EXPECT_EQ(c2.pixels[0], im.at(2, 2));
  Image w = crop(im, 10, 20, 5, 6);
  EXPECT_EQ(w.at(4, 5), im.at(14, 25));
  std::string e;
  try {
    center_crop(im, 101, 10);
  } catch (const IoError& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("larger than the 100x150 image"), std::string::npos) << e;
}

}  // namespace
}  // namespace dtrain::io
