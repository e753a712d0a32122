// Augmentation: see augment.h.
#include "datasets/augment.h"

#include <cstring>

#include "core/rng.h"

namespace dtrain::data {

AugmentDraw draw_augment(uint64_t seed, int64_t epoch, int64_t row, int64_t num_samples, const Augment& aug) {
  AugmentDraw d;
  if (!aug.any()) return d;
  Generator g = Generator::derive(seed, 0, "augment");
  // Four Philox blocks per sample: three draws and room for a (vanishingly rare)
  // rejection in next_below.
  g.set_state({g.seed(), static_cast<uint64_t>(epoch * num_samples + row) * 4});
  if (aug.pad_crop > 0) {
    uint64_t span = static_cast<uint64_t>(2 * aug.pad_crop + 1);
    d.dy = static_cast<int64_t>(g.next_below(span));
    d.dx = static_cast<int64_t>(g.next_below(span));
  }
  if (aug.hflip) d.flip = g.next_below(2) == 1;
  return d;
}

void augment_u8(const uint8_t* src, uint8_t* dst, int64_t h, int64_t w, int64_t c, int64_t pad,
                const AugmentDraw& d) {
  for (int64_t y = 0; y < h; ++y) {
    int64_t sy = y + d.dy - pad;
    uint8_t* out = dst + y * w * c;
    if (sy < 0 || sy >= h) {
      std::memset(out, 0, static_cast<size_t>(w * c));
      continue;
    }
    const uint8_t* in = src + sy * w * c;
    for (int64_t x = 0; x < w; ++x) {
      int64_t sx = (d.flip ? w - 1 - x : x) + d.dx - pad;
      if (sx < 0 || sx >= w) {
        std::memset(out + x * c, 0, static_cast<size_t>(c));
      } else {
        std::memcpy(out + x * c, in + sx * c, static_cast<size_t>(c));
      }
    }
  }
}

void augment_to_chw(const uint8_t* src, float* dst, int64_t h, int64_t w, int64_t c, int64_t pad,
                    const AugmentDraw& d, const float* lut) {
  const bool identity = d.dy == pad && d.dx == pad && !d.flip;
  if (identity) {  // the common, fast path: read the pixels once, write each plane in order
    if (c == 1) {
      for (int64_t i = 0; i < h * w; ++i) dst[i] = lut[src[i]];
      return;
    }
    for (int64_t i = 0; i < h * w; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) dst[ch * h * w + i] = lut[ch * 256 + src[i * c + ch]];
    }
    return;
  }
  if (d.dy == pad && d.dx == pad) {  // flipped only (the other common case): no bounds to check
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* row = src + y * w * c;
      for (int64_t x = 0; x < w; ++x) {
        const uint8_t* px = row + (w - 1 - x) * c;
        for (int64_t ch = 0; ch < c; ++ch) dst[ch * h * w + y * w + x] = lut[ch * 256 + px[ch]];
      }
    }
    return;
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    const float* l = lut + ch * 256;
    float* plane = dst + ch * h * w;
    for (int64_t y = 0; y < h; ++y) {
      int64_t sy = y + d.dy - pad;
      float* out = plane + y * w;
      for (int64_t x = 0; x < w; ++x) {
        int64_t sx = (d.flip ? w - 1 - x : x) + d.dx - pad;
        out[x] = (sy < 0 || sy >= h || sx < 0 || sx >= w) ? l[0] : l[src[(sy * w + sx) * c + ch]];
      }
    }
  }
}

}  // namespace dtrain::data
