#pragma once
// Basic layers: Linear, Sequential and the activation modules.
#include <initializer_list>

#include "core/functional.h"
#include "core/nn/module.h"
#include "core/rng.h"

namespace dtrain::nn {

// y = x W^T + b, x (N, in), W (out, in), b (out). Initialized as PyTorch's nn.Linear:
// W and b uniform in [-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true,
         DType dtype = DType::F32);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const Tensor& weight() const { return weight_; }  // (out, in)
  const Tensor& bias() const { return bias_; }      // (out), undefined without bias

 private:
  int64_t in_, out_;
  Tensor weight_;
  Tensor bias_;
};

// Applies its children in order; they are named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  Sequential& add(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Sequential"; }
  size_t size() const { return children().size(); }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override { return fn::sigmoid(x); }
  std::string describe() const override { return "Sigmoid"; }
};
class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override { return fn::tanh(x); }
  std::string describe() const override { return "Tanh"; }
};
class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return fn::relu(x); }
  std::string describe() const override { return "ReLU"; }
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double slope = 0.01) : slope_(slope) {}
  Tensor forward(const Tensor& x) override { return fn::leaky_relu(x, slope_); }
  std::string describe() const override { return "LeakyReLU(" + std::to_string(slope_) + ")"; }

 private:
  double slope_;
};
// Heaviside step (forward only): the activation of the lecture's threshold neuron.
class Step : public Module {
 public:
  Tensor forward(const Tensor& x) override { return fn::step(x); }
  std::string describe() const override { return "Step"; }
};

}  // namespace dtrain::nn
