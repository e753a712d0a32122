// Sequence CPU kernels (see ops/kernels.inc, section "sequences"):
//   embedding:            ids: (N); table, gtable: (V, D); out, gout: (N, D)
//   softmax_xent_masked:  logits, probs, glogits: (N, C); labels: (N); loss, count, g: (1)
//   lstm_cell:            gates, act, ggates: (B, 4H); c_prev, h, c, gh, gc, gc_prev: (B, H)
//   length_select:        lengths: (R); a, b, out: (R, D)
//   time_gather/scatter:  x: (B, S, D); out, src: (B, D)
//   batched_gemv/outer:   A: (B, M, K); x, y, u, v: (B, M) or (B, K)
//   masked_softmax:       x, y, gy, gx: (R, S); lengths: (R)
// Gradients are written with `=`. Sums run in a fixed order (double accumulation), so
// the results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"
#include "ops/cpu/math.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::cpu {

using detail::check_ptr;
using detail::check_size;

namespace {

void check_id(const char* kernel, const char* what, int64_t i, int64_t id, int64_t limit) {
  if (id < 0 || id >= limit) {
    detail::invalid(kernel, std::string(what) + "[" + std::to_string(i) + "] = " + std::to_string(id) +
                                " is outside [0, " + std::to_string(limit) + ")");
  }
}

template <typename T>
T sigmoid(T x) {
  const T e = std::exp(-std::fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

}  // namespace

// ---- embedding --------------------------------------------------------------------------

template <typename T>
void embedding_forward(const int64_t* ids, const T* table, T* out, int64_t n, int64_t vocab, int64_t dim, Exec) {
  const char* kernel = "cpu::embedding_forward";
  check_size(kernel, "n", n);
  check_size(kernel, "vocab", vocab);
  check_size(kernel, "dim", dim);
  check_ptr(kernel, "ids", ids, n);
  check_ptr(kernel, "table", table, vocab * dim);
  check_ptr(kernel, "out", out, n * dim);
  for (int64_t i = 0; i < n; ++i) check_id(kernel, "ids", i, ids[i], vocab);
  detail::parallel_planes(n, dim, [&](int64_t i) { std::copy_n(table + ids[i] * dim, dim, out + i * dim); });
}

template <typename T>
void embedding_backward(const int64_t* ids, const T* gout, T* gtable, int64_t n, int64_t vocab, int64_t dim,
                        int64_t padding_idx, Exec) {
  const char* kernel = "cpu::embedding_backward";
  check_size(kernel, "n", n);
  check_size(kernel, "vocab", vocab);
  check_size(kernel, "dim", dim);
  check_ptr(kernel, "ids", ids, n);
  check_ptr(kernel, "gout", gout, n * dim);
  check_ptr(kernel, "gtable", gtable, vocab * dim);
  for (int64_t i = 0; i < n; ++i) check_id(kernel, "ids", i, ids[i], vocab);
  std::fill_n(gtable, vocab * dim, T(0));
  // Serial over i (increasing, the CUDA twin's order); rows of gtable are shared.
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] == padding_idx) continue;
    T* row = gtable + ids[i] * dim;
    const T* g = gout + i * dim;
    for (int64_t d = 0; d < dim; ++d) row[d] += g[d];
  }
}

// ---- masked cross-entropy ----------------------------------------------------------------

template <typename T>
void softmax_xent_masked_forward(const T* logits, const int64_t* labels, T* probs, T* loss, T* count, int64_t rows,
                                 int64_t classes, int64_t ignore_index, Exec) {
  const char* kernel = "cpu::softmax_xent_masked_forward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "logits", logits, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "loss", loss, 1);
  check_ptr(kernel, "count", count, 1);
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] != ignore_index) check_id(kernel, "labels", r, labels[r], classes);
  }
  std::vector<double> row_loss(static_cast<size_t>(rows), 0.0);
  detail::parallel_planes(rows, classes, [&](int64_t r) {
    const T* x = logits + r * classes;
    T* p = probs + r * classes;
    double m = static_cast<double>(x[0]);
    for (int64_t c = 1; c < classes; ++c) m = std::max(m, static_cast<double>(x[c]));
    double s = 0.0;
    for (int64_t c = 0; c < classes; ++c) s += std::exp(static_cast<double>(x[c]) - m);
    for (int64_t c = 0; c < classes; ++c) p[c] = static_cast<T>(std::exp(static_cast<double>(x[c]) - m) / s);
    if (labels[r] != ignore_index) row_loss[static_cast<size_t>(r)] = std::log(s) - (static_cast<double>(x[labels[r]]) - m);
  });
  double total = 0.0;
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] == ignore_index) continue;
    total += row_loss[static_cast<size_t>(r)];
    ++kept;
  }
  count[0] = static_cast<T>(kept);
  loss[0] = static_cast<T>(total / static_cast<double>(kept));  // 0/0 = NaN when nothing is kept
}

