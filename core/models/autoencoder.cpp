// The convolutional autoencoder: see autoencoder.h.
#include "core/models/autoencoder.h"

#include <sstream>

#include "core/error.h"
#include "core/functional.h"

namespace dtrain::models {

ConvAutoencoder::ConvAutoencoder(const AutoencoderConfig& c, Generator& gen) : config_(c) {
  DT_CHECK_AS(c.height % 4 == 0 && c.width % 4 == 0 && c.height >= 4 && c.width >= 4, ConfigError,
              "the autoencoder needs image sides divisible by 4, got ", c.height, "x", c.width);
  DT_CHECK_AS(c.code >= 1 && c.width_mult >= 1, ConfigError, "the autoencoder needs a code size and a width >= 1");
  const int64_t w = c.width_mult, flat = 2 * w * (c.height / 4) * (c.width / 4);
  encoder_ = register_module("encoder", std::make_shared<nn::Sequential>());
  encoder_->add(std::make_shared<nn::Conv2d>(c.channels, w, 3, gen, 2, 1, true, c.dtype))
      .add(std::make_shared<nn::ReLU>())
      .add(std::make_shared<nn::Conv2d>(w, 2 * w, 3, gen, 2, 1, true, c.dtype))
      .add(std::make_shared<nn::ReLU>())
      .add(std::make_shared<nn::Flatten>())
      .add(std::make_shared<nn::Linear>(flat, c.code, gen, true, c.dtype));
  decoder_ = register_module("decoder", std::make_shared<nn::Sequential>());
  decoder_->add(std::make_shared<nn::Linear>(c.code, flat, gen, true, c.dtype)).add(std::make_shared<nn::ReLU>());
  decoder_conv_ = register_module("decoder_conv", std::make_shared<nn::Sequential>());
  decoder_conv_->add(std::make_shared<nn::ConvTranspose2d>(2 * w, w, 4, gen, 2, 1, 0, true, c.dtype))
      .add(std::make_shared<nn::ReLU>())
      .add(std::make_shared<nn::ConvTranspose2d>(w, c.channels, 4, gen, 2, 1, 0, true, c.dtype));
}

Tensor ConvAutoencoder::encode(const Tensor& x) { return encoder_->forward(x); }

Tensor ConvAutoencoder::decode(const Tensor& codes) {
  const int64_t w = config_.width_mult;
  Tensor h = decoder_->forward(codes);
  return decoder_conv_->forward(fn::reshape(h, {h.size(0), 2 * w, config_.height / 4, config_.width / 4}));
}

Tensor ConvAutoencoder::forward(const Tensor& x) { return decode(encode(x)); }

std::string ConvAutoencoder::describe() const {
  std::ostringstream os;
  os << "ConvAutoencoder(" << config_.channels << "x" << config_.height << "x" << config_.width << " -> "
     << config_.code << ", width " << config_.width_mult << ")";
  return os.str();
}

}  // namespace dtrain::models
