// The emulated device's cuBLAS and cuDNN shims (Note [Emulated cuBLAS] in cublas.cpp,
// Note [Emulated cuDNN] in cudnn.cpp), driven through the CUDA runtime API alone: results
// against naive loops and the ops::cpu twins, alpha and beta, every precondition the shims
// check, and the algorithm lists conv.cu ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

// After the standard headers: the shim's cuda_runtime.h defines __noinline__ as a macro, as
// CUDA's headers do, and libstdc++'s <memory> spells an attribute __noinline__.
#include <cublas_v2.h>
#include <cudnn.h>

#include "ops/cpu.h"

namespace dtrain::emu::device {
namespace {

template <typename T>
std::vector<T> random_vec(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(gen));
  return v;
}

template <typename T>
double tolerance() {
  return sizeof(T) == sizeof(float) ? 1e-5 : 1e-12;
}

template <typename T>
::testing::AssertionResult close(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (!(std::fabs(g - w) <= tolerance<T>() * (1.0 + std::fabs(w)))) {
      return ::testing::AssertionFailure() << "[" << i << "] got " << g << ", want " << w;
    }
  }
  return ::testing::AssertionSuccess();
}

// cudaMalloc'd memory; the host sees it only through cudaMemcpy.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)), cudaSuccess);
  }
  explicit DeviceArray(const std::vector<T>& v) : DeviceArray(v.size()) { upload(v); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(p_); }

  void upload(const std::vector<T>& v) {
    ASSERT_EQ(v.size(), n_);
    ASSERT_EQ(cudaMemcpy(p_, v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> v(n_);
    EXPECT_EQ(cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  size_t n_;
  T* p_ = nullptr;
};

// A non-blocking stream, so that nothing synchronises with the work but the test itself.
class Stream {
 public:
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), cudaSuccess); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { cudaStreamDestroy(s_); }
  void sync() const { ASSERT_EQ(cudaStreamSynchronize(s_), cudaSuccess); }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// Makes `device` current for its lifetime, then device 0 again (also when a test fails).
class OnDevice {
 public:
  explicit OnDevice(int device) { EXPECT_EQ(cudaSetDevice(device), cudaSuccess); }
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;
  ~OnDevice() { cudaSetDevice(0); }
};

bool has_two_devices() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n >= 2;
}

// ---- cuBLAS ------------------------------------------------------------------------------

class Blas {
 public:
  explicit Blas(cudaStream_t s) {
    EXPECT_EQ(cublasCreate(&h_), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasSetStream(h_, s), CUBLAS_STATUS_SUCCESS);
  }
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  ~Blas() { cublasDestroy(h_); }
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta, float* c,
                    int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const double* alpha, const double* a, int lda, const double* b, int ldb, const double* beta,
                    double* c, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C = alpha op(A) op(B) + beta C, column-major, in double; beta == 0 ignores C.
template <typename T>
std::vector<T> reference_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, T alpha,
                              const std::vector<T>& a, int lda, const std::vector<T>& b, int ldb, T beta,
                              std::vector<T> c, int ldc) {
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      double sum = 0;
      for (int p = 0; p < k; ++p) {
        const double av = ta == CUBLAS_OP_N ? a[i + p * lda] : a[p + i * lda];
        const double bv = tb == CUBLAS_OP_N ? b[p + j * ldb] : b[j + p * ldb];
        sum += av * bv;
      }
      T& out = c[i + j * ldc];
      out = static_cast<T>(alpha * sum + (beta == T(0) ? 0.0 : double(beta) * out));
    }
  }
  return c;
}

template <typename T>
class EmuCublas : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(EmuCublas, Types);

// Every transpose combination (CUBLAS_OP_C is the transpose for real matrices), odd sizes
// and leading dimensions wider than the matrices.
TYPED_TEST(EmuCublas, GemmAllTransposes) {
  using T = TypeParam;
  Stream s;
  Blas blas(s.get());
  struct Size {
    int m, n, k;
  };
  for (const Size sz : {Size{5, 7, 3}, Size{33, 17, 65}, Size{1, 1, 1}}) {
    for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C}) {
      for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
        SCOPED_TRACE("m " + std::to_string(sz.m) + " n " + std::to_string(sz.n) + " k " + std::to_string(sz.k) +
                     " transa " + std::to_string(ta) + " transb " + std::to_string(tb));
        const int a_rows = ta == CUBLAS_OP_N ? sz.m : sz.k, a_cols = ta == CUBLAS_OP_N ? sz.k : sz.m;
        const int b_rows = tb == CUBLAS_OP_N ? sz.k : sz.n, b_cols = tb == CUBLAS_OP_N ? sz.n : sz.k;
        const int lda = a_rows + 2, ldb = b_rows + 1, ldc = sz.m + 3;
        const auto a = random_vec<T>(static_cast<size_t>(lda) * a_cols, 1);
        const auto b = random_vec<T>(static_cast<size_t>(ldb) * b_cols, 2);
        const auto c = random_vec<T>(static_cast<size_t>(ldc) * sz.n, 3);
        DeviceArray<T> da(a), db(b), dc(c);
        const T alpha = T(1.5), beta = T(-0.5);
        ASSERT_EQ(
            gemm(blas.get(), ta, tb, sz.m, sz.n, sz.k, &alpha, da.get(), lda, db.get(), ldb, &beta, dc.get(), ldc),
            CUBLAS_STATUS_SUCCESS);
        s.sync();
        EXPECT_TRUE(
            close(dc.download(), reference_gemm(ta, tb, sz.m, sz.n, sz.k, alpha, a, lda, b, ldb, beta, c, ldc)));
      }
    }
  }
}

