#pragma once
// DCGAN (Radford, Metz & Chintala, 2015) for 28x28 or 32x32 images with few channels
// (Fashion-MNIST, MNIST), laid out as the PyTorch DCGAN example: each network is one
// Sequential child "main", so parameter names are "main.0.weight", "main.1.weight"
// (batch norm), ... and map one to one onto the example's state_dict.
//
// Generator, z (N, z_dim) or (N, z_dim, 1, 1) -> images (N, C, S, S) in (-1, 1):
//   ConvTranspose2d(z_dim, 4g, 4, 1, 0)           ->  4 x  4   BatchNorm2d ReLU
//   ConvTranspose2d(4g, 2g, k, 2, 1)              ->  8 (S=32, k=4) or 7 (S=28, k=3)
//                                                               BatchNorm2d ReLU
//   ConvTranspose2d(2g, g, 4, 2, 1)               -> 16 or 14   BatchNorm2d ReLU
//   ConvTranspose2d(g, C, 4, 2, 1)                -> 32 or 28   Tanh
// Discriminator, images (N, C, S, S) -> logits (N) (no sigmoid: use bce_with_logits):
//   Conv2d(C, d, 4, 2, 1)                         -> 16 or 14   LeakyReLU(0.2)
//   Conv2d(d, 2d, 4, 2, 1)                        ->  8 or  7   BatchNorm2d LeakyReLU(0.2)
//   Conv2d(2d, 4d, k, 2, 1)                       ->  4 (k=4 for 32, k=3 for 28)
//                                                               BatchNorm2d LeakyReLU(0.2)
//   Conv2d(4d, 1, 4, 1, 0)                        ->  1 x 1, flattened to (N)
// Convolutions have no bias (batch norm follows them), as in the example. With
// DcganConfig::batch_norm = false the BatchNorm2d layers are left out (indices shift);
// the two-rank equivalence test uses that, since batch statistics per rank differ from
// those of the full batch.
#include <memory>

#include "core/nn/conv.h"
#include "core/nn/layers.h"
#include "core/rng.h"

namespace dtrain::models {

struct DcganConfig {
  int image_size = 32;   // 28 or 32
  int channels = 1;      // image channels
  int z_dim = 100;       // nz
  int g_channels = 64;   // ngf: the generator's last hidden layer width
  int d_channels = 64;   // ndf: the discriminator's first layer width
  bool batch_norm = true;
  DType dtype = DType::F32;
};

class DcganGenerator : public nn::Module {
 public:
  DcganGenerator(const DcganConfig& config, Generator& gen);
  // z (N, z_dim) or (N, z_dim, 1, 1) -> (N, channels, image_size, image_size).
  Tensor forward(const Tensor& z) override;
  std::string describe() const override { return "DcganGenerator"; }
  nn::Sequential& main() { return *main_; }
  const DcganConfig& config() const { return config_; }

 private:
  DcganConfig config_;
  std::shared_ptr<nn::Sequential> main_;
};

class DcganDiscriminator : public nn::Module {
 public:
  DcganDiscriminator(const DcganConfig& config, Generator& gen);
  // x (N, channels, image_size, image_size) -> logits (N).
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "DcganDiscriminator"; }
  nn::Sequential& main() { return *main_; }
  const DcganConfig& config() const { return config_; }

 private:
  DcganConfig config_;
  std::shared_ptr<nn::Sequential> main_;
};

// The DCGAN initialization (the example's weights_init): every Conv2d and ConvTranspose2d
// weight from N(0, 0.02), every BatchNorm2d weight from N(1, 0.02) and bias 0, drawn from
// `gen` in parameter order. Applied by the make_* functions below.
void dcgan_init(nn::Module& model, Generator& gen);

// Builds a network (torch.nn default initialization from `gen`, then dcgan_init from
// `gen`, as the example does).
std::shared_ptr<DcganGenerator> make_dcgan_generator(const DcganConfig& config, Generator& gen);
std::shared_ptr<DcganDiscriminator> make_dcgan_discriminator(const DcganConfig& config, Generator& gen);

}  // namespace dtrain::models
