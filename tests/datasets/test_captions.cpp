// Captioned scenes (datasets/captions.h): the grammar both ways, `synth_captions`' files
// (scenes made of the right split's items at the cells the caption names, reproducible,
// valid), their loading, and the image-caption schema's errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "datasets/captions.h"
#include "datasets/loader.h"
#include "datasets/schema.h"
#include "datasets/text.h"
#include "tests/datasets/data_test_util.h"

namespace dtrain::data {
namespace {

using testing::TempDirTest;

const std::vector<std::string> kClasses = {"T-shirt/top", "Trouser", "Bag", "Ankle boot"};

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

TEST(CaptionGrammar, WordsOfClassNames) {
  EXPECT_EQ(item_word("T-shirt/top"), "t-shirt");
  EXPECT_EQ(item_word("Ankle boot"), "ankle-boot");
  EXPECT_EQ(item_word("Bag"), "bag");
  const std::vector<std::string> v = caption_vocabulary(kClasses);
  ASSERT_EQ(v.size(), 4u + kCaptionWords.size() + kClasses.size());
  EXPECT_EQ(std::vector<std::string>(v.begin(), v.begin() + 4), kSpecialTokens);
  EXPECT_EQ(v.back(), "ankle-boot");
  EXPECT_THROW(caption_vocabulary({"Bag", "bag"}), ValueError);   // the same word twice
  EXPECT_THROW(caption_vocabulary({"Left", "Bag"}), ValueError);  // a grammar word
}

TEST(CaptionGrammar, EveryGridHasOneCaptionThatParsesBack) {
  EXPECT_EQ(joined(caption_words({2, 1, -1, 3}, kClasses)),
            "a bag and a trouser above , a ankle-boot on the right below");
  EXPECT_EQ(joined(caption_words({-1, -1, 0, -1}, kClasses)), "nothing above , a t-shirt on the left below");
  // All 5^4 grids (4 classes or empty per cell): distinct captions, each parsed back.
  std::set<std::string> seen;
  for (int code = 0; code < 625; ++code) {
    std::vector<int64_t> cells;
    for (int c = 0, x = code; c < 4; ++c, x /= 5) cells.push_back(x % 5 - 1);
    const std::vector<std::string> words = caption_words(cells, kClasses);
    EXPECT_LE(static_cast<int64_t>(words.size()) + 2, kMaxCaptionTokens);
    EXPECT_EQ(parse_caption(words, kClasses), cells) << joined(words);
    seen.insert(joined(words));
  }
  EXPECT_EQ(seen.size(), 625u);
}

TEST(CaptionGrammar, MalformedCaptionsDoNotParse) {
  for (const char* text : {"", "a bag above , nothing below", "a bag and a trouser above nothing below",
                           "nothing above , nothing below extra", "a hat on the left above , nothing below",
                           "a bag on the middle above , nothing below", "nothing above , a bag and below"}) {
    EXPECT_TRUE(parse_caption(split_words(text), kClasses).empty()) << text;
  }
  EXPECT_FALSE(parse_caption(split_words("nothing above , nothing below"), kClasses).empty());
}

class CaptionFiles : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    // 30 train items and 12 test items, 4x4x1, classes c0..c2.
    testing::write_test_images(file("items_train.h5"), 30, 4, 4, 1, 3, 8);
    testing::write_test_images(file("items_test.h5"), 12, 4, 4, 1, 3, 8);
    options_.n_train = 40;
    options_.n_test = 20;
    options_.seed = 5;
  }
  std::string make(const std::string& tag) {
    synth_captions(file("items_train.h5"), file("items_test.h5"), file(tag + "_train.h5"), file(tag + "_test.h5"),
                   options_, WriteOptions{16, 0});
    return file(tag + "_train.h5");
  }
  CaptionsOptions options_;
};

