// RowReader (datasets/row_reader.h): row ranges read through HDF5 and, for contiguous or
// whole-row chunked data without filters, directly with pread (Note [Direct row reads]);
// both ways give the same bytes, and the reader outlives the H5File it came from.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <fstream>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "core/io/fletcher32.h"
#include "data_test_util.h"
#include "datasets/inspect.h"
#include "datasets/row_reader.h"

namespace dtrain::data {
namespace {

using testing::TempDirTest;

class RowReaderTest : public TempDirTest {};

// n rows of shape (3, 2), u8, row i holding 6 * i + j (mod 256) at byte j.
Tensor numbered_rows(int64_t n) {
  std::vector<uint8_t> v(static_cast<size_t>(n * 6));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i % 256);
  return Tensor::from_vector(v, {n, 3, 2});
}

// Rows [start, start + count) through the reader, as bytes.
std::vector<uint8_t> read_bytes(const RowReader& r, int64_t start, int64_t count) {
  std::vector<uint8_t> out(static_cast<size_t>(count) * r.row_bytes());
  r.read(start, count, out.data());
  return out;
}

// (Moved from tests/datasets/test_convert.cpp, H5RowApi, with io::H5File::open_rows;
// its writing half is H5Test.RowWritesLayoutAndStringLists in tests/core/test_h5.cpp.)
TEST_F(RowReaderTest, ReadsRowRangesAndOutlivesItsFile) {
  io::H5File f = io::H5File::create(file("rows.h5"));
  f.create_dataset("/g/x", {10, 3}, DType::I32, {4, 6, true});
  f.write_rows("/g/x", 2, Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3}));
  RowReader r = RowReader::open(f, "/g/x", 1 << 20);
  EXPECT_EQ(r.row_bytes(), 12u);
  std::vector<int32_t> buf(6);
  r.read(2, 2, buf.data());
  EXPECT_EQ(buf, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_THROW(r.read(9, 2, buf.data()), IoError);
  f.close();
  r.read(3, 1, buf.data());  // the reader keeps the file open
  EXPECT_EQ(buf[0], 4);
}

TEST_F(RowReaderTest, ContiguousAndWholeRowChunksAreReadDirectly) {
  const int64_t n = 20;
  Tensor rows = numbered_rows(n);
  io::H5File f = io::H5File::create(file("direct.h5"));
  f.write("/contiguous", rows);
  f.create_dataset("/chunked", {n, 3, 2}, DType::U8, {7, 0, false});  // 20 rows: chunks of 7, 7, 6
  f.write_rows("/chunked", 0, rows);
  f.flush();
  for (const char* name : {"/contiguous", "/chunked"}) {
    RowReader direct = RowReader::open(f, name, 0);
    RowReader hdf5 = RowReader::open(f, name, 0, /*direct=*/false);
    EXPECT_TRUE(direct.direct()) << name;
    EXPECT_FALSE(hdf5.direct()) << name;
    EXPECT_EQ(direct.shape(), (Shape{n, 3, 2})) << name;
    EXPECT_EQ(direct.dtype(), DType::U8) << name;
    EXPECT_EQ(direct.rows(), n) << name;
    EXPECT_EQ(direct.row_bytes(), 6u) << name;
    // Ranges inside one chunk, across chunk boundaries, the whole dataset, and none.
    for (auto [start, count] : {std::pair<int64_t, int64_t>{0, 1}, {5, 10}, {6, 2}, {13, 7}, {0, n}, {n, 0}}) {
      std::vector<uint8_t> want = f.read_rows(name, start, count).to_vector<uint8_t>();
      EXPECT_EQ(read_bytes(direct, start, count), want) << name << " rows " << start << "+" << count;
      EXPECT_EQ(read_bytes(hdf5, start, count), want) << name << " rows " << start << "+" << count;
    }
    EXPECT_THROW(direct.read(n - 1, 2, nullptr), IoError) << name;
    EXPECT_THROW(direct.read(-1, 1, nullptr), IoError) << name;
  }
}

