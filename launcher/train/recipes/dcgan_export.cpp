// gan.export: see dcgan_export.h.
#include "launcher/train/recipes/dcgan_export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "datasets/convert.h"

namespace dtrain::launcher {

// Note [GAN export quantization]: a sample x of G (tanh, in [-1, 1]) becomes the byte
// clamp(round_half_even((x + 1) * 127.5), 0, 255), the product computed in float32, as
// PyTorch's ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8) on a float32 tensor
// (torch.round rounds half to even; so does std::nearbyint in the default rounding
// mode). docs/GAN.md states the same formula for reference scripts.
std::string export_samples(const DcganExport& e) {
  const std::string path = e.path;
  const int64_t n = e.n, c = e.channels, h = e.height, w = e.width;
  std::filesystem::path fp(path);
  if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
  // A stream of its own: neither the training noise nor the grid's fixed batch.
  Generator gen = Generator::derive(static_cast<uint64_t>(e.noise_seed), 0, "gan_export_noise");
  Tensor z = Tensor::empty({n, e.z_dim, 1, 1}, DType::F32, e.device);
  gen.normal_(z, 0.0, 1.0);  // all at once: the samples do not depend on the batch size below
  const std::string tmp = path + ".tmp";
  constexpr int64_t kBatch = 256;
  e.generator.eval();  // batch norm with the running statistics (rank 0's)
  try {
    data::WriteOptions wo;
    wo.chunk_rows = std::min<int64_t>(64, n);
    data::ImageWriter out(tmp, n, h, w, c, {}, wo, /*with_labels=*/false);
    std::vector<uint8_t> bytes;
    for (int64_t at = 0; at < n; at += kBatch) {
      const int64_t k = std::min(kBatch, n - at);
      std::vector<float> x;
      {
        autograd::NoGrad no_grad;
        x = e.generator(z.rows(at, k)).to(Device::cpu()).to(DType::F32).to_vector<float>();  // (k, C, H, W)
      }
      bytes.assign(static_cast<size_t>(k * h * w * c), 0);
      for (int64_t i = 0; i < k; ++i) {
        for (int64_t ch = 0; ch < c; ++ch) {
          for (int64_t p = 0; p < h * w; ++p) {
            const float v = (x[static_cast<size_t>((i * c + ch) * h * w + p)] + 1.0f) * 127.5f;
            const float q = std::min(255.0f, std::max(0.0f, std::nearbyint(v)));
            bytes[static_cast<size_t>((i * h * w + p) * c + ch)] = static_cast<uint8_t>(q);
          }
        }
      }
      out.append(Tensor::from_vector<uint8_t>(bytes, {k, h, w, c}), Tensor());
    }
    out.finish();
    // Durable before it takes the final name: a crash leaves the old file or the new one
    // (Note [Atomic replace] in core/io/atomic_file.h).
    io::commit_file(tmp, path, "gan.export");
  } catch (...) {
    e.generator.train();
    std::remove(tmp.c_str());  // best effort; an existing file at `path` is untouched
    throw;
  }
  e.generator.train();
  return path;
}

}  // namespace dtrain::launcher
