// Sequence kernels on CUDA, the twins of ops/cpu/sequence.cpp (semantics in
// ops/kernels.inc, section "sequences"):
//   embedding:            ids: (N); table, gtable: (V, D); out, gout: (N, D)
//   softmax_xent_masked:  logits, probs, glogits: (N, C); labels: (N); loss, count, g: (1)
//   lstm_cell:            gates, act, ggates: (B, 4H); c_prev, h, c, gh, gc, gc_prev: (B, H)
//   length_select:        lengths: (R); a, b, out: (R, D)
//   time_gather/scatter:  x: (B, S, D); out, src: (B, D)
//   batched_gemv/outer:   A: (B, M, K); x, y, u, v: (B, M) or (B, K)
//   masked_softmax:       x, y, gy, gx: (R, S); lengths: (R)
// Gradients are written with `=`. No float atomics anywhere: the embedding gradient gives
// each (vocab row, d) element to one thread, which scans the ids in increasing order (the
// CPU's order), so both backends add in the same sequence. That costs O(V D N) work:
// right for the small vocabularies and batches of character-level models.
//
// Ids and labels are not checked on the host (a device-to-host copy): an out-of-range id
// gives a NaN row in the embedding forward and is skipped in its backward; a kept label
// out of range makes the masked loss NaN, where the CPU twin throws.
#include "ops/common/instantiate.h"
#include "ops/cuda/common.cuh"