// beta == 0 writes C without reading it (NaN does not survive), also for k == 0; k == 0
// with beta != 0 scales C; m == 0 or n == 0 touches nothing, not even null pointers.
TYPED_TEST(EmuCublas, AlphaBeta) {
  using T = TypeParam;
  Stream s;
  Blas blas(s.get());
  const int m = 6, n = 5, k = 4;
  const auto a = random_vec<T>(m * k, 4), b = random_vec<T>(k * n, 5), c = random_vec<T>(m * n, 6);
  const std::vector<T> nan(m * n, std::numeric_limits<T>::quiet_NaN());
  DeviceArray<T> da(a), db(b), dc(nan);
  const T two = 2, zero = 0;
  ASSERT_EQ(gemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &two, da.get(), m, db.get(), k, &zero, dc.get(), m),
            CUBLAS_STATUS_SUCCESS);
  s.sync();
  EXPECT_TRUE(close(dc.download(), reference_gemm(CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, two, a, m, b, k, zero, c, m)));

  dc.upload(nan);
  ASSERT_EQ(gemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, 0, &two, da.get(), m, db.get(), 1, &zero, dc.get(), m),
            CUBLAS_STATUS_SUCCESS);
  s.sync();
  EXPECT_EQ(dc.download(), std::vector<T>(m * n, T(0))) << "k == 0, beta == 0";

  dc.upload(c);
  const T half = T(0.5);
  ASSERT_EQ(gemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, 0, &two, nullptr, 1, nullptr, 1, &half, dc.get(), m),
            CUBLAS_STATUS_SUCCESS);
  s.sync();
  std::vector<T> halved = c;
  for (T& v : halved) v *= half;
  EXPECT_TRUE(close(dc.download(), halved)) << "k == 0, beta == 0.5";

  ASSERT_EQ(gemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, 0, n, k, &two, nullptr, 1, nullptr, k, &half, nullptr, 1),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(gemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, 0, k, &two, nullptr, m, nullptr, k, &half, nullptr, m),
            CUBLAS_STATUS_SUCCESS);
  s.sync();
  EXPECT_TRUE(close(dc.download(), halved)) << "m == 0 or n == 0 changed C";
}

// Host pointer mode: alpha and beta are read during the call, not when the product runs.
TYPED_TEST(EmuCublas, ScalarsReadAtCallTime) {
  using T = TypeParam;
  Stream s;
  Blas blas(s.get());
  const int m = 3, n = 4, k = 5;
  const auto a = random_vec<T>(m * k, 7), b = random_vec<T>(k * n, 8), c = random_vec<T>(m * n, 9);
  DeviceArray<T> da(a), db(b), dc(c);
  T alpha = T(0.25), beta = T(3);
  const auto want = reference_gemm(CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, alpha, a, m, b, k, beta, c, m);
  ASSERT_EQ(gemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, da.get(), m, db.get(), k, &beta, dc.get(), m),
            CUBLAS_STATUS_SUCCESS);
  alpha = beta = std::numeric_limits<T>::quiet_NaN();
  s.sync();
  EXPECT_TRUE(close(dc.download(), want));
}

