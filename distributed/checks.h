#pragma once
// Argument checks shared by the ProcessGroup backends, so every backend rejects the same
// calls with the same messages.
#include "core/tensor.h"
#include "distributed/process_group.h"

namespace dtrain::dist::detail {

// `t` is defined, contiguous storage on a device of kind `kind` (the backend's).
void check_tensor(const char* backend, const char* op, const Tensor& t, DeviceKind kind);
// all_reduce: f32/f64/i32/i64/u8 (bf16 too when `allow_bf16`); Average on floating types only.
void check_reduce(const char* backend, const Tensor& t, ReduceOp op, DeviceKind kind, bool allow_bf16 = false);
void check_broadcast(const char* backend, const Tensor& t, int root, int size, DeviceKind kind);
void check_all_gather(const char* backend, const Tensor& in, const Tensor& out, int size, DeviceKind kind);

// A Work that completed when it was made (threads backend, empty tensors).
class CompletedWork : public Work {
 public:
  bool is_completed() override { return true; }
  void wait() override {}
};

// y = alpha * y in place on y's device (the current stream for CUDA tensors).
void scale_in_place(const Tensor& y, double alpha);

}  // namespace dtrain::dist::detail
