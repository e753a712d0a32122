#pragma once
// A convolutional autoencoder (the lecture's encoder that squeezes an image into a small
// code and decoder that rebuilds it), for images (C, H, W) with H and W divisible by 4:
//
//   encoder: Conv2d(C, w, 3, stride 2, pad 1), ReLU          (w, H/2, W/2)
//            Conv2d(w, 2w, 3, stride 2, pad 1), ReLU         (2w, H/4, W/4)
//            Flatten, Linear(2w H/4 W/4, code)               (code)
//   decoder: Linear(code, 2w H/4 W/4), ReLU, view            (2w, H/4, W/4)
//            ConvTranspose2d(2w, w, 4, stride 2, pad 1), ReLU (w, H/2, W/2)
//            ConvTranspose2d(w, C, 4, stride 2, pad 1)       logits (C, H, W)
//
// Parameter names: encoder.{0,2,5}.*, decoder.0.* (the first Linear), decoder_conv.{0,2}.*,
// as a PyTorch module with the same children would name them. Pixels are sigmoid(logits).
// Initialization: torch.nn's defaults, drawn from `gen` in parameter order.
#include <cstdint>
#include <memory>

#include "core/nn/conv.h"
#include "core/nn/layers.h"
#include "core/rng.h"

namespace dtrain::models {

struct AutoencoderConfig {
  int64_t channels = 1;
  int64_t height = 28, width = 28;
  int64_t width_mult = 32;  // w above: channels of the first convolution
  int64_t code = 32;        // the code's size
  DType dtype = DType::F32;
};

class ConvAutoencoder : public nn::Module {
 public:
  ConvAutoencoder(const AutoencoderConfig& config, Generator& gen);
  // x (N, C, H, W) -> logits (N, C, H, W).
  Tensor forward(const Tensor& x) override;
  // x (N, C, H, W) -> the codes (N, code).
  Tensor encode(const Tensor& x);
  // codes (N, code) -> logits (N, C, H, W).
  Tensor decode(const Tensor& codes);
  std::string describe() const override;
  const AutoencoderConfig& config() const { return config_; }

 private:
  AutoencoderConfig config_;
  std::shared_ptr<nn::Sequential> encoder_, decoder_, decoder_conv_;
};

}  // namespace dtrain::models
