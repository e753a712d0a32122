#include "core/nn/module.h"

namespace dtrain::nn {

namespace {
// Replaces the storage under `t` (every handle shares the TensorImpl) with a copy on
// `device`.
void move_in_place(const Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  Tensor moved = t.to(device);
  t.impl().storage = moved.impl().storage;
  t.impl().offset_bytes = moved.impl().offset_bytes;
}
}  // namespace

Tensor Module::register_parameter(std::string name, Tensor t) {
  DT_CHECK(t.defined(), "register_parameter: '", name, "' is undefined");
  t.set_requires_grad(true);
  params_.emplace_back(std::move(name), t);
  return t;
}

Tensor Module::register_buffer(std::string name, Tensor t) {
  DT_CHECK(t.defined(), "register_buffer: '", name, "' is undefined");
  buffers_.emplace_back(std::move(name), t);
  return t;
}

void Module::collect(const std::string& prefix, bool buffers, NamedTensors& out) const {
  for (const auto& [name, t] : buffers ? buffers_ : params_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", buffers, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::to(Device device) {
  for (auto& [name, t] : named_parameters()) {
    move_in_place(t, device);
    if (t.grad().defined()) move_in_place(t.grad(), device);
  }
  for (auto& [name, t] : named_buffers()) move_in_place(t, device);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

void Module::summarize(const std::string& prefix, int depth, std::string& out) const {
  int64_t own = 0;
  for (const auto& [name, t] : params_) own += t.numel();
  out += std::string(static_cast<size_t>(depth) * 2, ' ') + (prefix.empty() ? "" : prefix + ": ") + describe();
  if (own) out += "  [" + std::to_string(own) + " params]";
  out += "\n";
  for (const auto& [name, child] : children_) child->summarize(name, depth + 1, out);
}

std::string Module::summary() const {
  std::string out;
  summarize("", 0, out);
  out += "total parameters: " + std::to_string(num_parameters()) + "\n";
  return out;
}

}  // namespace dtrain::nn
