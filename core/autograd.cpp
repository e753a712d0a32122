#include "core/autograd.h"

#include <unordered_map>

#include "core/functional.h"

namespace dtrain::autograd {

namespace {
thread_local Tape* t_active_tape = nullptr;

void accumulate_into_leaf(TensorImpl* leaf, const Tensor& g) {
  if (!leaf->grad) {
    leaf->grad = g.clone().impl_ptr();
  } else {
    fn::add_(Tensor(leaf->grad), g);
  }
}
}  // namespace

Tape* active_tape() { return t_active_tape; }

GradRecorder::GradRecorder(Tape& tape) : previous_(t_active_tape) { t_active_tape = &tape; }
GradRecorder::~GradRecorder() { t_active_tape = previous_; }
NoGrad::NoGrad() : previous_(t_active_tape) { t_active_tape = nullptr; }
NoGrad::~NoGrad() { t_active_tape = previous_; }

bool should_record(std::initializer_list<const Tensor*> inputs) {
  if (!t_active_tape) return false;
  for (const Tensor* t : inputs) {
    if (t && t->defined() && t->requires_grad()) return true;
  }
  return false;
}

void record(std::string name, std::vector<Tensor> inputs, std::vector<Tensor> outputs, Tape::BackwardFn fn) {
  DT_CHECK(t_active_tape != nullptr, "autograd::record called with no active tape");
  for (Tensor& out : outputs) {
    out.impl().requires_grad = true;
    out.impl().is_leaf = false;
  }
  t_active_tape->record(std::move(name), std::move(inputs), std::move(outputs), std::move(fn));
}

void Tape::record(std::string name, std::vector<Tensor> inputs, std::vector<Tensor> outputs, BackwardFn fn) {
  entries_.push_back(Entry{std::move(name), std::move(inputs), std::move(outputs), std::move(fn)});
}

void Tape::backward(const Tensor& root, const Tensor& seed) {
  DT_CHECK(root.defined() && root.requires_grad(),
           "backward: the root tensor does not require grad (was it computed under a GradRecorder from "
           "parameters that require grad?)");
  Tensor g0 = seed;
  if (!g0.defined()) {
    DT_CHECK(root.numel() == 1, "backward: root ", root.str(), " is not a scalar; pass a seed gradient");
    g0 = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  DT_CHECK(g0.shape() == root.shape() && g0.dtype() == root.dtype(), "backward: seed ", g0.str(),
           " does not match root ", root.str());
  NoGrad no_grad;  // closures compute with plain (unrecorded) functions

  // Uses of each leaf on the tape (see Note [Ready-hooks]).
  std::unordered_map<TensorImpl*, int64_t> pending;
  for (const Entry& e : entries_) {
    for (const Tensor& in : e.inputs) {
      if (in.defined() && in.requires_grad() && in.is_leaf()) ++pending[in.id()];
    }
  }

  if (root.is_leaf()) {
    accumulate_into_leaf(root.id(), g0);
  }
  std::unordered_map<TensorImpl*, Tensor> grads;  // gradients of non-leaf tensors
  if (!root.is_leaf()) grads[root.id()] = g0;

  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    Entry& e = *it;
    std::vector<Tensor> gouts(e.outputs.size());
    bool any = false;
    for (size_t i = 0; i < e.outputs.size(); ++i) {
      auto found = grads.find(e.outputs[i].id());
      if (found != grads.end()) {
        gouts[i] = found->second;
        grads.erase(found);  // every consumer of this output came later on the tape: final
        any = true;
      }
    }
    if (any) {
      for (size_t i = 0; i < gouts.size(); ++i) {
        if (!gouts[i].defined()) gouts[i] = Tensor::zeros(e.outputs[i].shape(), e.outputs[i].dtype(), e.outputs[i].device());
      }
      std::vector<Tensor> gins = e.backward(gouts);
      DT_CHECK(gins.size() == e.inputs.size(), "backward of '", e.name, "' returned ", gins.size(),
               " gradients for ", e.inputs.size(), " inputs");
      for (size_t i = 0; i < e.inputs.size(); ++i) {
        const Tensor& in = e.inputs[i];
        const Tensor& g = gins[i];
        if (!in.defined() || !in.requires_grad() || !g.defined()) continue;
        DT_CHECK(g.shape() == in.shape(), "backward of '", e.name, "': gradient ", g.str(), " for input ", i, " ",
                 in.str(), " has the wrong shape");
        if (in.is_leaf()) {
          accumulate_into_leaf(in.id(), g);
        } else {
          auto slot = grads.find(in.id());
          if (slot == grads.end()) {
            grads.emplace(in.id(), g);
          } else {
            slot->second = fn::add(slot->second, g);
          }
        }
      }
    }
    for (const Tensor& in : e.inputs) {
      if (!in.defined() || !in.requires_grad() || !in.is_leaf()) continue;
      auto p = pending.find(in.id());
      if (--p->second == 0) {
        TensorImpl* leaf = in.id();
        if (!leaf->grad) leaf->grad = Tensor::zeros(in.shape(), in.dtype(), in.device()).impl_ptr();
        for (const GradReadyHook& hook : leaf->ready_hooks) hook(in);
      }
    }
  }
  entries_.clear();
}

}  // namespace dtrain::autograd
