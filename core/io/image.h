#pragma once
// 8-bit image files: PNG (through libpng) and binary PGM (P5, grayscale) / PPM (P6, RGB).
//
// Reading recognizes the format by the file's first bytes, not its name; PNGs of any
// color type and bit depth are converted to 8-bit grayscale or RGB (alpha dropped by
// compositing onto black, 16-bit reduced to 8). Writing picks the format from the
// extension: .png, .pgm (grayscale only) or .ppm (RGB only). Every failure throws IoError
// naming the file and what was wrong.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dtrain::io {

struct Image {
  int64_t height = 0, width = 0;
  int64_t channels = 1;         // 1 (grayscale) or 3 (RGB)
  std::vector<uint8_t> pixels;  // (height, width, channels), row-major, interleaved

  uint8_t at(int64_t y, int64_t x, int64_t c = 0) const {
    return pixels[static_cast<size_t>((y * width + x) * channels + c)];
  }
};

Image read_image(const std::string& path);
void write_image(const std::string& path, const Image& image);

// Luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B, rounded); a grayscale image unchanged.
Image to_grayscale(const Image& image);

// Pixel values as an f32 tensor (1, C, H, W) in [0, 255] on the CPU.
Tensor image_to_tensor(const Image& image);
// A (C, H, W) or (1, C, H, W) tensor (C = 1 or 3, any float dtype and device) rounded and
// clamped to [0, 255].
Image tensor_to_image(const Tensor& t);

}  // namespace dtrain::io
