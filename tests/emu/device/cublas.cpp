// The emulated device's cuBLAS (tests/emu/shim/cublas_v2.h): handles and the two GEMMs
// dtrain calls. It tests how dtrain calls cuBLAS, not cuBLAS.
//
// Note [Emulated cuBLAS]
// - A handle belongs to the device current at cublasCreate and holds a stream (nullptr,
//   the legacy default stream, until cublasSetStream) and a pointer mode. A null or
//   destroyed handle gives CUBLAS_STATUS_NOT_INITIALIZED.
// - A GEMM checks what cuBLAS documents (sizes, operations, leading dimensions, scalars;
//   CUBLAS_STATUS_INVALID_VALUE) and, beyond what cuBLAS can check, that A, B and C are
//   device memory of the device of the handle's stream covering the column-major extent
//   the call reads or writes (ld * (cols - 1) + rows elements). A GPU would fault later,
//   or read whatever lies there; here the call prints what is wrong on stderr, naming the
//   call and the argument, and returns CUBLAS_STATUS_INVALID_VALUE, so the caller's
//   status check throws at the faulty call.
// - Host pointer mode only: alpha and beta are read during the call, so the caller may
//   reuse them as soon as it returns (as cuBLAS allows). Device pointer mode, which
//   dtrain does not use, is CUBLAS_STATUS_NOT_SUPPORTED.
// - The product runs later, in stream order on the stream's worker thread, through the
//   CPU BLAS (CBLAS, column-major as cuBLAS), so a caller that reads C before
//   synchronising sees what a GPU would show: C before the product.
// - k == 0 gives C = beta C, and beta == 0 writes C without reading it (NaN in C does not
//   survive), as cuBLAS documents; m == 0 or n == 0 does nothing.
#include <cublas_v2.h>

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_set>
#include <utility>

#include "tests/emu/device/device.h"

struct cublasContext {
  int device = 0;  // the device current at cublasCreate
  cudaStream_t stream = nullptr;
  cublasPointerMode_t mode = CUBLAS_POINTER_MODE_HOST;
};