TEST_F(RowReaderTest, FiltersAndUnwrittenChunksGoThroughHdf5) {
  const int64_t n = 12;
  io::H5File f = io::H5File::create(file("hdf5.h5"));
  f.create_dataset("/gzip", {n, 3, 2}, DType::U8, {4, 1, true});
  f.write_rows("/gzip", 0, numbered_rows(n));
  f.create_dataset("/partial", {n, 3, 2}, DType::U8, {4, 0, false});
  f.write_rows("/partial", 0, numbered_rows(4));  // chunks 1 and 2 never written
  for (const char* name : {"/gzip", "/partial"}) {
    RowReader r = RowReader::open(f, name, 0);
    EXPECT_FALSE(r.direct()) << name;
    EXPECT_EQ(read_bytes(r, 2, 8), f.read_rows(name, 2, 8).to_vector<uint8_t>()) << name;
  }
}

TEST_F(RowReaderTest, DirectReadsRunFromSeveralThreads) {
  const int64_t n = 64;
  io::H5File f = io::H5File::create(file("threads.h5"));
  f.create_dataset("/x", {n, 3, 2}, DType::U8, {8, 0, false});
  f.write_rows("/x", 0, numbered_rows(n));
  f.flush();
  RowReader r = RowReader::open(f, "/x", 0);
  ASSERT_TRUE(r.direct());
  const std::vector<uint8_t> all = f.read_rows("/x", 0, n).to_vector<uint8_t>();
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 50; ++rep) {
        int64_t start = (t * 13 + rep * 5) % (n - 9);
        std::vector<uint8_t> got = read_bytes(r, start, 9);
        if (!std::equal(got.begin(), got.end(), all.begin() + start * 6)) ++bad[static_cast<size_t>(t)];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad, (std::vector<int>{0, 0, 0, 0}));
}

TEST_F(RowReaderTest, OpenNamesWhatIsWrong) {
  io::H5File f = io::H5File::create(file("errors.h5"));
  f.write("/scalar", Tensor::scalar(1.0f));
  f.write("/g/x", numbered_rows(2));
  EXPECT_THROW(RowReader::open(f, "/missing"), IoError);
  EXPECT_THROW(RowReader::open(f, "/g"), IoError);  // a group
  try {
    RowReader::open(f, "/scalar");
    ADD_FAILURE() << "a 0-dim dataset was opened for row reads";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("at least one dimension"), std::string::npos) << e.what();
  }
  RowReader a = RowReader::open(f, "/g/x");
  RowReader b = std::move(a);
  EXPECT_EQ(b.rows(), 2);
  std::vector<uint8_t> buf(6);
  EXPECT_THROW(a.read(0, 1, buf.data()), IoError);  // moved from: closed
}


// ---- Note [Checksummed chunks] ------------------------------------------------------

// The byte offset in the file of chunk `chunk` (along dim 0) of `dataset`, and its
// stored size, from the library.
std::pair<int64_t, int64_t> chunk_place(const std::string& path, const std::string& dataset, int64_t first_row,
                                        int rank) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  std::vector<hsize_t> offset(static_cast<size_t>(rank), 0);
  offset[0] = static_cast<hsize_t>(first_row);
  unsigned mask = 0;
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  EXPECT_GE(H5Dget_chunk_info_by_coord(d, offset.data(), &mask, &addr, &size), 0);
  H5Dclose(d);
  H5Fclose(f);
  return {static_cast<int64_t>(addr), static_cast<int64_t>(size)};
}

void flip_byte(const std::string& path, int64_t at) {
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(at);
  char c = 0;
  io.read(&c, 1);
  io.seekp(at);
  c = static_cast<char>(c ^ 0x5a);
  io.write(&c, 1);
}

std::vector<uint8_t> file_bytes(const std::string& path, int64_t at, int64_t n) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(at);
  std::vector<uint8_t> out(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(out.data()), n);
  return out;
}

