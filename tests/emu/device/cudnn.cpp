// The emulated device's cuDNN (tests/emu/shim/cudnn.h): the legacy convolution API as
// dtrain calls it (ops/cuda/conv.cu). It tests how dtrain calls cuDNN, not cuDNN.
//
// Note [Emulated cuDNN]
// - Descriptors remember their values and whether they were set. Set* check what cuDNN
//   documents (CUDNN_STATUS_BAD_PARAM) and refuse what the shim does not emulate, with
//   CUDNN_STATUS_NOT_SUPPORTED: NHWC, half and bfloat16, dilation other than 1, and
//   CUDNN_CONVOLUTION (the CPU twins compute the cross-correlation dtrain asks for).
// - Algorithms: a fixed table per direction, listed by cudnnGet*Algorithm_v7 in a
//   "heuristic" order that puts a non-deterministic algorithm (where cuDNN has one: its
//   enum comments mark BWD_DATA_ALGO_0 and BWD_FILTER_ALGO_0 and _3 so) and a transform
//   (FFT, Winograd) ahead of the direct deterministic ones, so that the caller's own
//   ranking is exercised. Support depends on the geometry: FFT needs stride 1 (and, as
//   only the workspace query checks, pads smaller than the filter and a padded input of
//   at most 256: the heuristic list is coarser than the exact check, as cuDNN's can be),
//   Winograd 3x3 stride 1 float, the non-fused Winograd 3x3 or 5x5 stride 1 float;
//   FWD_ALGO_DIRECT and BWD_FILTER_ALGO_WINOGRAD are never supported (as in cuDNN).
//   Workspace sizes are a deterministic function of geometry and algorithm: 0, an index
//   table, one image's im2col matrix, or transform buffers. A query or a convolution with
//   an algorithm unsupported for its geometry is CUDNN_STATUS_NOT_SUPPORTED, returned
//   before anything is enqueued (conv.cu then tries its next candidate).
// - A convolution checks the handle, every descriptor (set, and x, w, conv giving y's
//   shape, one data type throughout), the algorithm, the workspace (at least the
//   algorithm's size, device memory when that is not 0), that x, w and y are device memory
//   of the device of the handle's stream covering their sizes, and that the output
//   overlaps neither an input nor the workspace. A violation is printed on stderr naming
//   the call and the argument and returns a CUDNN_STATUS_BAD_PARAM code.
// - alpha and beta are host scalars (float for float data, double for double) read during
//   the call. The work runs later, in stream order on the stream's worker thread: the CPU
//   twin (ops::cpu) computes the result, then out = alpha result + beta out, where
//   beta == 0 never reads out.
// - The op first fills the algorithm's workspace with 0xFF bytes (NaN) and, when it is
//   large enough, computes the result there before combining it into the output, so two
//   convolutions that share a workspace concurrently get garbage rather than luck.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ops/cpu.h"
#include "tests/emu/device/device.h"

