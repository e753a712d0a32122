// The Reducer: see Note [Bucket order] in reducer.h for the protocol. This file keeps
// the per-backward state machine:
//
//   hook(p)      copy grad(p) / world into p's bucket slice; bucket.pending -= 1;
//                launch, in order from next_launch on, every bucket that is complete
//                (Note [Same call order]: the launch order never depends on hook order);
//                poll the launched ones (MPI progresses only inside MPI calls).
//                With options.overlap = false only the copy: finalize() launches all.
//   finalize()   fill the slices of parameters whose hook did not fire (their local
//                gradient, or zeros), launch the rest in order, wait for all, copy the
//                averaged slices back into the gradients, reset for the next backward.
#include "distributed/reducer.h"

#include <chrono>
#include <map>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "core/dispatch.h"

namespace dtrain::dist {
namespace {

// A view of `flat` from element `offset`, with `shape` (shares storage, no autograd).
Tensor slice_view(const Tensor& flat, int64_t offset, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = flat.impl().storage;
  impl->offset_bytes = flat.impl().offset_bytes + static_cast<size_t>(offset) * dtype_size(flat.dtype());
  impl->shape = shape;
  impl->dtype = flat.dtype();
  return Tensor(std::move(impl));
}

// dst = alpha * src on dst's device (current stream), in one pass. dst is never read, so
// a NaN left in a bucket by an earlier step cannot leak into this one.
void scaled_copy(const Tensor& dst, const Tensor& src, double alpha) {
  if (dst.numel() == 0) return;
  dispatch_float(dst.dtype(), "Reducer", [&]<typename T>() {
    DT_KERNEL(dst.device(), affine<T>)(src.data<T>(), dst.data<T>(), static_cast<T>(alpha), T(0), dst.numel(),
                                       exec_for(dst.device()));
  });
}

}  // namespace

struct Reducer::Impl {
  struct Param {
    std::string name;
    Tensor tensor;
    bool reduced = false;  // requires grad: has a bucket slice and a hook
    size_t bucket = 0;
    Tensor slice;  // its elements in the bucket, shaped like the parameter
    GradReadyHookHandle hook = 0;
    bool seen = false;  // its gradient is in the bucket for this backward
  };
  struct Bucket {
    BucketInfo info;
    size_t cap = 0;
    Tensor flat;                  // (total elements) the all-reduce buffer
    std::vector<size_t> members;  // indices into params, in slice order
    size_t pending = 0;           // members whose gradient is not in yet
    WorkPtr work;                 // set once launched
  };

  ProcessGroup& group;
  ReducerOptions options;
  std::vector<Param> params;
  std::vector<Bucket> buckets;
  std::vector<BucketInfo> infos;  // buckets[i].info, for Reducer::buckets()
  bool sync = true;
  size_t next_launch = 0;  // buckets [0, next_launch) are launched
  size_t next_poll = 0;    // buckets [0, next_poll) are known complete
  double last_wait = 0.0;

  Impl(ProcessGroup& g, ReducerOptions o) : group(g), options(o) {}

  void build_layout();
  void on_ready(size_t i);
  void mark_in(size_t i);
  void launch_in_order();
  void poll();
  void finalize();
  void reset();
};

void Reducer::Impl::build_layout() {
  // One open bucket per (dtype, device), filled in reverse registration order (Note
  // [Bucket order]); the first bucket of each (dtype, device) has the small cap. A
  // parameter larger than the cap gets a bucket of its own.
  using Key = std::tuple<DType, DeviceKind, int>;
  std::map<Key, size_t> open;
  for (size_t k = params.size(); k-- > 0;) {
    Param& p = params[k];
    if (!p.reduced) continue;
    const Tensor& t = p.tensor;
    const Key key{t.dtype(), t.device().kind, t.device().index};
    const size_t bytes = t.nbytes();
    auto it = open.find(key);
    if (it == open.end() || buckets[it->second].info.bytes + bytes > buckets[it->second].cap) {
      Bucket b;
      b.cap = it == open.end() ? options.first_bucket_bytes : options.bucket_bytes;
      b.info.dtype = t.dtype();
      b.info.device = t.device();
      open[key] = buckets.size();
      buckets.push_back(std::move(b));
    }
    const size_t bi = open[key];
    Bucket& b = buckets[bi];
    p.bucket = bi;
    b.members.push_back(k);
    b.info.params.push_back(p.name);
    b.info.bytes += bytes;
  }
  for (Bucket& b : buckets) {
    int64_t total = 0;
    for (size_t k : b.members) total += params[k].tensor.numel();
    b.flat = Tensor::zeros({total}, b.info.dtype, b.info.device);
    int64_t offset = 0;
    for (size_t k : b.members) {
      params[k].slice = slice_view(b.flat, offset, params[k].tensor.shape());
      offset += params[k].tensor.numel();
    }
    infos.push_back(b.info);
  }
  reset();
}

void Reducer::Impl::reset() {
  for (Param& p : params) p.seen = false;
  for (Bucket& b : buckets) {
    b.pending = b.members.size();
    b.work.reset();
  }
  next_launch = 0;
  next_poll = 0;
}

void Reducer::Impl::mark_in(size_t i) {
  Param& p = params[i];
  if (p.tensor.grad().defined()) {
    scaled_copy(p.slice, p.tensor.grad(), 1.0 / group.size());
  } else {
    p.slice.zero_();
  }
  p.seen = true;
  --buckets[p.bucket].pending;
}

void Reducer::Impl::on_ready(size_t i) {
  if (!sync) return;  // accumulating locally (set_sync(false))
  DT_CHECK_AS(!params[i].seen, DistributedError, "Reducer: the gradient of '", params[i].name,
              "' became ready twice before finalize(); call finalize() after every synchronizing backward, and "
              "set_sync(false) for the micro-batches that only accumulate");
  mark_in(i);
  if (!options.overlap) return;  // finalize() launches every bucket
  launch_in_order();
  poll();
}

void Reducer::Impl::launch_in_order() {
  while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
    Bucket& b = buckets[next_launch];
    b.work = group.all_reduce(b.flat, ReduceOp::Sum);  // the slices are already divided by the world size
    ++next_launch;
  }
}

