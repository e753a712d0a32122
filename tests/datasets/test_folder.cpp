// `dtrain data convert folder` and the encoded-images schema (datasets/convert_folder.h,
// schema.h): conversion of a small generated folder with odd sizes, grayscale, RGBA and
// gray+alpha PNGs, CMYK and progressive JPEGs, a truncated file, a non-image file named
// like an image, an empty class folder and ignored files; exact PNG and tolerant JPEG
// round trips; the held-out split; the loader's encoded path against the raw path on the
// same pixels (augmentation off, pad-crop/flip, random-resized-crop, resize + centre
// crop); resume; inspect --verify; and the validator's errors. (rgba.png and
// gray_alpha.png in tests/fixtures/images were written once with PIL.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "core/io/h5.h"
#include "core/io/image.h"
#include "datasets/convert_folder.h"
#include "datasets/image_transform.h"
#include "datasets/inspect.h"
#include "datasets/loader.h"
#include "datasets/schema.h"
#include "tests/datasets/data_test_util.h"

namespace dtrain::data {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) { return std::string(DTRAIN_FIXTURE_DIR) + "/images/" + name; }

// A smooth, seeded picture (JPEG-friendly), h x w x c.
io::Image picture(int64_t h, int64_t w, int64_t c, int seed) {
  io::Image img;
  img.height = h;
  img.width = w;
  img.channels = c;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t ch = 0; ch < c; ++ch) {
        double v = 128 + 90 * std::sin(0.07 * static_cast<double>(x + seed) + 0.05 * static_cast<double>(y * (ch + 1)));
        img.pixels.push_back(static_cast<uint8_t>(std::lround(v)));
      }
    }
  }
  return img;
}

