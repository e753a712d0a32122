#pragma once
// What the dcgan recipe writes besides checkpoints: gan.export, an HDF5 image file of
// samples of G for `dtrain score` (docs/GAN.md).
#include <cstdint>
#include <string>

#include "core/device.h"
#include "core/nn/module.h"

namespace dtrain::launcher {

struct DcganExport {
  std::string path;                   // gan.export
  int64_t n = 0;                      // gan.export_n
  int64_t channels = 1, height = 28, width = 28;
  int64_t noise_seed = 0;             // gan.noise_seed
  int64_t z_dim = 100;
  Device device = Device::cpu();
  nn::Module& generator;              // put in eval mode while sampling, back in train mode after
};

// Writes e.n samples of G (eval mode) as an image-only HDF5 file, atomically (a temp file,
// fsync, rename: an existing file is replaced whole or not at all); returns the path.
std::string export_samples(const DcganExport& e);

}  // namespace dtrain::launcher
