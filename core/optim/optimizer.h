#pragma once
// Optimizers (SGD with momentum/Nesterov/weight decay, Adam, AdamW) and learning-rate
// schedules. Each update is one fused ops kernel per parameter (ops/kernels.inc), on the
// parameter's device. The semantics follow PyTorch's torch.optim, so a run can be
// compared step by step with a PyTorch reference.
//
// State (momentum buffers, Adam moments, step count) is exposed by name for checkpoints:
// "<parameter name>.<state name>", e.g. "0.weight.momentum_buffer".
#include <string>
#include <vector>

#include "core/nn/module.h"

namespace dtrain::optim {

using nn::NamedTensors;

class Optimizer {
 public:
  Optimizer(NamedTensors params, double lr);
  virtual ~Optimizer() = default;
  // Applies one update to every parameter that has a gradient. Not recorded by autograd.
  void step();
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t steps_taken() const { return steps_; }
  const NamedTensors& params() const { return params_; }
  // Named state tensors (created lazily on the first step), and a setter used on resume.
  NamedTensors state() const;
  void set_steps_taken(int64_t steps) { steps_ = steps; }
  // Restores state() and steps_taken() from a checkpoint. Every stored tensor must be
  // "<parameter name>.<slot>" for a parameter of this optimizer and a slot this kind of
  // optimizer keeps (slot_names()), with the parameter's shape and dtype; otherwise
  // ValueError naming it (a checkpoint of another optimizer or model). Slots not stored
  // stay absent, as they were in the run that wrote the checkpoint.
  void load_state(const NamedTensors& stored, int64_t steps_taken);
  // The per-parameter state this optimizer keeps, e.g. {"exp_avg", "exp_avg_sq"}.
  virtual std::vector<std::string> slot_names() const = 0;

 protected:
  // Update of parameter i (its gradient is defined); steps_ already counts this step.
  virtual void update(size_t i, const Tensor& param, const Tensor& grad) = 0;
  // Lazily creates the state tensor `name` of parameter i (zeros like the parameter).
  Tensor& slot(size_t i, const std::string& name);
  bool has_slot(size_t i, const std::string& name) const;

  NamedTensors params_;
  double lr_;
  int64_t steps_ = 0;

 private:
  std::vector<NamedTensors> slots_;  // per parameter
};

class SGD : public Optimizer {
 public:
  struct Options {
    double lr = 0.01;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
  };
  SGD(NamedTensors params, Options options);
  std::vector<std::string> slot_names() const override;

 protected:
  void update(size_t i, const Tensor& param, const Tensor& grad) override;

 private:
  Options opt_;
};

class Adam : public Optimizer {
 public:
  struct Options {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool decoupled_weight_decay = false;  // true: AdamW
  };
  Adam(NamedTensors params, Options options);
  std::vector<std::string> slot_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 protected:
  void update(size_t i, const Tensor& param, const Tensor& grad) override;

 private:
  Options opt_;
};

// Adam with decoupled weight decay (Loshchilov & Hutter); default weight decay 0.01 as
// in PyTorch.
class AdamW : public Adam {
 public:
  struct Options {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.01;
  };
  AdamW(NamedTensors params, Options o)
      : Adam(std::move(params), Adam::Options{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, true}) {}
};

}  // namespace dtrain::optim