// A noisy one (PNG round trips must be exact whatever the content).
io::Image noise(int64_t h, int64_t w, int64_t c, int seed) {
  io::Image img;
  img.height = h;
  img.width = w;
  img.channels = c;
  for (int64_t i = 0; i < h * w * c; ++i) img.pixels.push_back(static_cast<uint8_t>((i * 131 + seed * 71) % 253));
  return img;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                           static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class FolderTest : public testing::TempDirTest {
 protected:
  // The awkward folder: 3 classes (one empty), 9 good images, 2 bad, 2 ignored files.
  fs::path make_mixed() {
    fs::path root = dir_ / "mixed";
    write_bytes(root / "cat" / "odd.png", io::encode_png(noise(13, 17, 3, 1)));
    write_bytes(root / "cat" / "gray.png", io::encode_png(noise(9, 11, 1, 2)));
    fs::copy_file(fixture("rgba.png"), root / "cat" / "rgba.png");
    fs::copy_file(fixture("gray_alpha.png"), root / "cat" / "gray_alpha.PNG");
    write_bytes(root / "cat" / "nested" / "deep.png", io::encode_png(noise(10, 10, 3, 3)));
    fs::create_directories(root / "dog");
    fs::copy_file(fixture("cmyk.jpg"), root / "dog" / "cmyk.jpg");
    fs::copy_file(fixture("progressive.jpg"), root / "dog" / "progressive.jpeg");
    write_bytes(root / "dog" / "photo.jpg", io::encode_jpeg(picture(15, 20, 3, 4), 92));
    io::write_image((root / "dog" / "small.ppm").string(), noise(6, 5, 3, 5));
    std::vector<uint8_t> jpeg = io::encode_jpeg(picture(32, 32, 3, 6), 90);
    jpeg.resize(jpeg.size() / 2);
    write_bytes(root / "dog" / "truncated.jpg", jpeg);
    std::ofstream(root / "dog" / "fake.png") << "this is not a PNG\n";
    std::ofstream(root / "dog" / "notes.txt") << "ignored\n";
    std::ofstream(root / "README") << "ignored too\n";
    fs::create_directories(root / "empty");
    return root;
  }
};

TEST_F(FolderTest, ListsClassesSortedWithImagesByExtension) {
  fs::path root = make_mixed();
  FolderListing l = list_image_folder(root.string());
  EXPECT_EQ(l.classes, (std::vector<std::string>{"cat", "dog", "empty"}));
  EXPECT_EQ(l.files[0], (std::vector<std::string>{"cat/gray.png", "cat/gray_alpha.PNG", "cat/nested/deep.png",
                                                  "cat/odd.png", "cat/rgba.png"}));
  EXPECT_EQ(l.files[1].size(), 6u);  // the truncated and the fake one included: found by name
  EXPECT_TRUE(l.files[2].empty());
  EXPECT_EQ(l.ignored, (std::vector<std::string>{"README", "dog/notes.txt"}));
  EXPECT_THROW(list_image_folder((dir_ / "nope").string()), IoError);
}

TEST_F(FolderTest, BadFilesStopTheConversionByDefaultNamingTheFile) {
  fs::path root = make_mixed();
  const std::string out = file("out.h5");
  try {
    convert_folder(root.string(), out, FolderOptions{});
    FAIL() << "expected an error";
  } catch (const IoError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find("truncated.jpg") != std::string::npos || m.find("fake.png") != std::string::npos) << m;
    EXPECT_NE(m.find("--on-error skip"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(out));  // no partial file left behind
}

TEST_F(FolderTest, EncodedKeepsTheBytesAndSkipsBadFilesWithASummary) {
  fs::path root = make_mixed();
  const std::string out = file("out.h5");
  FolderOptions o;
  o.skip_errors = true;
  o.workers = 3;
  std::vector<std::string> warnings;
  o.warn = [&](const std::string& m) { warnings.push_back(m); };
  int64_t last_done = 0;
  o.progress = [&](const FolderProgress& p) { last_done = p.done; };
  std::string summary = convert_folder(root.string(), out, o);
  EXPECT_EQ(last_done, 11);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(summary.find("skipped 2 bad file(s)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("dog/fake.png"), std::string::npos) << summary;
  EXPECT_NE(summary.find("dog/truncated.jpg"), std::string::npos) << summary;
  EXPECT_NE(summary.find("empty classes (kept, with no images): empty"), std::string::npos) << summary;
  EXPECT_NE(summary.find("ignored 2 file(s)"), std::string::npos) << summary;

  io::H5File f = io::H5File::open_read(out);
  ImageSchema s = validate_images(f, true);
  EXPECT_TRUE(s.encoded);
  EXPECT_EQ(s.n, 9);
  EXPECT_EQ(s.channels, 3);
  EXPECT_EQ(s.height, 0);  // mixed sizes
  EXPECT_EQ(s.classes, (std::vector<std::string>{"cat", "dog", "empty"}));
  // Every dataset with a checksum per chunk (FolderOptions::checksum, the default).
  for (const char* name : {"/encoded", "/offsets", "/shapes", "/labels"}) {
    EXPECT_EQ(f.layout_of(name).filters, std::vector<std::string>{"fletcher32"}) << name;
  }
  std::vector<std::string> paths = f.read_strings("/paths");
  std::vector<int64_t> labels = f.read("/labels").to_vector<int64_t>();
  std::vector<int64_t> off = read_encoded_offsets(f);
  std::vector<int32_t> shapes = f.read("/shapes").to_vector<int32_t>();
  std::vector<uint8_t> all = f.read("/encoded").to_vector<uint8_t>();
  std::set<std::string> seen;
  for (int64_t i = 0; i < s.n; ++i) {
    const std::string& rel = paths[static_cast<size_t>(i)];
    seen.insert(rel);
    EXPECT_EQ(labels[static_cast<size_t>(i)], rel.rfind("cat/", 0) == 0 ? 0 : 1) << rel;
    std::vector<uint8_t> stored(all.begin() + off[static_cast<size_t>(i)], all.begin() + off[static_cast<size_t>(i + 1)]);
    EXPECT_EQ(stored, file_bytes(root / rel)) << rel << ": the original bytes are kept";
    io::Image img = io::decode_image(stored.data(), stored.size(), rel);
    EXPECT_EQ(shapes[static_cast<size_t>(i * 3)], img.height) << rel;
    EXPECT_EQ(shapes[static_cast<size_t>(i * 3 + 1)], img.width) << rel;
    EXPECT_EQ(shapes[static_cast<size_t>(i * 3 + 2)], img.channels) << rel;
  }
  EXPECT_EQ(seen.size(), 9u);
  // Rows are shuffled (not in listing order), reproducibly: same seed, same file content.
  const std::string again = file("again.h5");
  o.workers = 1;
  convert_folder(root.string(), again, o);
  EXPECT_EQ(io::H5File::open_read(again).read_strings("/paths"), paths);
  EXPECT_EQ(io::H5File::open_read(again).read("/encoded").to_vector<uint8_t>(), all);
}

TEST_F(FolderTest, PngPixelsRoundTripExactlyAndJpegWithinTheCodecsTolerance) {
  fs::path root = dir_ / "rt";
  io::Image a = picture(12, 14, 3, 1), b = picture(12, 14, 3, 2);
  io::Image j = picture(24, 30, 3, 3);
  write_bytes(root / "a" / "x.png", io::encode_png(a));
  write_bytes(root / "b" / "y.png", io::encode_png(b));
  write_bytes(root / "b" / "z.jpg", io::encode_jpeg(j, 95));
  // Raw at the stored size: the decoded pixels exactly (PNG) and the JPEG decoder's output.
  FolderOptions o;
  o.store = "raw";
  o.resize = 12;
  o.crop = 12;
  const std::string raw = file("raw.h5");
  convert_folder(root.string(), raw, o);
  io::H5File f = io::H5File::open_read(raw);
  ImageSchema s = validate_images(f, true);
  ASSERT_EQ(s.n, 3);
  EXPECT_EQ(s.height, 12);
  EXPECT_EQ(s.width, 12);
  std::vector<std::string> paths = f.read_strings("/paths");
  for (int64_t i = 0; i < 3; ++i) {
    const std::string& rel = paths[static_cast<size_t>(i)];
    std::vector<uint8_t> got = f.read_rows("/images", i, 1).to_vector<uint8_t>();
    io::Image want = io::center_crop(io::resize_shorter_side(io::read_image((root / rel).string()), 12), 12, 12);
    EXPECT_EQ(got, want.pixels) << rel;
  }
  // Encoded, resized and re-encoded: PNG exact, JPEG close.
  o.store = "encoded";
  for (const char* fmt : {"png", "jpeg"}) {
    o.encode = fmt;
    o.quality = 95;
    const std::string enc = file(std::string("enc_") + fmt + ".h5");
    convert_folder(root.string(), enc, o);
    io::H5File e = io::H5File::open_read(enc);
    std::vector<int64_t> off = read_encoded_offsets(e);
    std::vector<uint8_t> all = e.read("/encoded").to_vector<uint8_t>();
    std::vector<std::string> ep = e.read_strings("/paths");
    for (int64_t i = 0; i < 3; ++i) {
      const std::string& rel = ep[static_cast<size_t>(i)];
      io::Image got = io::decode_image(all.data() + off[static_cast<size_t>(i)],
                                       static_cast<size_t>(off[static_cast<size_t>(i + 1)] - off[static_cast<size_t>(i)]), rel);
      io::Image want = io::center_crop(io::resize_shorter_side(io::read_image((root / rel).string()), 12), 12, 12);
      ASSERT_EQ(got.pixels.size(), want.pixels.size());
      if (std::string(fmt) == "png") {
        EXPECT_EQ(got.pixels, want.pixels) << rel;
      } else {
        double err = 0;
        for (size_t k = 0; k < got.pixels.size(); ++k) err += std::abs(got.pixels[k] - want.pixels[k]);
        err /= static_cast<double>(got.pixels.size());
        EXPECT_LT(err, 6.0) << rel << ": mean absolute error of a quality-95 JPEG";
      }
    }
  }
}

TEST_F(FolderTest, RawNeedsOneSizeAndCropMustFit) {
  fs::path root = dir_ / "sizes";
  write_bytes(root / "a" / "big.png", io::encode_png(noise(12, 14, 3, 1)));
  write_bytes(root / "a" / "small.png", io::encode_png(noise(6, 8, 3, 2)));
  FolderOptions o;
  o.store = "raw";
  try {
    convert_folder(root.string(), file("raw.h5"), o);
    FAIL() << "expected an error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("one size"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--crop"), std::string::npos) << e.what();
  }
  o.crop = 10;  // larger than small.png
  try {
    convert_folder(root.string(), file("raw.h5"), o);
    FAIL() << "expected an error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("small.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("smaller than --crop 10"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(file("raw.h5")));
}

TEST_F(FolderTest, SplitIsDisjointCompleteStratifiedAndSeeded) {
  fs::path root = dir_ / "split";
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 10 + 5 * k; ++i) {
      write_bytes(root / (std::string("class") + std::to_string(k)) / (std::string("img") + std::to_string(i) + ".png"),
                  io::encode_png(noise(4, 5, 3, k * 100 + i)));
    }
  }
  FolderOptions o;
  o.split = 0.2;
  o.split_out = file("val.h5");
  o.seed = 5;
  convert_folder(root.string(), file("train.h5"), o);
  auto read = [&](const std::string& p) {
    io::H5File f = io::H5File::open_read(p);
    validate_images(f, true);
    return std::make_pair(f.read_strings("/paths"), f.read("/labels").to_vector<int64_t>());
  };
  auto [train, train_labels] = read(file("train.h5"));
  auto [val, val_labels] = read(file("val.h5"));
  std::set<std::string> a(train.begin(), train.end()), b(val.begin(), val.end()), both;
  for (const std::string& p : val) EXPECT_EQ(a.count(p), 0u) << p << " is in both files";
  both.insert(a.begin(), a.end());
  both.insert(b.begin(), b.end());
  EXPECT_EQ(both.size(), 45u);
  std::map<int64_t, int> per_class;
  for (int64_t l : val_labels) per_class[l]++;
  EXPECT_EQ(per_class[0], 2);  // round(0.2 * 10)
  EXPECT_EQ(per_class[1], 3);  // round(0.2 * 15)
  EXPECT_EQ(per_class[2], 4);  // round(0.2 * 20)
  // The same seed gives the same split; another seed another one.
  convert_folder(root.string(), file("train2.h5"), o);
  EXPECT_EQ(read(file("train2.h5")).first, train);
  o.seed = 6;
  convert_folder(root.string(), file("train3.h5"), o);
  auto other = read(file("val.h5")).first;
  EXPECT_NE(std::set<std::string>(other.begin(), other.end()), b);
  // --split without --split-out, or a split that holds out nothing, is refused.
  o.split_out = "";
  EXPECT_THROW(convert_folder(root.string(), file("x.h5"), o), ConfigError);
  o.split_out = file("val.h5");
  o.split = 0.01;
  EXPECT_THROW(convert_folder(root.string(), file("x.h5"), o), ConfigError);
}

// The loader on an encoded file of PNGs and on a raw file of the same pixels.
class FolderLoaderTest : public FolderTest {
 protected:
  void SetUp() override {
    FolderTest::SetUp();
    fs::path root = dir_ / "same";
    for (int k = 0; k < 3; ++k) {
      for (int i = 0; i < 20; ++i) {
        // A few grayscale ones: the loader makes them RGB like the raw converter.
        write_bytes(root / (std::string("c") + std::to_string(k)) / (std::string("i") + std::to_string(i) + ".png"),
                    io::encode_png(noise(12, 10, i % 7 == 0 ? 1 : 3, k * 100 + i)));
      }
    }
    FolderOptions o;
    o.chunk_rows = 8;
    convert_folder(root.string(), encoded_ = file("enc.h5"), o);
    o.store = "raw";
    convert_folder(root.string(), raw_ = file("raw.h5"), o);
  }
  std::vector<std::vector<float>> batches(const std::string& path, LoaderConfig lc, int count,
                                          std::vector<std::vector<int64_t>>* labels = nullptr) {
    lc.path = path;
    Loader l(lc);
    std::vector<std::vector<float>> out;
    for (int i = 0; i < count; ++i) {
      Batch b = l.next();
      out.push_back(b.images.to_vector<float>());
      if (labels) labels->push_back(b.labels.to_vector<int64_t>());
    }
    return out;
  }
  std::string encoded_, raw_;
};

TEST_F(FolderLoaderTest, EncodedBatchesEqualRawBatchesOfTheSamePixels) {
  LoaderConfig lc;
  lc.batch_size = 8;
  lc.seed = 11;
  lc.threads = 3;
  struct Case {
    const char* name;
    Augment aug;
    int64_t image_size, eval_resize;
  };
  Augment pad_flip;
  pad_flip.pad_crop = 2;
  pad_flip.hflip = true;
  Augment rrc;
  rrc.random_resized_crop = true;
  rrc.hflip = true;
  for (const Case& c : {Case{"as stored", {}, 0, 0}, Case{"pad-crop and flip", pad_flip, 0, 0},
                        Case{"random resized crop and flip", rrc, 8, 0}, Case{"resize and centre crop", {}, 8, 9}}) {
    lc.augment = c.aug;
    lc.image_size = c.image_size;
    lc.eval_resize = c.eval_resize;
    std::vector<std::vector<int64_t>> la, lb;
    auto a = batches(encoded_, lc, 14, &la);  // past the end of the first epoch
    auto b = batches(raw_, lc, 14, &lb);
    EXPECT_EQ(a, b) << c.name;
    EXPECT_EQ(la, lb) << c.name;
    const size_t side = c.image_size > 0 ? 8 : 0;
    EXPECT_EQ(a[0].size(), side > 0 ? 8 * 3 * side * side : size_t{8 * 3 * 12 * 10}) << c.name;
  }
  // Augmentation does change the batches; threads do not.
  lc.augment = rrc;
  lc.image_size = 8;
  lc.eval_resize = 0;
  auto with = batches(encoded_, lc, 3);
  lc.threads = 1;
  EXPECT_EQ(batches(encoded_, lc, 3), with);
  lc.augment = {};
  EXPECT_NE(batches(encoded_, lc, 3), with);
}

TEST_F(FolderLoaderTest, SeekResumesEncodedBatchesExactly) {
  LoaderConfig lc;
  lc.path = encoded_;
  lc.batch_size = 8;
  lc.seed = 3;
  lc.threads = 2;
  lc.image_size = 8;
  lc.augment.random_resized_crop = true;
  lc.augment.hflip = true;
  Loader straight(lc);
  std::vector<std::vector<float>> want;
  Position at_4;
  for (int i = 0; i < 12; ++i) {
    if (i == 4) at_4 = straight.position();
    want.push_back(straight.next().images.to_vector<float>());
  }
  Loader resumed(lc, at_4);
  for (int i = 4; i < 12; ++i) EXPECT_EQ(resumed.next().images.to_vector<float>(), want[static_cast<size_t>(i)]) << i;
}

TEST_F(FolderLoaderTest, MixedSizesNeedAnImageSize) {
  fs::path root = dir_ / "mixed_sizes";
  write_bytes(root / "a" / "x.png", io::encode_png(noise(12, 14, 3, 1)));
  write_bytes(root / "a" / "y.jpg", io::encode_jpeg(picture(40, 30, 3, 2), 90));
  write_bytes(root / "b" / "z.png", io::encode_png(noise(9, 9, 1, 3)));
  write_bytes(root / "b" / "w.png", io::encode_png(noise(9, 11, 3, 4)));
  convert_folder(root.string(), file("m.h5"), FolderOptions{});
  LoaderConfig lc;
  lc.path = file("m.h5");
  lc.batch_size = 2;
  try {
    Loader l(lc);
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.image_size"), std::string::npos) << e.what();
  }
  lc.image_size = 8;
  lc.raw = true;
  Loader l(lc);
  EXPECT_EQ(l.image_schema().height, 8);
  Batch b = l.next();
  EXPECT_EQ(b.images.shape(), (Shape{2, 8, 8, 3}));
  // Evaluation geometry of the 40x30 JPEG: shorter side 8, centre 8x8; exactly so when
  // decoded at full size, closely when decoded at 1/4 scale (Note [Reduced JPEG decoding]).
  lc.batch_size = 4;
  lc.shuffle = false;
  lc.reduced_decode = false;
  Loader all(lc);
  Batch e = all.next();
  lc.reduced_decode = true;
  Loader fast(lc);
  std::vector<uint8_t> reduced = fast.next().images.to_vector<uint8_t>();
  std::vector<std::string> paths = io::H5File::open_read(file("m.h5")).read_strings("/paths");
  const size_t row = static_cast<size_t>(std::find(paths.begin(), paths.end(), "a/y.jpg") - paths.begin());
  io::Image want = io::center_crop(io::resize_shorter_side(io::read_image((root / "a" / "y.jpg").string()), 8), 8, 8);
  std::vector<uint8_t> got = e.images.to_vector<uint8_t>();
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + static_cast<std::ptrdiff_t>(row * 192),
                                 got.begin() + static_cast<std::ptrdiff_t>((row + 1) * 192)),
            want.pixels);
  double err = 0;
  for (size_t k = 0; k < 192; ++k) err += std::abs(reduced[row * 192 + k] - want.pixels[k]);
  EXPECT_LT(err / 192, 12.0);
  // The other images are PNGs: decoded at full size either way.
  for (size_t r = 0; r < 4; ++r) {
    if (r == row) continue;
    EXPECT_TRUE(std::equal(reduced.begin() + static_cast<std::ptrdiff_t>(r * 192),
                           reduced.begin() + static_cast<std::ptrdiff_t>((r + 1) * 192),
                           got.begin() + static_cast<std::ptrdiff_t>(r * 192)));
  }
}

