#pragma once
// Precondition checks for gemm, shared by the CPU (OpenBLAS) and CUDA (cuBLAS) versions:
// sizes >= 0 and within int (both BLAS interfaces take int), row strides wide enough for
// the stored matrices, non-null buffers when they are read or written.
#include <algorithm>
#include <climits>
#include <string>

#include "ops/common/checks.h"

namespace dtrain::ops::detail {

inline void check_gemm(const char* kernel, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                       const void* a, int64_t lda, const void* b, int64_t ldb, const void* c, int64_t ldc) {
  check_size(kernel, "m", m);
  check_size(kernel, "n", n);
  check_size(kernel, "k", k);
  auto check_int = [kernel](const char* name, int64_t v) {
    if (v > INT_MAX) invalid(kernel, std::string(name) + " = " + std::to_string(v) + " exceeds the BLAS int range");
  };
  check_int("m", m);
  check_int("n", n);
  check_int("k", k);
  check_int("lda", lda);
  check_int("ldb", ldb);
  check_int("ldc", ldc);
  if (m == 0 || n == 0) return;
  // Row-major: the stored A is (M, K), or (K, M) when transposed; its rows have
  // trans_a ? M : K elements, so lda must be at least that.
  auto check_ld = [kernel](const char* name, int64_t ld, int64_t cols) {
    if (ld < std::max<int64_t>(1, cols)) {
      invalid(kernel, std::string(name) + " = " + std::to_string(ld) + " is smaller than the row length " +
                          std::to_string(cols));
    }
  };
  check_ld("ldc", ldc, n);
  check_ptr(kernel, "c", c, m * n);
  if (k == 0) return;
  check_ld("lda", lda, trans_a ? m : k);
  check_ld("ldb", ldb, trans_b ? k : n);
  check_ptr(kernel, "a", a, m * k);
  check_ptr(kernel, "b", b, k * n);
}

}  // namespace dtrain::ops::detail
