// Files written by other programs: h5py (other chunk shapes, contiguous, gzip, shuffle,
// an unavailable filter), and the real Fashion-MNIST from Debian's dataset-fashion-mnist.
// Each skips, with the reason, when its tool or data is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "data_test_util.h"
#include "datasets/convert.h"
#include "datasets/loader.h"

namespace dtrain::data {
namespace {

using testing::TempDirTest;
using testing::test_label;
using testing::test_pixel;

class ExternalFiles : public TempDirTest {};

constexpr const char* kPython = "/usr/bin/python3";

bool have_h5py(std::string* why) {
  if (!std::filesystem::exists(kPython)) {
    *why = std::string(kPython) + " is missing (install python3-h5py)";
    return false;
  }
  if (std::system((std::string(kPython) + " -c 'import h5py, numpy' >/dev/null 2>&1").c_str()) != 0) {
    *why = "python3 cannot import h5py/numpy (install python3-h5py)";
    return false;
  }
  return true;
}

// Writes with h5py the test_pixel/test_label data of n samples (h, w, c) with the given
// dataset keyword arguments, e.g. "chunks=(7, 5, 3, 2), compression='gzip'".
void h5py_images(const std::string& path, int n, int h, int w, int c, const std::string& kwargs) {
  std::string script = path + ".py";
  std::ofstream(script) << "import h5py, numpy as np\n"
                        << "n, h, w, c = " << n << ", " << h << ", " << w << ", " << c << "\n"
                        << "i = np.arange(n).reshape(n, 1); j = np.arange(h * w * c).reshape(1, -1)\n"
                        << "px = ((i * 31 + j * 7) % 251).astype(np.uint8).reshape(n, h, w, c)\n"
                        << "with h5py.File('" << path << "', 'w') as f:\n"
                        << "    f.create_dataset('images', data=px" << (kwargs.empty() ? "" : ", ") << kwargs << ")\n"
                        << "    f.create_dataset('labels', data=((np.arange(n) * 7 + 3) % 4).astype(np.int64))\n"
                        << "    f.attrs['classes'] = ['a', 'b', 'c', 'd']\n"
                        << "    f.attrs['mean'] = np.full(c, 0.5)\n"
                        << "    f.attrs['std'] = np.full(c, 0.25)\n";
  ASSERT_EQ(std::system((std::string(kPython) + " " + script).c_str()), 0) << "h5py failed on " << script;
}

void expect_rows_read_back(const std::string& path, int n, int64_t sample) {
  LoaderConfig cfg;
  cfg.path = path;
  cfg.batch_size = 9;
  cfg.raw = true;
  cfg.seed = 3;
  cfg.drop_last = false;
  cfg.window_blocks = 3;
  Loader l(cfg);
  std::vector<int> seen(static_cast<size_t>(n), 0);
  for (int64_t b = 0; b < l.sampler().batches_per_epoch(); ++b) {
    Batch batch = l.next();
    std::vector<int64_t> rows;
    for (const RowRange& r : l.sampler().plan(batch.at).ranges) {
      for (int64_t i = 0; i < r.count; ++i) rows.push_back(r.start + i);
    }
    const uint8_t* px = batch.images.data<uint8_t>();
    for (size_t i = 0; i < rows.size(); ++i) {
      seen[static_cast<size_t>(rows[i])]++;
      EXPECT_EQ(batch.labels.data<int64_t>()[i], test_label(rows[i], 4));
      for (int64_t j = 0; j < sample; ++j) ASSERT_EQ(px[static_cast<int64_t>(i) * sample + j], test_pixel(rows[i], j)) << path;
    }
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), n);
}

TEST_F(ExternalFiles, H5pyChunkShapesAndCompression) {
  std::string why;
  if (!have_h5py(&why)) GTEST_SKIP() << why;
  const int n = 101, h = 5, w = 3, c = 2;
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"contiguous", ""},
      {"chunk7", "chunks=(7, 5, 3, 2)"},
      {"chunk1_split", "chunks=(1, 2, 3, 1)"},  // chunks across the image dims too
      {"gzip", "chunks=(16, 5, 3, 2), compression='gzip', compression_opts=9"},
      {"shuffle_gzip", "chunks=(10, 5, 3, 2), shuffle=True, compression='gzip'"},
      {"auto_chunks", "chunks=True, compression='gzip'"},
  };
  for (const auto& [name, kwargs] : variants) {
    SCOPED_TRACE(name);
    std::string p = file(name + ".h5");
    h5py_images(p, n, h, w, c, kwargs);
    expect_rows_read_back(p, n, h * w * c);
  }
}

TEST_F(ExternalFiles, H5pyUnavailableFilterIsAClearError) {
  std::string why;
  if (!have_h5py(&why)) GTEST_SKIP() << why;
  // LZF is built into h5py but not into the HDF5 C library: the file validates (labels
  // are plain) but reading images fails in a worker, which next() reports. (h5py applies
  // LZF as an optional filter, skipped for chunks it cannot shrink: so zeros.)
  std::string p = file("lzf.h5");
  std::ofstream(p + ".py") << "import h5py, numpy as np\n"
                           << "with h5py.File('" << p << "', 'w') as f:\n"
                           << "    f.create_dataset('images', data=np.zeros((40, 16, 16, 1), np.uint8), "
                           << "chunks=(8, 16, 16, 1), compression='lzf')\n"
                           << "    f.create_dataset('labels', data=np.zeros(40, np.int64))\n"
                           << "    f.attrs['classes'] = ['a']\n";
  ASSERT_EQ(std::system((std::string(kPython) + " " + p + ".py").c_str()), 0);
  LoaderConfig cfg;
  cfg.path = p;
  cfg.batch_size = 8;
  Loader l(cfg);
  try {
    l.next();
    ADD_FAILURE() << "read an LZF dataset without the filter";
  } catch (const IoError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("/images"), std::string::npos) << msg;
  }
}

TEST_F(ExternalFiles, FashionMnistFromTheDebianPackage) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << dir << " is absent (install Debian's dataset-fashion-mnist)";
  }
  std::string out = file("fm_test.h5");
  convert_idx(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz", out, {}, {64, 0});
  io::H5File f = io::H5File::open_read(out);
  ImageSchema s = validate_images(f, true);
  EXPECT_EQ(s.n, 10000);
  EXPECT_EQ(s.height, 28);
  EXPECT_EQ(s.width, 28);
  EXPECT_EQ(s.num_classes(), 10);
  for (int64_t count : class_counts(f, s)) EXPECT_EQ(count, 1000);
  EXPECT_NEAR(s.mean[0], 0.2868, 2e-3);  // the published test-set statistics
  EXPECT_NEAR(s.std[0], 0.3524, 2e-3);
}

}  // namespace
}  // namespace dtrain::data
