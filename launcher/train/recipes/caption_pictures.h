#pragma once
// The captioning recipe's pictures (docs/CAPTIONING.md): test scenes in a grid, and one
// scene's attention over the decoding steps.
#include <cstdint>
#include <vector>

#include "core/io/image.h"

namespace dtrain::launcher {

// A scene as grayscale pixels (H, W) in [0, 255] (the first channel of an RGB scene).
struct ScenePixels {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;
};

// The scenes enlarged `scale` times (nearest neighbour), `columns` a row, in reading order,
// on a mid-grey background with a 4-pixel gap between them.
io::Image scene_grid(const std::vector<ScenePixels>& scenes, int64_t columns, int64_t scale = 3);

// Panels of one scene, enlarged `scale` times, `columns` a row: the scene itself, then one
// panel per decoding step with the step's attention weights (`weights`, steps x (Y * X),
// positions row-major over the map) spread over the pixels each position covers: the scene
// in grey, the attended positions in red, the strongest of each step at full red.
io::Image attention_panels(const ScenePixels& scene, const std::vector<std::vector<double>>& weights,
                           int64_t map_height, int64_t map_width, int64_t columns = 8, int64_t scale = 2);

}  // namespace dtrain::launcher
