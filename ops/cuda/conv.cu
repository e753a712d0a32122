// 2-D convolution on CUDA with cuDNN (NCHW, one group, dilation 1; ops/geometry.h).
//   conv2d_forward:         y = x (*) w                         (=)
//   conv2d_backward_data:   gx = d(sum gy . y)/dx               (=)
//   conv2d_backward_weight: gw = d(sum gy . y)/dw, over batch   (=)
//     x, gx: (N, C_in, H, W); w, gw: (C_out, C_in, KH, KW); y, gy: (N, C_out, Ho, Wo)
//
// Note [cuDNN plans]: each (device, handle, geometry, dtype, workspace bound) gets a plan
// in a thread_local cache (threads-as-ranks each keep their own): the four descriptors
// and, ranked on first use of each direction, the candidate algorithms with their
// workspace sizes.
// - Math: the convolution descriptor is CUDNN_FMA_MATH, so f32 never runs on TF32 tensor
//   cores and agrees with the CPU twin; the compute type is the data type. For f32 the
//   FFT and Winograd algorithms rank after every direct one (GEMM-like sums): their
//   transform-domain rounding can exceed the 2e-5 agreement with the CPU twin. They
//   still run when nothing else fits the bound.
// - Choice: cuDNN's heuristic ranking (cudnnGet*Algorithm_v7, no benchmarking, so the
//   choice does not depend on timing noise), keeping the algorithms that cuDNN accepts
//   for these descriptors (their workspace query succeeds) and whose workspace fits the
//   bound, CUDNN_DETERMINISTIC ones first so gradients are reproducible run to run; a
//   non-deterministic algorithm runs only when no deterministic one fits. The first
//   candidate is used; one that the convolution call refuses as unsupported (before
//   enqueuing anything) is dropped for good and the next one runs.
// - Workspace: from ex.scratch(bytes), bounded by DTRAIN_CUDNN_WORKSPACE_MB (default
//   256 MiB, read once). An Exec without scratch gets only zero-workspace algorithms.
// beta = 0 everywhere: the outputs are written, never accumulated. Empty problems are
// handled here (cuDNN rejects zero-sized dimensions): an empty sum writes zeros.
#include <cudnn.h>

#include <array>
#include <climits>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

constexpr size_t kDefaultWorkspaceMiB = 256;

void check_cudnn(cudnnStatus_t status, const char* kernel, const char* call) {
  if (status != CUDNN_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("dtrain::ops::") + kernel + ": " + call +
                             " failed: " + cudnnGetErrorString(status));
  }
}

void check_cuda(cudaError_t err, const char* kernel, const char* call) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("dtrain::ops::") + kernel + ": " + call + " failed: " +
                             cudaGetErrorString(err));
  }
}

// The workspace bound in bytes: DTRAIN_CUDNN_WORKSPACE_MB (MiB, a non-negative integer)
// or 256 MiB. Read once per process; a malformed value throws on every use.
size_t workspace_bound() {
  static const std::optional<size_t> bound = []() -> std::optional<size_t> {
    const char* env = std::getenv("DTRAIN_CUDNN_WORKSPACE_MB");
    if (env == nullptr || *env == '\0') return kDefaultWorkspaceMiB << 20;
    char* end = nullptr;
    const unsigned long long mib = std::strtoull(env, &end, 10);
    if (*end != '\0' || *env == '-' || mib > (SIZE_MAX >> 20)) return std::nullopt;
    return static_cast<size_t>(mib) << 20;
  }();
  if (!bound) {
    invalid("cuda::conv2d", std::string("DTRAIN_CUDNN_WORKSPACE_MB must be a number of MiB (>= 0), got '") +
                                std::getenv("DTRAIN_CUDNN_WORKSPACE_MB") + "'");
  }
  return *bound;
}

