#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "core/allocator.h"
#include "core/dispatch.h"
#include "core/functional.h"
#include "core/runtime.h"

namespace dtrain {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = device.is_cuda() ? cuda_allocator(device.index).allocate(bytes) : cpu_allocate(bytes);
}

Storage::~Storage() {
  if (device_.is_cuda()) {
    cuda_allocator(device_.index).deallocate(data_);
  } else {
    cpu_deallocate(data_);
  }
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) DT_CHECK(d >= 0, "Tensor::empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(0.0);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  DT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "Tensor::from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>, device);
  if (device.is_cuda()) {
    // On the thread's stream: t's block may have been freed by a tensor that work queued
    // there still reads (Note [Caching allocator and streams]); a blocking copy would run
    // on the legacy stream, unordered with it. From pageable memory the copy takes the
    // values before returning, so `values` may go.
    cuda::memcpy(t.raw_data(), device, values.data(), Device::cpu(), t.nbytes(), cuda::thread_stream(device.index));
  } else if (!values.empty()) {
    std::memcpy(t.raw_data(), values.data(), t.nbytes());
  }
  return t;
}

int64_t Tensor::size(int64_t dim) const {
  int64_t n = ndim();
  int64_t d = dim < 0 ? dim + n : dim;
  DT_CHECK(d >= 0 && d < n, "Tensor::size: dim ", dim, " out of range for ", str());
  return impl().shape[static_cast<size_t>(d)];
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return dtype_name(dtype()) + shape_str(shape()) + " on " + device().str();
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset_bytes;
}

template <typename T>
T* Tensor::data() const {
  DT_CHECK(dtype() == dtype_of<T>, "Tensor::data: requested ", dtype_name(dtype_of<T>), " from a ", str(), " tensor");
  return static_cast<T*>(raw_data());
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = empty(shape(), dtype(), device);
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target, device());
  int64_t n = numel();
  Device dev = device();
  dispatch_any(dtype(), [&]<typename S>() {
    dispatch_any(target, [&]<typename D>() {
      if constexpr (!std::is_same_v<S, D>) {
        DT_KERNEL(dev, convert<S, D>)(data<S>(), out.data<D>(), n, exec_for(dev));
      }
    });
  });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

void Tensor::copy_(const Tensor& src) const {
  DT_CHECK(src.dtype() == dtype(), "Tensor::copy_: dtype mismatch, ", src.str(), " into ", str());
  DT_CHECK(src.numel() == numel(), "Tensor::copy_: element count mismatch, ", src.str(), " into ", str());
  if (nbytes() == 0 || src.raw_data() == raw_data()) return;
  if (device().is_cpu() && src.device().is_cpu()) {
    std::memcpy(raw_data(), src.raw_data(), nbytes());
    return;
  }
  // Any copy touching a device is ordered on the current stream of that device; a copy
  // to the host waits for it so the values can be read at once.
  Device dev = device().is_cuda() ? device() : src.device();
  void* stream = cuda::thread_stream(dev.index);
  cuda::memcpy(raw_data(), device(), src.raw_data(), src.device(), nbytes(), stream);
  if (device().is_cpu()) cuda::stream_synchronize(stream, dev.index);
}

void Tensor::fill_(double value) const {
  int64_t n = numel();
  if (n == 0) return;
  Device dev = device();
  if (dtype() == DType::F32 || dtype() == DType::F64) {
    dispatch_float(dtype(), "fill_", [&]<typename T>() {
      DT_KERNEL(dev, fill<T>)(data<T>(), static_cast<T>(value), n, exec_for(dev));
    });
    return;
  }
  // Other dtypes: fill in f64 and convert.
  Tensor tmp = full(shape(), value, DType::F64, dev);
  copy_(tmp.to(dtype()));
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  DT_CHECK(dtype() == dtype_of<T>, "Tensor::to_vector: requested ", dtype_name(dtype_of<T>), " from ", str());
  std::vector<T> out(static_cast<size_t>(numel()));
  if (out.empty()) return out;
  if (device().is_cpu()) {
    std::memcpy(out.data(), raw_data(), nbytes());
  } else {
    void* stream = cuda::thread_stream(device().index);
    cuda::memcpy(out.data(), Device::cpu(), raw_data(), device(), nbytes(), stream);
    cuda::stream_synchronize(stream, device().index);
  }
  return out;
}

