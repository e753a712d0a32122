#include "core/models/dcgan.h"

namespace dtrain::models {

namespace {

void check_config(const DcganConfig& c) {
  DT_CHECK(c.image_size == 28 || c.image_size == 32, "DCGAN: image_size must be 28 or 32, got ", c.image_size);
  DT_CHECK(c.channels > 0 && c.z_dim > 0 && c.g_channels > 0 && c.d_channels > 0,
           "DCGAN: channels, z_dim, g_channels and d_channels must be positive, got ", c.channels, ", ", c.z_dim,
           ", ", c.g_channels, ", ", c.d_channels);
  DT_CHECK(c.dtype == DType::F32 || c.dtype == DType::F64, "DCGAN: dtype must be f32 or f64");
}

// The kernel of the layer between 4x4 and 8x8 (32) or 7x7 (28).
int64_t middle_kernel(const DcganConfig& c) { return c.image_size == 32 ? 4 : 3; }

}  // namespace

DcganGenerator::DcganGenerator(const DcganConfig& config, Generator& gen) : config_(config) {
  check_config(config);
  const int64_t g = config.g_channels;
  main_ = std::make_shared<nn::Sequential>();
  auto block = [&](int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
    main_->add(std::make_shared<nn::ConvTranspose2d>(in, out, kernel, gen, stride, padding, 0, /*bias=*/false,
                                                     config.dtype));
    if (config.batch_norm) main_->add(std::make_shared<nn::BatchNorm2d>(out, 0.1, 1e-5, config.dtype));
    main_->add(std::make_shared<nn::ReLU>());
  };
  block(config.z_dim, 4 * g, 4, 1, 0);                    // (N, 4g, 4, 4)
  block(4 * g, 2 * g, middle_kernel(config), 2, 1);       // (N, 2g, 8, 8) or (N, 2g, 7, 7)
  block(2 * g, g, 4, 2, 1);                               // (N, g, 16, 16) or 14
  main_->add(std::make_shared<nn::ConvTranspose2d>(g, config.channels, 4, gen, 2, 1, 0, false, config.dtype));
  main_->add(std::make_shared<nn::Tanh>());               // (N, C, 32, 32) or 28
  register_module("main", main_);
}

Tensor DcganGenerator::forward(const Tensor& z) {
  DT_CHECK(z.defined() && ((z.ndim() == 2 && z.size(1) == config_.z_dim) ||
                           (z.ndim() == 4 && z.size(1) == config_.z_dim && z.size(2) == 1 && z.size(3) == 1)),
           "DcganGenerator: expected noise of shape (N, ", config_.z_dim, ") or (N, ", config_.z_dim,
           ", 1, 1), got ", z.defined() ? z.str() : "undefined");
  Tensor x = z.ndim() == 4 ? z : fn::reshape(z, {z.size(0), z.size(1), 1, 1});
  return main_->forward(x);
}

DcganDiscriminator::DcganDiscriminator(const DcganConfig& config, Generator& gen) : config_(config) {
  check_config(config);
  const int64_t d = config.d_channels;
  main_ = std::make_shared<nn::Sequential>();
  auto block = [&](int64_t in, int64_t out, int64_t kernel, bool batch_norm) {
    main_->add(std::make_shared<nn::Conv2d>(in, out, kernel, gen, 2, 1, /*bias=*/false, config.dtype));
    if (batch_norm) main_->add(std::make_shared<nn::BatchNorm2d>(out, 0.1, 1e-5, config.dtype));
    main_->add(std::make_shared<nn::LeakyReLU>(0.2));
  };
  block(config.channels, d, 4, false);                          // (N, d, 16, 16) or 14
  block(d, 2 * d, 4, config.batch_norm);                        // (N, 2d, 8, 8) or 7
  block(2 * d, 4 * d, middle_kernel(config), config.batch_norm);  // (N, 4d, 4, 4)
  main_->add(std::make_shared<nn::Conv2d>(4 * d, 1, 4, gen, 1, 0, false, config.dtype));  // (N, 1, 1, 1)
  register_module("main", main_);
}

Tensor DcganDiscriminator::forward(const Tensor& x) {
  DT_CHECK(x.defined() && x.ndim() == 4 && x.size(1) == config_.channels && x.size(2) == config_.image_size &&
               x.size(3) == config_.image_size,
           "DcganDiscriminator: expected images of shape (N, ", config_.channels, ", ", config_.image_size, ", ",
           config_.image_size, "), got ", x.defined() ? x.str() : "undefined");
  Tensor logits = main_->forward(x);  // (N, 1, 1, 1)
  return fn::reshape(logits, {x.size(0)});
}

void dcgan_init(nn::Module& model, Generator& gen) {
  for (const auto& [name, m] : model.children()) {
    if (auto conv = std::dynamic_pointer_cast<nn::Conv2d>(m)) {
      Tensor w = conv->weight();
      gen.normal_(w, 0.0, 0.02);
    } else if (auto convt = std::dynamic_pointer_cast<nn::ConvTranspose2d>(m)) {
      Tensor w = convt->weight();
      gen.normal_(w, 0.0, 0.02);
    } else if (auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>(m)) {
      Tensor w = bn->weight();
      gen.normal_(w, 1.0, 0.02);
      bn->bias().zero_();
    } else {
      dcgan_init(*m, gen);  // containers (and leaf modules without parameters)
    }
  }
}

std::shared_ptr<DcganGenerator> make_dcgan_generator(const DcganConfig& config, Generator& gen) {
  auto g = std::make_shared<DcganGenerator>(config, gen);
  dcgan_init(*g, gen);
  return g;
}

std::shared_ptr<DcganDiscriminator> make_dcgan_discriminator(const DcganConfig& config, Generator& gen) {
  auto d = std::make_shared<DcganDiscriminator>(config, gen);
  dcgan_init(*d, gen);
  return d;
}

}  // namespace dtrain::models
