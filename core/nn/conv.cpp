#include "core/nn/conv.h"

#include <cmath>

#include "core/autograd.h"

namespace dtrain::nn {

namespace {

std::string pair_str(Size2 s) {
  if (s.h == s.w) return std::to_string(s.h);
  std::string out = "(";  // appended step by step: GCC 12 warns (-Wrestrict) on "(" + std::string
  out += std::to_string(s.h);
  out += ", ";
  out += std::to_string(s.w);
  out += ")";
  return out;
}

void check_window(const char* layer, Size2 kernel, Size2 stride, Size2 padding) {
  DT_CHECK(kernel.h > 0 && kernel.w > 0, layer, ": kernel size must be positive, got ", pair_str(kernel));
  DT_CHECK(stride.h > 0 && stride.w > 0, layer, ": stride must be positive, got ", pair_str(stride));
  DT_CHECK(padding.h >= 0 && padding.w >= 0, layer, ": padding must not be negative, got ", pair_str(padding));
}

// A tensor uniform in [-bound, bound).
Tensor uniform(const Shape& shape, double bound, Generator& gen, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  gen.uniform_(t, -bound, bound);
  return t;
}

}  // namespace

// ---- Conv2d ------------------------------------------------------------------------------

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Generator& gen, Size2 stride,
               Size2 padding, bool bias, DType dtype)
    : in_(in_channels), out_(out_channels), kernel_(kernel), stride_(stride), padding_(padding) {
  DT_CHECK(in_channels > 0 && out_channels > 0, "Conv2d: channel counts must be positive, got in=", in_channels,
           " out=", out_channels);
  check_window("Conv2d", kernel, stride, padding);
  double bound = 1.0 / std::sqrt(static_cast<double>(in_channels * kernel.h * kernel.w));
  weight_ = register_parameter("weight", uniform({out_channels, in_channels, kernel.h, kernel.w}, bound, gen, dtype));
  if (bias) bias_ = register_parameter("bias", uniform({out_channels}, bound, gen, dtype));
}

Tensor Conv2d::forward(const Tensor& x) { return fn::conv2d(x, weight_, bias_, stride_, padding_); }

std::string Conv2d::describe() const {
  return "Conv2d(" + std::to_string(in_) + ", " + std::to_string(out_) + ", kernel_size=" + pair_str(kernel_) +
         ", stride=" + pair_str(stride_) + ", padding=" + pair_str(padding_) + (bias_.defined() ? ", bias)" : ")");
}

// ---- ConvTranspose2d -----------------------------------------------------------------------

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Generator& gen,
                                 Size2 stride, Size2 padding, Size2 output_padding, bool bias, DType dtype)
    : in_(in_channels),
      out_(out_channels),
      kernel_(kernel),
      stride_(stride),
      padding_(padding),
      output_padding_(output_padding) {
  DT_CHECK(in_channels > 0 && out_channels > 0, "ConvTranspose2d: channel counts must be positive, got in=",
           in_channels, " out=", out_channels);
  check_window("ConvTranspose2d", kernel, stride, padding);
  DT_CHECK(output_padding.h >= 0 && output_padding.w >= 0 && output_padding.h < stride.h &&
               output_padding.w < stride.w,
           "ConvTranspose2d: output_padding ", pair_str(output_padding), " must be in [0, stride ",
           pair_str(stride), ")");
  // torch computes fan_in from weight.size(1) = C_out for the transposed layout.
  double bound = 1.0 / std::sqrt(static_cast<double>(out_channels * kernel.h * kernel.w));
  weight_ = register_parameter("weight", uniform({in_channels, out_channels, kernel.h, kernel.w}, bound, gen, dtype));
  if (bias) bias_ = register_parameter("bias", uniform({out_channels}, bound, gen, dtype));
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return fn::conv_transpose2d(x, weight_, bias_, stride_, padding_, output_padding_);
}

Size2 ConvTranspose2d::output_size(int64_t h, int64_t w) const {
  return {(h - 1) * stride_.h - 2 * padding_.h + kernel_.h + output_padding_.h,
          (w - 1) * stride_.w - 2 * padding_.w + kernel_.w + output_padding_.w};
}