TEST(EmuCublas, HandleStreamAndStatusNames) {
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  cudaStream_t got = reinterpret_cast<cudaStream_t>(0x10);
  ASSERT_EQ(cublasGetStream(h, &got), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(got, nullptr) << "a new handle works on the legacy default stream";
  Stream s;
  ASSERT_EQ(cublasSetStream(h, s.get()), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasGetStream(h, &got), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(got, s.get());
  EXPECT_EQ(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSetStream(h, nullptr), CUBLAS_STATUS_NOT_INITIALIZED) << "destroyed";
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_NOT_INITIALIZED) << "destroyed twice";
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED");
  EXPECT_STREQ(cublasGetStatusString(CUBLAS_STATUS_SUCCESS), "the operation completed successfully");
  EXPECT_STREQ(cublasGetStatusString(CUBLAS_STATUS_NOT_INITIALIZED), "the library was not initialized");
}

// Each documented precondition, then what only the emulator can check: the operands'
// memory.
TEST(EmuCublas, Preconditions) {
  Stream s;
  Blas blas(s.get());
  const int m = 4, n = 3, k = 2;
  DeviceArray<float> a(m * k), b(k * n), c(m * n);
  const float one = 1, zero = 0;
  cublasHandle_t h = blas.get();
  struct Case {
    const char* what;
    cublasStatus_t status;
  };
  const auto N = CUBLAS_OP_N, T = CUBLAS_OP_T;
  const Case cases[] = {
      {"m < 0", gemm(h, N, N, -1, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m)},
      {"n < 0", gemm(h, N, N, m, -1, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m)},
      {"k < 0", gemm(h, N, N, m, n, -1, &one, a.get(), m, b.get(), k, &zero, c.get(), m)},
      {"transa invalid",
       gemm(h, static_cast<cublasOperation_t>(3), N, m, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m)},
      {"transb invalid",
       gemm(h, N, static_cast<cublasOperation_t>(3), m, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m)},
      {"lda < m", gemm(h, N, N, m, n, k, &one, a.get(), m - 1, b.get(), k, &zero, c.get(), m)},
      {"lda < k (transa)", gemm(h, T, N, m, n, k, &one, a.get(), k - 1, b.get(), k, &zero, c.get(), m)},
      {"ldb < k", gemm(h, N, N, m, n, k, &one, a.get(), m, b.get(), k - 1, &zero, c.get(), m)},
      {"ldb < n (transb)", gemm(h, N, T, m, n, k, &one, a.get(), m, b.get(), n - 1, &zero, c.get(), m)},
      {"ldc < m", gemm(h, N, N, m, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m - 1)},
      {"ldc < 1", gemm(h, N, N, 0, n, k, &one, a.get(), 1, b.get(), k, &zero, c.get(), 0)},
      {"alpha null", gemm(h, N, N, m, n, k, nullptr, a.get(), m, b.get(), k, &zero, c.get(), m)},
      {"beta null", gemm(h, N, N, m, n, k, &one, a.get(), m, b.get(), k, nullptr, c.get(), m)},
  };
  for (const Case& e : cases) EXPECT_EQ(e.status, CUBLAS_STATUS_INVALID_VALUE) << e.what;

  EXPECT_EQ(gemm(nullptr, N, N, m, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m),
            CUBLAS_STATUS_NOT_INITIALIZED);
  cublasHandle_t gone = nullptr;
  ASSERT_EQ(cublasCreate(&gone), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasDestroy(gone), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(gemm(gone, N, N, m, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m), CUBLAS_STATUS_NOT_INITIALIZED);

  ASSERT_EQ(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(gemm(h, N, N, m, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m), CUBLAS_STATUS_NOT_SUPPORTED);
  ASSERT_EQ(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST), CUBLAS_STATUS_SUCCESS);

  // Operands outside device memory, or smaller than the extent the call reaches.
  std::vector<float> host(k * n, 1.0f);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(gemm(h, N, N, m, n, k, &one, a.get(), m, host.data(), k, &zero, c.get(), m), CUBLAS_STATUS_INVALID_VALUE);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cublasSgemm: B"), std::string::npos) << err;
  EXPECT_NE(err.find("host memory"), std::string::npos) << err;
  EXPECT_EQ(gemm(h, N, N, m, n, k, &one, nullptr, m, b.get(), k, &zero, c.get(), m), CUBLAS_STATUS_INVALID_VALUE)
      << "A null";
  EXPECT_EQ(gemm(h, N, N, m, n, k, a.get(), a.get(), m, b.get(), k, &zero, c.get(), m), CUBLAS_STATUS_INVALID_VALUE)
      << "alpha in device memory";
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(gemm(h, N, N, m, n, k, &one, a.get(), m, b.get(), k, &zero, c.get(), m + 1), CUBLAS_STATUS_INVALID_VALUE)
      << "ldc = m + 1 reaches past C";
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cublasSgemm: C"), std::string::npos) << err;
  EXPECT_EQ(gemm(h, T, N, m, n, k, &one, a.get(), k, b.get(), k, &zero, c.get() + 1, m), CUBLAS_STATUS_INVALID_VALUE)
      << "C starts one element in";
  s.sync();  // nothing was enqueued by the refused calls
}

// Operands and stream on different devices.
TEST(EmuCublas, OperandOnAnotherDevice) {
  if (!has_two_devices()) GTEST_SKIP() << "one emulated device";
  Stream s;
  Blas blas(s.get());
  DeviceArray<float> a(4), b(4), c(4);
  std::unique_ptr<DeviceArray<float>> far;
  {
    OnDevice device_1(1);
    far = std::make_unique<DeviceArray<float>>(4);
  }
  const float one = 1, zero = 0;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(
      cublasSgemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, far->get(), 2, b.get(), 2, &zero, c.get(), 2),
      CUBLAS_STATUS_INVALID_VALUE);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cublasSgemm: A"), std::string::npos) << err;
}

// ---- cuDNN -------------------------------------------------------------------------------

template <typename T>
constexpr cudnnDataType_t dnn_type() {
  return sizeof(T) == sizeof(float) ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

class Dnn {
 public:
  explicit Dnn(cudaStream_t s) {
    EXPECT_EQ(cudnnCreate(&h_), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetStream(h_, s), CUDNN_STATUS_SUCCESS);
  }
  Dnn(const Dnn&) = delete;
  Dnn& operator=(const Dnn&) = delete;
  ~Dnn() { cudnnDestroy(h_); }
  cudnnHandle_t get() const { return h_; }

 private:
  cudnnHandle_t h_ = nullptr;
};

// The four descriptors of a geometry, as conv.cu sets them.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  Descriptors(const ops::Conv2dGeom& g, cudnnDataType_t type) {
    const auto i = [](int64_t v) { return static_cast<int>(v); };
    EXPECT_EQ(cudnnCreateTensorDescriptor(&x), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateTensorDescriptor(&y), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateFilterDescriptor(&w), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateConvolutionDescriptor(&conv), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, type, i(g.n), i(g.c_in), i(g.h), i(g.w)),
              CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, type, i(g.n), i(g.c_out), i(g.h_out()), i(g.w_out())),
              CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetFilter4dDescriptor(w, type, CUDNN_TENSOR_NCHW, i(g.c_out), i(g.c_in), i(g.kh), i(g.kw)),
              CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetConvolution2dDescriptor(conv, i(g.pad_h), i(g.pad_w), i(g.stride_h), i(g.stride_w), 1, 1,
                                              CUDNN_CROSS_CORRELATION, type),
              CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH), CUDNN_STATUS_SUCCESS);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
};

