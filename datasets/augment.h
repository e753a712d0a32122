#pragma once
// Image augmentation and normalization on the host, one sample at a time.
//
// Note [Augmentation seeds]: the random choices for a sample are drawn from a Philox
// stream keyed by (seed, "augment") at a counter given by (epoch, file row), so they do
// not depend on which worker thread handled the sample, in which order, or which rank
// loaded it. Rank-independence is deliberate: W ranks at batch b then see exactly the
// batches (and augmentations) of one rank at batch W*b, and a resume on another world
// size continues bit-identically.
#include <cstdint>

namespace dtrain::data {

struct Augment {
  int64_t pad_crop = 0;  // random crop of the original size after zero-padding by this many pixels
  bool hflip = false;    // random horizontal flip with probability 1/2
  // torchvision's RandomResizedCrop to the loader's output size, before the above
  // (image_transform.h): a window of scale x the area and aspect ratio in ratio.
  bool random_resized_crop = false;
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  bool any() const { return pad_crop > 0 || hflip || random_resized_crop; }
};

struct AugmentDraw {
  int64_t dy = 0, dx = 0;  // crop offset into the padded image, in [0, 2 * pad]
  bool flip = false;
};

// The draws of the sample at file `row` of a dataset of `num_samples`, in `epoch`.
AugmentDraw draw_augment(uint64_t seed, int64_t epoch, int64_t row, int64_t num_samples, const Augment& aug);

// One sample, src (H, W, C) uint8 as stored. Output pixel (y, x) comes from source
// (y + dy - pad, x' + dx - pad) with x' = W-1-x when flipped; outside the image it is the
// padding value 0 (normalized like a 0 pixel).
// To uint8 (H, W, C):
void augment_u8(const uint8_t* src, uint8_t* dst, int64_t h, int64_t w, int64_t c, int64_t pad, const AugmentDraw& d);
// To f32 (C, H, W), normalized through `lut` (C, 256): lut[ch * 256 + v] = (v / 255 - mean) / std.
void augment_to_chw(const uint8_t* src, float* dst, int64_t h, int64_t w, int64_t c, int64_t pad,
                    const AugmentDraw& d, const float* lut);

}  // namespace dtrain::data