std::string ConvTranspose2d::describe() const {
  return "ConvTranspose2d(" + std::to_string(in_) + ", " + std::to_string(out_) + ", kernel_size=" +
         pair_str(kernel_) + ", stride=" + pair_str(stride_) + ", padding=" + pair_str(padding_) +
         ", output_padding=" + pair_str(output_padding_) + (bias_.defined() ? ", bias)" : ")");
}

// ---- pooling ---------------------------------------------------------------------------------

MaxPool2d::MaxPool2d(Size2 kernel, std::optional<Size2> stride, Size2 padding)
    : kernel_(kernel), stride_(stride.value_or(kernel)), padding_(padding) {
  check_window("MaxPool2d", kernel_, stride_, padding_);
}

std::string MaxPool2d::describe() const {
  return "MaxPool2d(kernel_size=" + pair_str(kernel_) + ", stride=" + pair_str(stride_) +
         ", padding=" + pair_str(padding_) + ")";
}

AvgPool2d::AvgPool2d(Size2 kernel, std::optional<Size2> stride, Size2 padding)
    : kernel_(kernel), stride_(stride.value_or(kernel)), padding_(padding) {
  check_window("AvgPool2d", kernel_, stride_, padding_);
}

std::string AvgPool2d::describe() const {
  return "AvgPool2d(kernel_size=" + pair_str(kernel_) + ", stride=" + pair_str(stride_) +
         ", padding=" + pair_str(padding_) + ")";
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size) : out_(output_size) {
  DT_CHECK(out_.h > 0 && out_.w > 0, "AdaptiveAvgPool2d: output size must be positive, got ", pair_str(out_));
}

std::string AdaptiveAvgPool2d::describe() const {
  return "AdaptiveAvgPool2d(output_size=(" + std::to_string(out_.h) + ", " + std::to_string(out_.w) + "))";
}

// ---- BatchNorm2d -----------------------------------------------------------------------------

BatchNorm2d::BatchNorm2d(int64_t num_features, double momentum, double eps, DType dtype)
    : features_(num_features), momentum_(momentum), eps_(eps) {
  DT_CHECK(num_features > 0, "BatchNorm2d: num_features must be positive, got ", num_features);
  DT_CHECK(eps > 0, "BatchNorm2d: eps must be positive, got ", eps);
  DT_CHECK(momentum >= 0 && momentum <= 1, "BatchNorm2d: momentum must be in [0, 1], got ", momentum);
  weight_ = register_parameter("weight", Tensor::ones({num_features}, dtype));
  bias_ = register_parameter("bias", Tensor::zeros({num_features}, dtype));
  running_mean_ = register_buffer("running_mean", Tensor::zeros({num_features}, dtype));
  running_var_ = register_buffer("running_var", Tensor::ones({num_features}, dtype));
  num_batches_tracked_ = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I64));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  DT_CHECK(x.defined() && x.ndim() == 4, "BatchNorm2d: expected input of shape (N, C, H, W), got ",
           x.defined() ? x.str() : "undefined");
  DT_CHECK(x.size(1) == features_, "BatchNorm2d: input ", x.str(), " has ", x.size(1), " channels, expected ",
           features_);
  if (is_training()) {
    // num_batches_tracked += 1 on the buffer's device, without a host round trip:
    // i64 -> f64, + 1, -> i64 (exact below 2^53).
    autograd::NoGrad no_grad;
    num_batches_tracked_.copy_(fn::affine(num_batches_tracked_.to(DType::F64), 1.0, 1.0).to(DType::I64));
  }
  return fn::batch_norm2d(x, weight_, bias_, running_mean_, running_var_, is_training(), momentum_, eps_);
}

std::string BatchNorm2d::describe() const {
  return "BatchNorm2d(" + std::to_string(features_) + ", eps=" + std::to_string(eps_) +
         ", momentum=" + std::to_string(momentum_) + ")";
}

// ---- Dropout ----------------------------------------------------------------------------------

Dropout::Dropout(double p, Generator gen) : p_(p), gen_(gen) {
  DT_CHECK(p >= 0.0 && p <= 1.0, "Dropout: probability must be in [0, 1], got ", p);
}

std::string Dropout::describe() const { return "Dropout(p=" + std::to_string(p_) + ")"; }

}  // namespace dtrain::nn