namespace dtrain::emu::device {
namespace {

// Live handles: a destroyed handle is recognised as such rather than used after free.
std::mutex handles_mutex;
std::unordered_set<const cublasContext*> live_handles;

bool live(cublasHandle_t h) {
  if (h == nullptr) return false;
  std::lock_guard<std::mutex> lock(handles_mutex);
  return live_handles.count(h) > 0;
}

void report(const char* call, const std::string& what) { std::cerr << call << ": " << what << '\n'; }

std::string hex(const void* p) {
  std::ostringstream s;
  s << p;
  return s.str();
}

// A handle argument that is not live: NOT_INITIALIZED, with the reason on stderr.
cublasStatus_t not_initialized(const char* call, cublasHandle_t h) {
  report(call, h == nullptr ? std::string("the handle is null")
                            : "handle " + hex(h) + " is not a live cuBLAS handle (destroyed, or never created)");
  return CUBLAS_STATUS_NOT_INITIALIZED;
}

const char* op_name(cublasOperation_t op) {
  switch (op) {
    case CUBLAS_OP_N:
      return "CUBLAS_OP_N";
    case CUBLAS_OP_T:
      return "CUBLAS_OP_T";
    case CUBLAS_OP_C:
      return "CUBLAS_OP_C";
  }
  return "an invalid cublasOperation_t";
}

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// For real matrices the conjugate transpose is the transpose.
CBLAS_TRANSPOSE cblas_op(cublasOperation_t op) { return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; }

// Bytes spanned by a column-major (rows, cols) matrix with leading dimension ld, both > 0.
// Saturates instead of overflowing: no allocation is that large, so require_device refuses it.
size_t extent_bytes(int64_t rows, int64_t cols, int64_t ld, size_t elem) {
  const uint64_t elems = static_cast<uint64_t>(ld) * static_cast<uint64_t>(cols - 1) + static_cast<uint64_t>(rows);
  return elems > SIZE_MAX / elem ? SIZE_MAX : static_cast<size_t>(elems) * elem;
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a, int lda,
               const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasColMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The documented preconditions of ?gemm; the first violation, or an empty string.
std::string precondition_error(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha,
                               int lda, int ldb, const void* beta, int ldc) {
  if (!valid_op(ta)) return "transa = " + std::to_string(static_cast<int>(ta)) + " is not a cublasOperation_t";
  if (!valid_op(tb)) return "transb = " + std::to_string(static_cast<int>(tb)) + " is not a cublasOperation_t";
  if (m < 0 || n < 0 || k < 0) {
    return "sizes must be >= 0, got m = " + std::to_string(m) + ", n = " + std::to_string(n) +
           ", k = " + std::to_string(k);
  }
  // `why` says where the stored matrix's row count comes from.
  auto ld_error = [](const char* name, int ld, int rows, const std::string& why) {
    const int need = std::max(1, rows);
    if (ld >= need) return std::string();
    return std::string(name) + " = " + std::to_string(ld) + " is smaller than max(1, " + std::to_string(rows) +
           "), the rows of the stored matrix (" + why + ")";
  };
  for (const std::string& e : {ld_error("lda", lda, ta == CUBLAS_OP_N ? m : k, std::string("transa = ") + op_name(ta)),
                               ld_error("ldb", ldb, tb == CUBLAS_OP_N ? k : n, std::string("transb = ") + op_name(tb)),
                               ld_error("ldc", ldc, m, "C is m x n")}) {
    if (!e.empty()) return e;
  }
  if (alpha == nullptr) return "alpha is null";
  if (beta == nullptr) return "beta is null";
  return {};
}

// Note [Emulated cuBLAS]: checks, then the product on the handle's stream.
template <typename T>
cublasStatus_t gemm(const char* call, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const T* alpha, const T* a, int lda, const T* b, int ldb, const T* beta, T* c, int ldc) {
  if (!live(h)) return not_initialized(call, h);
  if (h->mode != CUBLAS_POINTER_MODE_HOST) {
    report(call, "CUBLAS_POINTER_MODE_DEVICE is not emulated: alpha and beta must be host scalars");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (const std::string e = precondition_error(ta, tb, m, n, k, alpha, lda, ldb, beta, ldc); !e.empty()) {
    report(call, e);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  try {
    // Host pointer mode: a scalar in device memory is a caller's mix-up (and unreadable here).
    for (const auto& [name, p] : {std::pair{"alpha", alpha}, std::pair{"beta", beta}}) {
      if (classify(call, p, sizeof(T)).kind == Kind::Device) {
        report(call, std::string(name) + " (" + hex(p) + ") is device memory; host pointer mode needs a host scalar");
        return CUBLAS_STATUS_INVALID_VALUE;
      }
    }
    const int device = stream_device(h->stream);
    if (device != h->device) {
      report(call, "the handle belongs to cuda:" + std::to_string(h->device) + " but its stream " + hex(h->stream) +
                       " to cuda:" + std::to_string(device));
      return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (k > 0) {  // A and B are read only when the sum is not empty
      require_device(call, "A", a, extent_bytes(ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, sizeof(T)),
                     device);
      require_device(call, "B", b, extent_bytes(tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, sizeof(T)),
                     device);
    }
    require_device(call, "C", c, extent_bytes(m, n, ldc, sizeof(T)), device);
  } catch (const Error& e) {
    std::cerr << e.what() << '\n';
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const T al = *alpha, be = *beta;  // read now, not when the product runs
  try {
    enqueue(h->stream, call, [=] {
      if (be == T(0)) {  // C need not hold numbers: write it without reading it
        for (int j = 0; j < n; ++j) std::fill_n(c + static_cast<int64_t>(j) * ldc, m, T(0));
      }
      if (k == 0) {
        if (be != T(0)) {
          for (int j = 0; j < n; ++j) {
            T* col = c + static_cast<int64_t>(j) * ldc;
            for (int i = 0; i < m; ++i) col[i] *= be;
          }
        }
        return;
      }
      blas_gemm(cblas_op(ta), cblas_op(tb), m, n, k, al, a, lda, b, ldb, be, c, ldc);
    });
  } catch (const Error& e) {
    std::cerr << e.what() << '\n';
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace
}  // namespace dtrain::emu::device

namespace dev = dtrain::emu::device;

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "<unknown>";
}

// cuBLAS's own wording.
const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
  }
  return "unknown error";
}

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* h = new cublasContext;
  try {
    h->device = dev::current();
  } catch (const dev::Error& e) {
    std::cerr << "cublasCreate: " << e.what() << '\n';
    delete h;
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  {
    std::lock_guard<std::mutex> lock(dev::handles_mutex);
    dev::live_handles.insert(h);
  }
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  bool was_live = false;
  {
    std::lock_guard<std::mutex> lock(dev::handles_mutex);
    was_live = handle != nullptr && dev::live_handles.erase(handle) > 0;
  }
  if (!was_live) return dev::not_initialized("cublasDestroy", handle);
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!dev::live(handle)) return dev::not_initialized("cublasSetStream", handle);
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
  if (!dev::live(handle)) return dev::not_initialized("cublasGetStream", handle);
  if (stream == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode(cublasHandle_t handle, cublasPointerMode_t mode) {
  if (!dev::live(handle)) return dev::not_initialized("cublasSetPointerMode", handle);
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
  handle->mode = mode;  // device mode is refused by the calls that would read the scalars
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc) {
  return dev::gemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

cublasStatus_t cublasDgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const double* alpha, const double* A, int lda, const double* B, int ldb,
                           const double* beta, double* C, int ldc) {
  return dev::gemm("cublasDgemm", handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
