// The loader's image geometry: see image_transform.h.
#include "datasets/image_transform.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace dtrain::data {

namespace {

// Philox blocks per sample: 10 tries of 2 draws, 2 for the position, and room for
// next_below's (vanishingly rare) rejections.
constexpr uint64_t kBlocksPerSample = 64;

int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

io::Image crop_resize(const io::Image& img, const CropBox& b, int64_t h, int64_t w) {
  if (b.top == 0 && b.left == 0 && b.height == img.height && b.width == img.width) return io::resize(img, h, w);
  return io::resize(io::crop(img, b.top, b.left, b.height, b.width), h, w);
}

int64_t eval_side(const ImageFit& fit) {
  return fit.eval_resize > 0 ? fit.eval_resize : std::max(fit.out_height, fit.out_width);
}

io::Image resize_center(const io::Image& img, const ImageFit& fit) {
  // Already the output size, with no resize asked for: as it is.
  if (fit.eval_resize == 0 && img.height == fit.out_height && img.width == fit.out_width) return img;
  const int64_t side = eval_side(fit);
  const int64_t shorter = std::min(img.height, img.width);
  io::Image r = shorter == side ? img : io::resize_shorter_side(img, side);
  return io::center_crop(r, fit.out_height, fit.out_width);
}

}  // namespace

CropBox draw_resized_crop(uint64_t seed, int64_t epoch, int64_t row, int64_t num_samples, int64_t height,
                          int64_t width, const Augment& aug) {
  Generator g = Generator::derive(seed, 0, "random resized crop");
  g.set_state({g.seed(), static_cast<uint64_t>(epoch * num_samples + row) * kBlocksPerSample});
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_lo = std::log(aug.ratio_min), log_hi = std::log(aug.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (aug.scale_min + (aug.scale_max - aug.scale_min) * g.next_double());
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * g.next_double());
    const int64_t w = round_half_even(std::sqrt(target * ratio));
    const int64_t h = round_half_even(std::sqrt(target / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      CropBox b;
      b.height = h;
      b.width = w;
      b.top = static_cast<int64_t>(g.next_below(static_cast<uint64_t>(height - h + 1)));
      b.left = static_cast<int64_t>(g.next_below(static_cast<uint64_t>(width - w + 1)));
      return b;
    }
  }
  // Fallback: the centre crop of the whole image, clamped to the ratio range.
  CropBox b;
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  if (in_ratio < aug.ratio_min) {
    b.width = width;
    b.height = round_half_even(static_cast<double>(width) / aug.ratio_min);
  } else if (in_ratio > aug.ratio_max) {
    b.height = height;
    b.width = round_half_even(static_cast<double>(height) * aug.ratio_max);
  } else {
    b.width = width;
    b.height = height;
  }
  b.height = std::clamp<int64_t>(b.height, 1, height);
  b.width = std::clamp<int64_t>(b.width, 1, width);
  b.top = (height - b.height) / 2;
  b.left = (width - b.width) / 2;
  return b;
}

io::Image convert_channels(io::Image img, int64_t channels) {
  if (img.channels == channels) return img;
  if (channels == 1) return io::to_grayscale(img);
  io::Image rgb;
  rgb.height = img.height;
  rgb.width = img.width;
  rgb.channels = 3;
  rgb.pixels.resize(img.pixels.size() * 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    rgb.pixels[i * 3] = rgb.pixels[i * 3 + 1] = rgb.pixels[i * 3 + 2] = img.pixels[i];
  }
  return rgb;
}

io::Image fit_pixels(io::Image img, const ImageFit& fit, int64_t epoch, int64_t row) {
  img = convert_channels(std::move(img), fit.channels);
  if (fit.augment.random_resized_crop) {
    CropBox b = draw_resized_crop(fit.seed, epoch, row, fit.num_samples, img.height, img.width, fit.augment);
    return crop_resize(img, b, fit.out_height, fit.out_width);
  }
  return resize_center(img, fit);
}

io::Image fit_encoded(const uint8_t* data, size_t size, const std::string& name, const ImageFit& fit, int64_t epoch,
                      int64_t row) {
  const bool jpeg = fit.reduced_decode && io::sniff_image(data, size) == io::ImageFormat::Jpeg;
  if (!jpeg) return fit_pixels(io::decode_image(data, size, name), fit, epoch, row);
  io::ImageShape full = io::peek_image(data, size, name);
  const int64_t shorter = std::min(full.height, full.width);
  if (fit.augment.random_resized_crop) {
    CropBox b = draw_resized_crop(fit.seed, epoch, row, fit.num_samples, full.height, full.width, fit.augment);
    // The smallest decode whose window keeps at least the output's pixels on both axes.
    const double need = std::max(static_cast<double>(fit.out_height) / static_cast<double>(b.height),
                                 static_cast<double>(fit.out_width) / static_cast<double>(b.width));
    const int64_t min_short = static_cast<int64_t>(std::ceil(static_cast<double>(shorter) * need));
    io::DecodeOptions opt;
    opt.min_short_side = min_short >= shorter ? 0 : min_short;
    io::Image img = convert_channels(io::decode_image(data, size, name, opt), fit.channels);
    if (img.height != full.height || img.width != full.width) {
      const double sy = static_cast<double>(img.height) / static_cast<double>(full.height);
      const double sx = static_cast<double>(img.width) / static_cast<double>(full.width);
      CropBox s;
      s.top = std::min<int64_t>(round_half_even(static_cast<double>(b.top) * sy), img.height - 1);
      s.left = std::min<int64_t>(round_half_even(static_cast<double>(b.left) * sx), img.width - 1);
      s.height = std::clamp<int64_t>(round_half_even(static_cast<double>(b.top + b.height) * sy) - s.top, 1,
                                     img.height - s.top);
      s.width = std::clamp<int64_t>(round_half_even(static_cast<double>(b.left + b.width) * sx) - s.left, 1,
                                    img.width - s.left);
      b = s;
    }
    return crop_resize(img, b, fit.out_height, fit.out_width);
  }
  io::DecodeOptions opt;
  opt.min_short_side = eval_side(fit);
  io::Image img = convert_channels(io::decode_image(data, size, name, opt), fit.channels);
  return resize_center(img, fit);
}

}  // namespace dtrain::data
