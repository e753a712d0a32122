#pragma once
// The convolution stack's layers: Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d,
// AdaptiveAvgPool2d, BatchNorm2d, Dropout, Flatten. Parameter and buffer names, shapes
// and default initializations are torch.nn's, so state_dicts map one to one.
#include <optional>
#include <string>

#include "core/functional.h"
#include "core/nn/module.h"
#include "core/rng.h"

namespace dtrain::nn {

using fn::Size2;

// y = conv2d(x, weight, bias), x (N, C_in, H, W), weight (C_out, C_in, KH, KW), bias
// (C_out). Initialized as torch.nn.Conv2d: weight and bias uniform in
// [-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_in * KH * KW (kaiming_uniform with
// a = sqrt(5)).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Generator& gen, Size2 stride = 1,
         Size2 padding = 0, bool bias = true, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const Tensor& weight() const { return weight_; }  // (C_out, C_in, KH, KW)
  const Tensor& bias() const { return bias_; }      // (C_out), undefined without bias

 private:
  int64_t in_, out_;
  Size2 kernel_, stride_, padding_;
  Tensor weight_;
  Tensor bias_;
};

// The transposed convolution, x (N, C_in, H, W) -> (N, C_out, (H - 1) stride - 2 padding
// + KH + output_padding, ...), weight (C_in, C_out, KH, KW) as torch.nn.ConvTranspose2d,
// which also sets its initialization: uniform bound 1/sqrt(fan_in) with torch's fan_in of
// that weight, C_out * KH * KW.
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Generator& gen, Size2 stride = 1,
                  Size2 padding = 0, Size2 output_padding = 0, bool bias = true, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  // The output's spatial size for an input of (h, w).
  Size2 output_size(int64_t h, int64_t w) const;
  const Tensor& weight() const { return weight_; }  // (C_in, C_out, KH, KW)
  const Tensor& bias() const { return bias_; }      // (C_out)

 private:
  int64_t in_, out_;
  Size2 kernel_, stride_, padding_, output_padding_;
  Tensor weight_;
  Tensor bias_;
};

// Max pooling; the stride defaults to the kernel size, as in torch.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel, std::optional<Size2> stride = std::nullopt, Size2 padding = 0);
  Tensor forward(const Tensor& x) override { return fn::max_pool2d(x, kernel_, stride_, padding_); }
  std::string describe() const override;

 private:
  Size2 kernel_, stride_, padding_;
};

// Average pooling (padding counted in the divisor); the stride defaults to the kernel.
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel, std::optional<Size2> stride = std::nullopt, Size2 padding = 0);
  Tensor forward(const Tensor& x) override { return fn::avg_pool2d(x, kernel_, stride_, padding_); }
  std::string describe() const override;

 private:
  Size2 kernel_, stride_, padding_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size);
  Tensor forward(const Tensor& x) override { return fn::adaptive_avg_pool2d(x, out_.h, out_.w); }
  std::string describe() const override;

 private:
  Size2 out_;
};

// Batch normalization over (N, H, W) per channel, as torch.nn.BatchNorm2d: parameters
// weight = 1, bias = 0 (C); buffers running_mean = 0, running_var = 1 (C) and
// num_batches_tracked (an i64 scalar). In training mode each forward normalizes with the
// batch statistics, updates the running statistics (momentum, unbiased variance) and
// increments num_batches_tracked; in eval mode it uses the running statistics and
// changes nothing.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double momentum = 0.1, double eps = 1e-5, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  const Tensor& num_batches_tracked() const { return num_batches_tracked_; }

 private:
  int64_t features_;
  double momentum_, eps_;
  Tensor weight_, bias_;                      // (C)
  Tensor running_mean_, running_var_;         // (C)
  Tensor num_batches_tracked_;                // () i64
};

// Inverted dropout with probability p, drawing its masks from its own Generator (give it
// one derived for the purpose, e.g. Generator::derive(seed, rank, "dropout")); a
// checkpoint saves generator().state(). Identity in eval mode.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator gen = Generator(0));
  Tensor forward(const Tensor& x) override { return fn::dropout(x, p_, is_training(), gen_); }
  std::string describe() const override;
  Generator& generator() { return gen_; }
  double p() const { return p_; }

 private:
  double p_;
  Generator gen_;
};

// (N, ...) -> (N, rest), as torch.nn.Flatten().
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override { return fn::flatten(x); }
  std::string describe() const override { return "Flatten"; }
};

}  // namespace dtrain::nn
