#include "distributed/checks.h"

#include "core/dispatch.h"

namespace dtrain::dist {

std::string reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Average: return "average";
    case ReduceOp::Max: return "max";
  }
  return "?";
}

namespace detail {

void check_tensor(const char* backend, const char* op, const Tensor& t, DeviceKind kind) {
  DT_CHECK(t.defined(), backend, " ", op, ": undefined tensor");
  if (t.device().kind != kind) {
    if (kind == DeviceKind::CPU) {
      DT_THROW(ValueError, backend, " ", op, ": ", t.str(), " is a CUDA tensor, but the ", backend,
               " backend works on CPU tensors only (this MPI is not CUDA-aware); use the NCCL group for GPU "
               "tensors, or copy to the CPU first");
    }
    DT_THROW(ValueError, backend, " ", op, ": ", t.str(), " is a CPU tensor, but the ", backend,
             " backend works on CUDA tensors only; use the MPI group for CPU tensors, or move it to the GPU first");
  }
}

void check_reduce(const char* backend, const Tensor& t, ReduceOp op, DeviceKind kind, bool allow_bf16) {
  check_tensor(backend, "all_reduce", t, kind);
  DType d = t.dtype();
  DT_CHECK(d != DType::BF16 || allow_bf16, backend, " all_reduce: ", t.str(),
           ": bf16 is not supported by this backend; reduce in f32");
  DT_CHECK(op != ReduceOp::Average || is_floating(d), backend, " all_reduce: average of the integer tensor ", t.str(),
           " is not defined; use sum and divide");
}

void check_broadcast(const char* backend, const Tensor& t, int root, int size, DeviceKind kind) {
  check_tensor(backend, "broadcast", t, kind);
  DT_CHECK(root >= 0 && root < size, backend, " broadcast: root ", root, " is not a rank of a group of ", size);
}

void check_all_gather(const char* backend, const Tensor& in, const Tensor& out, int size, DeviceKind kind) {
  check_tensor(backend, "all_gather", in, kind);
  check_tensor(backend, "all_gather", out, kind);
  DT_CHECK(in.dtype() == out.dtype(), backend, " all_gather: dtypes differ, in ", in.str(), ", out ", out.str());
  DT_CHECK(out.numel() == in.numel() * size, backend, " all_gather: out ", out.str(), " must hold ", size, " x ",
           in.numel(), " elements (one `in` per rank)");
  DT_CHECK(in.device() == out.device(), backend, " all_gather: in ", in.str(), " and out ", out.str(),
           " are on different devices");
}

void scale_in_place(const Tensor& y, double alpha) {
  if (y.numel() == 0) return;
  dispatch_float(y.dtype(), "scale_in_place", [&]<typename T>() {
    DT_KERNEL(y.device(), affine<T>)(y.data<T>(), y.data<T>(), static_cast<T>(alpha), T(0), y.numel(),
                                     exec_for(y.device()));
  });
}

}  // namespace detail
}  // namespace dtrain::dist
