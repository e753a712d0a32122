// The sample grid: layout (ceil(sqrt(N)) columns, 2-pixel borders) and the mapping of
// [-1, 1] onto [0, 255].
#include <gtest/gtest.h>

#include <filesystem>

#include "core/io/image_grid.h"

namespace dtrain::io {
namespace {

TEST(ImageGrid, LayoutAndPixelMapping) {
  // 5 images 3x2 (H x W): 3 columns, 2 rows. Image i is filled with a value of its own.
  const std::vector<double> fill = {-1.0, 1.0, 0.0, 0.5, -2.0};  // -2 clamps to 0
  std::vector<float> v;
  for (double f : fill) v.insert(v.end(), 6, static_cast<float>(f));
  Tensor images = Tensor::from_vector(v, {5, 1, 3, 2});
  Image grid = make_image_grid(images);
  EXPECT_EQ(grid.channels, 1);
  EXPECT_EQ(grid.width, 3 * 2 + 4 * 2);
  EXPECT_EQ(grid.height, 2 * 3 + 3 * 2);
  const std::vector<uint8_t> want = {0, 255, 128, 191, 0};  // floor((v + 1) / 2 * 255 + 0.5)
  for (int i = 0; i < 5; ++i) {
    int64_t y0 = 2 + (i / 3) * 5, x0 = 2 + (i % 3) * 4;
    for (int64_t y = 0; y < 3; ++y) {
      for (int64_t x = 0; x < 2; ++x) EXPECT_EQ(grid.at(y0 + y, x0 + x), want[i]) << "image " << i;
    }
  }
  EXPECT_EQ(grid.at(0, 0), 0) << "border";
  EXPECT_EQ(grid.at(2, 1), 0) << "border left of image 0";
  EXPECT_EQ(grid.at(7, 10), 0) << "the empty sixth cell";

  Image white = make_image_grid(images, 1, 255);
  EXPECT_EQ(white.width, 3 * 2 + 4);
  EXPECT_EQ(white.at(0, 0), 255);
  EXPECT_EQ(white.at(1, 1), 0) << "image 0";
}

TEST(ImageGrid, SquareCountsAndRgb) {
  Tensor nine = Tensor::zeros({9, 1, 4, 4}, DType::F64);
  Image g = make_image_grid(nine, 0);
  EXPECT_EQ(g.width, 12);
  EXPECT_EQ(g.height, 12);
  EXPECT_EQ(g.at(5, 5), 128);
  Image one = make_image_grid(Tensor::full({1, 3, 2, 2}, 1.0), 2);
  EXPECT_EQ(one.channels, 3);
  EXPECT_EQ(one.width, 6);
  EXPECT_EQ(one.at(2, 2, 1), 255);
  EXPECT_THROW(make_image_grid(Tensor::zeros({2, 2, 4, 4})), ValueError);
  EXPECT_THROW(make_image_grid(Tensor::zeros({2, 4, 4})), ValueError);
}

TEST(ImageGrid, WritesAPngThatReadsBack) {
  std::vector<float> v(4 * 28 * 28);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7) / 3.0f - 1.0f;
  Tensor images = Tensor::from_vector(v, {4, 1, 28, 28});
  auto path = std::filesystem::temp_directory_path() / "dtrain_test_image_grid.png";
  write_image_grid(path.string(), images);
  Image back = read_image(path.string());
  Image want = make_image_grid(images);
  EXPECT_EQ(back.width, 2 * 28 + 3 * 2);
  EXPECT_EQ(back.height, want.height);
  EXPECT_EQ(back.pixels, want.pixels);
  std::filesystem::remove(path);
}

TEST(ImageGrid, FixedColumnsLayOutRows) {
  // 6 images of 2x3 in 3 columns: 2 rows (the autoencoder's input / reconstruction rows).
  std::vector<float> v(6 * 2 * 3);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (i / 6) % 2 ? 1.0f : -1.0f;  // images 1, 3, 5 white
  Image grid = make_image_grid(Tensor::from_vector<float>(v, {6, 1, 2, 3}), 1, 0, 3);
  EXPECT_EQ(grid.width, 3 * 3 + 4);
  EXPECT_EQ(grid.height, 2 * 2 + 3);
  EXPECT_EQ(grid.at(1, 1), 0);        // image 0 (row 0, column 0): black
  EXPECT_EQ(grid.at(1, 1 + 4), 255);  // image 1 (row 0, column 1): white
  EXPECT_EQ(grid.at(1 + 3, 1), 255);  // image 3 (row 1, column 0): white
  // Fewer images than a row: one row of `columns` cells.
  Image one = make_image_grid(Tensor::from_vector<float>(std::vector<float>(2 * 6, 0.0f), {2, 1, 2, 3}), 1, 0, 4);
  EXPECT_EQ(one.width, 4 * 3 + 5);
  EXPECT_EQ(one.height, 2 + 2);
}

}  // namespace
}  // namespace dtrain::io
