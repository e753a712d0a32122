#pragma once
// Reverse-mode autograd as a tape.
//
// While a GradRecorder is alive on a thread, every differentiable function in
// core/functional.h that has an input requiring grad appends one Entry to the tape:
// its inputs, its outputs and a closure computing input gradients from output
// gradients. Tape::backward(loss) replays the entries in reverse order.
//
// Note [Ready-hooks]: the data-parallel reducer needs to know the moment a parameter's
// gradient is final, so it can start all-reducing it while backward continues. On a
// tape that moment is exact: a leaf's gradient is final once the earliest entry (in
// forward order) that reads it has been replayed. backward() counts each leaf's uses on
// the tape before it starts, decrements as entries are replayed, and fires the leaf's
// ready-hooks when the count reaches zero: once per backward, after the last use, with
// the gradient already accumulated (zeros if no gradient flowed to it).
//
// Leaf gradients accumulate (+=) across backward passes (gradient accumulation over
// micro-batches); zero them with Tensor::zero_grad or an optimizer's zero_grad.
//
// The recording state is per thread (like a grad-mode flag), so threads-as-ranks tests
// each record on their own tape.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dtrain::autograd {

class Tape {
 public:
  // Given the gradients of the outputs (same order; all defined, zeros where an output
  // received none), returns one gradient per input: undefined for inputs that do not
  // require grad.
  using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

  struct Entry {
    std::string name;
    std::vector<Tensor> inputs;
    std::vector<Tensor> outputs;
    BackwardFn backward;
  };

  void record(std::string name, std::vector<Tensor> inputs, std::vector<Tensor> outputs, BackwardFn fn);

  // Replays the tape in reverse from `root`. `seed` is d(objective)/d(root); for a
  // one-element root it defaults to 1. Clears the tape afterwards.
  void backward(const Tensor& root, const Tensor& seed = Tensor());

  size_t size() const { return entries_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }
  void clear() { entries_.clear(); }

 private:
  std::vector<Entry> entries_;
};

// The tape the calling thread records on, or nullptr (grad mode off).
Tape* active_tape();

// Records on `tape` while alive. Nests: the previous tape is restored on destruction.
class GradRecorder {
 public:
  explicit GradRecorder(Tape& tape);
  ~GradRecorder();
  GradRecorder(const GradRecorder&) = delete;
  GradRecorder& operator=(const GradRecorder&) = delete;

 private:
  Tape* previous_;
};

// Suspends recording while alive (evaluation, optimizer updates, backward closures).
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  Tape* previous_;
};

// True when a function with these inputs must be recorded: a tape is active and at
// least one input requires grad.
bool should_record(std::initializer_list<const Tensor*> inputs);

// Marks `outputs` as non-leaf tensors requiring grad and records the entry on the
// active tape. Used by core/functional.cpp after computing an op's outputs.
void record(std::string name, std::vector<Tensor> inputs, std::vector<Tensor> outputs, Tape::BackwardFn fn);

}  // namespace dtrain::autograd
