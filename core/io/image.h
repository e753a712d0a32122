#pragma once
// 8-bit image files: PNG (through libpng), JPEG (through libjpeg-turbo) and binary PGM
// (P5, grayscale) / PPM (P6, RGB).
//
// Reading recognizes the format by the first bytes, not the name; PNGs of any color type
// and bit depth are converted to 8-bit grayscale or RGB (alpha dropped by compositing onto
// black, 16-bit reduced to 8). JPEGs may be baseline or progressive, grayscale, YCbCr, RGB
// or CMYK/YCCK (converted to RGB); a truncated or corrupt JPEG is an error, not a gray
// patch. Writing picks the format from the extension: .png, .jpg/.jpeg (quality 90),
// .pgm (grayscale only) or .ppm (RGB only). Every failure throws IoError naming the file
// (or the name given for bytes in memory) and what was wrong.
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

enum class ImageFormat { Png, Jpeg, Pgm, Ppm, Unknown };
// The format of encoded bytes, by their signature.
ImageFormat sniff_image(const uint8_t* data, size_t size);
const char* image_format_name(ImageFormat f);

struct DecodeOptions {
  // JPEG only: decode at 1/2, 1/4 or 1/8 scale (in the DCT, much faster) when the result's
  // shorter side still has at least this many pixels. 0 decodes at full size.
  int64_t min_short_side = 0;
};

Image read_image(const std::string& path);
// Decodes bytes held in memory; `name` is used in errors (a file name, "row 17", ...).
Image decode_image(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& options = {});
// The width and height of encoded bytes from their header alone (no pixel decoding).
struct ImageShape {
  int64_t height = 0, width = 0, channels = 0;
};
ImageShape peek_image(const uint8_t* data, size_t size, const std::string& name);

void write_image(const std::string& path, const Image& image);
// Encoded bytes in memory: PNG (lossless) or JPEG (quality 1..100, 4:2:0 chroma for RGB).
std::vector<uint8_t> encode_png(const Image& image);
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 90);

// Resampling with a triangle (bilinear) filter whose support widens with the reduction
// factor, so downscaling averages every source pixel instead of skipping some (the
// behaviour of PIL's BILINEAR resize, which torchvision uses on PIL images). Pixel
// centres are aligned (half-pixel convention); results are rounded to 8 bits.
Image resize(const Image& image, int64_t height, int64_t width);
// Resize so that the shorter side is `short_side` (the other side keeps the aspect
// ratio, rounded), as torchvision's Resize(int) does.
Image resize_shorter_side(const Image& image, int64_t short_side);
// The central height x width window (rounded as torchvision's CenterCrop); the image
// must be at least that large.
Image center_crop(const Image& image, int64_t height, int64_t width);
// A window of the image (must lie inside it).
Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width);

// Luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B, rounded); a grayscale image unchanged.
Image to_grayscale(const Image& image);

// Pixel values as an f32 tensor (1, C, H, W) in [0, 255] on the CPU.
Tensor image_to_tensor(const Image& image);
// A (C, H, W) or (1, C, H, W) tensor (C = 1 or 3, any float dtype and device) rounded and
// clamped to [0, 255].
Image tensor_to_image(const Tensor& t);

}  // namespace dtrain::io