namespace dtrain::ops::cuda {
namespace {

using namespace detail;

template <typename T>
__device__ inline T sigmoid_dev(T x) {
  const T e = exp(-fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// ---- embedding ----

template <typename T>
__global__ void embedding_forward_kernel(const int64_t* ids, const T* table, T* out, int64_t n, int64_t vocab,
                                         int64_t dim) {
  for (int64_t idx = grid_start(); idx < n * dim; idx += grid_stride()) {
    const int64_t i = idx / dim, d = idx % dim;
    const int64_t id = ids[i];
    out[idx] = (id >= 0 && id < vocab) ? table[id * dim + d] : static_cast<T>(quiet_nan());
  }
}

// One thread per gtable element (v, d), scanning all ids in order.
template <typename T>
__global__ void embedding_backward_kernel(const int64_t* ids, const T* gout, T* gtable, int64_t n, int64_t vocab,
                                          int64_t dim, int64_t padding_idx) {
  for (int64_t idx = grid_start(); idx < vocab * dim; idx += grid_stride()) {
    const int64_t v = idx / dim, d = idx % dim;
    T acc = T(0);
    if (v != padding_idx) {
      for (int64_t i = 0; i < n; ++i) {
        if (ids[i] == v) acc += gout[i * dim + d];
      }
    }
    gtable[idx] = acc;
  }
}

// ---- masked cross-entropy ----

// <<<1, kReduceThreads>>>, softmax_xent_forward's layout: warp w takes rows w, w + 32,
// ...; lane 0 adds its kept rows' losses and counts; block_sum combines in a fixed tree.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    softmax_xent_masked_forward_kernel(const T* logits, const int64_t* labels, T* probs, T* loss, T* count,
                                       int64_t rows, int64_t classes, int64_t ignore_index) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  constexpr int kWarps = kReduceThreads / kWarp;
  double warp_total = 0.0, warp_kept = 0.0;
  for (int64_t r = warp; r < rows; r += kWarps) {
    const T* x = logits + r * classes;
    T* p = probs + r * classes;
    const RowSoftmax sm = warp_row_softmax(x, p, classes, lane);
    const double m = sm.max, s = sm.sum;
    if (lane == 0) {
      const int64_t label = labels[r];
      if (label != ignore_index) {
        warp_total += (label >= 0 && label < classes) ? log(s) - (static_cast<double>(x[label]) - m) : quiet_nan();
        warp_kept += 1.0;
      }
    }
  }
  const double total = block_sum<kReduceThreads>(lane == 0 ? warp_total : 0.0);
  const double kept = block_sum<kReduceThreads>(lane == 0 ? warp_kept : 0.0);
  if (threadIdx.x == 0) {
    loss[0] = static_cast<T>(total / kept);
    count[0] = static_cast<T>(kept);
  }
}

template <typename T>
__global__ void softmax_xent_masked_backward_kernel(const T* probs, const int64_t* labels, const T* count,
                                                    const T* g, T* glogits, int64_t rows, int64_t classes,
                                                    int64_t ignore_index) {
  const T scale = g[0] / count[0];
  for (int64_t i = grid_start(); i < rows * classes; i += grid_stride()) {
    const int64_t label = labels[i / classes];
    const int64_t c = i % classes;
    if (label == ignore_index) {
      glogits[i] = T(0);
    } else if (label < 0 || label >= classes) {
      glogits[i] = static_cast<T>(quiet_nan());
    } else {
      glogits[i] = (probs[i] - (c == label ? T(1) : T(0))) * scale;
    }
  }
}

// ---- LSTM cell ----

template <typename T>
__global__ void lstm_cell_forward_kernel(const T* gates, const T* c_prev, T* act, T* h, T* c, int64_t batch,
                                         int64_t hidden) {
  for (int64_t idx = grid_start(); idx < batch * hidden; idx += grid_stride()) {
    const int64_t b = idx / hidden, j = idx % hidden;
    const T* a = gates + b * 4 * hidden;
    T* s = act + b * 4 * hidden;
    const T i = sigmoid_dev(a[j]);
    const T f = sigmoid_dev(a[hidden + j]);
    const T g = tanh(a[2 * hidden + j]);
    const T o = sigmoid_dev(a[3 * hidden + j]);
    s[j] = i;
    s[hidden + j] = f;
    s[2 * hidden + j] = g;
    s[3 * hidden + j] = o;
    const T cn = f * c_prev[idx] + i * g;
    c[idx] = cn;
    h[idx] = o * tanh(cn);
  }
}

template <typename T>
__global__ void lstm_cell_backward_kernel(const T* act, const T* c_prev, const T* c, const T* gh, const T* gc,
                                          T* ggates, T* gc_prev, int64_t batch, int64_t hidden) {
  for (int64_t idx = grid_start(); idx < batch * hidden; idx += grid_stride()) {
    const int64_t b = idx / hidden, j = idx % hidden;
    const T* s = act + b * 4 * hidden;
    T* ga = ggates + b * 4 * hidden;
    const T i = s[j], f = s[hidden + j], g = s[2 * hidden + j], o = s[3 * hidden + j];
    const T tc = tanh(c[idx]);
    const T dc = gc[idx] + gh[idx] * o * (T(1) - tc * tc);
    ga[j] = dc * g * i * (T(1) - i);
    ga[hidden + j] = dc * c_prev[idx] * f * (T(1) - f);
    ga[2 * hidden + j] = dc * i * (T(1) - g * g);
    ga[3 * hidden + j] = gh[idx] * tc * o * (T(1) - o);
    gc_prev[idx] = dc * f;
  }
}

// ---- length masks and time slicing ----

// out may alias a or b: each element is read and written by the same thread.
template <typename T>
__global__ void length_select_kernel(const int64_t* lengths, int64_t t, const T* a, const T* b, T* out,
                                     int64_t rows, int64_t dim) {
  for (int64_t idx = grid_start(); idx < rows * dim; idx += grid_stride()) {
    out[idx] = t < lengths[idx / dim] ? a[idx] : b[idx];
  }
}

template <typename T>
__global__ void time_gather_kernel(const T* x, T* out, int64_t batch, int64_t steps, int64_t dim, int64_t t) {
  for (int64_t idx = grid_start(); idx < batch * dim; idx += grid_stride()) {
    const int64_t b = idx / dim, d = idx % dim;
    out[idx] = x[(b * steps + t) * dim + d];
  }
}

template <typename T>
__global__ void time_scatter_kernel(const T* src, T* x, int64_t batch, int64_t steps, int64_t dim, int64_t t) {
  for (int64_t idx = grid_start(); idx < batch * dim; idx += grid_stride()) {
    const int64_t b = idx / dim, d = idx % dim;
    x[(b * steps + t) * dim + d] = src[idx];
  }
}

// ---- batched products and masked softmax ----

// One thread per output element y[b, r], a sequential double sum over the reduced index.
template <typename T>
__global__ void batched_gemv_kernel(bool trans, const T* a, const T* x, T* y, int64_t batch, int64_t m, int64_t k) {
  const int64_t xn = trans ? m : k, yn = trans ? k : m;
  for (int64_t idx = grid_start(); idx < batch * yn; idx += grid_stride()) {
    const int64_t b = idx / yn, r = idx % yn;
    const T* A = a + b * m * k;
    const T* xb = x + b * xn;
    double acc = 0.0;
    for (int64_t s = 0; s < xn; ++s) {
      const T av = trans ? A[s * k + r] : A[r * k + s];
      acc += static_cast<double>(av) * static_cast<double>(xb[s]);
    }
    y[idx] = static_cast<T>(acc);
  }
}

template <typename T>
__global__ void batched_outer_kernel(const T* u, const T* v, T* out, int64_t batch, int64_t m, int64_t k) {
  for (int64_t idx = grid_start(); idx < batch * m * k; idx += grid_stride()) {
    const int64_t b = idx / (m * k), i = (idx / k) % m, j = idx % k;
    out[idx] = u[b * m + i] * v[b * k + j];
  }
}

// One thread per row (attention rows are short: source lengths).
template <typename T>
__global__ void masked_softmax_forward_kernel(const T* x, const int64_t* lengths, T* y, int64_t rows,
                                              int64_t steps) {
  for (int64_t r = grid_start(); r < rows; r += grid_stride()) {
    const int64_t len = lengths[r] < 0 ? 0 : (lengths[r] > steps ? steps : lengths[r]);
    const T* xr = x + r * steps;
    T* yr = y + r * steps;
    double m = -INFINITY;
    for (int64_t s = 0; s < len; ++s) m = fmax(m, static_cast<double>(xr[s]));
    double sum = 0.0;
    for (int64_t s = 0; s < len; ++s) sum += exp(static_cast<double>(xr[s]) - m);
    for (int64_t s = 0; s < steps; ++s) yr[s] = s < len ? static_cast<T>(exp(static_cast<double>(xr[s]) - m) / sum) : T(0);
  }
}

template <typename T>
__global__ void masked_softmax_backward_kernel(const T* y, const T* gy, T* gx, int64_t rows, int64_t steps) {
  for (int64_t r = grid_start(); r < rows; r += grid_stride()) {
    const T* yr = y + r * steps;
    const T* gr = gy + r * steps;
    double dot = 0.0;
    for (int64_t s = 0; s < steps; ++s) dot += static_cast<double>(yr[s]) * static_cast<double>(gr[s]);
    for (int64_t s = 0; s < steps; ++s) {
      gx[r * steps + s] = static_cast<T>(static_cast<double>(yr[s]) * (static_cast<double>(gr[s]) - dot));
    }
  }
}

}  // namespace

// ---- launchers -----------------------------------------------------------------------------

template <typename T>
void embedding_forward(const int64_t* ids, const T* table, T* out, int64_t n, int64_t vocab, int64_t dim, Exec ex) {
  const char* kernel = "cuda::embedding_forward";
  check_size(kernel, "n", n);
  check_size(kernel, "vocab", vocab);
  check_size(kernel, "dim", dim);
  check_ptr(kernel, "ids", ids, n);
  check_ptr(kernel, "table", table, vocab * dim);
  check_ptr(kernel, "out", out, n * dim);
  if (n * dim == 0) return;
  DT_LAUNCH(blocks_for(n * dim), kThreads, 0, stream_of(ex), embedding_forward_kernel)(ids, table, out, n, vocab, dim);
  check_launch(kernel);
}

template <typename T>
void embedding_backward(const int64_t* ids, const T* gout, T* gtable, int64_t n, int64_t vocab, int64_t dim,
                        int64_t padding_idx, Exec ex) {
  const char* kernel = "cuda::embedding_backward";
  check_size(kernel, "n", n);
  check_size(kernel, "vocab", vocab);
  check_size(kernel, "dim", dim);
  check_ptr(kernel, "ids", ids, n);
  check_ptr(kernel, "gout", gout, n * dim);
  check_ptr(kernel, "gtable", gtable, vocab * dim);
  if (vocab * dim == 0) return;
  DT_LAUNCH(blocks_for(vocab * dim), kThreads, 0, stream_of(ex), embedding_backward_kernel)(
      ids, gout, gtable, n, vocab, dim, padding_idx);
  check_launch(kernel);
}

template <typename T>
void softmax_xent_masked_forward(const T* logits, const int64_t* labels, T* probs, T* loss, T* count, int64_t rows,
                                 int64_t classes, int64_t ignore_index, Exec ex) {
  const char* kernel = "cuda::softmax_xent_masked_forward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "logits", logits, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "loss", loss, 1);
  check_ptr(kernel, "count", count, 1);
  // rows == 0 still launches: loss[0] = NaN, count[0] = 0.
  DT_LAUNCH(1, kReduceThreads, 0, stream_of(ex), softmax_xent_masked_forward_kernel)(
      logits, labels, probs, loss, count, rows, classes, ignore_index);
  check_launch(kernel);
}

template <typename T>
void softmax_xent_masked_backward(const T* probs, const int64_t* labels, const T* count, const T* g, T* glogits,
                                  int64_t rows, int64_t classes, int64_t ignore_index, Exec ex) {
  const char* kernel = "cuda::softmax_xent_masked_backward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "count", count, rows * classes > 0 ? 1 : 0);
  check_ptr(kernel, "g", g, rows * classes > 0 ? 1 : 0);
  check_ptr(kernel, "glogits", glogits, rows * classes);
  if (rows * classes == 0) return;
  DT_LAUNCH(blocks_for(rows * classes), kThreads, 0, stream_of(ex), softmax_xent_masked_backward_kernel)(
      probs, labels, count, g, glogits, rows, classes, ignore_index);
  check_launch(kernel);
}

template <typename T>
void lstm_cell_forward(const T* gates, const T* c_prev, T* act, T* h, T* c, int64_t batch, int64_t hidden, Exec ex) {
  const char* kernel = "cuda::lstm_cell_forward";
  check_size(kernel, "batch", batch);
  check_size(kernel, "hidden", hidden);
  const int64_t bh = batch * hidden;
  check_ptr(kernel, "gates", gates, 4 * bh);
  check_ptr(kernel, "c_prev", c_prev, bh);
  check_ptr(kernel, "act", act, 4 * bh);
  check_ptr(kernel, "h", h, bh);
  check_ptr(kernel, "c", c, bh);
  if (bh == 0) return;
  DT_LAUNCH(blocks_for(bh), kThreads, 0, stream_of(ex), lstm_cell_forward_kernel)(
      gates, c_prev, act, h, c, batch, hidden);
  check_launch(kernel);
}

template <typename T>
void lstm_cell_backward(const T* act, const T* c_prev, const T* c, const T* gh, const T* gc, T* ggates, T* gc_prev,
                        int64_t batch, int64_t hidden, Exec ex) {
  const char* kernel = "cuda::lstm_cell_backward";
  check_size(kernel, "batch", batch);
  check_size(kernel, "hidden", hidden);
  const int64_t bh = batch * hidden;
  check_ptr(kernel, "act", act, 4 * bh);
  check_ptr(kernel, "c_prev", c_prev, bh);
  check_ptr(kernel, "c", c, bh);
  check_ptr(kernel, "gh", gh, bh);
  check_ptr(kernel, "gc", gc, bh);
  check_ptr(kernel, "ggates", ggates, 4 * bh);
  check_ptr(kernel, "gc_prev", gc_prev, bh);
  if (bh == 0) return;
  DT_LAUNCH(blocks_for(bh), kThreads, 0, stream_of(ex), lstm_cell_backward_kernel)(
      act, c_prev, c, gh, gc, ggates, gc_prev, batch, hidden);
  check_launch(kernel);
}

template <typename T>
void length_select(const int64_t* lengths, int64_t t, const T* a, const T* b, T* out, int64_t rows, int64_t dim,
                   Exec ex) {
  const char* kernel = "cuda::length_select";
  check_size(kernel, "rows", rows);
  check_size(kernel, "dim", dim);
  check_ptr(kernel, "lengths", lengths, rows);
  check_ptr(kernel, "a", a, rows * dim);
  check_ptr(kernel, "b", b, rows * dim);
  check_ptr(kernel, "out", out, rows * dim);
  if (rows * dim == 0) return;
  DT_LAUNCH(blocks_for(rows * dim), kThreads, 0, stream_of(ex), length_select_kernel)(lengths, t, a, b, out, rows, dim);
  check_launch(kernel);
}

template <typename T>
void time_gather(const T* x, T* out, int64_t batch, int64_t steps, int64_t dim, int64_t t, Exec ex) {
  const char* kernel = "cuda::time_gather";
  check_size(kernel, "batch", batch);
  check_size(kernel, "steps", steps);
  check_size(kernel, "dim", dim);
  if (batch > 0 && (t < 0 || t >= steps)) invalid(kernel, "step " + std::to_string(t) + " outside [0, " + std::to_string(steps) + ")");
  check_ptr(kernel, "x", x, batch * steps * dim);
  check_ptr(kernel, "out", out, batch * dim);
  if (batch * dim == 0) return;
  DT_LAUNCH(blocks_for(batch * dim), kThreads, 0, stream_of(ex), time_gather_kernel)(x, out, batch, steps, dim, t);
  check_launch(kernel);
}

template <typename T>
void time_scatter(const T* src, T* x, int64_t batch, int64_t steps, int64_t dim, int64_t t, Exec ex) {
  const char* kernel = "cuda::time_scatter";
  check_size(kernel, "batch", batch);
  check_size(kernel, "steps", steps);
  check_size(kernel, "dim", dim);
  if (batch > 0 && (t < 0 || t >= steps)) invalid(kernel, "step " + std::to_string(t) + " outside [0, " + std::to_string(steps) + ")");
  check_ptr(kernel, "src", src, batch * dim);
  check_ptr(kernel, "x", x, batch * steps * dim);
  if (batch * dim == 0) return;
  DT_LAUNCH(blocks_for(batch * dim), kThreads, 0, stream_of(ex), time_scatter_kernel)(src, x, batch, steps, dim, t);
  check_launch(kernel);
}

template <typename T>
void batched_gemv(bool trans, const T* a, const T* x, T* y, int64_t batch, int64_t m, int64_t k, Exec ex) {
  const char* kernel = "cuda::batched_gemv";
  check_size(kernel, "batch", batch);
  check_size(kernel, "m", m);
  check_size(kernel, "k", k);
  const int64_t xn = trans ? m : k, yn = trans ? k : m;
  check_ptr(kernel, "a", a, batch * m * k);
  check_ptr(kernel, "x", x, batch * xn);
  check_ptr(kernel, "y", y, batch * yn);
  if (batch * yn == 0) return;
  DT_LAUNCH(blocks_for(batch * yn), kThreads, 0, stream_of(ex), batched_gemv_kernel)(trans, a, x, y, batch, m, k);
  check_launch(kernel);
}

template <typename T>
void batched_outer(const T* u, const T* v, T* out, int64_t batch, int64_t m, int64_t k, Exec ex) {
  const char* kernel = "cuda::batched_outer";
  check_size(kernel, "batch", batch);
  check_size(kernel, "m", m);
  check_size(kernel, "k", k);
  check_ptr(kernel, "u", u, batch * m);
  check_ptr(kernel, "v", v, batch * k);
  check_ptr(kernel, "out", out, batch * m * k);
  if (batch * m * k == 0) return;
  DT_LAUNCH(blocks_for(batch * m * k), kThreads, 0, stream_of(ex), batched_outer_kernel)(u, v, out, batch, m, k);
  check_launch(kernel);
}

template <typename T>
void masked_softmax_forward(const T* x, const int64_t* lengths, T* y, int64_t rows, int64_t steps, Exec ex) {
  const char* kernel = "cuda::masked_softmax_forward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "steps", steps);
  check_ptr(kernel, "x", x, rows * steps);
  check_ptr(kernel, "lengths", lengths, rows);
  check_ptr(kernel, "y", y, rows * steps);
  if (rows * steps == 0) return;
  DT_LAUNCH(blocks_for(rows), kThreads, 0, stream_of(ex), masked_softmax_forward_kernel)(x, lengths, y, rows, steps);
  check_launch(kernel);
}

template <typename T>
void masked_softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t steps, Exec ex) {
  const char* kernel = "cuda::masked_softmax_backward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "steps", steps);
  check_ptr(kernel, "y", y, rows * steps);
  check_ptr(kernel, "gy", gy, rows * steps);
  check_ptr(kernel, "gx", gx, rows * steps);
  if (rows * steps == 0) return;
  DT_LAUNCH(blocks_for(rows), kThreads, 0, stream_of(ex), masked_softmax_backward_kernel)(y, gy, gx, rows, steps);
  check_launch(kernel);
}

DT_INSTANTIATE_KERNELS(DT_SEQUENCE_KERNELS)

}  // namespace dtrain::ops::cuda