template <typename T>
void softmax_xent_masked_backward(const T* probs, const int64_t* labels, const T* count, const T* g, T* glogits,
                                  int64_t rows, int64_t classes, int64_t ignore_index, Exec) {
  const char* kernel = "cpu::softmax_xent_masked_backward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "classes", classes);
  check_ptr(kernel, "probs", probs, rows * classes);
  check_ptr(kernel, "labels", labels, rows);
  check_ptr(kernel, "count", count, rows * classes > 0 ? 1 : 0);
  check_ptr(kernel, "g", g, rows * classes);
  check_ptr(kernel, "glogits", glogits, rows * classes);
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] != ignore_index) check_id(kernel, "labels", r, labels[r], classes);
  }
  if (rows * classes == 0) return;
  const T scale = g[0] / count[0];
  detail::parallel_planes(rows, classes, [&](int64_t r) {
    T* out = glogits + r * classes;
    if (labels[r] == ignore_index) {
      std::fill_n(out, classes, T(0));
      return;
    }
    for (int64_t c = 0; c < classes; ++c) {
      const T onehot = c == labels[r] ? T(1) : T(0);
      out[c] = (probs[r * classes + c] - onehot) * scale;
    }
  });
}

// ---- LSTM cell ---------------------------------------------------------------------------

template <typename T>
void lstm_cell_forward(const T* gates, const T* c_prev, T* act, T* h, T* c, int64_t batch, int64_t hidden, Exec) {
  const char* kernel = "cpu::lstm_cell_forward";
  check_size(kernel, "batch", batch);
  check_size(kernel, "hidden", hidden);
  const int64_t bh = batch * hidden;
  check_ptr(kernel, "gates", gates, 4 * bh);
  check_ptr(kernel, "c_prev", c_prev, bh);
  check_ptr(kernel, "act", act, 4 * bh);
  check_ptr(kernel, "h", h, bh);
  check_ptr(kernel, "c", c, bh);
  detail::parallel_for(bh, [&](int64_t idx) {
    const int64_t b = idx / hidden, j = idx % hidden;
    const T* a = gates + b * 4 * hidden;
    T* s = act + b * 4 * hidden;
    const T i = sigmoid(a[j]);
    const T f = sigmoid(a[hidden + j]);
    const T g = detail::tanh_fast(a[2 * hidden + j]);
    const T o = sigmoid(a[3 * hidden + j]);
    s[j] = i;
    s[hidden + j] = f;
    s[2 * hidden + j] = g;
    s[3 * hidden + j] = o;
    const T cn = f * c_prev[idx] + i * g;
    c[idx] = cn;
    h[idx] = o * detail::tanh_fast(cn);
  });
}

template <typename T>
void lstm_cell_backward(const T* act, const T* c_prev, const T* c, const T* gh, const T* gc, T* ggates, T* gc_prev,
                        int64_t batch, int64_t hidden, Exec) {
  const char* kernel = "cpu::lstm_cell_backward";
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
  detail::parallel_for(bh, [&](int64_t idx) {
    const int64_t b = idx / hidden, j = idx % hidden;
    const T* s = act + b * 4 * hidden;
    T* ga = ggates + b * 4 * hidden;
    const T i = s[j], f = s[hidden + j], g = s[2 * hidden + j], o = s[3 * hidden + j];
    const T tc = detail::tanh_fast(c[idx]);
    const T dc = gc[idx] + gh[idx] * o * (T(1) - tc * tc);
    ga[j] = dc * g * i * (T(1) - i);
    ga[hidden + j] = dc * c_prev[idx] * f * (T(1) - f);
    ga[2 * hidden + j] = dc * i * (T(1) - g * g);
    ga[3 * hidden + j] = gh[idx] * tc * o * (T(1) - o);
    gc_prev[idx] = dc * f;
  });
}

// ---- length masks and time slicing ---------------------------------------------------------

template <typename T>
void length_select(const int64_t* lengths, int64_t t, const T* a, const T* b, T* out, int64_t rows, int64_t dim,
                   Exec) {
  const char* kernel = "cpu::length_select";
  check_size(kernel, "rows", rows);
  check_size(kernel, "dim", dim);
  check_ptr(kernel, "lengths", lengths, rows);
  check_ptr(kernel, "a", a, rows * dim);
  check_ptr(kernel, "b", b, rows * dim);
  check_ptr(kernel, "out", out, rows * dim);
  detail::parallel_planes(rows, dim, [&](int64_t r) {
    const T* src = (t < lengths[r] ? a : b) + r * dim;
    T* dst = out + r * dim;
    if (src != dst) std::copy_n(src, dim, dst);
  });
}

template <typename T>
void time_gather(const T* x, T* out, int64_t batch, int64_t steps, int64_t dim, int64_t t, Exec) {
  const char* kernel = "cpu::time_gather";
  check_size(kernel, "batch", batch);
  check_size(kernel, "steps", steps);
  check_size(kernel, "dim", dim);
  if (batch > 0 && (t < 0 || t >= steps)) detail::invalid(kernel, "step " + std::to_string(t) + " outside [0, " + std::to_string(steps) + ")");
  check_ptr(kernel, "x", x, batch * steps * dim);
  check_ptr(kernel, "out", out, batch * dim);
  for (int64_t b = 0; b < batch; ++b) std::copy_n(x + (b * steps + t) * dim, dim, out + b * dim);
}

