// Tests of core/io/h5: tensor round trips for every dtype, groups and listing, row-wise
// writes and layouts, string lists, attributes, and the errors a user sees for missing,
// foreign and damaged files. (Row readers: tests/datasets/test_row_reader.cpp.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <hdf5.h>

#include "core/io/h5.h"
#include "core/runtime.h"

namespace dtrain::io {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class H5Test : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("dtrain_h5_" + std::string(info->name()) + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter++));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

template <typename T>
void expect_round_trip(H5File& f, const std::string& name, const std::vector<T>& values, const Shape& shape) {
  Tensor t = Tensor::from_vector<T>(values, shape);
  f.write(name, t);
  Tensor back = f.read(name);
  EXPECT_EQ(back.dtype(), dtype_of<T>) << name;
  EXPECT_EQ(back.shape(), shape) << name;
  EXPECT_TRUE(back.device().is_cpu());
  EXPECT_EQ(f.shape_of(name), shape) << name;
  EXPECT_EQ(f.dtype_of(name), dtype_of<T>) << name;
  std::vector<T> got = back.to_vector<T>();
  ASSERT_EQ(got.size(), values.size()) << name;
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(std::memcmp(&got[i], &values[i], sizeof(T)), 0) << name << " element " << i;
  }
}

TEST_F(H5Test, RoundTripsEveryDtype) {
  const std::string path = file("dtypes.h5");
  {
    H5File f = H5File::create(path);
    EXPECT_EQ(f.path(), path);
    expect_round_trip<float>(f, "/f32", {1.5f, -2.25f, 3e-8f, 1e30f, 0.f, -0.f}, {2, 3});
    expect_round_trip<double>(f, "/f64", {1.0 / 3.0, -1e300, 5e-320}, {3});
    expect_round_trip<int32_t>(f, "/i32", {INT32_MIN, -1, 0, INT32_MAX}, {2, 1, 2});
    expect_round_trip<int64_t>(f, "/i64", {INT64_MIN, 7, INT64_MAX}, {3});
    expect_round_trip<uint8_t>(f, "/u8", {0, 1, 128, 255}, {1, 2, 2, 1});
    expect_round_trip<ops::bf16>(f, "/bf16", {ops::bf16{0x3f80}, ops::bf16{0xc000}, ops::bf16{0x7fc0}}, {3});
  }
  // Values survive closing and reopening, and bf16 comes back as bf16 thanks to its attribute.
  H5File f = H5File::open_read(path);
  EXPECT_EQ(f.read("/f32").to_vector<float>()[1], -2.25f);
  EXPECT_EQ(f.read("/i64").to_vector<int64_t>()[0], INT64_MIN);
  EXPECT_EQ(f.read("/bf16").dtype(), DType::BF16);
  EXPECT_EQ(f.read("/bf16").to_vector<ops::bf16>()[1].bits, 0xc000);
  EXPECT_EQ(f.get_attribute<std::string>("/bf16", "dtype"), "bf16");
  EXPECT_FALSE(f.has_attribute("/f32", "dtype"));
}

TEST_F(H5Test, RoundTripsScalarsAndEmptyTensors) {
  H5File f = H5File::create(file("shapes.h5"));
  expect_round_trip<float>(f, "scalar_f32", {42.5f}, {});
  expect_round_trip<int64_t>(f, "scalar_i64", {-3}, {});
  expect_round_trip<float>(f, "empty_f32", {}, {0});
  expect_round_trip<double>(f, "empty_2d", {}, {3, 0});
  expect_round_trip<uint8_t>(f, "empty_leading", {}, {0, 4, 4});
  EXPECT_EQ(f.read("scalar_f32").ndim(), 0);
  EXPECT_EQ(f.read("scalar_f32").item<float>(), 42.5f);
}