TEST(RandomResizedCrop, WindowsFollowTorchvisionsRules) {
  Augment aug;
  aug.random_resized_crop = true;
  int fallbacks = 0;
  for (int64_t row = 0; row < 500; ++row) {
    CropBox b = draw_resized_crop(7, 0, row, 500, 100, 150, aug);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, 100);
    ASSERT_LE(b.left + b.width, 150);
    const double area = static_cast<double>(b.height * b.width) / (100.0 * 150.0);
    const double ratio = static_cast<double>(b.width) / static_cast<double>(b.height);
    EXPECT_GE(area, 0.07) << row;
    EXPECT_LE(area, 1.0) << row;
    EXPECT_GE(ratio, 0.7) << row;
    EXPECT_LE(ratio, 1.4) << row;
    if (b.height == 100 && b.width == 133) ++fallbacks;
    EXPECT_EQ(b, draw_resized_crop(7, 0, row, 500, 100, 150, aug)) << "a sample's window is fixed by its seed";
  }
  EXPECT_LT(fallbacks, 10);
  // A strip no window of ratio 3/4..4/3 and area >= 8% fits: the centre, clamped to ratio 4/3.
  CropBox strip = draw_resized_crop(7, 0, 0, 1, 4, 400, aug);
  EXPECT_EQ(strip, (CropBox{0, 197, 4, 5}));  // w = round(4 * 4/3) = 5, left = (400 - 5) / 2
}