struct cudnnContext {
  int device = 0;  // the device current at cudnnCreate
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1;
  cudnnDataType_t compute_type = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace dtrain::emu::device {
namespace {

// ---- live objects -------------------------------------------------------------------
// A destroyed handle or descriptor is recognised as such rather than used after free.
template <typename T>
class Registry {
 public:
  void add(const T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.insert(p);
  }
  bool remove(const T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.erase(p) > 0;
  }
  bool live(const T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.count(p) > 0;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<const T*> live_;
};

template <typename T>
Registry<T>& registry() {
  static Registry<T> r;
  return r;
}

// What each kind of object is called in messages, and the call that sets it.
template <typename T>
struct Names;
template <>
struct Names<cudnnContext> {
  static constexpr const char* kind = "cuDNN handle";
  static constexpr const char* setter = "";
};
template <>
struct Names<cudnnTensorStruct> {
  static constexpr const char* kind = "tensor descriptor";
  static constexpr const char* setter = "cudnnSetTensor4dDescriptor";
};
template <>
struct Names<cudnnFilterStruct> {
  static constexpr const char* kind = "filter descriptor";
  static constexpr const char* setter = "cudnnSetFilter4dDescriptor";
};
template <>
struct Names<cudnnConvolutionStruct> {
  static constexpr const char* kind = "convolution descriptor";
  static constexpr const char* setter = "cudnnSetConvolution2dDescriptor";
};

std::string hex(const void* p) {
  std::ostringstream s;
  s << p;
  return s.str();
}

// Every refusal but an unsupported algorithm is printed: the status alone does not say
// which argument was wrong.
cudnnStatus_t fail(const char* call, cudnnStatus_t status, const std::string& what) {
  std::cerr << call << ": " << what << '\n';
  return status;
}

// The object behind `p` exists (and, for descriptors, was set).
template <typename T>
cudnnStatus_t check_object(const char* call, const char* name, const T* p, bool must_be_set = true) {
  if (p == nullptr) return fail(call, CUDNN_STATUS_BAD_PARAM_NULL_POINTER, std::string(name) + " is null");
  if (!registry<T>().live(p)) {
    return fail(
        call, CUDNN_STATUS_BAD_PARAM,
        std::string(name) + " (" + hex(p) + ") is not a live " + Names<T>::kind + " (destroyed, or never created)");
  }
  if constexpr (!std::is_same_v<T, cudnnContext>) {
    if (must_be_set && !p->set) {
      return fail(call, CUDNN_STATUS_BAD_PARAM,
                  std::string(name) + " (" + Names<T>::kind + ") was created but never set with " + Names<T>::setter);
    }
  }
  return CUDNN_STATUS_SUCCESS;
}

template <typename T>
cudnnStatus_t create(T** out) {
  if (out == nullptr) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  T* p = new T;
  registry<T>().add(p);
  *out = p;
  return CUDNN_STATUS_SUCCESS;
}

// Destroying a null descriptor does nothing, as in cuDNN; destroying one twice is refused.
template <typename T>
cudnnStatus_t destroy(const char* call, T* p) {
  if (p == nullptr) return CUDNN_STATUS_SUCCESS;
  if (!registry<T>().remove(p)) {
    return fail(call, CUDNN_STATUS_BAD_PARAM, hex(p) + " is not a live " + Names<T>::kind + " (destroyed twice?)");
  }
  delete p;
  return CUDNN_STATUS_SUCCESS;
}

// ---- descriptor values --------------------------------------------------------------
const char* type_name(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_FLOAT:
      return "CUDNN_DATA_FLOAT";
    case CUDNN_DATA_DOUBLE:
      return "CUDNN_DATA_DOUBLE";
    case CUDNN_DATA_HALF:
      return "CUDNN_DATA_HALF";
    case CUDNN_DATA_BFLOAT16:
      return "CUDNN_DATA_BFLOAT16";
  }
  return "an invalid cudnnDataType_t";
}

// A type argument: BAD_PARAM when it is no cudnnDataType_t of the header, NOT_SUPPORTED
// when it is one the shim does not compute in.
cudnnStatus_t check_type(const char* call, const char* name, cudnnDataType_t t) {
  if (t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE) return CUDNN_STATUS_SUCCESS;
  if (t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16) {
    return fail(call, CUDNN_STATUS_NOT_SUPPORTED,
                std::string(name) + " " + type_name(t) + " is not emulated (float and double only)");
  }
  return fail(call, CUDNN_STATUS_BAD_PARAM,
              std::string(name) + " = " + std::to_string(static_cast<int>(t)) + " is not a cudnnDataType_t");
}

cudnnStatus_t check_format(const char* call, cudnnTensorFormat_t f) {
  if (f == CUDNN_TENSOR_NCHW) return CUDNN_STATUS_SUCCESS;
  if (f == CUDNN_TENSOR_NHWC) return fail(call, CUDNN_STATUS_NOT_SUPPORTED, "CUDNN_TENSOR_NHWC is not emulated");
  return fail(call, CUDNN_STATUS_BAD_PARAM,
              "format = " + std::to_string(static_cast<int>(f)) + " is not a cudnnTensorFormat_t");
}

std::string dims_text(int a, int b, int c, int d) {
  std::ostringstream os;  // not string concatenation, which GCC 12 misreads under -Wrestrict
  os << "(" << a << ", " << b << ", " << c << ", " << d << ")";
  return os.str();
}

// Four positive dimensions whose product cuDNN's 4-D descriptors can hold (2^31 - 1
// elements, CUDNN_STATUS_NOT_SUPPORTED beyond).
cudnnStatus_t check_dims(const char* call, int a, int b, int c, int d) {
  if (a <= 0 || b <= 0 || c <= 0 || d <= 0) {
    return fail(call, CUDNN_STATUS_BAD_PARAM, "dimensions must be > 0, got " + dims_text(a, b, c, d));
  }
  if (int64_t{a} * b * c * d > INT_MAX) {
    return fail(call, CUDNN_STATUS_NOT_SUPPORTED, "more than 2^31 - 1 elements: " + dims_text(a, b, c, d));
  }
  return CUDNN_STATUS_SUCCESS;
}

// What cudnnSetTensor4dDescriptor and cudnnSetFilter4dDescriptor check, in this order.
template <typename T>
cudnnStatus_t check_descriptor_values(const char* call, const char* name, const T* desc, cudnnTensorFormat_t format,
                                      cudnnDataType_t type, int a, int b, int c, int d) {
  if (cudnnStatus_t s = check_object(call, name, desc, /*must_be_set=*/false); s != CUDNN_STATUS_SUCCESS) return s;
  if (cudnnStatus_t s = check_format(call, format); s != CUDNN_STATUS_SUCCESS) return s;
  if (cudnnStatus_t s = check_type(call, "dataType", type); s != CUDNN_STATUS_SUCCESS) return s;
  return check_dims(call, a, b, c, d);
}

// ---- the problem a convolution call describes --------------------------------------------
struct Problem {
  ops::Conv2dGeom g;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t elem() const { return type == CUDNN_DATA_FLOAT ? sizeof(float) : sizeof(double); }
};

// How the direction names its tensors: x or dx, w or dw, y or dy.
struct TensorNames {
  const char* x;
  const char* w;
  const char* y;
};
constexpr TensorNames kForwardNames{"x", "w", "y"};
constexpr TensorNames kBackwardDataNames{"dx", "w", "dy"};
constexpr TensorNames kBackwardFilterNames{"x", "dw", "dy"};

// cuDNN's output size, 1 + (in + 2 pad - ((k - 1) dilation + 1)) / stride, with dilation
// 1; -1 when the filter is larger than the padded input.
int64_t output_dim(int64_t in, int64_t pad, int64_t k, int64_t stride) {
  const int64_t span = in + 2 * pad - k;
  return span < 0 ? -1 : 1 + span / stride;
}

// x, w and conv must be set and agree (channels, filter within the padded input).
cudnnStatus_t check_input_side(const char* call, const TensorNames& names, const cudnnTensorStruct* x,
                               const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv) {
  if (cudnnStatus_t s = check_object(call, names.x, x); s != CUDNN_STATUS_SUCCESS) return s;
  if (cudnnStatus_t s = check_object(call, names.w, w); s != CUDNN_STATUS_SUCCESS) return s;
  if (cudnnStatus_t s = check_object(call, "conv", conv); s != CUDNN_STATUS_SUCCESS) return s;
  if (x->c != w->c) {
    return fail(call, CUDNN_STATUS_BAD_PARAM,
                std::string(names.x) + " has " + std::to_string(x->c) + " channels but the filter " + names.w +
                    " expects " + std::to_string(w->c));
  }
  if (output_dim(x->h, conv->pad_h, w->h, conv->stride_h) < 1 ||
      output_dim(x->w, conv->pad_w, w->w, conv->stride_w) < 1) {
    return fail(call, CUDNN_STATUS_BAD_PARAM,
                "the filter " + std::to_string(w->h) + "x" + std::to_string(w->w) +
                    " is larger than the padded input " + std::to_string(x->h + 2 * conv->pad_h) + "x" +
                    std::to_string(x->w + 2 * conv->pad_w));
  }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t make_problem(const char* call, const TensorNames& names, const cudnnTensorStruct* x,
                           const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv, const cudnnTensorStruct* y,
                           Problem& p) {
  if (cudnnStatus_t s = check_input_side(call, names, x, w, conv); s != CUDNN_STATUS_SUCCESS) return s;
  if (cudnnStatus_t s = check_object(call, names.y, y); s != CUDNN_STATUS_SUCCESS) return s;
  if (x->type != w->type || x->type != y->type || x->type != conv->compute_type) {
    return fail(call, CUDNN_STATUS_BAD_PARAM,
                std::string("data types differ: ") + names.x + " " + type_name(x->type) + ", " + names.w + " " +
                    type_name(w->type) + ", " + names.y + " " + type_name(y->type) + ", compute type " +
                    type_name(conv->compute_type));
  }
  const int64_t ho = output_dim(x->h, conv->pad_h, w->h, conv->stride_h);
  const int64_t wo = output_dim(x->w, conv->pad_w, w->w, conv->stride_w);
  if (y->n != x->n || y->c != w->k || y->h != ho || y->w != wo) {
    return fail(call, CUDNN_STATUS_BAD_PARAM,
                std::string(names.y) + " is " + dims_text(y->n, y->c, y->h, y->w) + " but " + names.x + ", " + names.w +
                    " and conv give " + dims_text(x->n, w->k, static_cast<int>(ho), static_cast<int>(wo)));
  }
  p.g.n = x->n;
  p.g.c_in = x->c;
  p.g.h = x->h;
  p.g.w = x->w;
  p.g.c_out = w->k;
  p.g.kh = w->h;
  p.g.kw = w->w;
  p.g.stride_h = conv->stride_h;
  p.g.stride_w = conv->stride_w;
  p.g.pad_h = conv->pad_h;
  p.g.pad_w = conv->pad_w;
  p.type = x->type;
  p.math = conv->math;
  return CUDNN_STATUS_SUCCESS;
}

// ---- algorithms (Note [Emulated cuDNN]) -------------------------------------------------
// How an algorithm computes, which decides its support and workspace.
enum class Family {
  Implicit,          // no workspace
  Indexed,           // a small index table
  Gemm,              // one image's im2col matrix
  Fft,               // whole-plane FFTs
  FftTiling,         // 32x32 tile FFTs
  Winograd,          // fused Winograd, 3x3 only, no workspace
  WinogradNonfused,  // Winograd with transform buffers, 3x3 or 5x5
  Unimplemented,     // listed by cuDNN, supported for no geometry
};

struct Algo {
  int id;
  Family family;
  bool deterministic;
};

// The v7 lists, in their fixed heuristic order.
constexpr std::array<Algo, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> kForward = {{
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, Family::Winograd, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT, Family::Fft, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, Family::Indexed, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, Family::Implicit, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, Family::Gemm, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING, Family::FftTiling, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, Family::WinogradNonfused, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, Family::Unimplemented, true},
}};
constexpr std::array<Algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> kBackwardData = {{
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, Family::Implicit, false},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, Family::Winograd, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, Family::Indexed, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, Family::FftTiling, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT, Family::Fft, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, Family::WinogradNonfused, true},
}};
constexpr std::array<Algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> kBackwardFilter = {{
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, Family::Indexed, false},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, Family::Fft, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, Family::Implicit, false},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, Family::Gemm, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, Family::WinogradNonfused, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING, Family::FftTiling, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, Family::Unimplemented, true},
}};

