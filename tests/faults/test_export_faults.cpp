// I/O faults while the program writes over an earlier output (Note [Atomic replace] in
// core/io/atomic_file.h): an image (PNG, PGM; the sample grids, the confusion matrix,
// `dtrain demo sobel --out`) and the dcgan sample export (gan.export; `dtrain encode`
// commits its file the same way). Every open, write, pwrite, ftruncate, fsync, close and
// rename call on the output fails in turn (faultfs): the earlier file must keep its bytes,
// no temp file may stay, and the error must name the file and the cause.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>

#include "core/io/image.h"
#include "core/models/dcgan.h"
#include "launcher/train/recipes/dcgan_export.h"
#include "tests/faults/faultfs.h"

namespace {

namespace fs = std::filesystem;
using namespace dtrain;

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class ExportFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dtrain_exportfault_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    faultfs_disarm();
    fs::remove_all(dir_);
  }

  // `write(v)` writes version v of `path`. Version 1 is written cleanly; then every
  // matching call of each kind fails in turn while version 2 is written over it.
  void inject_each_call(const std::string& path, const std::function<void(int)>& write, const char* label) {
    write(2);
    const std::string after = bytes_of(path);  // version 2, written cleanly
    write(1);
    const std::string before = bytes_of(path);
    ASSERT_FALSE(before.empty());
    ASSERT_NE(before, after);
    int64_t injected = 0;
    for (const char* call : {"open", "write", "pwrite", "ftruncate", "fsync", "close", "rename"}) {
      faultfs_arm(call, path.c_str(), 0, 0, 0);
      write(2);
      const long n = faultfs_matched();
      faultfs_disarm();
      write(1);  // back to version 1
      ASSERT_EQ(bytes_of(path), before);
      for (long i = 1; i <= n; ++i) {
        const std::string what = std::string(call) + " #" + std::to_string(i) + " of " + std::to_string(n);
        SCOPED_TRACE(what);
        faultfs_arm(call, path.c_str(), i, 1, EIO);
        std::string e;
        try {
          write(2);
        } catch (const std::exception& x) {
          e = x.what();
        }
        const long failed = faultfs_failed();
        faultfs_disarm();
        ASSERT_EQ(failed, 1) << "the fault was not injected";
        ++injected;
        std::cout << "[fault] " << label << " | " << what << " | "
                  << (e.empty() ? "written (the failed call did not matter)" : e.substr(0, 160)) << "\n";
        if (e.empty()) {
          // A failure that did not matter (HDF5's probe for an existing file, the close
          // of a descriptor opened to fsync): then the new version is complete, byte for
          // byte what a clean write gives.
          EXPECT_EQ(bytes_of(path), after) << "a damaged file took the place of the earlier one";
          write(1);
        } else {
          EXPECT_TRUE(contains(e, path)) << "the error names no file: " << e;
          EXPECT_TRUE(contains(e, "Input/output error")) << "the error does not say why: " << e;
          EXPECT_EQ(bytes_of(path), before) << "the earlier file was damaged";
        }
        for (const auto& f : fs::directory_iterator(dir_)) {
          EXPECT_FALSE(contains(f.path().string(), ".tmp")) << "left behind: " << f.path();
        }
      }
    }
    EXPECT_GE(injected, 4) << label << ": too few calls to inject into";
  }

  fs::path dir_;
};

io::Image picture(int version) {
  io::Image im;
  im.height = 16;
  im.width = 12;
  im.channels = 1;
  im.pixels.resize(16 * 12);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>(i * 7 + version * 50);
  return im;
}

TEST_F(ExportFaults, AFailedImageWriteKeepsTheEarlierImage) {
  for (const char* name : {"grid.png", "edges.pgm"}) {
    const std::string path = (dir_ / name).string();
    inject_each_call(path, [&](int v) { io::write_image(path, picture(v)); }, name);
    EXPECT_EQ(io::read_image(path).pixels, picture(1).pixels);
  }
}

TEST_F(ExportFaults, AFailedSampleExportKeepsTheEarlierExport) {
  models::DcganConfig mc;
  mc.image_size = 28;
  mc.z_dim = 8;
  mc.g_channels = 4;
  Generator init(3);
  auto g = models::make_dcgan_generator(mc, init);
  const std::string path = (dir_ / "samples.h5").string();
  inject_each_call(
      path,
      [&](int v) {
        launcher::DcganExport e{path, 4, 1, 28, 28, /*noise_seed=*/v, mc.z_dim, Device::cpu(), *g};
        launcher::export_samples(e);
      },
      "gan.export");
}

}  // namespace
