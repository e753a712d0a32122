// RowReader (datasets/row_reader.h): row ranges read through HDF5 and, for contiguous or
// whole-row chunked data without filters, directly with pread (Note [Direct row reads]);
// both ways give the same bytes, and the reader outlives the H5File it came from.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "data_test_util.h"
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

}  // namespace
}  // namespace dtrain::data