TEST_F(H5Test, WriteReplacesAnExistingDataset) {
  H5File f = H5File::create(file("replace.h5"));
  f.write("/a/x", Tensor::from_vector<float>({1, 2, 3}, {3}));
  f.write("/a/x", Tensor::from_vector<int32_t>({4, 5}, {2}));
  Tensor back = f.read("/a/x");
  EXPECT_EQ(back.dtype(), DType::I32);
  EXPECT_EQ(back.to_vector<int32_t>(), (std::vector<int32_t>{4, 5}));
  // A group cannot be overwritten by a dataset.
  EXPECT_THROW(f.write("/a", Tensor::scalar(1.0)), IoError);
}

TEST_F(H5Test, NestedGroupsAndListOrder) {
  const std::string path = file("groups.h5");
  {
    H5File f = H5File::create(path);
    // Names with dots, as parameter names have; written out of order.
    for (const char* name : {"2.weight", "0.weight", "10.bias", "0.bias", "features.3.running_mean"}) {
      f.write(std::string("/model/") + name, Tensor::zeros({2}));
    }
    f.write("/optimizer/state/0.weight.momentum_buffer", Tensor::zeros({2}));
    f.write("top", Tensor::scalar(1.0));
  }
  H5File f = H5File::open_readwrite(path);
  EXPECT_EQ(f.list("/model"),
            (std::vector<std::string>{"0.bias", "0.weight", "10.bias", "2.weight", "features.3.running_mean"}));
  EXPECT_EQ(f.list(), (std::vector<std::string>{"model", "optimizer", "top"}));
  EXPECT_EQ(f.list("/optimizer"), (std::vector<std::string>{"state"}));
  EXPECT_TRUE(f.has("/"));
  EXPECT_TRUE(f.has("/model"));
  EXPECT_TRUE(f.has("model/0.weight"));
  EXPECT_TRUE(f.has("/optimizer/state/0.weight.momentum_buffer"));
  EXPECT_FALSE(f.has("/model/1.weight"));
  EXPECT_FALSE(f.has("/nothing/here"));
  EXPECT_FALSE(f.has("/top/child"));  // below a dataset
  EXPECT_THROW(f.list("/top"), IoError);
  EXPECT_THROW(f.list("/missing"), IoError);
  EXPECT_THROW(f.read("/model"), IoError);  // a group, not a dataset
  // open_readwrite allows adding to an existing file.
  f.write("/model/1.weight", Tensor::ones({1}));
  EXPECT_TRUE(f.has("/model/1.weight"));
}

TEST_F(H5Test, ReadRowsReadsASlab) {
  H5File f = H5File::create(file("rows.h5"));
  std::vector<int32_t> v(5 * 3);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>(i);
  f.write("x", Tensor::from_vector<int32_t>(v, {5, 3}));
  Tensor rows = f.read_rows("x", 1, 2);
  EXPECT_EQ(rows.shape(), (Shape{2, 3}));
  EXPECT_EQ(rows.to_vector<int32_t>(), (std::vector<int32_t>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(f.read_rows("x", 5, 0).shape(), (Shape{0, 3}));
  EXPECT_THROW(f.read_rows("x", 4, 2), IoError);
}

// (Moved here from tests/datasets/test_convert.cpp, where the converters use this API;
// its row-reader half is in tests/datasets/test_row_reader.cpp.)
TEST_F(H5Test, RowWritesLayoutAndStringLists) {
  H5File f = H5File::create(file("rows.h5"));
  f.create_dataset("/g/x", {10, 3}, DType::I32, {4, 6, true});
  f.write_rows("/g/x", 2, Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3}));
  DatasetLayout layout = f.layout_of("/g/x");
  EXPECT_EQ(layout.chunks, (Shape{4, 3}));
  EXPECT_EQ(layout.filters, (std::vector<std::string>{"shuffle", "gzip(6)"}));
  EXPECT_THROW(f.write_rows("/g/x", 9, Tensor::zeros({2, 3}, DType::I32)), IoError);
  EXPECT_THROW(f.write_rows("/g/x", 0, Tensor::zeros({2, 3}, DType::I64)), IoError);
  f.write_strings("/v", {"<pad>", "", "grüße"});
  EXPECT_EQ(f.read_strings("/v"), (std::vector<std::string>{"<pad>", "", "grüße"}));
  EXPECT_THROW(f.read_strings("/g/x"), IoError);
}