void Reducer::Impl::poll() {
  while (next_poll < next_launch && buckets[next_poll].work->is_completed()) ++next_poll;
}

void Reducer::Impl::finalize() {
  if (!sync) return;
  struct ResetOnExit {
    Impl* impl;
    ~ResetOnExit() { impl->reset(); }
  } reset_on_exit{this};
  // Parameters whose hook did not fire (absent from the tape, or sync switched on after
  // backward): their local gradient, or zeros, so every rank reduces every bucket.
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].reduced && !params[i].seen) mark_in(i);
  }
  launch_in_order();
  auto t0 = std::chrono::steady_clock::now();
  for (Bucket& b : buckets) b.work->wait();
  last_wait = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (Param& p : params) {
    if (!p.reduced) continue;
    if (!p.tensor.grad().defined()) {
      p.tensor.set_grad(Tensor::zeros(p.tensor.shape(), p.tensor.dtype(), p.tensor.device()));
    }
    p.tensor.grad().copy_(p.slice);
  }
}

Reducer::Reducer(ProcessGroup& group, nn::NamedTensors params, ReducerOptions options)
    : impl_(std::make_unique<Impl>(group, options)) {
  DT_CHECK(options.first_bucket_bytes > 0 && options.bucket_bytes > 0, "Reducer: bucket caps must be positive");
  std::unordered_map<TensorImpl*, std::string> owners;
  const DeviceKind kind = group.device().kind;
  for (auto& [name, t] : params) {
    DT_CHECK(t.defined(), "Reducer: parameter '", name, "' is undefined");
    auto [it, inserted] = owners.emplace(t.id(), name);
    DT_CHECK(inserted, "Reducer: parameters '", it->second, "' and '", name,
             "' are the same tensor; pass shared parameters once");
    Impl::Param p;
    p.name = name;
    p.tensor = t;
    p.reduced = t.requires_grad() && t.is_leaf();
    if (p.reduced) {
      DT_CHECK(t.device().kind == kind, "Reducer: parameter '", name, "' is ", t.str(), " but the ", group.backend(),
               " group reduces ", group.device().kind, " tensors; move the model to the group's device");
    }
    impl_->params.push_back(std::move(p));
  }
  impl_->build_layout();
  Impl* impl = impl_.get();
  for (size_t i = 0; i < impl->params.size(); ++i) {
    Impl::Param& p = impl->params[i];
    if (p.reduced) p.hook = p.tensor.register_grad_ready_hook([impl, i](const Tensor&) { impl->on_ready(i); });
  }
}

Reducer::~Reducer() {
  for (Impl::Param& p : impl_->params) {
    if (p.hook) p.tensor.remove_grad_ready_hook(p.hook);
  }
}

void Reducer::broadcast_from_rank0(const nn::NamedTensors& buffers) {
  std::vector<WorkPtr> works;
  for (const Impl::Param& p : impl_->params) works.push_back(impl_->group.broadcast(p.tensor, 0));
  for (const auto& [name, t] : buffers) {
    if (t.defined()) works.push_back(impl_->group.broadcast(t, 0));
  }
  for (WorkPtr& w : works) w->wait();
}

void Reducer::set_sync(bool sync) { impl_->sync = sync; }
bool Reducer::sync() const { return impl_->sync; }
void Reducer::finalize() { impl_->finalize(); }
const std::vector<BucketInfo>& Reducer::buckets() const { return impl_->infos; }
double Reducer::last_wait_seconds() const { return impl_->last_wait; }

std::string Reducer::layout() const {
  std::ostringstream os;
  for (size_t i = 0; i < impl_->infos.size(); ++i) {
    const BucketInfo& b = impl_->infos[i];
    // The device kind, not its index: ranks on different GPUs of a node must agree.
    os << "bucket " << i << ": " << b.params.size() << " params, " << b.bytes << " bytes, " << dtype_name(b.dtype)
       << " on " << b.device.kind << ":";
    for (size_t k = 0; k < b.params.size(); ++k) os << (k ? ", " : " ") << b.params[k];
    os << "\n";
  }
  return os.str();
}

}  // namespace dtrain::dist
