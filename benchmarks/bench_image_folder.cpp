// The VGG16-scale image pipeline (benchmarks/image_folder.sh drives it; README.md).
//
//   bench_image_folder generate --out DIR [--n 3000] [--classes 10] [--size 256] [--seed 0]
//                               [--quality 90] [--threads T]
//   bench_image_folder load --file F.h5 [--workers 1] [--batch 64] [--batches 20]
//                           [--warmup 3] [--image-size 224] [--no-augment]
//
// generate: a folder of N seeded synthetic photographs in `classes` subfolders, JPEG at
// `quality`, shorter side `size` and the longer one 1 to 1.5 times that (landscape or
// portrait): smooth gradients, soft-edged ellipses and sensor-like noise, so that the
// files compress like photographs rather than like flat colour or pure noise.
// load: the rank-0-of-1 Loader over the file with `workers` pool threads, as training
// reads it: random-resized-crop to image-size, horizontal flips, f32 (C, H, W)
// normalized; prints one JSON line {"impl": "dtrain", "workers": W, "images_per_s": x}
// after `warmup` batches, over `batches` batches.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/io/image.h"
#include "core/rng.h"
#include "datasets/loader.h"

using namespace dtrain;
using Clock = std::chrono::steady_clock;

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}
bool has_flag(int argc, char** argv, const std::string& name) {
  for (int i = 2; i < argc; ++i) {
    if (argv[i] == "--" + name) return true;
  }
  return false;
}

io::Image photo(int64_t index, int64_t size, uint64_t seed) {
  Generator g = Generator::derive(seed, static_cast<uint64_t>(index), "synthetic photo");
  const int64_t longer = size + static_cast<int64_t>(g.next_below(static_cast<uint64_t>(size / 2 + 1)));
  const bool portrait = g.next_below(2) == 1;
  io::Image img;
  img.height = portrait ? longer : size;
  img.width = portrait ? size : longer;
  img.channels = 3;
  img.pixels.resize(static_cast<size_t>(img.height * img.width * 3));
  double base[3], grad[3];
  for (int c = 0; c < 3; ++c) {
    base[c] = 40 + 170 * g.next_double();
    grad[c] = (g.next_double() - 0.5) * 120;
  }
  struct Blob {
    double cy, cx, ry, rx, col[3];
  };
  std::vector<Blob> blobs(8);
  for (Blob& b : blobs) {
    b.cy = g.next_double() * static_cast<double>(img.height);
    b.cx = g.next_double() * static_cast<double>(img.width);
    b.ry = (0.05 + 0.3 * g.next_double()) * static_cast<double>(size);
    b.rx = (0.05 + 0.3 * g.next_double()) * static_cast<double>(size);
    for (double& c : b.col) c = 255 * g.next_double();
  }
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index) + 1;
  for (int64_t y = 0; y < img.height; ++y) {
    for (int64_t x = 0; x < img.width; ++x) {
      double v[3];
      const double t = static_cast<double>(y + x) / static_cast<double>(img.height + img.width);
      for (int c = 0; c < 3; ++c) v[c] = base[c] + grad[c] * t;
      for (const Blob& b : blobs) {
        const double dy = (static_cast<double>(y) - b.cy) / b.ry, dx = (static_cast<double>(x) - b.cx) / b.rx;
        const double w = std::clamp(1.5 - (dy * dy + dx * dx), 0.0, 1.0);  // a soft edge
        for (int c = 0; c < 3; ++c) v[c] = v[c] * (1 - 0.8 * w) + b.col[c] * 0.8 * w;
      }
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      const double noise = static_cast<double>(state % 17) - 8.0;
      for (int c = 0; c < 3; ++c) {
        img.pixels[static_cast<size_t>((y * img.width + x) * 3 + c)] =
            static_cast<uint8_t>(std::clamp(v[c] + noise, 0.0, 255.0));
      }
    }
  }
  return img;
}

int generate(int argc, char** argv) {
  const std::string out = arg(argc, argv, "out", "");
  if (out.empty()) {
    std::fprintf(stderr, "bench_image_folder generate: --out DIR is required\n");
    return 2;
  }
  const int64_t n = std::stoll(arg(argc, argv, "n", "3000"));
  const int64_t classes = std::stoll(arg(argc, argv, "classes", "10"));
  const int64_t size = std::stoll(arg(argc, argv, "size", "256"));
  const uint64_t seed = std::stoull(arg(argc, argv, "seed", "0"));
  const int quality = std::stoi(arg(argc, argv, "quality", "90"));
  const int threads = std::stoi(arg(argc, argv, "threads", std::to_string(std::max(1u, std::thread::hardware_concurrency()))));
  for (int64_t k = 0; k < classes; ++k) std::filesystem::create_directories(out + "/class" + std::to_string(k));
  std::atomic<int64_t> next{0}, bytes{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i = next++; i < n; i = next++) {
        std::vector<uint8_t> jpeg = io::encode_jpeg(photo(i, size, seed), quality);
        char name[64];
        std::snprintf(name, sizeof name, "/class%lld/img%06lld.jpg", static_cast<long long>(i % classes),
                      static_cast<long long>(i));
        std::ofstream(out + name, std::ios::binary)
            .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
        bytes += static_cast<int64_t>(jpeg.size());
      }
    });
  }
  for (std::thread& t : pool) t.join();
  std::printf("generated %lld JPEGs in %s: %lld classes, shorter side %lld, quality %d, %lld bytes per image\n",
              static_cast<long long>(n), out.c_str(), static_cast<long long>(classes), static_cast<long long>(size),
              quality, static_cast<long long>(bytes.load() / std::max<int64_t>(n, 1)));
  return 0;
}

int load(int argc, char** argv) {
  data::LoaderConfig lc;
  lc.path = arg(argc, argv, "file", "");
  lc.threads = std::stoi(arg(argc, argv, "workers", "1"));
  lc.batch_size = std::stoll(arg(argc, argv, "batch", "64"));
  lc.image_size = std::stoll(arg(argc, argv, "image-size", "224"));
  lc.seed = 1;
  if (!has_flag(argc, argv, "no-augment")) {
    lc.augment.random_resized_crop = true;
    lc.augment.hflip = true;
  }
  const int batches = std::stoi(arg(argc, argv, "batches", "20"));
  const int warmup = std::stoi(arg(argc, argv, "warmup", "3"));
  data::Loader loader(lc);
  for (int i = 0; i < warmup; ++i) loader.next();
  auto t0 = Clock::now();
  int64_t images = 0;
  for (int i = 0; i < batches; ++i) images += loader.next().size;
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("{\"impl\": \"dtrain\", \"workers\": %d, \"images_per_s\": %.1f}\n", lc.threads,
              static_cast<double>(images) / s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "generate") return generate(argc, argv);
    if (mode == "load") return load(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_image_folder: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: bench_image_folder generate --out DIR [...] | load --file F.h5 [...]\n");
  return 2;
}