TEST_F(CaptionFiles, ScenesHoldTheNamedItemsOfTheirOwnSplit) {
  make("a");
  for (const char* split : {"train", "test"}) {
    const std::string path = file(std::string("a_") + split + ".h5");
    io::H5File f = io::H5File::open_read(path);
    ASSERT_EQ(detect_kind(f), Kind::ImageCaptions);
    const CaptionSchema s = validate_captions(f);
    EXPECT_EQ(s.n, std::string(split) == "train" ? 40 : 20);
    EXPECT_EQ(s.images.height, 8);
    EXPECT_EQ(s.images.width, 8);
    EXPECT_EQ(s.max_len, kMaxCaptionTokens);
    EXPECT_TRUE(s.has_items);
    EXPECT_EQ(s.classes, (std::vector<std::string>{"c0", "c1", "c2"}));
    io::H5File items = io::H5File::open_read(file(std::string("items_") + split + ".h5"));
    const Tensor item_px = items.read("/images");
    const std::vector<int64_t> item_labels = items.read("/labels").to_vector<int64_t>();
    const Tensor scenes = f.read("/images");
    const std::vector<int64_t> cells = f.read("/items").to_vector<int64_t>();
    const std::vector<int64_t> sources = f.read("/sources").to_vector<int64_t>();
    const std::vector<int32_t> caps = f.read("/captions").to_vector<int32_t>();
    const std::vector<int32_t> lens = f.read("/caption_len").to_vector<int32_t>();
    int64_t empty = 0;
    for (int64_t i = 0; i < s.n; ++i) {
      std::vector<int64_t> grid(cells.begin() + i * 4, cells.begin() + (i + 1) * 4);
      EXPECT_TRUE(std::any_of(grid.begin(), grid.end(), [](int64_t c) { return c >= 0; })) << "row " << i;
      for (int64_t cell = 0; cell < 4; ++cell) {
        const int64_t src = sources[static_cast<size_t>(i * 4 + cell)];
        empty += src < 0;
        // Each cell is its source item's pixels (zeros when empty), its class the item's.
        EXPECT_EQ(grid[static_cast<size_t>(cell)], src < 0 ? -1 : item_labels[static_cast<size_t>(src)]);
        for (int64_t y = 0; y < 4; ++y) {
          for (int64_t x = 0; x < 4; ++x) {
            const uint8_t got = scenes.data<uint8_t>()[i * 64 + ((cell / 2) * 4 + y) * 8 + (cell % 2) * 4 + x];
            const uint8_t want = src < 0 ? 0 : item_px.data<uint8_t>()[src * 16 + y * 4 + x];
            ASSERT_EQ(got, want) << split << " row " << i << " cell " << cell;
          }
        }
      }
      // The caption is the grammar's for the grid.
      const std::vector<int64_t> ids(caps.begin() + i * s.max_len, caps.begin() + i * s.max_len + lens[i]);
      const std::vector<std::string> words = split_words(detokenize(ids, s.vocab, "words"));
      EXPECT_EQ(words, caption_words(grid, s.classes));
      EXPECT_EQ(parse_caption(words, s.classes), grid);
    }
    // Test scenes draw on the 12 test items only; train scenes on all 30 train items.
    const int64_t top = *std::max_element(sources.begin(), sources.end());
    if (std::string(split) == "test") {
      EXPECT_LT(top, 12);
    } else {
      EXPECT_GE(top, 12);
    }
    EXPECT_GT(empty, 0) << "some cells are empty";
    EXPECT_LT(empty, s.n * 4 / 2);
  }
}

TEST_F(CaptionFiles, SameSeedSameFilesOtherSeedOtherScenes) {
  make("a");
  make("b");
  options_.seed = 6;
  make("c");
  auto captions = [&](const std::string& tag) {
    return io::H5File::open_read(file(tag + "_train.h5")).read("/captions").to_vector<int32_t>();
  };
  auto pixels = [&](const std::string& tag) {
    return io::H5File::open_read(file(tag + "_test.h5")).read("/images").to_vector<uint8_t>();
  };
  EXPECT_EQ(captions("a"), captions("b"));
  EXPECT_EQ(pixels("a"), pixels("b"));
  EXPECT_NE(captions("a"), captions("c"));
}

