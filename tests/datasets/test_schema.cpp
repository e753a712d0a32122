// Validation of dataset files: every bad file gives an IoError naming the file, the
// dataset and the problem; good files (image, image-only, pairs) pass.
#include <gtest/gtest.h>

#include <fstream>

#include "data_test_util.h"
#include "datasets/inspect.h"
#include "datasets/loader.h"
#include "datasets/schema.h"

namespace dtrain::data {
namespace {

using testing::TempDirTest;
using testing::write_test_images;

class SchemaTest : public TempDirTest {
 protected:
  // Expects validation (and opening a Loader) to fail with IoError whose message holds
  // every fragment.
  void expect_invalid(const std::string& path, const std::vector<std::string>& fragments) {
    for (int via_loader = 0; via_loader < 2; ++via_loader) {
      try {
        if (via_loader) {
          LoaderConfig c;
          c.path = path;
          c.batch_size = 2;
          Loader loader(c);
        } else {
          io::H5File f = io::H5File::open_read(path);
          Kind k = detect_kind(f);
          if (k == Kind::SequencePairs) {
            validate_pairs(f);
          } else {
            validate_images(f, true);
          }
        }
        ADD_FAILURE() << "no error for " << path << (via_loader ? " (loader)" : "");
      } catch (const IoError& e) {
        std::string msg = e.what();
        for (const std::string& frag : fragments) {
          EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
        }
      }
    }
    EXPECT_FALSE(inspect(path).valid);
  }
  // A valid 8-sample file to break in one way.
  std::string good(const std::string& name) {
    std::string p = file(name);
    write_test_images(p, 8, 4, 4, 1, 3, 4);
    return p;
  }
};

TEST_F(SchemaTest, GoodFilesPass) {
  std::string p = good("ok.h5");
  io::H5File f = io::H5File::open_read(p);
  EXPECT_EQ(detect_kind(f), Kind::ImageClassification);
  ImageSchema s = validate_images(f, true);
  EXPECT_EQ(s.n, 8);
  EXPECT_EQ(s.num_classes(), 3);
  EXPECT_EQ(s.chunk_rows, 4);
  EXPECT_TRUE(s.has_normalization);
  EXPECT_TRUE(inspect(p).valid);
  EXPECT_NE(inspect(p).text.find("validation: OK"), std::string::npos);
}

TEST_F(SchemaTest, MissingDataset) {
  std::string p = file("no_labels_attr.h5");
  {
    io::H5File f = io::H5File::create(p);
    f.write("/labels", Tensor::zeros({4}, DType::I64));
  }
  expect_invalid(p, {p, "/images", "missing dataset"});
}

TEST_F(SchemaTest, MissingLabelsForClassification) {
  std::string p = good("x.h5");
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write("/labels", Tensor::zeros({8}, DType::I64));
  }
  io::H5File f = io::H5File::open_read(p);
  EXPECT_NO_THROW(validate_images(f, true));
  // Image-only files are fine without labels.
  std::string q = file("gan.h5");
  {
    io::H5File g = io::H5File::create(q);
    g.write("/images", Tensor::zeros({3, 2, 2, 1}, DType::U8));
  }
  io::H5File g = io::H5File::open_read(q);
  EXPECT_EQ(detect_kind(g), Kind::ImageOnly);
  EXPECT_NO_THROW(validate_images(g, false));
  try {
    validate_images(g, true);
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("'/labels'"), std::string::npos) << e.what();
  }
}

TEST_F(SchemaTest, WrongDtype) {
  std::string p = good("dtype.h5");
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write("/images", Tensor::zeros({8, 4, 4, 1}, DType::F32));
  }
  expect_invalid(p, {p, "/images", "wrong dtype", "f32", "u8"});
  std::string q = good("ldtype.h5");
  {
    io::H5File f = io::H5File::open_readwrite(q);
    f.write("/labels", Tensor::zeros({8}, DType::I32));
  }
  expect_invalid(q, {q, "/labels", "wrong dtype", "i32", "i64"});
}

TEST_F(SchemaTest, WrongRank) {
  std::string p = good("rank.h5");
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write("/images", Tensor::zeros({8, 16}, DType::U8));
  }
  expect_invalid(p, {p, "/images", "wrong rank", "(N, H, W, C)"});
}

TEST_F(SchemaTest, LengthMismatch) {
  std::string p = good("len.h5");
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write("/labels", Tensor::zeros({7}, DType::I64));
  }
  expect_invalid(p, {p, "/labels", "length mismatch", "7", "8"});
}