template <size_t N>
const Algo* find_algo(const std::array<Algo, N>& table, int id) {
  for (const Algo& a : table) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

// Whether `family` runs on problem p. The heuristic (v7) answer checks less than the exact
// one (workspace queries, the convolutions), as cuDNN's heuristics may.
bool supported(Family family, const Problem& p, bool exact) {
  const ops::Conv2dGeom& g = p.g;
  const bool unit_stride = g.stride_h == 1 && g.stride_w == 1;
  const bool small_pads = g.pad_h < g.kh && g.pad_w < g.kw;
  switch (family) {
    case Family::Implicit:
    case Family::Indexed:
    case Family::Gemm:
      return true;
    case Family::Fft:
      return unit_stride && (!exact || (small_pads && g.h + 2 * g.pad_h <= 256 && g.w + 2 * g.pad_w <= 256));
    case Family::FftTiling:
      return unit_stride && (!exact || small_pads);
    case Family::Winograd:
      return unit_stride && p.type == CUDNN_DATA_FLOAT && g.kh == 3 && g.kw == 3;
    case Family::WinogradNonfused:
      return unit_stride && p.type == CUDNN_DATA_FLOAT && g.kh == g.kw && (g.kh == 3 || g.kh == 5);
    case Family::Unimplemented:
      return false;
  }
  return false;
}

size_t workspace(Family family, const Problem& p) {
  const ops::Conv2dGeom& g = p.g;
  const auto u = [](int64_t v) { return static_cast<size_t>(v); };
  const size_t planes = u(g.n * g.c_in + g.c_out * g.c_in + g.n * g.c_out);  // FFT'd inputs, filters, outputs
  switch (family) {
    case Family::Implicit:
    case Family::Winograd:
    case Family::Unimplemented:
      return 0;
    case Family::Indexed:
      return u(g.c_in * g.kh * g.kw) * 2 * sizeof(int);
    case Family::Gemm:
      return u(g.c_in * g.kh * g.kw * g.h_out() * g.w_out()) * p.elem();
    case Family::Fft:  // complex planes of the padded input's size, half the columns (real input)
      return 2 * p.elem() * planes * u((g.h + 2 * g.pad_h) * ((g.w + 2 * g.pad_w) / 2 + 1));
    case Family::FftTiling:
      return 2 * p.elem() * planes * 32 * 17;
    case Family::WinogradNonfused: {  // 4x4 output tiles, (k + 3)^2 transformed values each
      const size_t tiles = u(((g.h_out() + 3) / 4) * ((g.w_out() + 3) / 4));
      return p.elem() * u((g.kh + 3) * (g.kw + 3)) *
             (u(g.n * g.c_in) * tiles + u(g.c_out * g.c_in) + u(g.n * g.c_out) * tiles);
    }
  }
  return 0;
}

template <typename Perf, size_t N>
cudnnStatus_t heuristic_list(const char* call, const std::array<Algo, N>& table, const Problem& p, int requested,
                             int* returned, Perf* perf) {
  if (returned == nullptr || perf == nullptr) {
    return fail(call, CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "returnedAlgoCount or perfResults is null");
  }
  if (requested < 1) {
    return fail(call, CUDNN_STATUS_BAD_PARAM, "requestedAlgoCount must be >= 1, got " + std::to_string(requested));
  }
  const int count = std::min(requested, static_cast<int>(N));
  for (int i = 0; i < count; ++i) {
    const Algo& a = table[static_cast<size_t>(i)];
    const bool ok = supported(a.family, p, /*exact=*/false);
    Perf& e = perf[i];
    e = Perf{};
    e.algo = static_cast<decltype(e.algo)>(a.id);
    e.status = ok ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
    e.time = -1.0f;  // a heuristic answer: nothing was timed
    e.memory = ok ? workspace(a.family, p) : 0;
    e.determinism = a.deterministic ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
    e.mathType = p.math;
  }
  *returned = count;
  return CUDNN_STATUS_SUCCESS;
}

template <size_t N>
cudnnStatus_t workspace_query(const char* call, const std::array<Algo, N>& table, const Problem& p, int algo,
                              size_t* bytes) {
  const Algo* a = find_algo(table, algo);
  if (a == nullptr) return fail(call, CUDNN_STATUS_BAD_PARAM, "algorithm " + std::to_string(algo) + " does not exist");
  if (!supported(a->family, p, /*exact=*/true)) return CUDNN_STATUS_NOT_SUPPORTED;  // the caller's cue to move on
  if (bytes == nullptr) return fail(call, CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "sizeInBytes is null");
  *bytes = workspace(a->family, p);
  return CUDNN_STATUS_SUCCESS;
}

// ---- running a convolution ------------------------------------------------------------
bool overlap(const void* a, size_t an, const void* b, size_t bn) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return an > 0 && bn > 0 && pa < pb + bn && pb < pa + an;
}