template <typename T>
constexpr cudnnDataType_t cudnn_type() {
  return sizeof(T) == sizeof(float) ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// Geometry preconditions, and the int range cuDNN's 4-D descriptors need.
void check_geom(const char* kernel, const Conv2dGeom& g) {
  ::dtrain::ops::detail::check_conv_geom(kernel, g);
  for (int64_t v : {g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
                    g.x_numel(), g.w_numel(), g.y_numel()}) {
    if (v > INT_MAX) invalid(kernel, "sizes above 2^31 - 1 elements are not supported by cuDNN's 4-D descriptors");
  }
}

// The algorithms of one direction that cuDNN accepts for a plan within the bound, in
// preference order (Note [cuDNN plans]); `next` skips those that failed to run.
template <typename Algo>
struct Candidates {
  bool ranked = false;
  std::vector<std::pair<Algo, size_t>> list;  // (algorithm, workspace bytes)
  size_t next = 0;
};

// Descriptors and chosen algorithms for one geometry and dtype (Note [cuDNN plans]).
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr;  // (N, C_in, H, W)
  cudnnTensorDescriptor_t y = nullptr;  // (N, C_out, Ho, Wo)
  cudnnFilterDescriptor_t w = nullptr;  // (C_out, C_in, KH, KW)
  cudnnConvolutionDescriptor_t conv = nullptr;
  Candidates<cudnnConvolutionFwdAlgo_t> fwd;
  Candidates<cudnnConvolutionBwdDataAlgo_t> bwd_data;
  Candidates<cudnnConvolutionBwdFilterAlgo_t> bwd_filter;

  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

std::unique_ptr<ConvPlan> make_plan(const char* kernel, const Conv2dGeom& g, cudnnDataType_t type) {
  auto p = std::make_unique<ConvPlan>();
  const auto i = [](int64_t v) { return static_cast<int>(v); };  // range checked in check_geom
  check_cudnn(cudnnCreateTensorDescriptor(&p->x), kernel, "cudnnCreateTensorDescriptor");
  check_cudnn(cudnnCreateTensorDescriptor(&p->y), kernel, "cudnnCreateTensorDescriptor");
  check_cudnn(cudnnCreateFilterDescriptor(&p->w), kernel, "cudnnCreateFilterDescriptor");
  check_cudnn(cudnnCreateConvolutionDescriptor(&p->conv), kernel, "cudnnCreateConvolutionDescriptor");
  check_cudnn(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, type, i(g.n), i(g.c_in), i(g.h), i(g.w)), kernel,
              "cudnnSetTensor4dDescriptor (x)");
  check_cudnn(
      cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, type, i(g.n), i(g.c_out), i(g.h_out()), i(g.w_out())),
      kernel, "cudnnSetTensor4dDescriptor (y)");
  check_cudnn(cudnnSetFilter4dDescriptor(p->w, type, CUDNN_TENSOR_NCHW, i(g.c_out), i(g.c_in), i(g.kh), i(g.kw)),
              kernel, "cudnnSetFilter4dDescriptor");
  check_cudnn(cudnnSetConvolution2dDescriptor(p->conv, i(g.pad_h), i(g.pad_w), i(g.stride_h), i(g.stride_w), 1, 1,
                                              CUDNN_CROSS_CORRELATION, type),
              kernel, "cudnnSetConvolution2dDescriptor");
  check_cudnn(cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH), kernel, "cudnnSetConvolutionMathType");
  // cuDNN's own output shape must be ours (floor division, as documented in geometry.h).
  int dims[4] = {0, 0, 0, 0};
  check_cudnn(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &dims[0], &dims[1], &dims[2], &dims[3]),
              kernel, "cudnnGetConvolution2dForwardOutputDim");
  if (dims[0] != g.n || dims[1] != g.c_out || dims[2] != g.h_out() || dims[3] != g.w_out()) {
    throw std::logic_error(std::string("dtrain::ops::") + kernel + ": cuDNN's output shape disagrees with Conv2dGeom");
  }
  return p;
}

