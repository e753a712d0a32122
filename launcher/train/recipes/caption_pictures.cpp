// The captioning recipe's pictures: see caption_pictures.h.
#include "launcher/train/recipes/caption_pictures.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dtrain::launcher {

namespace {

constexpr int64_t kGap = 4;
constexpr uint8_t kBackground = 128;

// A blank RGB canvas for `n` panels of (h, w), `columns` a row.
io::Image canvas(int64_t n, int64_t columns, int64_t h, int64_t w) {
  const int64_t cols = std::max<int64_t>(1, std::min(columns, n));
  const int64_t rows = (n + cols - 1) / cols;
  io::Image img;
  img.channels = 3;
  img.width = cols * w + (cols + 1) * kGap;
  img.height = rows * h + (rows + 1) * kGap;
  img.pixels.assign(static_cast<size_t>(img.width * img.height * 3), kBackground);
  return img;
}

// Panel i's top-left corner.
void corner(int64_t i, int64_t columns, int64_t h, int64_t w, int64_t* y0, int64_t* x0) {
  *y0 = kGap + (i / columns) * (h + kGap);
  *x0 = kGap + (i % columns) * (w + kGap);
}

}  // namespace

io::Image scene_grid(const std::vector<ScenePixels>& scenes, int64_t columns, int64_t scale) {
  DT_CHECK(!scenes.empty() && scale >= 1 && columns >= 1, "scene_grid: nothing to draw");
  const int64_t h = scenes[0].height * scale, w = scenes[0].width * scale;
  columns = std::min<int64_t>(columns, static_cast<int64_t>(scenes.size()));
  io::Image img = canvas(static_cast<int64_t>(scenes.size()), columns, h, w);
  for (size_t i = 0; i < scenes.size(); ++i) {
    int64_t y0 = 0, x0 = 0;
    corner(static_cast<int64_t>(i), columns, h, w, &y0, &x0);
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const uint8_t v = scenes[i].pixels[static_cast<size_t>((y / scale) * scenes[i].width + x / scale)];
        uint8_t* p = img.pixels.data() + ((y0 + y) * img.width + x0 + x) * 3;
        p[0] = p[1] = p[2] = v;
      }
    }
  }
  return img;
}

io::Image attention_panels(const ScenePixels& scene, const std::vector<std::vector<double>>& weights,
                           int64_t map_height, int64_t map_width, int64_t columns, int64_t scale) {
  DT_CHECK(map_height >= 1 && map_width >= 1 && scale >= 1 && columns >= 1, "attention_panels: bad sizes");
  const int64_t h = scene.height * scale, w = scene.width * scale;
  const int64_t n = 1 + static_cast<int64_t>(weights.size());
  columns = std::min(columns, n);
  io::Image img = canvas(n, columns, h, w);
  for (int64_t i = 0; i < n; ++i) {
    int64_t y0 = 0, x0 = 0;
    corner(i, columns, h, w, &y0, &x0);
    const std::vector<double>* a = i > 0 ? &weights[static_cast<size_t>(i - 1)] : nullptr;
    double top = 0;
    if (a != nullptr) {
      DT_CHECK(static_cast<int64_t>(a->size()) == map_height * map_width, "attention_panels: step ", i - 1, " has ",
               a->size(), " weights for a ", map_height, "x", map_width, " map");
      top = *std::max_element(a->begin(), a->end());
    }
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sy = y / scale, sx = x / scale;
        const double v = scene.pixels[static_cast<size_t>(sy * scene.width + sx)];
        uint8_t* p = img.pixels.data() + ((y0 + y) * img.width + x0 + x) * 3;
        if (a == nullptr) {
          p[0] = p[1] = p[2] = static_cast<uint8_t>(v);
          continue;
        }
        // The map position covering this pixel (the last positions also take the pixels
        // a floored pooling left over).
        const int64_t my = std::min(map_height - 1, sy * map_height / scene.height);
        const int64_t mx = std::min(map_width - 1, sx * map_width / scene.width);
        const double s = top > 0 ? (*a)[static_cast<size_t>(my * map_width + mx)] / top : 0;
        p[0] = static_cast<uint8_t>(std::lround(std::min(255.0, 0.45 * v + 255 * s * 0.75)));
        p[1] = p[2] = static_cast<uint8_t>(std::lround(0.45 * v));
      }
    }
  }
  return img;
}

}  // namespace dtrain::launcher