enum class Direction { Forward, BackwardData, BackwardFilter };

// One convolution call: the two inputs and the output (in the CPU twin's argument order)
// with their names and element counts.
struct Operands {
  const void* in0;
  const char* in0_name;
  int64_t in0_count;
  const void* in1;
  const char* in1_name;
  int64_t in1_count;
  void* out;
  const char* out_name;
  int64_t out_count;
};

template <typename T>
void run_cpu(Direction d, const ops::Conv2dGeom& g, const T* in0, const T* in1, T* out) {
  switch (d) {
    case Direction::Forward:
      return ops::cpu::conv2d_forward(g, in0, in1, out, ops::Exec{});
    case Direction::BackwardData:
      return ops::cpu::conv2d_backward_data(g, in0, in1, out, ops::Exec{});
    case Direction::BackwardFilter:
      return ops::cpu::conv2d_backward_weight(g, in0, in1, out, ops::Exec{});
  }
}

template <typename T>
void enqueue_convolution(const char* call, cudaStream_t stream, Direction d, const ops::Conv2dGeom& g,
                         const Operands& o, const void* alpha, const void* beta, void* ws, size_t ws_bytes) {
  const T al = *static_cast<const T*>(alpha), be = *static_cast<const T*>(beta);  // read now: host scalars
  const T* in0 = static_cast<const T*>(o.in0);
  const T* in1 = static_cast<const T*>(o.in1);
  T* out = static_cast<T*>(o.out);
  const int64_t count = o.out_count;
  enqueue(stream, call, [=] {
    if (ws_bytes > 0) std::memset(ws, 0xFF, ws_bytes);
    // The result goes through the workspace when it fits (Note [Emulated cuDNN]), else
    // straight to the output when nothing is to be combined, else a temporary.
    std::vector<T> temporary;
    T* result = out;
    if (ws_bytes >= static_cast<size_t>(count) * sizeof(T) && reinterpret_cast<uintptr_t>(ws) % alignof(T) == 0) {
      result = static_cast<T*>(ws);
    } else if (al != T(1) || be != T(0)) {
      temporary.resize(static_cast<size_t>(count));
      result = temporary.data();
    }
    run_cpu<T>(d, g, in0, in1, result);
    if (result == out) return;
    for (int64_t i = 0; i < count; ++i) out[i] = be == T(0) ? al * result[i] : al * result[i] + be * out[i];
  });
}