TEST_F(H5Test, AttributesOfEveryType) {
  const std::string path = file("attrs.h5");
  {
    H5File f = H5File::create(path);
    f.write("/model/0.weight", Tensor::zeros({2, 2}));
    f.set_attribute("/", "format_version", 3);
    f.set_attribute("/", "step", int64_t{1} << 40);
    f.set_attribute("/", "config", std::string("lr: 0.1\nname: \"mlp\"\n"));
    f.set_attribute("/", "empty_string", std::string());
    f.set_attribute("/", "lr", 0.125);
    f.set_attribute("/", "mean", std::vector<double>{0.4914, 0.4822, 0.4465});
    f.set_attribute("/", "no_values", std::vector<double>{});
    f.set_attribute("/", "classes", std::vector<std::string>{"airplane", "automobile", "", "bird"});
    f.set_attribute("/model", "note", "group attribute");
    f.set_attribute("/model/0.weight", "init", "kaiming");
    f.set_attribute("/", "lr", 0.25);  // replaces
  }
  H5File f = H5File::open_read(path);
  EXPECT_EQ(f.get_attribute<int64_t>("/", "format_version"), 3);
  EXPECT_EQ(f.get_attribute<int64_t>("/", "step"), int64_t{1} << 40);
  EXPECT_EQ(f.get_attribute<std::string>("/", "config"), "lr: 0.1\nname: \"mlp\"\n");
  EXPECT_EQ(f.get_attribute<std::string>("/", "empty_string"), "");
  EXPECT_EQ(f.get_attribute<double>("/", "lr"), 0.25);
  EXPECT_EQ(f.get_attribute<std::vector<double>>("/", "mean"), (std::vector<double>{0.4914, 0.4822, 0.4465}));
  EXPECT_TRUE(f.get_attribute<std::vector<double>>("/", "no_values").empty());
  EXPECT_EQ(f.get_attribute<std::vector<std::string>>("/", "classes"),
            (std::vector<std::string>{"airplane", "automobile", "", "bird"}));
  EXPECT_EQ(f.get_attribute<std::string>("/model", "note"), "group attribute");
  EXPECT_EQ(f.get_attribute<std::string>("/model/0.weight", "init"), "kaiming");
  EXPECT_TRUE(f.has_attribute("/", "classes"));
  EXPECT_FALSE(f.has_attribute("/", "missing"));
  EXPECT_FALSE(f.has_attribute("/no/object", "x"));
  // Kinds are checked, not converted.
  EXPECT_THROW(f.get_attribute<std::string>("/", "format_version"), IoError);
  EXPECT_THROW(f.get_attribute<double>("/", "format_version"), IoError);
  EXPECT_THROW(f.get_attribute<int64_t>("/", "mean"), IoError);
  try {
    f.get_attribute<int64_t>("/", "missing_attr");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("missing_attr"), std::string::npos) << e.what();
  }
  // A read-only file refuses writes with an IoError, not a crash.
  EXPECT_THROW(f.set_attribute("/", "x", 1.0), IoError);
  EXPECT_THROW(f.write("/y", Tensor::zeros({1})), IoError);
}

TEST_F(H5Test, ReadAsIsStrict) {
  const std::string path = file("strict.h5");
  {
    H5File f = H5File::create(path);
    f.write("/params/0.weight", Tensor::zeros({2, 2}, DType::F64));
  }
  H5File f = H5File::open_read(path);
  EXPECT_EQ(f.read_as("/params/0.weight", DType::F64).dtype(), DType::F64);
  try {
    f.read_as("/params/0.weight", DType::F32);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("/params/0.weight"), std::string::npos) << what;
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("f64"), std::string::npos) << what;
    EXPECT_NE(what.find("f32"), std::string::npos) << what;
  }
}