ops::Conv2dGeom geom(int64_t n, int64_t c_in, int64_t h, int64_t w, int64_t c_out, int64_t kh, int64_t kw,
                     int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w) {
  ops::Conv2dGeom g;
  g.n = n;
  g.c_in = c_in;
  g.h = h;
  g.w = w;
  g.c_out = c_out;
  g.kh = kh;
  g.kw = kw;
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  return g;
}

// Stride 2 with padding, 3x3 stride 1 with padding (Winograd's case), 1x1, and an
// asymmetric window and stride.
std::vector<ops::Conv2dGeom> geometries() {
  return {geom(2, 3, 7, 6, 4, 3, 3, 2, 2, 1, 1), geom(1, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1),
          geom(3, 5, 4, 3, 2, 1, 1, 1, 1, 0, 0), geom(2, 2, 6, 7, 3, 2, 3, 1, 2, 0, 1)};
}

std::string describe(const ops::Conv2dGeom& g) {
  return "n " + std::to_string(g.n) + " c_in " + std::to_string(g.c_in) + " " + std::to_string(g.h) + "x" +
         std::to_string(g.w) + " c_out " + std::to_string(g.c_out) + " k " + std::to_string(g.kh) + "x" +
         std::to_string(g.kw) + " stride " + std::to_string(g.stride_h) + "x" + std::to_string(g.stride_w) + " pad " +
         std::to_string(g.pad_h) + "x" + std::to_string(g.pad_w);
}

// One direction of a convolution for the generic test: the v7 list, the workspace
// query, the call (alpha, beta, workspace, output), and the CPU twin's answer.
template <typename T>
struct DirectionUnderTest {
  const char* name;
  std::vector<std::pair<int, cudnnStatus_t>> algos;  // the v7 list: algorithm, status
  std::function<cudnnStatus_t(int algo, size_t* bytes)> workspace;
  std::function<cudnnStatus_t(int algo, const T* alpha, void* ws, size_t bytes, const T* beta)> run;
  DeviceArray<T>* out;
  std::vector<T> want;
};

template <typename Perf>
std::vector<std::pair<int, cudnnStatus_t>> algo_list(cudnnStatus_t status, const std::vector<Perf>& perf,
                                                     int returned) {
  EXPECT_EQ(status, CUDNN_STATUS_SUCCESS);
  std::vector<std::pair<int, cudnnStatus_t>> list;
  for (int i = 0; i < returned; ++i) list.emplace_back(perf[i].algo, perf[i].status);
  return list;
}

