#pragma once
// Helpers for the datasets tests: a temporary directory per test and small files built
// in memory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "core/io/h5.h"

namespace dtrain::data::testing {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("dtrain_data_" + std::string(info->name()) + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter++));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

// The pixel value the test files hold at byte j of sample i, and its label.
inline uint8_t test_pixel(int64_t i, int64_t j) { return static_cast<uint8_t>((i * 31 + j * 7) % 251); }
inline int64_t test_label(int64_t i, int64_t classes) { return (i * 7 + 3) % classes; }

// An image classification file of n samples (h, w, c) with test_pixel / test_label data.
inline void write_test_images(const std::string& path, int64_t n, int64_t h, int64_t w, int64_t c, int64_t classes,
                              int64_t chunk_rows, int gzip = 0) {
  io::H5File f = io::H5File::create(path);
  std::vector<uint8_t> px(static_cast<size_t>(n * h * w * c));
  std::vector<int64_t> lb(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < h * w * c; ++j) px[static_cast<size_t>(i * h * w * c + j)] = test_pixel(i, j);
    lb[static_cast<size_t>(i)] = test_label(i, classes);
  }
  f.write("/labels", Tensor::from_vector(lb, {n}));
  f.create_dataset("/images", {n, h, w, c}, DType::U8, {chunk_rows, gzip, false});
  f.write_rows("/images", 0, Tensor::from_vector(px, {n, h, w, c}));
  std::vector<std::string> names;
  for (int64_t k = 0; k < classes; ++k) names.push_back(std::string("c").append(std::to_string(k)));
  f.set_attribute("/", "classes", names);
  f.set_attribute("/", "mean", std::vector<double>(static_cast<size_t>(c), 0.5));
  f.set_attribute("/", "std", std::vector<double>(static_cast<size_t>(c), 0.25));
  f.close();
}

}  // namespace dtrain::data::testing