template <size_t N>
cudnnStatus_t convolve(const char* call, Direction d, cudnnHandle_t h, const std::array<Algo, N>& table,
                       const Problem& p, int algo, const Operands& o, const void* alpha, const void* beta, void* ws,
                       size_t ws_bytes) {
  if (alpha == nullptr || beta == nullptr) {
    return fail(call, CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "alpha or beta is null");
  }
  const Algo* a = find_algo(table, algo);
  if (a == nullptr) return fail(call, CUDNN_STATUS_BAD_PARAM, "algorithm " + std::to_string(algo) + " does not exist");
  if (!supported(a->family, p, /*exact=*/true)) return CUDNN_STATUS_NOT_SUPPORTED;  // before enqueuing anything
  const size_t need = workspace(a->family, p);
  if (ws_bytes < need) {
    return fail(call, CUDNN_STATUS_BAD_PARAM,
                "algorithm " + std::to_string(algo) + " needs a workspace of " + std::to_string(need) +
                    " bytes, got workspaceSizeInBytes = " + std::to_string(ws_bytes));
  }
  if (need > 0 && ws == nullptr) {
    return fail(call, CUDNN_STATUS_BAD_PARAM,
                "algorithm " + std::to_string(algo) + " needs a workspace of " + std::to_string(need) +
                    " bytes, got a null workSpace");
  }
  const size_t elem = p.elem();
  const size_t in0_bytes = static_cast<size_t>(o.in0_count) * elem, in1_bytes = static_cast<size_t>(o.in1_count) * elem;
  const size_t out_bytes = static_cast<size_t>(o.out_count) * elem;
  try {
    const int device = stream_device(h->stream);
    if (device != h->device) {
      return fail(call, CUDNN_STATUS_BAD_PARAM,
                  "the handle belongs to cuda:" + std::to_string(h->device) + " but its stream " + hex(h->stream) +
                      " to cuda:" + std::to_string(device));
    }
    for (const auto& [name, scalar] : {std::pair{"alpha", alpha}, std::pair{"beta", beta}}) {
      if (classify(call, scalar, elem).kind == Kind::Device) {
        return fail(
            call, CUDNN_STATUS_BAD_PARAM,
            std::string(name) + " (" + hex(scalar) + ") is device memory; cuDNN reads alpha and beta on the host");
      }
    }
    require_device(call, o.in0_name, o.in0, in0_bytes, device);
    require_device(call, o.in1_name, o.in1, in1_bytes, device);
    require_device(call, o.out_name, o.out, out_bytes, device);
    if (ws != nullptr && ws_bytes > 0) require_device(call, "workSpace", ws, ws_bytes, device);
  } catch (const Error& e) {
    std::cerr << e.what() << '\n';
    return CUDNN_STATUS_BAD_PARAM;
  }
  struct Input {
    const void* p;
    size_t bytes;
    const char* name;
  };
  for (const Input& in : {Input{o.in0, in0_bytes, o.in0_name}, Input{o.in1, in1_bytes, o.in1_name}}) {
    if (overlap(o.out, out_bytes, in.p, in.bytes)) {
      return fail(call, CUDNN_STATUS_BAD_PARAM,
                  std::string("the output ") + o.out_name + " overlaps the input " + in.name);
    }
    if (overlap(ws, need, in.p, in.bytes)) {
      return fail(call, CUDNN_STATUS_BAD_PARAM, std::string("the workspace overlaps the input ") + in.name);
    }
  }
  if (overlap(ws, need, o.out, out_bytes)) {
    return fail(call, CUDNN_STATUS_BAD_PARAM, std::string("the workspace overlaps the output ") + o.out_name);
  }
  try {
    if (p.type == CUDNN_DATA_FLOAT) {
      enqueue_convolution<float>(call, h->stream, d, p.g, o, alpha, beta, ws, need);
    } else {
      enqueue_convolution<double>(call, h->stream, d, p.g, o, alpha, beta, ws, need);
    }
  } catch (const Error& e) {
    std::cerr << e.what() << '\n';
    return CUDNN_STATUS_EXECUTION_FAILED;
  }
  return CUDNN_STATUS_SUCCESS;
}

