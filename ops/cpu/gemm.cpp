// gemm on the CPU through OpenBLAS (CBLAS, row-major):
//   C = alpha * op(A) @ op(B) + beta * C     op(A): (M, K), op(B): (K, N), C: (M, N)
// A is stored (M, K) with row stride lda, or (K, M) when trans_a; B likewise.
// m or n == 0 is a no-op; k == 0 gives C = beta * C (C = 0 when beta == 0) without
// calling BLAS, whose stride checks reject the empty operands.
#include <cblas.h>

#include "ops/common/gemm_checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"

namespace dtrain::ops::cpu {

namespace {

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a, int lda,
               const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc, Exec) {
  detail::check_gemm("cpu::gemm", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t col = 0; col < n; ++col) {
        T& v = c[r * ldc + col];
        v = beta == T(0) ? T(0) : beta * v;
      }
    }
    return;
  }
  blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m),
            static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
            c, static_cast<int>(ldc));
}

DT_INSTANTIATE_KERNELS(DT_GEMM_KERNELS)

}  // namespace dtrain::ops::cpu
