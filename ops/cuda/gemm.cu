// gemm on CUDA through cuBLAS, the twin of ops/cpu/gemm.cpp:
//   C = alpha op(A) op(B) + beta C   op(A): (M, K), op(B): (K, N), C: (M, N)
//
// gemm is row-major over column-major cuBLAS: a row-major (R, S) matrix with row stride
// ld is the column-major (S, R) matrix with leading dimension ld, its transpose. So
// C^T = op(B)^T op(A)^T is one column-major gemm with B first and m, n swapped. The
// handle ex.blas must be bound to ex.stream with CUBLAS_POINTER_MODE_HOST (the default);
// alpha and beta are host scalars. k == 0 gives C = beta C (0 when beta == 0) without
// calling cuBLAS (detail::scale_matrix: the file's only kernel lives with the elementwise
// ones, so that this file holds library calls alone and the emulator can run that kernel).
#include <cublas_v2.h>

#include "ops/common/gemm_checks.h"
#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("dtrain::ops::cuda::gemm: ") + call + " failed: " +
                             cublasGetStatusString(status));
  }
}

void blas_gemm(cublasHandle_t h, cublasOperation_t ob, cublasOperation_t oa, int n, int m, int k, const float* alpha,
               const float* b, int ldb, const float* a, int lda, const float* beta, float* c, int ldc) {
  check_cublas(cublasSgemm(h, ob, oa, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc), "cublasSgemm");
}

void blas_gemm(cublasHandle_t h, cublasOperation_t ob, cublasOperation_t oa, int n, int m, int k,
               const double* alpha, const double* b, int ldb, const double* a, int lda, const double* beta, double* c,
               int ldc) {
  check_cublas(cublasDgemm(h, ob, oa, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc), "cublasDgemm");
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc, Exec ex) {
  if (ex.blas == nullptr) invalid("cuda::gemm", "ex.blas is null; pass a cublasHandle_t bound to ex.stream");
  ::dtrain::ops::detail::check_gemm("cuda::gemm", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    scale_matrix(c, m, n, ldc, beta, ex);  // ops/cuda/elementwise.cu
    return;
  }
  // Column-major view: C^T (N, M) = op(B)^T (N, K) @ op(A)^T (K, M).
  blas_gemm(static_cast<cublasHandle_t>(ex.blas), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
            &alpha, b, static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c, static_cast<int>(ldc));
}

DT_INSTANTIATE_KERNELS(DT_GEMM_KERNELS)

}  // namespace dtrain::ops::cuda