// The thread's plan for (device, handle, geometry, dtype, bound), created on first use.
ConvPlan& plan_for(const char* kernel, cudnnHandle_t handle, const Conv2dGeom& g, cudnnDataType_t type,
                   size_t bound) {
  int device = -1;
  check_cuda(cudaGetDevice(&device), kernel, "cudaGetDevice");
  using Key = std::array<int64_t, 15>;
  const Key key = {g.n,
                   g.c_in,
                   g.h,
                   g.w,
                   g.c_out,
                   g.kh,
                   g.kw,
                   g.stride_h,
                   g.stride_w,
                   g.pad_h,
                   g.pad_w,
                   static_cast<int64_t>(type),
                   device,
                   static_cast<int64_t>(reinterpret_cast<uintptr_t>(handle)),
                   static_cast<int64_t>(bound)};
  thread_local std::map<Key, std::unique_ptr<ConvPlan>> plans;
  auto& slot = plans[key];
  if (!slot) slot = make_plan(kernel, g, type);
  return *slot;
}

// FFT and Winograd algorithms compute in a transformed domain whose rounding error in
// f32 is well above a direct sum's (Note [cuDNN plans]).
bool is_transform(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool is_transform(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool is_transform(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// Ranks heuristic results `perf` (best first) into tiers, each in cuDNN's order: for f32
// (demote_transforms) direct deterministic, direct non-deterministic, transform
// deterministic, transform non-deterministic; for f64 deterministic, non-deterministic.
// Only usable algorithms are kept: cuDNN reports success, accepts the algorithm for this
// plan's descriptors (`workspace_of` gives its workspace, nullopt when rejected) and the
// workspace fits the bound.
template <typename Algo, typename Perf, typename WorkspaceOf>
void rank(const char* kernel, Candidates<Algo>& c, const std::vector<Perf>& perf, size_t bound,
          bool demote_transforms, WorkspaceOf workspace_of) {
  c.list.clear();
  c.next = 0;
  for (bool transform : {false, true}) {
    for (bool deterministic : {true, false}) {
      for (const Perf& p : perf) {
        if (p.status != CUDNN_STATUS_SUCCESS || (p.determinism == CUDNN_DETERMINISTIC) != deterministic) continue;
        if (demote_transforms && is_transform(p.algo) != transform) continue;
        if (!demote_transforms && transform) continue;  // one pass over both kinds
        const std::optional<size_t> ws = workspace_of(p.algo);
        if (ws && *ws <= bound) c.list.emplace_back(p.algo, *ws);
      }
    }
  }
  if (c.list.empty()) {
    invalid(kernel, "cuDNN offers no algorithm for this convolution within the workspace bound of " +
                        std::to_string(bound >> 20) + " MiB; raise DTRAIN_CUDNN_WORKSPACE_MB");
  }
  c.ranked = true;
}

// Runs `launch(algo, workspace, bytes)` with the first candidate that cuDNN does not
// refuse as unsupported (a refusal happens before any work is enqueued; the candidate is
// then dropped for this plan). Any other failure throws.
template <typename Algo, typename Launch>
void run_first(const char* kernel, const char* call, Candidates<Algo>& c, Exec ex, Launch launch) {
  for (; c.next < c.list.size(); ++c.next) {
    const auto [algo, bytes] = c.list[c.next];
    void* ws = nullptr;
    if (bytes > 0) {
      ws = ex.scratch(bytes);
      if (ws == nullptr) invalid(kernel, "ex.scratch returned no memory for the cuDNN workspace");
    }
    const cudnnStatus_t status = launch(algo, ws, bytes);
    if (CUDNN_STATUS_CATEGORY(status) != CUDNN_STATUS_NOT_SUPPORTED) return check_cudnn(status, kernel, call);
  }
  throw std::runtime_error(std::string("dtrain::ops::") + kernel + ": " + call +
                           ": cuDNN refused every algorithm it had ranked for this convolution");
}

void rank_forward(const char* kernel, cudnnHandle_t h, ConvPlan& p, cudnnDataType_t type, size_t bound) {
  int max_count = 0;
  check_cudnn(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count), kernel,
              "cudnnGetConvolutionForwardAlgorithmMaxCount");
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(max_count, 1)));
  int returned = 0;
  check_cudnn(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, static_cast<int>(perf.size()),
                                                     &returned, perf.data()),
              kernel, "cudnnGetConvolutionForwardAlgorithm_v7");
  perf.resize(static_cast<size_t>(std::clamp(returned, 0, static_cast<int>(perf.size()))));
  rank(kernel, p.fwd, perf, bound, type == CUDNN_DATA_FLOAT, [&](cudnnConvolutionFwdAlgo_t algo) -> std::optional<size_t> {
    size_t ws = 0;
    if (cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y, algo, &ws) != CUDNN_STATUS_SUCCESS) {
      return std::nullopt;
    }
    return ws;
  });
}

