#include "core/optim/optimizer.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/dispatch.h"

namespace dtrain::optim {

Optimizer::Optimizer(NamedTensors params, double lr) : params_(std::move(params)), lr_(lr), slots_(params_.size()) {
  DT_CHECK(lr >= 0, "optimizer: learning rate must be >= 0, got ", lr);
  for (const auto& [name, p] : params_) {
    DT_CHECK(p.defined() && p.requires_grad(), "optimizer: parameter '", name, "' does not require grad");
  }
}

void Optimizer::step() {
  autograd::NoGrad no_grad;
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    update(i, p, g);
  }
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

Tensor& Optimizer::slot(size_t i, const std::string& name) {
  for (auto& [n, t] : slots_[i]) {
    if (n == name) return t;
  }
  const Tensor& p = params_[i].second;
  slots_[i].emplace_back(name, Tensor::zeros(p.shape(), p.dtype(), p.device()));
  return slots_[i].back().second;
}

bool Optimizer::has_slot(size_t i, const std::string& name) const {
  for (const auto& [n, t] : slots_[i]) {
    if (n == name) return true;
  }
  return false;
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (const auto& [n, t] : slots_[i]) out.emplace_back(params_[i].first + "." + n, t);
  }
  return out;
}

void Optimizer::load_state(const NamedTensors& stored, int64_t steps_taken) {
  const std::vector<std::string> kinds = slot_names();
  std::vector<NamedTensors> slots(params_.size());
  for (const auto& [full, t] : stored) {
    bool placed = false;
    for (size_t i = 0; i < params_.size() && !placed; ++i) {
      const auto& [pname, p] = params_[i];
      if (full.size() <= pname.size() + 1 || full.compare(0, pname.size(), pname) != 0 || full[pname.size()] != '.') {
        continue;
      }
      std::string slot_name = full.substr(pname.size() + 1);
      if (std::find(kinds.begin(), kinds.end(), slot_name) == kinds.end()) continue;
      DT_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype(), "optimizer state '", full, "' is ", t.str(),
               " but parameter '", pname, "' is ", p.str(), ": was it saved for another model?");
      Tensor copy = Tensor::empty(p.shape(), p.dtype(), p.device());
      copy.copy_(t.to(p.device()));
      slots[i].emplace_back(slot_name, copy);
      placed = true;
    }
    DT_CHECK(placed, "optimizer state '", full, "' belongs to no parameter and slot of this optimizer (slots: ",
             kinds.empty() ? std::string("none") : kinds.front() + (kinds.size() > 1 ? ", ..." : ""),
             "): was it saved by another optimizer or model?");
  }
  slots_ = std::move(slots);
  steps_ = steps_taken;
}

std::vector<std::string> SGD::slot_names() const {
  return opt_.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
}

SGD::SGD(NamedTensors params, Options options) : Optimizer(std::move(params), options.lr), opt_(options) {
  DT_CHECK(opt_.momentum >= 0, "SGD: momentum must be >= 0, got ", opt_.momentum);
  DT_CHECK(!opt_.nesterov || (opt_.momentum > 0 && opt_.dampening == 0),
           "SGD: Nesterov momentum needs momentum > 0 and dampening = 0");
}

void SGD::update(size_t i, const Tensor& p, const Tensor& g) {
  bool first = false;
  Tensor buf;
  if (opt_.momentum != 0) {
    first = !has_slot(i, "momentum_buffer");
    buf = slot(i, "momentum_buffer");
  }
  dispatch_float(p.dtype(), "SGD", [&]<typename T>() {
    DT_KERNEL(p.device(), sgd_step<T>)(p.data<T>(), g.data<T>(), buf.defined() ? buf.data<T>() : nullptr, p.numel(),
                                       static_cast<T>(lr_), static_cast<T>(opt_.momentum),
                                       static_cast<T>(opt_.dampening), static_cast<T>(opt_.weight_decay),
                                       opt_.nesterov, first, exec_for(p.device()));
  });
}

Adam::Adam(NamedTensors params, Options options) : Optimizer(std::move(params), options.lr), opt_(options) {
  DT_CHECK(opt_.beta1 >= 0 && opt_.beta1 < 1 && opt_.beta2 >= 0 && opt_.beta2 < 1,
           "Adam: betas must be in [0, 1), got ", opt_.beta1, ", ", opt_.beta2);
  DT_CHECK(opt_.eps > 0, "Adam: eps must be > 0");
}

void Adam::update(size_t i, const Tensor& p, const Tensor& g) {
  Tensor m = slot(i, "exp_avg");
  Tensor v = slot(i, "exp_avg_sq");
  dispatch_float(p.dtype(), "Adam", [&]<typename T>() {
    DT_KERNEL(p.device(), adam_step<T>)(p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), p.numel(),
                                        static_cast<T>(lr_), static_cast<T>(opt_.beta1), static_cast<T>(opt_.beta2),
                                        static_cast<T>(opt_.eps), static_cast<T>(opt_.weight_decay),
                                        opt_.decoupled_weight_decay, steps_, exec_for(p.device()));
  });
}

}  // namespace dtrain::optim