template <typename T>
void time_scatter(const T* src, T* x, int64_t batch, int64_t steps, int64_t dim, int64_t t, Exec) {
  const char* kernel = "cpu::time_scatter";
  check_size(kernel, "batch", batch);
  check_size(kernel, "steps", steps);
  check_size(kernel, "dim", dim);
  if (batch > 0 && (t < 0 || t >= steps)) detail::invalid(kernel, "step " + std::to_string(t) + " outside [0, " + std::to_string(steps) + ")");
  check_ptr(kernel, "src", src, batch * dim);
  check_ptr(kernel, "x", x, batch * steps * dim);
  for (int64_t b = 0; b < batch; ++b) std::copy_n(src + b * dim, dim, x + (b * steps + t) * dim);
}

// ---- batched products and masked softmax ----------------------------------------------------

template <typename T>
void batched_gemv(bool trans, const T* a, const T* x, T* y, int64_t batch, int64_t m, int64_t k, Exec) {
  const char* kernel = "cpu::batched_gemv";
  check_size(kernel, "batch", batch);
  check_size(kernel, "m", m);
  check_size(kernel, "k", k);
  const int64_t xn = trans ? m : k, yn = trans ? k : m;
  check_ptr(kernel, "a", a, batch * m * k);
  check_ptr(kernel, "x", x, batch * xn);
  check_ptr(kernel, "y", y, batch * yn);
  detail::parallel_planes(batch, m * k, [&](int64_t b) {
    const T* A = a + b * m * k;
    const T* xb = x + b * xn;
    T* yb = y + b * yn;
    for (int64_t r = 0; r < yn; ++r) {
      double acc = 0.0;
      for (int64_t s = 0; s < xn; ++s) {
        const T av = trans ? A[s * k + r] : A[r * k + s];
        acc += static_cast<double>(av) * static_cast<double>(xb[s]);
      }
      yb[r] = static_cast<T>(acc);
    }
  });
}

template <typename T>
void batched_outer(const T* u, const T* v, T* out, int64_t batch, int64_t m, int64_t k, Exec) {
  const char* kernel = "cpu::batched_outer";
  check_size(kernel, "batch", batch);
  check_size(kernel, "m", m);
  check_size(kernel, "k", k);
  check_ptr(kernel, "u", u, batch * m);
  check_ptr(kernel, "v", v, batch * k);
  check_ptr(kernel, "out", out, batch * m * k);
  detail::parallel_for(batch * m * k, [&](int64_t idx) {
    const int64_t b = idx / (m * k), i = (idx / k) % m, j = idx % k;
    out[idx] = u[b * m + i] * v[b * k + j];
  });
}

template <typename T>
void masked_softmax_forward(const T* x, const int64_t* lengths, T* y, int64_t rows, int64_t steps, Exec) {
  const char* kernel = "cpu::masked_softmax_forward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "steps", steps);
  check_ptr(kernel, "x", x, rows * steps);
  check_ptr(kernel, "lengths", lengths, rows);
  check_ptr(kernel, "y", y, rows * steps);
  detail::parallel_planes(rows, steps, [&](int64_t r) {
    const int64_t len = std::clamp<int64_t>(lengths[r], 0, steps);
    const T* xr = x + r * steps;
    T* yr = y + r * steps;
    double m = -INFINITY;
    for (int64_t s = 0; s < len; ++s) m = std::max(m, static_cast<double>(xr[s]));
    double sum = 0.0;
    for (int64_t s = 0; s < len; ++s) sum += std::exp(static_cast<double>(xr[s]) - m);
    for (int64_t s = 0; s < steps; ++s) {
      yr[s] = s < len ? static_cast<T>(std::exp(static_cast<double>(xr[s]) - m) / sum) : T(0);
    }
  });
}

template <typename T>
void masked_softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t steps, Exec) {
  const char* kernel = "cpu::masked_softmax_backward";
  check_size(kernel, "rows", rows);
  check_size(kernel, "steps", steps);
  check_ptr(kernel, "y", y, rows * steps);
  check_ptr(kernel, "gy", gy, rows * steps);
  check_ptr(kernel, "gx", gx, rows * steps);
  detail::parallel_planes(rows, steps, [&](int64_t r) {
    const T* yr = y + r * steps;
    const T* gr = gy + r * steps;
    double dot = 0.0;
    for (int64_t s = 0; s < steps; ++s) dot += static_cast<double>(yr[s]) * static_cast<double>(gr[s]);
    for (int64_t s = 0; s < steps; ++s) {
      gx[r * steps + s] = static_cast<T>(static_cast<double>(yr[s]) * (static_cast<double>(gr[s]) - dot));
    }
  });
}

DT_INSTANTIATE_KERNELS(DT_SEQUENCE_KERNELS)

}  // namespace dtrain::ops::cpu