TEST_F(FolderLoaderTest, InspectShowsTheSchemaAndVerifyNamesBadRows) {
  InspectResult r = inspect(encoded_);
  EXPECT_TRUE(r.valid) << r.text;
  EXPECT_NE(r.text.find("images: encoded"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("bytes per image on average"), std::string::npos) << r.text;
  InspectResult raw = inspect(raw_, {true, nullptr});
  EXPECT_TRUE(raw.valid) << raw.text;
  EXPECT_NE(raw.text.find("360 bytes per image"), std::string::npos) << raw.text;
  InspectOptions verify;
  verify.verify = true;
  EXPECT_TRUE(inspect(encoded_, verify).valid);
  // Damage row 5's bytes (its PNG signature) in place.
  std::vector<int64_t> off;
  std::string path5;
  {
    io::H5File f = io::H5File::open_read(encoded_);
    off = read_encoded_offsets(f);
    path5 = f.read_strings("/paths")[5];
  }
  {
    io::H5File f = io::H5File::open_readwrite(encoded_);
    f.write_rows("/encoded", off[5], Tensor::from_vector(std::vector<uint8_t>(8, 0), {8}));
  }
  EXPECT_TRUE(inspect(encoded_).valid) << "without --verify the images are not read";
  InspectResult bad = inspect(encoded_, verify);
  EXPECT_FALSE(bad.valid);
  EXPECT_NE(bad.text.find("row 5 (" + path5 + ")"), std::string::npos) << bad.text;
}

TEST_F(FolderLoaderTest, TheValidatorNamesTheFileAndTheField) {
  auto expect_error = [&](const std::function<void(io::H5File&)>& damage, const std::string& needle) {
    const std::string p = file("bad.h5");
    fs::copy_file(encoded_, p, fs::copy_options::overwrite_existing);
    {
      io::H5File f = io::H5File::open_readwrite(p);
      damage(f);
    }
    io::H5File f = io::H5File::open_read(p);
    try {
      validate_images(f, true);
      ADD_FAILURE() << "expected an error with '" << needle << "'";
    } catch (const IoError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(p), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << m;
    }
  };
  const int64_t n = 60;
  expect_error([](io::H5File& f) { f.write("/offsets", Tensor::from_vector(std::vector<int64_t>{0, 5}, {2})); },
               "'/shapes': length mismatch");
  expect_error(
      [&](io::H5File& f) {
        std::vector<int64_t> off = read_encoded_offsets(f);
        std::swap(off[3], off[4]);
        f.write("/offsets", Tensor::from_vector(off, {n + 1}));
      },
      "'/offsets': image 3 has");
  expect_error(
      [&](io::H5File& f) {
        std::vector<int64_t> off = read_encoded_offsets(f);
        off.back() -= 1;
        f.write("/offsets", Tensor::from_vector(off, {n + 1}));
      },
      "must start at 0 and end at the size of '/encoded'");
  expect_error([&](io::H5File& f) { f.write("/shapes", Tensor::zeros({n, 2}, DType::I32)); }, "'/shapes': 2 columns");
  expect_error([](io::H5File& f) { f.set_attribute("/", "channels", int64_t{4}); }, "attribute 'channels'");
  expect_error([](io::H5File& f) { f.write("/offsets", Tensor::zeros({3}, DType::F32)); }, "wrong dtype f32");
  expect_error([&](io::H5File& f) { f.write("/labels", Tensor::full({n}, 7.0, DType::I64)); }, "label 7 at row 0");
}

}  // namespace
}  // namespace dtrain::data