TEST_F(SchemaTest, LabelOutOfRange) {
  std::string p = good("label.h5");
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write("/labels", Tensor::from_vector<int64_t>({0, 1, 2, 0, 1, 5, 0, 0}, {8}));
  }
  expect_invalid(p, {p, "/labels", "label 5 at row 5", "out of range [0, 3)"});
}

TEST_F(SchemaTest, EmptyDataset) {
  std::string p = file("empty.h5");
  {
    io::H5File f = io::H5File::create(p);
    f.write("/images", Tensor::zeros({0, 4, 4, 1}, DType::U8));
    f.write("/labels", Tensor::zeros({0}, DType::I64));
    f.set_attribute("/", "classes", std::vector<std::string>{"a"});
  }
  expect_invalid(p, {p, "/images", "empty dataset"});
}

TEST_F(SchemaTest, TruncatedAndForeignFiles) {
  std::string p = good("trunc.h5");
  std::filesystem::resize_file(p, std::filesystem::file_size(p) / 2);
  expect_invalid(p, {p, "damaged"});
  std::string q = file("text.h5");
  std::ofstream(q) << "this is not HDF5\n";
  expect_invalid(q, {q, "not an HDF5 file"});
  expect_invalid(file("missing.h5"), {file("missing.h5"), "missing"});
}

TEST_F(SchemaTest, BadNormalizationAttributes) {
  std::string p = good("norm.h5");
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.set_attribute("/", "std", std::vector<double>{0.0});
  }
  expect_invalid(p, {p, "std", "not positive"});
}

TEST_F(SchemaTest, PairsValidation) {
  std::string p = file("pairs.h5");
  {
    io::H5File f = io::H5File::create(p);
    f.write("/src", Tensor::from_vector<int32_t>({4, 2, 5, 2}, {2, 2}));
    f.write("/tgt", Tensor::from_vector<int32_t>({1, 4, 2, 1, 5, 2}, {2, 3}));
    f.write("/src_len", Tensor::from_vector<int32_t>({2, 2}, {2}));
    f.write("/tgt_len", Tensor::from_vector<int32_t>({3, 3}, {2}));
    f.write_strings("/src_vocab", {"<pad>", "<s>", "</s>", "<unk>", "a", "b"});
    f.write_strings("/tgt_vocab", {"<pad>", "<s>", "</s>", "<unk>", "x", "y"});
  }
  {
    io::H5File f = io::H5File::open_read(p);
    EXPECT_EQ(detect_kind(f), Kind::SequencePairs);
    PairSchema s = validate_pairs(f);
    EXPECT_EQ(s.n, 2);
    EXPECT_EQ(s.tgt_max_len, 3);
    EXPECT_EQ(s.tokens, "words");  // no 'tokens' attribute: an older file, word tokens
  }
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.set_attribute("/", "tokens", "chars");
  }
  EXPECT_EQ(validate_pairs(io::H5File::open_read(p)).tokens, "chars");
  EXPECT_NE(inspect(p).text.find("tokens: chars"), std::string::npos) << inspect(p).text;
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.set_attribute("/", "tokens", "bytes");
  }
  expect_invalid(p, {p, "attribute 'tokens'", "'bytes'", "allowed values: 'words' or 'chars'"});
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.set_attribute("/", "tokens", 1);
  }
  expect_invalid(p, {p, "attribute 'tokens'", "not one string"});
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.set_attribute("/", "tokens", "words");
  }
  EXPECT_EQ(validate_pairs(io::H5File::open_read(p)).tokens, "words");
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write_strings("/tgt_vocab", {"<pad>", "<s>", "<unk>", "x", "y", "z"});
  }
  expect_invalid(p, {p, "/tgt_vocab", "lacks the special token '</s>'"});
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write_strings("/tgt_vocab", {"<pad>", "<s>", "</s>", "<unk>", "x"});
  }
  expect_invalid(p, {p, "/tgt", "token id 5", "outside the vocabulary [0, 5)"});
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write("/tgt_len", Tensor::from_vector<int32_t>({3}, {1}));
  }
  expect_invalid(p, {p, "/tgt_len", "length mismatch"});
  {
    io::H5File f = io::H5File::open_readwrite(p);
    f.write("/tgt_len", Tensor::from_vector<int32_t>({3, 3}, {2}));
    f.write("/src", Tensor::from_vector<int64_t>({4, 2, 5, 2}, {2, 2}));
  }
  expect_invalid(p, {p, "/src", "wrong dtype"});
}

}  // namespace
}  // namespace dtrain::data