void rank_backward_data(const char* kernel, cudnnHandle_t h, ConvPlan& p, cudnnDataType_t type, size_t bound) {
  int max_count = 0;
  check_cudnn(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count), kernel,
              "cudnnGetConvolutionBackwardDataAlgorithmMaxCount");
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<size_t>(std::max(max_count, 1)));
  int returned = 0;
  check_cudnn(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, static_cast<int>(perf.size()),
                                                          &returned, perf.data()),
              kernel, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  perf.resize(static_cast<size_t>(std::clamp(returned, 0, static_cast<int>(perf.size()))));
  rank(kernel, p.bwd_data, perf, bound, type == CUDNN_DATA_FLOAT, [&](cudnnConvolutionBwdDataAlgo_t algo) -> std::optional<size_t> {
    size_t ws = 0;
    if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.conv, p.x, algo, &ws) != CUDNN_STATUS_SUCCESS) {
      return std::nullopt;
    }
    return ws;
  });
}

void rank_backward_filter(const char* kernel, cudnnHandle_t h, ConvPlan& p, cudnnDataType_t type, size_t bound) {
  int max_count = 0;
  check_cudnn(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count), kernel,
              "cudnnGetConvolutionBackwardFilterAlgorithmMaxCount");
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<size_t>(std::max(max_count, 1)));
  int returned = 0;
  check_cudnn(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, static_cast<int>(perf.size()),
                                                            &returned, perf.data()),
              kernel, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  perf.resize(static_cast<size_t>(std::clamp(returned, 0, static_cast<int>(perf.size()))));
  rank(kernel, p.bwd_filter, perf, bound, type == CUDNN_DATA_FLOAT, [&](cudnnConvolutionBwdFilterAlgo_t algo) -> std::optional<size_t> {
    size_t ws = 0;
    if (cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.conv, p.w, algo, &ws) !=
        CUDNN_STATUS_SUCCESS) {
      return std::nullopt;
    }
    return ws;
  });
}

// The common preamble: handle present, the bound this Exec can honour.
cudnnHandle_t handle_of(const char* kernel, Exec ex) {
  if (ex.dnn == nullptr) invalid(kernel, "ex.dnn is null; pass a cudnnHandle_t bound to ex.stream");
  return static_cast<cudnnHandle_t>(ex.dnn);
}

size_t bound_of(Exec ex) { return ex.scratch_fn ? workspace_bound() : 0; }