TEST_F(H5Test, MissingDatasetNamesIt) {
  const std::string path = file("missing_ds.h5");
  H5File::create(path).write("/a", Tensor::zeros({1}));
  H5File f = H5File::open_read(path);
  for (const char* name : {"/params/9.weight", "/a/b"}) {
    try {
      f.read(name);
      FAIL() << "expected IoError for " << name;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(f.shape_of("/nope"), IoError);
}

TEST_F(H5Test, MissingFileNamesPath) {
  const std::string path = file("does_not_exist.h5");
  try {
    H5File::open_read(path);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("missing"), std::string::npos) << what;
  }
  EXPECT_THROW(H5File::create(file("no_such_dir/x.h5")), IoError);
}

TEST_F(H5Test, NonHdf5FileNamesPath) {
  const std::string path = file("notes.h5");
  std::ofstream(path) << "this is a text file, not HDF5\n";
  try {
    H5File::open_read(path);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("not an HDF5 file"), std::string::npos) << what;
  }
}

TEST_F(H5Test, TruncatedFileIsReportedAsDamaged) {
  const std::string good = file("good.h5");
  {
    H5File f = H5File::create(good);
    f.write("/big", Tensor::zeros({64, 64}));
    f.set_attribute("/", "format_version", 1);
  }
  const std::string bad = file("truncated.h5");
  auto size = fs::file_size(good);
  fs::copy_file(good, bad);
  fs::resize_file(bad, size / 2);
  try {
    H5File f = H5File::open_read(bad);
    // Should HDF5 ever accept the superblock, reading the data must still fail cleanly.
    f.read("/big");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(bad), std::string::npos) << what;
    EXPECT_NE(what.find("damaged"), std::string::npos) << what;
  }
}

// Note [Claimed sizes]: a dataset whose header claims far more than the file stores (a
// damaged shape, or chunks never written) is refused before any allocation for it, with
// an error naming it; the same for a list of strings. Small unwritten datasets still read
// (as their fill values).
TEST_F(H5Test, AShapeLargerThanTheStoredDataIsRefused) {
  const std::string path = file("claims.h5");
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk = 1024;
    H5Pset_chunk(dcpl, 1, &chunk);
    for (auto [name, n] : {std::pair<const char*, hsize_t>{"huge", hsize_t{1} << 33}, {"small", 4096}}) {
      hid_t space = H5Screate_simple(1, &n, nullptr);
      hid_t ds = H5Dcreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      EXPECT_GE(ds, 0) << name;
      H5Dclose(ds);
      H5Sclose(space);
    }
    hsize_t words = hsize_t{1} << 30;
    hid_t space = H5Screate_simple(1, &words, nullptr);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Dclose(H5Dcreate2(f, "vocab", str, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Tclose(str);
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Fclose(f);
  }
  H5File f = H5File::open_read(path);
  for (const char* name : {"huge", "vocab"}) {
    try {
      if (std::string(name) == "vocab") {
        f.read_strings(name);
      } else {
        f.read(name);
      }
      FAIL() << "expected IoError for " << name;
    } catch (const IoError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find(std::string("dataset '") + name + "' claims"), std::string::npos) << what;
      EXPECT_NE(what.find("its shape is damaged, or its data was never written"), std::string::npos) << what;
    }
  }
  EXPECT_EQ(f.read("small").numel(), 4096);
}

TEST_F(H5Test, MovedFromFileIsClosed) {
  H5File a = H5File::create(file("move.h5"));
  H5File b = std::move(a);
  EXPECT_FALSE(a.is_open());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_TRUE(b.is_open());
  b.write("x", Tensor::scalar(2.0));
  EXPECT_THROW(a.read("x"), IoError);
  b.close();
  EXPECT_THROW(b.read("x"), IoError);
}

TEST_F(H5Test, WritesCudaTensorsFromTheHost) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no usable CUDA device";
  H5File f = H5File::create(file("cuda.h5"));
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2}, Device::cuda(0));
  f.write("/w", t);
  Tensor back = f.read("/w");
  EXPECT_TRUE(back.device().is_cpu());
  EXPECT_EQ(back.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
}

}  // namespace
}  // namespace dtrain::io