TEST_F(CaptionFiles, TheLoaderDeliversNormalizedScenesAndCaptions) {
  const std::string path = make("a");
  LoaderConfig lc;
  lc.path = path;
  lc.batch_size = 8;
  lc.shuffle = false;
  Loader loader(lc);
  ASSERT_EQ(loader.kind(), Kind::ImageCaptions);
  EXPECT_EQ(loader.image_schema().height, 8);
  Batch b = loader.next();
  ASSERT_EQ(b.size, 8);
  EXPECT_EQ(b.images.shape(), (Shape{8, 1, 8, 8}));
  EXPECT_EQ(b.images.dtype(), DType::F32);
  EXPECT_EQ(b.tokens.shape(), (Shape{8, kMaxCaptionTokens}));
  EXPECT_EQ(b.lengths.shape(), (Shape{8}));
  io::H5File f = io::H5File::open_read(path);
  const std::vector<int32_t> caps = f.read("/captions").to_vector<int32_t>();
  EXPECT_EQ(b.tokens.to_vector<int32_t>(), std::vector<int32_t>(caps.begin(), caps.begin() + 8 * kMaxCaptionTokens));
  // Flips and crops would make "left" and "right" lie: refused.
  lc.augment.hflip = true;
  EXPECT_THROW(Loader bad(lc), ValueError);
}

TEST_F(CaptionFiles, TheValidatorNamesTheFileAndField) {
  const std::string path = make("a");
  auto expect_error = [&](const std::string& needle) {
    try {
      io::H5File f = io::H5File::open_read(path);
      validate_captions(f);
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const IoError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  {
    io::H5File f = io::H5File::open_readwrite(path);
    std::vector<int32_t> caps = f.read("/captions").to_vector<int32_t>();
    const std::vector<int32_t> lens = f.read("/caption_len").to_vector<int32_t>();
    const auto row = std::find_if(lens.begin(), lens.end(), [](int32_t l) { return l < kMaxCaptionTokens; }) -
                     lens.begin();
    ASSERT_LT(row, 40);
    caps[static_cast<size_t>(row * kMaxCaptionTokens + kMaxCaptionTokens - 1)] = 5;  // past the row's length
    f.write_rows("/captions", 0, Tensor::from_vector(caps, {40, kMaxCaptionTokens}));
    f.close();
    expect_error("'/captions': token id 5 at row " + std::to_string(row));
  }
  {
    io::H5File f = io::H5File::open_readwrite(path);
    std::vector<int32_t> caps(static_cast<size_t>(40 * kMaxCaptionTokens), 1);
    f.write_rows("/captions", 0, Tensor::from_vector(caps, {40, kMaxCaptionTokens}));
  }
  expect_error("does not run from <s> (id 1) to </s> (id 2)");
  {
    io::H5File f = io::H5File::open_readwrite(path);
    f.write("/caption_len", Tensor::from_vector(std::vector<int32_t>(3, 4), {3}));
  }
  expect_error("'/caption_len': length mismatch");
  make("a");
  {
    io::H5File f = io::H5File::open_readwrite(path);
    f.write("/items", Tensor::from_vector(std::vector<int64_t>(40 * 4, 7), {40, 4}));
  }
  expect_error("'/items': class 7 at row 0, cell 0");
  make("a");
  {
    io::H5File f = io::H5File::open_readwrite(path);
    f.write_strings("/vocab", {"<pad>", "<s>", "</s>"});
  }
  expect_error("lacks the special token '<unk>'");
}

TEST_F(CaptionFiles, SourcesOfOtherKindsOrSizesAreRefused) {
  testing::write_test_images(file("big_test.h5"), 12, 6, 6, 1, 3, 8);
  EXPECT_THROW(synth_captions(file("items_train.h5"), file("big_test.h5"), file("x.h5"), file("y.h5"), options_, {}),
               IoError);
  make("a");
  try {
    synth_captions(file("a_train.h5"), file("items_test.h5"), file("x.h5"), file("y.h5"), options_, {});
    ADD_FAILURE() << "a caption file taken as items";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("image classification file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dtrain::data