// Every algorithm the shim accepts for the geometry, alpha = 1 and beta = 0 (output full of
// NaN first), then alpha = 0.5 and beta = 2 over a random output.
template <typename T>
void check_direction(DirectionUnderTest<T>& d, const Stream& s) {
  SCOPED_TRACE(d.name);
  int ran = 0;
  for (const auto& [algo, status] : d.algos) {
    if (status != CUDNN_STATUS_SUCCESS) continue;
    SCOPED_TRACE("algorithm " + std::to_string(algo));
    size_t bytes = 0;
    const cudnnStatus_t ws_status = d.workspace(algo, &bytes);
    if (ws_status == CUDNN_STATUS_NOT_SUPPORTED) continue;  // the heuristic list is coarser
    ASSERT_EQ(ws_status, CUDNN_STATUS_SUCCESS);
    DeviceArray<unsigned char> ws(std::max<size_t>(bytes, 1));
    const T one = 1, nothing = 0, alpha = T(0.5), beta = T(2);
    d.out->upload(std::vector<T>(d.out->size(), std::numeric_limits<T>::quiet_NaN()));
    ASSERT_EQ(d.run(algo, &one, bytes > 0 ? ws.get() : nullptr, bytes, &nothing), CUDNN_STATUS_SUCCESS);
    s.sync();
    EXPECT_TRUE(close(d.out->download(), d.want)) << "alpha 1, beta 0";
    const auto before = random_vec<T>(d.out->size(), 11);
    d.out->upload(before);
    ASSERT_EQ(d.run(algo, &alpha, ws.get(), bytes, &beta), CUDNN_STATUS_SUCCESS);
    s.sync();
    std::vector<T> want(before.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = alpha * d.want[i] + beta * before[i];
    EXPECT_TRUE(close(d.out->download(), want)) << "alpha 0.5, beta 2";
    ++ran;
  }
  EXPECT_GT(ran, 0) << "no algorithm ran";
}

template <typename T>
class EmuCudnn : public ::testing::Test {};
TYPED_TEST_SUITE(EmuCudnn, Types);

// The three directions through every accepted algorithm against ops::cpu.
TYPED_TEST(EmuCudnn, ConvolutionsAgainstCpu) {
  using T = TypeParam;
  Stream s;
  Dnn dnn(s.get());
  const cudnnHandle_t h = dnn.get();
  for (const ops::Conv2dGeom& g : geometries()) {
    SCOPED_TRACE(describe(g));
    Descriptors d(g, dnn_type<T>());
    const auto x = random_vec<T>(g.x_numel(), 1), w = random_vec<T>(g.w_numel(), 2), gy = random_vec<T>(g.y_numel(), 3);
    DeviceArray<T> dx(x), dw(w), dgy(gy), y(g.y_numel()), gx(g.x_numel()), gw(g.w_numel());
    std::vector<T> want_y(g.y_numel()), want_gx(g.x_numel()), want_gw(g.w_numel());
    ops::cpu::conv2d_forward(g, x.data(), w.data(), want_y.data(), ops::Exec{});
    ops::cpu::conv2d_backward_data(g, w.data(), gy.data(), want_gx.data(), ops::Exec{});
    ops::cpu::conv2d_backward_weight(g, x.data(), gy.data(), want_gw.data(), ops::Exec{});

    int returned = 0;
    std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    const cudnnStatus_t fwd_status = cudnnGetConvolutionForwardAlgorithm_v7(
        h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, fwd.data());
    DirectionUnderTest<T> forward{"forward",
                                  algo_list(fwd_status, fwd, returned),
                                  [&](int algo, size_t* bytes) {
                                    return cudnnGetConvolutionForwardWorkspaceSize(
                                        h, d.x, d.w, d.conv, d.y, static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
                                  },
                                  [&](int algo, const T* alpha, void* ws, size_t bytes, const T* beta) {
                                    return cudnnConvolutionForward(h, alpha, d.x, dx.get(), d.w, dw.get(), d.conv,
                                                                   static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws,
                                                                   bytes, beta, d.y, y.get());
                                  },
                                  &y,
                                  want_y};
    check_direction(forward, s);

    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
    const cudnnStatus_t data_status = cudnnGetConvolutionBackwardDataAlgorithm_v7(
        h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, data.data());
    DirectionUnderTest<T> backward_data{
        "backward data",
        algo_list(data_status, data, returned),
        [&](int algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.conv, d.x,
                                                              static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
        },
        [&](int algo, const T* alpha, void* ws, size_t bytes, const T* beta) {
          return cudnnConvolutionBackwardData(h, alpha, d.w, dw.get(), d.y, dgy.get(), d.conv,
                                              static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), ws, bytes, beta, d.x,
                                              gx.get());
        },
        &gx,
        want_gx};
    check_direction(backward_data, s);

    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    const cudnnStatus_t filter_status = cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, filter.data());
    DirectionUnderTest<T> backward_filter{
        "backward filter",
        algo_list(filter_status, filter, returned),
        [&](int algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(
              h, d.x, d.y, d.conv, d.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
        },
        [&](int algo, const T* alpha, void* ws, size_t bytes, const T* beta) {
          return cudnnConvolutionBackwardFilter(h, alpha, d.x, dx.get(), d.y, dgy.get(), d.conv,
                                                static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), ws, bytes, beta,
                                                d.w, gw.get());
        },
        &gw,
        want_gw};
    check_direction(backward_filter, s);
  }
}

