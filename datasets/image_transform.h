#pragma once
// The loader's per-sample image geometry for files whose images are not already the
// output size, or that are random-resized-cropped: decoding of the encoded-images schema,
// torchvision's RandomResizedCrop (training) and Resize + CenterCrop (evaluation). The
// pad-crop and flip of augment.h follow on the result.
//
// Note [Random resized crop]: the window is drawn as torchvision's
// RandomResizedCrop.get_params does: up to 10 tries of an area of uniform(scale) x the
// image's area and an aspect ratio of exp(uniform(log ratio)), width and height rounded
// half to even, kept when it fits, at a uniform position; otherwise the centre crop of the
// whole image clamped to the ratio range. The window is then resized to the output size
// with io::resize (PIL's antialiased bilinear, what torchvision uses on PIL images). The
// draws come from a Philox stream keyed by (seed, "random resized crop") at a counter
// given by (epoch, file row), as Note [Augmentation seeds] does for the others, so they do
// not depend on threads, ranks or resumption.
//
// Note [Reduced JPEG decoding]: a JPEG much larger than its crop is decoded at 1/2, 1/4 or
// 1/8 scale in the DCT (libjpeg-turbo; several times faster) when the window still has at
// least the output's pixels at that scale; the window is drawn on the full-size image and
// scaled, its edges rounded to the reduced pixels. Evaluation likewise decodes at the
// smallest scale whose shorter side is at least the resize target. PNG, PGM and PPM
// always decode at full size.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/io/image.h"
#include "datasets/augment.h"

namespace dtrain::data {

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool operator==(const CropBox&) const = default;
};

// Note [Random resized crop]: the window of the sample at file `row` in `epoch` for an
// image of height x width.
CropBox draw_resized_crop(uint64_t seed, int64_t epoch, int64_t row, int64_t num_samples, int64_t height,
                          int64_t width, const Augment& aug);

struct ImageFit {
  int64_t out_height = 0, out_width = 0;  // the loader's output size
  int64_t channels = 0;                   // 1 or 3: images of the other count are converted
  // Without random resized crop: an image not already out_height x out_width is resized
  // so its shorter side is this (0: max(out_height, out_width)), then centre-cropped.
  int64_t eval_resize = 0;
  bool reduced_decode = true;             // Note [Reduced JPEG decoding]
  Augment augment;                        // only random_resized_crop and its ranges are read here
  uint64_t seed = 0;
  int64_t num_samples = 0;
};

// One sample as (out_height, out_width, channels) u8, from encoded bytes (`name` is used
// in errors) or from pixels.
io::Image fit_encoded(const uint8_t* data, size_t size, const std::string& name, const ImageFit& fit, int64_t epoch,
                      int64_t row);
io::Image fit_pixels(io::Image image, const ImageFit& fit, int64_t epoch, int64_t row);

// The image with `channels` channels: grayscale replicated to RGB, RGB to luma.
io::Image convert_channels(io::Image image, int64_t channels);

}  // namespace dtrain::data
