#pragma once
// A batch of images tiled into one picture (torchvision.utils.make_grid with
// normalize=True, value_range=(-1, 1)): for a GAN's samples from a fixed noise batch.
//
// N images (N, C, H, W), C = 1 or 3, values in [-1, 1] (any float dtype and device), are
// laid out row by row in ceil(sqrt(N)) columns and ceil(N / columns) rows, with
// `border` pixels of `border_value` around and between them:
//   width  = columns * W + (columns + 1) * border
//   height = rows * H + (rows + 1) * border
// A value v maps to the pixel floor((v + 1) / 2 * 255 + 0.5), clamped to [0, 255], so -1
// is black (0), 1 is white (255) and 0 is 128. Cells past the N-th stay border_value.
#include <cstdint>
#include <string>

#include "core/io/image.h"
#include "core/tensor.h"

namespace dtrain::io {

// `columns` > 0 fixes the number of columns instead (rows: ceil(N / columns)).
Image make_image_grid(const Tensor& images, int64_t border = 2, uint8_t border_value = 0, int64_t columns = 0);
// make_image_grid, written to `path` (.png, or .pgm/.ppm by channel count; core/io/image.h).
void write_image_grid(const std::string& path, const Tensor& images, int64_t border = 2, uint8_t border_value = 0,
                      int64_t columns = 0);

}  // namespace dtrain::io