bool is_transform_fwd(int a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool is_transform_data(int a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool is_transform_filter(int a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// Where the first usable direct deterministic entry stands, and whether a usable transform
// and a usable non-deterministic entry come before it.
template <typename Perf>
void expect_traps_first(const std::vector<Perf>& perf, int returned, bool (*is_transform)(int),
                        bool expect_nondeterministic) {
  int first_direct = -1;
  bool transform_before = false, nondeterministic_before = false;
  for (int i = 0; i < returned && first_direct < 0; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (!is_transform(p.algo) && p.determinism == CUDNN_DETERMINISTIC) {
      first_direct = i;
    } else {
      transform_before |= is_transform(p.algo);
      nondeterministic_before |= p.determinism == CUDNN_NON_DETERMINISTIC;
    }
  }
  EXPECT_GE(first_direct, 0) << "no direct deterministic algorithm";
  EXPECT_TRUE(transform_before) << "no usable transform listed before the first direct deterministic algorithm";
  if (expect_nondeterministic) {
    EXPECT_TRUE(nondeterministic_before) << "no non-deterministic one before it either";
  }
}

// The v7 lists for float 3x3 stride 1: everything listed, in the order that makes the
// caller rank (transforms and non-deterministic algorithms ahead of direct deterministic
// ones), cuDNN's determinism marks, and memory agreeing with the workspace queries.
TEST(EmuCudnn, HeuristicLists) {
  Stream s;
  Dnn dnn(s.get());
  const cudnnHandle_t h = dnn.get();
  int count = 0;
  ASSERT_EQ(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(count, CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  ASSERT_EQ(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(count, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  ASSERT_EQ(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(count, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);

  const ops::Conv2dGeom g = geom(2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1);
  Descriptors d(g, CUDNN_DATA_FLOAT);
  int returned = 0;
  std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  ASSERT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                   &returned, fwd.data()),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(returned, CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  expect_traps_first(fwd, returned, is_transform_fwd, false);
  for (const auto& p : fwd) {
    EXPECT_EQ(p.mathType, CUDNN_FMA_MATH);
    if (p.algo == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT) {
      EXPECT_EQ(p.status, CUDNN_STATUS_NOT_SUPPORTED);
    }
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    size_t bytes = 1;
    ASSERT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, p.algo, &bytes), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(bytes, p.memory) << "algorithm " << p.algo;
    if (p.algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) {
      EXPECT_EQ(bytes, 0u);
    }
    if (p.algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM) {
      EXPECT_EQ(bytes, static_cast<size_t>(g.c_in * g.kh * g.kw * g.h_out() * g.w_out()) * sizeof(float));
    }
  }
  // Asking for fewer entries returns that many.
  ASSERT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, 2, &returned, fwd.data()),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(returned, 2);

  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  ASSERT_EQ(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                        &returned, data.data()),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(returned, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  expect_traps_first(data, returned, is_transform_data, true);
  for (const auto& p : data) {
    EXPECT_EQ(p.determinism == CUDNN_NON_DETERMINISTIC, p.algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) << p.algo;
  }

  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  ASSERT_EQ(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, filter.data()),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(returned, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  expect_traps_first(filter, returned, is_transform_filter, true);
  for (const auto& p : filter) {
    EXPECT_EQ(p.determinism == CUDNN_NON_DETERMINISTIC,
              p.algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || p.algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3)
        << p.algo;
    if (p.algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD) {
      EXPECT_EQ(p.status, CUDNN_STATUS_NOT_SUPPORTED);
    }
  }

  EXPECT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, 0, &returned, fwd.data()),
            CUDNN_STATUS_BAD_PARAM);
}

int status_of(const std::vector<cudnnConvolutionFwdAlgoPerf_t>& perf, cudnnConvolutionFwdAlgo_t algo) {
  for (const auto& p : perf) {
    if (p.algo == algo) return p.status;
  }
  return -1;
}

// Support by geometry: FFT needs stride 1, Winograd 3x3 stride 1 float; the v7 list is
// coarser than the workspace query (FFT with pads as large as the filter).
TEST(EmuCudnn, SupportDependsOnGeometry) {
  Stream s;
  Dnn dnn(s.get());
  const cudnnHandle_t h = dnn.get();
  auto forward_list = [&](const Descriptors& d) {
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    int returned = 0;
    EXPECT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                     &returned, perf.data()),
              CUDNN_STATUS_SUCCESS);
    return perf;
  };
  size_t bytes = 0;
  {
    Descriptors strided(geom(1, 2, 9, 9, 2, 3, 3, 2, 2, 1, 1), CUDNN_DATA_FLOAT);
    const auto perf = forward_list(strided);
    EXPECT_EQ(status_of(perf, CUDNN_CONVOLUTION_FWD_ALGO_FFT), CUDNN_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(status_of(perf, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD), CUDNN_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(status_of(perf, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h, strided.x, strided.w, strided.conv, strided.y,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_FFT, &bytes),
              CUDNN_STATUS_NOT_SUPPORTED);
  }
  {
    Descriptors doubles(geom(1, 2, 6, 6, 2, 3, 3, 1, 1, 1, 1), CUDNN_DATA_DOUBLE);
    const auto perf = forward_list(doubles);
    EXPECT_EQ(status_of(perf, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD), CUDNN_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(status_of(perf, CUDNN_CONVOLUTION_FWD_ALGO_FFT), CUDNN_STATUS_SUCCESS);
  }
  {
    Descriptors padded(geom(1, 2, 6, 6, 2, 1, 1, 1, 1, 1, 1), CUDNN_DATA_FLOAT);  // 1x1 with pad 1
    const auto perf = forward_list(padded);
    EXPECT_EQ(status_of(perf, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD), CUDNN_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(status_of(perf, CUDNN_CONVOLUTION_FWD_ALGO_FFT), CUDNN_STATUS_SUCCESS) << "the coarse heuristic";
    EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h, padded.x, padded.w, padded.conv, padded.y,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_FFT, &bytes),
              CUDNN_STATUS_NOT_SUPPORTED)
        << "the exact check";
  }
}

// The convolution calls' refusals: an unsupported algorithm (before enqueuing anything),
// the workspace, descriptors, memory, scalars.
TEST(EmuCudnn, ConvolutionRefusals) {
  Stream s;
  Dnn dnn(s.get());
  const cudnnHandle_t h = dnn.get();
  const ops::Conv2dGeom g = geom(2, 3, 7, 6, 4, 3, 3, 2, 2, 1, 1);
  Descriptors d(g, CUDNN_DATA_FLOAT);
  DeviceArray<float> x(random_vec<float>(g.x_numel(), 1)), w(random_vec<float>(g.w_numel(), 2)), y(g.y_numel());
  const std::vector<float> y0 = random_vec<float>(g.y_numel(), 3);
  y.upload(y0);
  const float one = 1, zero = 0;
  auto forward = [&](cudnnConvolutionFwdAlgo_t algo, void* ws, size_t bytes, const void* xp = nullptr,
                     const void* yp = nullptr) {
    return cudnnConvolutionForward(h, &one, d.x, xp ? xp : x.get(), d.w, w.get(), d.conv, algo, ws, bytes, &zero, d.y,
                                   yp ? const_cast<void*>(yp) : y.get());
  };
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_FFT, nullptr, 1 << 24), CUDNN_STATUS_NOT_SUPPORTED) << "stride 2";
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, nullptr, 0), CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, nullptr, 0), CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(forward(static_cast<cudnnConvolutionFwdAlgo_t>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT), nullptr, 0),
            CUDNN_STATUS_BAD_PARAM);
  const float* none = nullptr;
  EXPECT_EQ(cudnnConvolutionBackwardFilter(h, &one, d.x, x.get(), d.y, y.get(), d.conv,
                                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, nullptr, 0, &zero, d.w, w.get()),
            CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cudnnConvolutionBackwardData(h, &one, d.w, w.get(), d.y, y.get(), d.conv,
                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT, nullptr, 0, &zero, d.x, x.get()),
            CUDNN_STATUS_NOT_SUPPORTED);

  size_t need = 0;
  ASSERT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_GEMM, &need),
            CUDNN_STATUS_SUCCESS);
  ASSERT_GT(need, 0u);
  DeviceArray<unsigned char> ws(need);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_GEMM, ws.get(), need - 1), CUDNN_STATUS_BAD_PARAM) << "too small";
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cudnnConvolutionForward"), std::string::npos) << err;
  EXPECT_NE(err.find("workspace"), std::string::npos) << err;
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_GEMM, nullptr, need), CUDNN_STATUS_BAD_PARAM) << "null workspace";
  std::vector<unsigned char> host_ws(need);
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_GEMM, host_ws.data(), need), CUDNN_STATUS_BAD_PARAM) << "host workspace";

  // Memory: a host input, an output too small for y, an output overlapping an input.
  const std::vector<float> host_x(g.x_numel(), 1.0f);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, host_x.data()), CUDNN_STATUS_BAD_PARAM);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cudnnConvolutionForward: x"), std::string::npos) << err;
  EXPECT_NE(err.find("host memory"), std::string::npos) << err;
  DeviceArray<float> short_y(g.y_numel() - 1);
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, nullptr, short_y.get()),
            CUDNN_STATUS_BAD_PARAM);
  DeviceArray<float> both(g.x_numel() + g.y_numel());
  EXPECT_EQ(forward(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, both.get(), both.get() + 1),
            CUDNN_STATUS_BAD_PARAM)
      << "y overlaps x";
  EXPECT_NE(cudnnConvolutionForward(h, none, d.x, x.get(), d.w, w.get(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y, y.get()),
            CUDNN_STATUS_SUCCESS)
      << "alpha null";
  EXPECT_EQ(cudnnConvolutionForward(h, &one, d.x, x.get(), d.w, w.get(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, w.get(), d.y, y.get()),
            CUDNN_STATUS_BAD_PARAM)
      << "beta in device memory";

  // Descriptors: created but never set, destroyed, of another shape or type.
  cudnnTensorDescriptor_t unset = nullptr;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&unset), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnConvolutionForward(h, &one, unset, x.get(), d.w, w.get(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y, y.get()),
            CUDNN_STATUS_BAD_PARAM);
  size_t bytes = 0;
  EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, unset,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, &bytes),
            CUDNN_STATUS_BAD_PARAM);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(unset, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 4, 4),
            CUDNN_STATUS_SUCCESS);  // y's shape is (2, 4, 4, 3)
  EXPECT_EQ(cudnnConvolutionForward(h, &one, d.x, x.get(), d.w, w.get(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, unset, y.get()),
            CUDNN_STATUS_BAD_PARAM)
      << "wrong output shape";
  ASSERT_EQ(cudnnSetTensor4dDescriptor(unset, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, 2, 4, 4, 3), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnConvolutionForward(h, &one, d.x, x.get(), d.w, w.get(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, unset, y.get()),
            CUDNN_STATUS_BAD_PARAM)
      << "double output of a float convolution";
  ASSERT_EQ(cudnnDestroyTensorDescriptor(unset), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnConvolutionForward(h, &one, d.x, x.get(), d.w, w.get(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, nullptr, y.get()),
            CUDNN_STATUS_BAD_PARAM_NULL_POINTER);
  EXPECT_EQ(cudnnConvolutionForward(nullptr, &one, d.x, x.get(), d.w, w.get(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y, y.get()),
            CUDNN_STATUS_BAD_PARAM_NULL_POINTER);

  s.sync();
  EXPECT_EQ(y.download(), y0) << "a refused call wrote the output";
}

// The workspace is scribbled over (0xFF bytes) by the work, and alpha and beta are read
// during the call.
TEST(EmuCudnn, WorkspaceScribbledAndScalarsReadAtCallTime) {
  Stream s;
  Dnn dnn(s.get());
  const cudnnHandle_t h = dnn.get();
  const ops::Conv2dGeom g = geom(1, 2, 5, 5, 1, 3, 3, 1, 1, 0, 0);  // im2col larger than y
  Descriptors d(g, CUDNN_DATA_FLOAT);
  const auto x = random_vec<float>(g.x_numel(), 1), w = random_vec<float>(g.w_numel(), 2);
  DeviceArray<float> dx(x), dw(w), y(g.y_numel());
  size_t need = 0;
  ASSERT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_GEMM, &need),
            CUDNN_STATUS_SUCCESS);
  ASSERT_GT(need, g.y_numel() * sizeof(float));
  DeviceArray<unsigned char> ws(std::vector<unsigned char>(need, 0));
  float alpha = 2, beta = 0;
  ASSERT_EQ(cudnnConvolutionForward(h, &alpha, d.x, dx.get(), d.w, dw.get(), d.conv, CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
                                    ws.get(), need, &beta, d.y, y.get()),
            CUDNN_STATUS_SUCCESS);
  alpha = beta = std::numeric_limits<float>::quiet_NaN();
  s.sync();
  std::vector<float> want(g.y_numel());
  ops::cpu::conv2d_forward(g, x.data(), w.data(), want.data(), ops::Exec{});
  for (float& v : want) v *= 2;
  EXPECT_TRUE(close(y.download(), want));
  const auto bytes = ws.download();
  EXPECT_EQ(bytes.back(), 0xFF) << "the workspace was left as it was";
}

TEST(EmuCudnn, DescriptorPreconditions) {
  cudnnTensorDescriptor_t t = nullptr;
  cudnnFilterDescriptor_t f = nullptr;
  cudnnConvolutionDescriptor_t c = nullptr;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&t), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateFilterDescriptor(&f), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateConvolutionDescriptor(&c), CUDNN_STATUS_SUCCESS);
  const auto nchw = CUDNN_TENSOR_NCHW;
  EXPECT_EQ(cudnnSetTensor4dDescriptor(t, nchw, CUDNN_DATA_FLOAT, 0, 1, 1, 1), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetTensor4dDescriptor(t, nchw, CUDNN_DATA_FLOAT, 1, -1, 1, 1), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 1, 1, 1), CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cudnnSetTensor4dDescriptor(t, nchw, CUDNN_DATA_HALF, 1, 1, 1, 1), CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cudnnSetTensor4dDescriptor(t, nchw, CUDNN_DATA_FLOAT, 2048, 2048, 1024, 1), CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cudnnSetFilter4dDescriptor(f, CUDNN_DATA_DOUBLE, nchw, 1, 1, 0, 1), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetFilter4dDescriptor(f, CUDNN_DATA_BFLOAT16, nchw, 1, 1, 1, 1), CUDNN_STATUS_NOT_SUPPORTED);
  const auto xc = CUDNN_CROSS_CORRELATION;
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(c, -1, 0, 1, 1, 1, 1, xc, CUDNN_DATA_FLOAT), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(c, 0, 0, 1, 0, 1, 1, xc, CUDNN_DATA_FLOAT), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(c, 0, 0, 1, 1, 0, 1, xc, CUDNN_DATA_FLOAT), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(c, 0, 0, 1, 1, 2, 2, xc, CUDNN_DATA_FLOAT), CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(c, 0, 0, 1, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT),
            CUDNN_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(c, 0, 0, 1, 1, 1, 1, xc, CUDNN_DATA_HALF), CUDNN_STATUS_NOT_SUPPORTED);

  // Output size: 1 + (in + 2 pad - k) / stride, as cuDNN computes it (dilation 1).
  int n = 0, ch = 0, h = 0, w = 0;
  EXPECT_EQ(cudnnGetConvolution2dForwardOutputDim(c, t, f, &n, &ch, &h, &w), CUDNN_STATUS_BAD_PARAM) << "unset";
  ASSERT_EQ(cudnnSetTensor4dDescriptor(t, nchw, CUDNN_DATA_FLOAT, 2, 3, 7, 8), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(f, CUDNN_DATA_FLOAT, nchw, 5, 3, 3, 2), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(c, 1, 0, 2, 3, 1, 1, xc, CUDNN_DATA_FLOAT), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnGetConvolution2dForwardOutputDim(c, t, f, &n, &ch, &h, &w), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(n, 2);
  EXPECT_EQ(ch, 5);
  EXPECT_EQ(h, 1 + (7 + 2 - 3) / 2);
  EXPECT_EQ(w, 1 + (8 - 2) / 3);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(f, CUDNN_DATA_FLOAT, nchw, 5, 3, 10, 2), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnGetConvolution2dForwardOutputDim(c, t, f, &n, &ch, &h, &w), CUDNN_STATUS_BAD_PARAM)
      << "filter taller than the padded input";
  ASSERT_EQ(cudnnSetFilter4dDescriptor(f, CUDNN_DATA_FLOAT, nchw, 5, 4, 3, 2), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnGetConvolution2dForwardOutputDim(c, t, f, &n, &ch, &h, &w), CUDNN_STATUS_BAD_PARAM)
      << "channels differ";

  EXPECT_EQ(cudnnDestroyConvolutionDescriptor(c), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnDestroyFilterDescriptor(f), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnDestroyTensorDescriptor(t), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnDestroyTensorDescriptor(t), CUDNN_STATUS_BAD_PARAM) << "destroyed twice";
  EXPECT_STREQ(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED), "CUDNN_STATUS_NOT_SUPPORTED");
  EXPECT_STREQ(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
}

// A handle on one device with a stream of another.
TEST(EmuCudnn, StreamOfAnotherDevice) {
  if (!has_two_devices()) GTEST_SKIP() << "one emulated device";
  const ops::Conv2dGeom g = geom(1, 1, 3, 3, 1, 1, 1, 1, 1, 0, 0);
  Descriptors d(g, CUDNN_DATA_FLOAT);
  DeviceArray<float> x(g.x_numel()), w(g.w_numel()), y(g.y_numel());
  Dnn dnn(nullptr);
  {
    OnDevice device_1(1);
    Stream far;
    ASSERT_EQ(cudnnSetStream(dnn.get(), far.get()), CUDNN_STATUS_SUCCESS);
    const float one = 1, zero = 0;
    EXPECT_EQ(cudnnConvolutionForward(dnn.get(), &one, d.x, x.get(), d.w, w.get(), d.conv,
                                      CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y, y.get()),
              CUDNN_STATUS_BAD_PARAM);
  }
}

}  // namespace
}  // namespace dtrain::emu::device