template <typename T>
T Tensor::item() const {
  DT_CHECK(numel() == 1, "Tensor::item: tensor ", str(), " has ", numel(), " elements, not 1");
  return to_vector<T>()[0];
}

Tensor Tensor::reshape(const Shape& shape) const { return fn::reshape(*this, shape); }

Tensor Tensor::rows(int64_t start, int64_t length) const {
  DT_CHECK(ndim() >= 1, "Tensor::rows: needs at least one dimension, got ", str());
  DT_CHECK(start >= 0 && length >= 0 && start + length <= size(0), "Tensor::rows: [", start, ", ", start + length,
           ") out of range for ", str());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = this->impl().storage;
  Shape s = shape();
  int64_t row_elems = s[0] ? numel() / s[0] : 0;
  impl->offset_bytes = this->impl().offset_bytes + static_cast<size_t>(start * row_elems) * dtype_size(dtype());
  s[0] = length;
  impl->shape = s;
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = this->impl().storage;
  impl->offset_bytes = this->impl().offset_bytes;
  impl->shape = shape();
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor& Tensor::set_requires_grad(bool value) {
  DT_CHECK(is_leaf(), "set_requires_grad: only leaf tensors (not outputs of recorded ops) can be marked; use detach()");
  DT_CHECK(!value || dtype() == DType::F32 || dtype() == DType::F64,
           "set_requires_grad: only f32/f64 tensors can require gradients, got ", str());
  impl().requires_grad = value;
  return *this;
}

void Tensor::set_grad(const Tensor& grad) {
  if (grad.defined()) {
    DT_CHECK(grad.shape() == shape() && grad.dtype() == dtype() && grad.device() == device(),
             "set_grad: gradient ", grad.str(), " does not match tensor ", str());
  }
  impl().grad = grad.impl_ptr();
}

void Tensor::zero_grad() {
  if (impl().grad) Tensor(impl().grad).zero_();
}

GradReadyHookHandle Tensor::register_grad_ready_hook(GradReadyHook hook) {
  DT_CHECK(is_leaf() && requires_grad(), "register_grad_ready_hook: only leaves that require grad have ready-hooks");
  TensorImpl& t = impl();
  t.ready_hooks.push_back(std::move(hook));
  t.ready_hook_handles.push_back(t.next_ready_hook_handle);
  return t.next_ready_hook_handle++;
}

bool Tensor::remove_grad_ready_hook(GradReadyHookHandle handle) {
  TensorImpl& t = impl();
  for (size_t i = 0; i < t.ready_hook_handles.size(); ++i) {
    if (t.ready_hook_handles[i] == handle) {
      t.ready_hooks.erase(t.ready_hooks.begin() + static_cast<std::ptrdiff_t>(i));
      t.ready_hook_handles.erase(t.ready_hook_handles.begin() + static_cast<std::ptrdiff_t>(i));
      return true;
    }
  }
  return false;
}

void Tensor::clear_grad_ready_hooks() {
  impl().ready_hooks.clear();
  impl().ready_hook_handles.clear();
}

#define DT_INSTANTIATE(T)                                                                        \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, const Shape&, Device);           \
  template T* Tensor::data<T>() const;                                                           \
  template std::vector<T> Tensor::to_vector<T>() const;                                          \
  template T Tensor::item<T>() const;
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
DT_INSTANTIATE(ops::bf16)
DT_INSTANTIATE(int32_t)
DT_INSTANTIATE(int64_t)
DT_INSTANTIATE(uint8_t)
#undef DT_INSTANTIATE

}  // namespace dtrain
