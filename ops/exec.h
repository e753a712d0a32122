#pragma once
// Where an ops kernel runs. ops/ is the floor of dtrain: it knows raw typed buffers,
// explicit sizes and this handle, nothing of Tensor, autograd or MPI.
//
// CPU kernels ignore the CUDA fields (they run synchronously on the calling thread;
// BLAS and oneDNN threads are their own). CUDA kernels launch on `stream` (a
// cudaStream_t), use `blas` (a cublasHandle_t) and `dnn` (a cudnnHandle_t), both already
// bound to that stream, and take temporary device memory from scratch().
#include <cstddef>

namespace dtrain::ops {

struct Exec {
  void* stream = nullptr;  // cudaStream_t, nullptr = legacy default stream
  void* blas = nullptr;    // cublasHandle_t bound to `stream`
  void* dnn = nullptr;     // cudnnHandle_t bound to `stream`
  // Scratch memory of at least `bytes`, valid for work enqueued on `stream` until the
  // next scratch() call through the same owner (stream order makes reuse safe). Null
  // when the caller provides none (CPU kernels allocate their own).
  void* (*scratch_fn)(void* owner, size_t bytes) = nullptr;
  void* scratch_owner = nullptr;

  void* scratch(size_t bytes) const { return scratch_fn ? scratch_fn(scratch_owner, bytes) : nullptr; }
};

}  // namespace dtrain::ops
