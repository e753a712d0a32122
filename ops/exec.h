#pragma once
// Where an ops kernel runs. ops/ is the floor of dtrain: it knows raw typed buffers,
// explicit sizes and this handle, nothing of Tensor, autograd or MPI.
//
// CPU kernels ignore both fields (they run synchronously on the calling thread; BLAS
// threads come from OpenBLAS). CUDA kernels launch on `stream` (a cudaStream_t) and use
// `blas` (a cublasHandle_t already bound to that stream) for GEMMs.

namespace dtrain::ops {

struct Exec {
  void* stream = nullptr;  // cudaStream_t, nullptr = legacy default stream
  void* blas = nullptr;    // cublasHandle_t bound to `stream`
};

}  // namespace dtrain::ops