// The handle, then the descriptors of a convolution call.
cudnnStatus_t setup(const char* call, cudnnHandle_t h, const TensorNames& names, const cudnnTensorStruct* x,
                    const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv, const cudnnTensorStruct* y,
                    Problem& p) {
  if (cudnnStatus_t s = check_object(call, "handle", h); s != CUDNN_STATUS_SUCCESS) return s;
  return make_problem(call, names, x, w, conv, y, p);
}

cudnnStatus_t max_count(const char* call, cudnnHandle_t h, int* count, int value) {
  if (cudnnStatus_t s = check_object(call, "handle", h); s != CUDNN_STATUS_SUCCESS) return s;
  if (count == nullptr) return fail(call, CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "count is null");
  *count = value;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace
}  // namespace dtrain::emu::device

namespace dev = dtrain::emu::device;

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS:
      return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED:
      return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM:
      return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER:
      return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER:
      return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH:
      return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND:
      return "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND";
    case CUDNN_STATUS_NOT_SUPPORTED:
      return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE:
      return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_INTERNAL_ERROR:
      return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED:
      return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_UNKNOWN_STATUS_FOUND";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  int device = 0;
  try {
    device = dev::current();
  } catch (const dev::Error& e) {
    return dev::fail("cudnnCreate", CUDNN_STATUS_NOT_INITIALIZED, e.what());
  }
  if (cudnnStatus_t s = dev::create(handle); s != CUDNN_STATUS_SUCCESS) return s;
  (*handle)->device = device;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (handle == nullptr) return dev::fail("cudnnDestroy", CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "the handle is null");
  return dev::destroy("cudnnDestroy", handle);
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  if (cudnnStatus_t s = dev::check_object("cudnnSetStream", "handle", handle); s != CUDNN_STATUS_SUCCESS) return s;
  handle->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t* stream) {
  if (cudnnStatus_t s = dev::check_object("cudnnGetStream", "handle", handle); s != CUDNN_STATUS_SUCCESS) return s;
  if (stream == nullptr) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  *stream = handle->stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* desc) { return dev::create(desc); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc) {
  return dev::destroy("cudnnDestroyTensorDescriptor", desc);
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t desc, cudnnTensorFormat_t format, cudnnDataType_t type,
                                         int n, int c, int h, int w) {
  const char* call = "cudnnSetTensor4dDescriptor";
  if (cudnnStatus_t s = dev::check_descriptor_values(call, "tensorDesc", desc, format, type, n, c, h, w);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  *desc = cudnnTensorStruct{true, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* desc) { return dev::create(desc); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc) {
  return dev::destroy("cudnnDestroyFilterDescriptor", desc);
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t desc, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  const char* call = "cudnnSetFilter4dDescriptor";
  if (cudnnStatus_t s = dev::check_descriptor_values(call, "filterDesc", desc, format, type, k, c, h, w);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  *desc = cudnnFilterStruct{true, type, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* desc) { return dev::create(desc); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc) {
  return dev::destroy("cudnnDestroyConvolutionDescriptor", desc);
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t desc, int pad_h, int pad_w, int u, int v,
                                              int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute_type) {
  const char* call = "cudnnSetConvolution2dDescriptor";
  if (cudnnStatus_t s = dev::check_object(call, "convDesc", desc, /*must_be_set=*/false); s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  auto pair = [](int a, int b) { return std::to_string(a) + ", " + std::to_string(b); };
  if (pad_h < 0 || pad_w < 0) {
    return dev::fail(call, CUDNN_STATUS_BAD_PARAM, "pads must be >= 0, got " + pair(pad_h, pad_w));
  }
  if (u < 1 || v < 1) return dev::fail(call, CUDNN_STATUS_BAD_PARAM, "strides must be >= 1, got " + pair(u, v));
  if (dilation_h < 1 || dilation_w < 1) {
    return dev::fail(call, CUDNN_STATUS_BAD_PARAM, "dilations must be >= 1, got " + pair(dilation_h, dilation_w));
  }
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) {
    return dev::fail(call, CUDNN_STATUS_BAD_PARAM,
                     "mode = " + std::to_string(static_cast<int>(mode)) + " is not a cudnnConvolutionMode_t");
  }
  if (cudnnStatus_t s = dev::check_type(call, "computeType", compute_type); s != CUDNN_STATUS_SUCCESS) return s;
  if (dilation_h != 1 || dilation_w != 1) {
    return dev::fail(call, CUDNN_STATUS_NOT_SUPPORTED,
                     "dilation " + pair(dilation_h, dilation_w) + " is not emulated (1 only, as dtrain uses)");
  }
  if (mode == CUDNN_CONVOLUTION) {
    return dev::fail(call, CUDNN_STATUS_NOT_SUPPORTED,
                     "CUDNN_CONVOLUTION (flipped filters) is not emulated; dtrain computes CUDNN_CROSS_CORRELATION");
  }
  desc->set = true;
  desc->pad_h = pad_h;
  desc->pad_w = pad_w;
  desc->stride_h = u;
  desc->stride_w = v;
  desc->compute_type = compute_type;  // the math type is kept: it has its own setter
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t desc, cudnnMathType_t math) {
  const char* call = "cudnnSetConvolutionMathType";
  if (cudnnStatus_t s = dev::check_object(call, "convDesc", desc, /*must_be_set=*/false); s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  if (math != CUDNN_DEFAULT_MATH && math != CUDNN_TENSOR_OP_MATH && math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
      math != CUDNN_FMA_MATH) {
    return dev::fail(call, CUDNN_STATUS_BAD_PARAM,
                     "mathType = " + std::to_string(static_cast<int>(math)) + " is not a cudnnMathType_t");
  }
  desc->math = math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t conv,
                                                    const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                                                    int* n, int* c, int* h, int* w_out) {
  const char* call = "cudnnGetConvolution2dForwardOutputDim";
  if (cudnnStatus_t s = dev::check_input_side(call, dev::kForwardNames, x, w, conv); s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  if (n == nullptr || c == nullptr || h == nullptr || w_out == nullptr) {
    return dev::fail(call, CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "an output pointer is null");
  }
  *n = x->n;
  *c = w->k;
  *h = static_cast<int>(dev::output_dim(x->h, conv->pad_h, w->h, conv->stride_h));
  *w_out = static_cast<int>(dev::output_dim(x->w, conv->pad_w, w->w, conv->stride_w));
  return CUDNN_STATUS_SUCCESS;
}

// ---- forward -------------------------------------------------------------------------------
cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  return dev::max_count("cudnnGetConvolutionForwardAlgorithmMaxCount", handle, count, CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t conv,
                                                     const cudnnTensorDescriptor_t y, int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
  const char* call = "cudnnGetConvolutionForwardAlgorithm_v7";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kForwardNames, x, w, conv, y, p); s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  return dev::heuristic_list(call, dev::kForward, p, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t conv,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  const char* call = "cudnnGetConvolutionForwardWorkspaceSize";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kForwardNames, x, w, conv, y, p); s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  return dev::workspace_query(call, dev::kForward, p, algo, bytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t x_desc,
                                      const void* x, const cudnnFilterDescriptor_t w_desc, const void* w,
                                      const cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo,
                                      void* workspace, size_t workspace_bytes, const void* beta,
                                      const cudnnTensorDescriptor_t y_desc, void* y) {
  const char* call = "cudnnConvolutionForward";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kForwardNames, x_desc, w_desc, conv, y_desc, p);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  const dev::Operands o{x, "x", p.g.x_numel(), w, "w", p.g.w_numel(), y, "y", p.g.y_numel()};
  return dev::convolve(call, dev::Direction::Forward, handle, dev::kForward, p, algo, o, alpha, beta, workspace,
                       workspace_bytes);
}

// ---- backward data -------------------------------------------------------------------------
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  return dev::max_count("cudnnGetConvolutionBackwardDataAlgorithmMaxCount", handle, count,
                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t handle, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t conv,
                                                          const cudnnTensorDescriptor_t dx, int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  const char* call = "cudnnGetConvolutionBackwardDataAlgorithm_v7";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kBackwardDataNames, dx, w, conv, dy, p);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  return dev::heuristic_list(call, dev::kBackwardData, p, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t conv,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  const char* call = "cudnnGetConvolutionBackwardDataWorkspaceSize";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kBackwardDataNames, dx, w, conv, dy, p);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  return dev::workspace_query(call, dev::kBackwardData, p, algo, bytes);
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                           const cudnnFilterDescriptor_t w_desc, const void* w,
                                           const cudnnTensorDescriptor_t dy_desc, const void* dy,
                                           const cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* workspace, size_t workspace_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dx_desc, void* dx) {
  const char* call = "cudnnConvolutionBackwardData";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kBackwardDataNames, dx_desc, w_desc, conv, dy_desc, p);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  const dev::Operands o{w, "w", p.g.w_numel(), dy, "dy", p.g.y_numel(), dx, "dx", p.g.x_numel()};
  return dev::convolve(call, dev::Direction::BackwardData, handle, dev::kBackwardData, p, algo, o, alpha, beta,
                       workspace, workspace_bytes);
}

// ---- backward filter -----------------------------------------------------------------------
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  return dev::max_count("cudnnGetConvolutionBackwardFilterAlgorithmMaxCount", handle, count,
                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t conv,
                                                            const cudnnFilterDescriptor_t dw, int requested,
                                                            int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  const char* call = "cudnnGetConvolutionBackwardFilterAlgorithm_v7";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kBackwardFilterNames, x, dw, conv, dy, p);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  return dev::heuristic_list(call, dev::kBackwardFilter, p, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t conv,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  const char* call = "cudnnGetConvolutionBackwardFilterWorkspaceSize";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kBackwardFilterNames, x, dw, conv, dy, p);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  return dev::workspace_query(call, dev::kBackwardFilter, p, algo, bytes);
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t x_desc, const void* x,
                                             const cudnnTensorDescriptor_t dy_desc, const void* dy,
                                             const cudnnConvolutionDescriptor_t conv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workspace,
                                             size_t workspace_bytes, const void* beta,
                                             const cudnnFilterDescriptor_t dw_desc, void* dw) {
  const char* call = "cudnnConvolutionBackwardFilter";
  dev::Problem p;
  if (cudnnStatus_t s = dev::setup(call, handle, dev::kBackwardFilterNames, x_desc, dw_desc, conv, dy_desc, p);
      s != CUDNN_STATUS_SUCCESS) {
    return s;
  }
  const dev::Operands o{x, "x", p.g.x_numel(), dy, "dy", p.g.y_numel(), dw, "dw", p.g.w_numel()};
  return dev::convolve(call, dev::Direction::BackwardFilter, handle, dev::kBackwardFilter, p, algo, o, alpha, beta,
                       workspace, workspace_bytes);
}