TEST(Fletcher32, AgreesWithWhatTheHdf5FilterStores) {
  // Odd and even chunk sizes, more than 360 words (the folding interval) and fewer.
  const std::string path = std::filesystem::temp_directory_path() / ("dtrain_fletcher_" + std::to_string(::getpid()) + ".h5");
  for (auto [rows, cols, chunk] : {std::tuple<int64_t, int64_t, int64_t>{12, 3, 5}, {40, 37, 32}, {9, 1000, 3}}) {
    std::vector<uint8_t> v(static_cast<size_t>(rows * cols));
    uint32_t x = 12345;
    for (uint8_t& b : v) b = static_cast<uint8_t>((x = x * 1103515245u + 12345u) >> 24);
    // Sums that are multiples of 65535 (all 0xff: HDF5 keeps 65535, not 0) and zero, in
    // the first rows.
    std::fill(v.begin(), v.begin() + chunk * cols, uint8_t{0xff});
    if (rows >= 2 * chunk) std::fill(v.begin() + chunk * cols, v.begin() + 2 * chunk * cols, uint8_t{0});
    {
      io::H5File f = io::H5File::create(path);
      f.create_dataset("/x", {rows, cols}, DType::U8, {chunk, 0, false, true});
      f.write_rows("/x", 0, Tensor::from_vector(v, {rows, cols}));
      EXPECT_EQ(f.layout_of("/x").filters, (std::vector<std::string>{"fletcher32"}));
    }
    for (int64_t first = 0; first < rows; first += chunk) {
      auto [at, size] = chunk_place(path, "/x", first, 2);
      ASSERT_EQ(size, chunk * cols + 4) << "chunk at row " << first;
      std::vector<uint8_t> stored = file_bytes(path, at, size);
      const uint32_t sum = io::fletcher32(stored.data(), static_cast<size_t>(chunk * cols));
      EXPECT_TRUE(io::fletcher32_matches(sum, stored.data() + chunk * cols))
          << "rows " << rows << " x " << cols << ", chunk at row " << first;
      stored[3] ^= 1;  // and a changed byte changes it
      EXPECT_FALSE(io::fletcher32_matches(io::fletcher32(stored.data(), static_cast<size_t>(chunk * cols)),
                                          stored.data() + chunk * cols));
    }
  }
  std::filesystem::remove(path);
  // By hand: "abcde" as big-endian words 0x6162 0x6364 0x6500 gives the sums
  // 0x129C6 = 0x29C7 and 0x6162 + 0xC4C6 + 0x129C6 = 0x24FEE = 0x4FF0 (mod 65535).
  EXPECT_EQ(io::fletcher32("abcde", 5), 0x4FF029C7u);
}

