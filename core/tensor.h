#pragma once
// Tensor: a shared handle to dense, contiguous, row-major storage on one device, with
// the autograd state a parameter needs (requires_grad, accumulated grad, ready-hooks).
//
// Copies of a Tensor share the same data (like torch.Tensor); clone() copies data.
// Views (reshape, rows) share storage but are distinct tensors to autograd.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace dtrain {

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2, 3)"

// A block of memory on one device; returned to its allocator when the last tensor using
// it goes away.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor;
// Called once per backward pass when a parameter's gradient is final (every use of the
// parameter on the tape has been processed). The argument is the parameter.
using GradReadyHook = std::function<void(const Tensor& param)>;
// Identifies one registered hook, for removal by its owner (e.g. the Reducer's destructor)
// without touching hooks others registered. 0 is never a valid handle.
using GradReadyHookHandle = uint64_t;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset_bytes = 0;
  Shape shape;
  DType dtype = DType::F32;
  // autograd
  bool requires_grad = false;
  bool is_leaf = true;  // false for outputs of recorded ops
  std::shared_ptr<TensorImpl> grad;
  std::vector<GradReadyHook> ready_hooks;
  std::vector<GradReadyHookHandle> ready_hook_handles;  // parallel to ready_hooks
  GradReadyHookHandle next_ready_hook_handle = 1;
};

class Tensor {
 public:
  Tensor() = default;  // undefined
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu()) {
    return full(shape, 1.0, dtype, device);
  }
  // Copies host values; values.size() must equal shape_numel(shape).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
  // A 0-dimensional tensor holding one value.
  static Tensor scalar(double value, DType dtype = DType::F32, Device device = Device::cpu());

  // ---- properties ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t ndim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "f32(2, 3) on cpu"

  // Typed pointer to the first element (device memory for CUDA tensors). Throws
  // ValueError when T does not match the dtype.
  template <typename T> T* data() const;
  void* raw_data() const;

  // ---- data movement (never recorded by autograd) ----
  Tensor to(Device device) const;  // same tensor when already there
  Tensor to(DType dtype) const;    // converted copy (same tensor when already that dtype)
  Tensor clone() const;
  // Copies src's values into this tensor (same dtype and element count, any devices).
  void copy_(const Tensor& src) const;
  void fill_(double value) const;
  void zero_() const { fill_(0.0); }
  template <typename T> std::vector<T> to_vector() const;  // host copy of the values
  template <typename T> T item() const;                     // the value of a 1-element tensor

  // ---- views (share storage) ----
  // Same data with another shape; one dim may be -1. Recorded by autograd in grad mode.
  Tensor reshape(const Shape& shape) const;
  // Rows [start, start + length) along dim 0, sharing storage. Not differentiable.
  Tensor rows(int64_t start, int64_t length) const;
  // A tensor sharing data and shape with this one but no autograd history or grad.
  Tensor detach() const;

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  // Marks a leaf as a parameter to differentiate with respect to. Returns *this.
  Tensor& set_requires_grad(bool value);
  bool is_leaf() const { return impl().is_leaf; }
  // The accumulated gradient (undefined until a backward reaches this leaf).
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& grad);
  void zero_grad();  // zeros the gradient in place (keeps its memory)
  // Hooks fire in registration order (core/autograd.h, Note [Ready-hooks]).
  GradReadyHookHandle register_grad_ready_hook(GradReadyHook hook);
  // Removes the hook `handle` names; false when it is not (or no longer) registered.
  bool remove_grad_ready_hook(GradReadyHookHandle handle);
  void clear_grad_ready_hooks();

  // Identity (two handles to the same tensor compare equal).
  TensorImpl* id() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  TensorImpl& impl() const {
    DT_CHECK(impl_ != nullptr, "use of an undefined Tensor");
    return *impl_;
  }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace dtrain
