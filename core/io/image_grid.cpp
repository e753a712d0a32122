#include "core/io/image_grid.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace dtrain::io {

Image make_image_grid(const Tensor& images, int64_t border, uint8_t border_value, int64_t columns) {
  DT_CHECK(images.defined() && images.ndim() == 4, "image grid: expected images (N, C, H, W), got ",
           images.defined() ? images.str() : "undefined");
  DT_CHECK(images.dtype() == DType::F32 || images.dtype() == DType::F64,
           "image grid: expected f32 or f64 images, got ", images.str());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  DT_CHECK(n > 0 && h > 0 && w > 0, "image grid: no images to tile in ", images.str());
  DT_CHECK(c == 1 || c == 3, "image grid: images must have 1 or 3 channels, got ", images.str());
  DT_CHECK(border >= 0, "image grid: border must not be negative, got ", border);

  int64_t cols = columns > 0 ? columns : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  while (columns <= 0 && cols * cols < n) ++cols;  // guard against sqrt rounding down
  while (columns <= 0 && cols > 1 && (cols - 1) * (cols - 1) >= n) --cols;
  const int64_t rows = (n + cols - 1) / cols;

  Image grid;
  grid.channels = c;
  grid.width = cols * w + (cols + 1) * border;
  grid.height = rows * h + (rows + 1) * border;
  grid.pixels.assign(static_cast<size_t>(grid.width * grid.height * c), border_value);

  const std::vector<double> v = images.to(Device::cpu()).to(DType::F64).to_vector<double>();  // (N, C, H, W)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y0 = border + (i / cols) * (h + border);
    const int64_t x0 = border + (i % cols) * (w + border);
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
          const double value = v[static_cast<size_t>(((i * c + ch) * h + y) * w + x)];
          const double p = std::floor((value + 1.0) * 0.5 * 255.0 + 0.5);
          grid.pixels[static_cast<size_t>(((y0 + y) * grid.width + (x0 + x)) * c + ch)] =
              static_cast<uint8_t>(std::clamp(std::isnan(p) ? 0.0 : p, 0.0, 255.0));
        }
      }
    }
  }
  return grid;
}

void write_image_grid(const std::string& path, const Tensor& images, int64_t border, uint8_t border_value,
                      int64_t columns) {
  write_image(path, make_image_grid(images, border, border_value, columns));
}

}  // namespace dtrain::io