TEST_F(RowReaderTest, ChecksummedChunksAreCheckedOnBothPaths) {
  const int64_t n = 20;
  const std::string path = file("sums.h5");
  {
    io::H5File f = io::H5File::create(path);
    f.create_dataset("/x", {n, 3, 2}, DType::U8, {5, 0, false, true});
    f.write_rows("/x", 0, numbered_rows(n));
    f.create_dataset("/plain", {n, 3, 2}, DType::U8, {5, 0, false, false});
    f.write_rows("/plain", 0, numbered_rows(n));
  }
  const std::vector<uint8_t> want = numbered_rows(n).to_vector<uint8_t>();
  {
    io::H5File f = io::H5File::open_read(path);
    RowReader direct = RowReader::open(f, "/x", 0), hdf5 = RowReader::open(f, "/x", 0, false);
    EXPECT_TRUE(direct.direct());  // the checksum alone keeps the fast path
    EXPECT_TRUE(direct.checksummed());
    EXPECT_TRUE(hdf5.checksummed());
    EXPECT_EQ(direct.chunk_rows(), 5);
    EXPECT_EQ(read_bytes(direct, 0, n), want);
    EXPECT_EQ(read_bytes(direct, 3, 9), std::vector<uint8_t>(want.begin() + 18, want.begin() + 72));  // checked ones
    EXPECT_EQ(read_bytes(hdf5, 3, 9), std::vector<uint8_t>(want.begin() + 18, want.begin() + 72));
    RowReader plain = RowReader::open(f, "/plain", 0);
    EXPECT_TRUE(plain.direct());
    EXPECT_FALSE(plain.checksummed());
  }
  // One flipped byte in the third chunk (rows 10..14) of each dataset.
  for (const char* name : {"/x", "/plain"}) flip_byte(path, chunk_place(path, name, 10, 3).first + 7);
  io::H5File f = io::H5File::open_read(path);
  for (bool direct : {true, false}) {
    RowReader r = RowReader::open(f, "/x", 0, direct);
    EXPECT_EQ(r.direct(), direct);
    EXPECT_EQ(read_bytes(r, 0, 10), std::vector<uint8_t>(want.begin(), want.begin() + 60));  // other chunks read
    try {
      read_bytes(r, 8, 5);
      ADD_FAILURE() << "a damaged chunk was read (direct: " << direct << ")";
    } catch (const IoError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_NE(m.find("'/x': rows [10, 15) fail their Fletcher-32 checksum"), std::string::npos) << m;
      EXPECT_NE(m.find("inspect --verify"), std::string::npos) << m;
    }
    EXPECT_THROW(read_bytes(r, 14, 1), IoError);  // every later read of it too
    EXPECT_EQ(read_bytes(r, 15, 5), std::vector<uint8_t>(want.begin() + 90, want.end()));
  }
  // Without checksums the damage goes unnoticed: the byte is read as data.
  RowReader plain = RowReader::open(f, "/plain", 0);
  std::vector<uint8_t> got = read_bytes(plain, 10, 5);
  EXPECT_NE(got, std::vector<uint8_t>(want.begin() + 60, want.begin() + 90));
}

TEST_F(RowReaderTest, InspectReportsChecksumsAndVerifyNamesDamagedChunks) {
  const std::string with = file("with.h5"), without = file("without.h5");
  for (const std::string& path : {with, without}) {
    const bool sums = path == with;
    io::H5File f = io::H5File::create(path);
    std::vector<int64_t> labels(30);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 2);
    f.create_dataset("/images", {30, 3, 2, 1}, DType::U8, {8, 0, false, sums});
    f.write_rows("/images", 0, numbered_rows(30).reshape({30, 3, 2, 1}));
    f.create_dataset("/labels", {30}, DType::I64, {8, 0, false, sums});
    f.write_rows("/labels", 0, Tensor::from_vector(labels, {30}));
    f.set_attribute("/", "classes", std::vector<std::string>{"a", "b"});
  }
  InspectResult plain = inspect(without, {true, nullptr});
  EXPECT_TRUE(plain.valid) << plain.text;
  EXPECT_NE(plain.text.find("checksums: none"), std::string::npos) << plain.text;
  InspectResult good = inspect(with, {true, nullptr});
  EXPECT_TRUE(good.valid) << good.text;
  EXPECT_NE(good.text.find("checksums: Fletcher-32 on every chunk (/images, /labels)"), std::string::npos) << good.text;
  EXPECT_NE(good.text.find("verify: all 8 chunks match their Fletcher-32 checksums"), std::string::npos) << good.text;

  flip_byte(with, chunk_place(with, "/images", 8, 4).first);       // rows [8, 16)
  flip_byte(with, chunk_place(with, "/images", 24, 4).first + 3);  // rows [24, 30), the short last chunk
  InspectResult bad = inspect(with, {true, nullptr});
  EXPECT_FALSE(bad.valid) << bad.text;
  EXPECT_NE(bad.text.find("verify: 2 of 8 chunks fail their Fletcher-32 checksum"), std::string::npos) << bad.text;
  EXPECT_NE(bad.text.find("/images rows [8, 16)"), std::string::npos) << bad.text;
  EXPECT_NE(bad.text.find("/images rows [24, 30)"), std::string::npos) << bad.text;
  EXPECT_NE(bad.text.find("validation: FAILED"), std::string::npos) << bad.text;
  EXPECT_TRUE(inspect(with).valid);  // without --verify nothing reads the chunks
}

}  // namespace
}  // namespace dtrain::data