// out (= 0) for a convolution whose sum is empty.
template <typename T>
void zero(const char* kernel, T* out, int64_t count, Exec ex) {
  check_cuda(cudaMemsetAsync(out, 0, static_cast<size_t>(count) * sizeof(T), stream_of(ex)), kernel,
             "cudaMemsetAsync");
}

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dGeom& g, const T* x, const T* w, T* y, Exec ex) {
  const char* kernel = "cuda::conv2d_forward";
  check_geom(kernel, g);
  check_ptr(kernel, "x", x, g.x_numel());
  check_ptr(kernel, "w", w, g.w_numel());
  check_ptr(kernel, "y", y, g.y_numel());
  cudnnHandle_t h = handle_of(kernel, ex);
  if (g.y_numel() == 0) return;
  if (g.x_numel() == 0) return zero(kernel, y, g.y_numel(), ex);  // C_in == 0 or an all-padding input
  const size_t bound = bound_of(ex);
  ConvPlan& p = plan_for(kernel, h, g, cudnn_type<T>(), bound);
  if (!p.fwd.ranked) rank_forward(kernel, h, p, cudnn_type<T>(), bound);
  const T one = 1, nothing = 0;
  run_first(kernel, "cudnnConvolutionForward", p.fwd, ex,
            [&](cudnnConvolutionFwdAlgo_t algo, void* ws, size_t bytes) {
              return cudnnConvolutionForward(h, &one, p.x, x, p.w, w, p.conv, algo, ws, bytes, &nothing, p.y, y);
            });
}

template <typename T>
void conv2d_backward_data(const Conv2dGeom& g, const T* w, const T* gy, T* gx, Exec ex) {
  const char* kernel = "cuda::conv2d_backward_data";
  check_geom(kernel, g);
  check_ptr(kernel, "w", w, g.w_numel());
  check_ptr(kernel, "gy", gy, g.y_numel());
  check_ptr(kernel, "gx", gx, g.x_numel());
  cudnnHandle_t h = handle_of(kernel, ex);
  if (g.x_numel() == 0) return;
  if (g.y_numel() == 0) return zero(kernel, gx, g.x_numel(), ex);  // C_out == 0
  const size_t bound = bound_of(ex);
  ConvPlan& p = plan_for(kernel, h, g, cudnn_type<T>(), bound);
  if (!p.bwd_data.ranked) rank_backward_data(kernel, h, p, cudnn_type<T>(), bound);
  const T one = 1, nothing = 0;
  run_first(kernel, "cudnnConvolutionBackwardData", p.bwd_data, ex,
            [&](cudnnConvolutionBwdDataAlgo_t algo, void* ws, size_t bytes) {
              return cudnnConvolutionBackwardData(h, &one, p.w, w, p.y, gy, p.conv, algo, ws, bytes, &nothing, p.x,
                                                  gx);
            });
}

template <typename T>
void conv2d_backward_weight(const Conv2dGeom& g, const T* x, const T* gy, T* gw, Exec ex) {
  const char* kernel = "cuda::conv2d_backward_weight";
  check_geom(kernel, g);
  check_ptr(kernel, "x", x, g.x_numel());
  check_ptr(kernel, "gy", gy, g.y_numel());
  check_ptr(kernel, "gw", gw, g.w_numel());
  cudnnHandle_t h = handle_of(kernel, ex);
  if (g.w_numel() == 0) return;
  if (g.x_numel() == 0 || g.y_numel() == 0) return zero(kernel, gw, g.w_numel(), ex);  // an empty batch
  const size_t bound = bound_of(ex);
  ConvPlan& p = plan_for(kernel, h, g, cudnn_type<T>(), bound);
  if (!p.bwd_filter.ranked) rank_backward_filter(kernel, h, p, cudnn_type<T>(), bound);
  const T one = 1, nothing = 0;
  run_first(kernel, "cudnnConvolutionBackwardFilter", p.bwd_filter, ex,
            [&](cudnnConvolutionBwdFilterAlgo_t algo, void* ws, size_t bytes) {
              return cudnnConvolutionBackwardFilter(h, &one, p.x, x, p.y, gy, p.conv, algo, ws, bytes, &nothing, p.w,
                                                    gw);
            });
}

DT_INSTANTIATE_KERNELS(DT_CONV_KERNELS)

}  // namespace dtrain::ops::cuda
