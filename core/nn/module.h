#pragma once
// Module: a layer or a model. Holds ordered, named parameters, buffers and submodules;
// names join with dots in registration order ("features.0.weight"), the convention
// torchvision uses, so checkpoints and golden fixtures map one to one onto PyTorch's
// state_dict names.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dtrain::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  // Single-input forward; models with other signatures add their own methods.
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // A short description, e.g. "Linear(in=2, out=2, bias)".
  virtual std::string describe() const = 0;

  // Depth-first in registration order: own parameters first, then each child's.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  int64_t num_parameters() const;  // total element count
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  // Moves every parameter, gradient and buffer to `device` in place: tensor handles the
  // caller already holds (an optimizer's list, say) see the move.
  void to(Device device);
  // Train/eval mode (dropout, batch norm), applied recursively.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // A multi-line summary with parameter counts.
  std::string summary() const;

 protected:
  // Registers a parameter (marked requires_grad) and returns the same handle.
  Tensor register_parameter(std::string name, Tensor t);
  Tensor register_buffer(std::string name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void collect(const std::string& prefix, bool buffers, NamedTensors& out) const;
  void summarize(const std::string& prefix, int depth, std::string& out) const;
  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace dtrain::nn
