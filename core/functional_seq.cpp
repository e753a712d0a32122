// Differentiable sequence functions: embedding, masked cross-entropy, the LSTM (a fused
// pointwise kernel per step between two gemms), time slicing and length masks, Luong
// attention. Kernels in ops/cpu/sequence.cpp and ops/cuda/sequence.cu.
#include <algorithm>
#include <utility>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/functional.h"

namespace dtrain::fn {

namespace {

using autograd::record;
using autograd::should_record;
using Grads = std::vector<Tensor>;

bool needs(const Tensor& t) { return t.defined() && t.requires_grad(); }

Tensor empty_like(const Tensor& x) { return Tensor::empty(x.shape(), x.dtype(), x.device()); }

void check_float_pair(const char* op, const Tensor& a, const Tensor& b) {
  DT_CHECK(a.defined() && b.defined(), op, ": undefined input");
  DT_CHECK(a.device() == b.device(), op, ": inputs on different devices, ", a.str(), " and ", b.str(),
           "; move one with .to(device)");
  DT_CHECK(a.dtype() == b.dtype(), op, ": inputs of different dtypes, ", a.str(), " and ", b.str());
}

// lengths: i64 (B) on `like`'s device.
void check_lengths(const char* op, const Tensor& lengths, int64_t batch, const Tensor& like) {
  DT_CHECK(lengths.defined() && lengths.dtype() == DType::I64 && lengths.ndim() == 1 && lengths.size(0) == batch,
           op, ": lengths must be i64 (B) with B = ", batch, ", got ", lengths.defined() ? lengths.str() : "undefined");
  DT_CHECK(lengths.device() == like.device(), op, ": lengths on ", lengths.device().str(), " but data on ",
           like.device().str());
}

// out[b, :] = t < lengths[b] ? a[b, :] : b[b, :], unrecorded.
Tensor length_select_raw(const Tensor& lengths, int64_t t, const Tensor& a, const Tensor& b) {
  Tensor out = empty_like(a);
  dispatch_float(a.dtype(), "length_select", [&]<typename T>() {
    DT_KERNEL(a.device(), length_select<T>)(lengths.data<int64_t>(), t, a.data<T>(), b.data<T>(), out.data<T>(),
                                            a.size(0), a.numel() / std::max<int64_t>(a.size(0), 1),
                                            exec_for(a.device()));
  });
  return out;
}

// y = op(a) x per batch, unrecorded.
Tensor bmv_raw(const Tensor& a, const Tensor& x, bool trans) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2);
  Tensor y = Tensor::empty({batch, trans ? k : m}, a.dtype(), a.device());
  dispatch_float(a.dtype(), "bmv", [&]<typename T>() {
    DT_KERNEL(a.device(), batched_gemv<T>)(trans, a.data<T>(), x.data<T>(), y.data<T>(), batch, m, k,
                                           exec_for(a.device()));
  });
  return y;
}

// out[b] = op(a[b]) op(b[b]) per batch item with the gemm kernel, unrecorded.
Tensor bmm_raw(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t batch = a.size(0);
  const int64_t m = trans_a ? a.size(2) : a.size(1), k = trans_a ? a.size(1) : a.size(2);
  const int64_t n = trans_b ? b.size(1) : b.size(2);
  Tensor out = Tensor::empty({batch, m, n}, a.dtype(), a.device());
  dispatch_float(a.dtype(), "bmm", [&]<typename T>() {
    const int64_t sa = a.size(1) * a.size(2), sb = b.size(1) * b.size(2);
    for (int64_t i = 0; i < batch; ++i) {
      DT_KERNEL(a.device(), gemm<T>)(trans_a, trans_b, m, n, k, T(1), a.data<T>() + i * sa, a.size(2),
                                     b.data<T>() + i * sb, b.size(2), T(0), out.data<T>() + i * m * n, n,
                                     exec_for(a.device()));
    }
  });
  return out;
}

// out[b] = u[b] v[b]^T, unrecorded.                       u: (B, M); v: (B, K)
Tensor outer_raw(const Tensor& u, const Tensor& v) {
  const int64_t batch = u.size(0), m = u.size(1), k = v.size(1);
  Tensor out = Tensor::empty({batch, m, k}, u.dtype(), u.device());
  dispatch_float(u.dtype(), "bmv backward", [&]<typename T>() {
    DT_KERNEL(u.device(), batched_outer<T>)(u.data<T>(), v.data<T>(), out.data<T>(), batch, m, k,
                                            exec_for(u.device()));
  });
  return out;
}

}  // namespace

// ---- embedding and masked loss ----------------------------------------------------------------

Tensor embedding(const Tensor& ids, const Tensor& table, int64_t padding_idx) {
  DT_CHECK(ids.defined() && ids.dtype() == DType::I64, "embedding: ids must be i64, got ",
           ids.defined() ? ids.str() : "undefined");
  DT_CHECK(table.defined() && table.ndim() == 2, "embedding: table must be (V, D), got ",
           table.defined() ? table.str() : "undefined");
  DT_CHECK(ids.device() == table.device(), "embedding: ids on ", ids.device().str(), " but table on ",
           table.device().str());
  const int64_t vocab = table.size(0), dim = table.size(1), n = ids.numel();
  DT_CHECK(padding_idx >= -1 && padding_idx < vocab, "embedding: padding_idx ", padding_idx, " outside [-1, ", vocab,
           ")");
  Shape shape = ids.shape();
  shape.push_back(dim);
  Tensor out = Tensor::empty(shape, table.dtype(), table.device());
  dispatch_float(table.dtype(), "embedding", [&]<typename T>() {
    DT_KERNEL(table.device(), embedding_forward<T>)(ids.data<int64_t>(), table.data<T>(), out.data<T>(), n, vocab,
                                                    dim, exec_for(table.device()));
  });
  if (should_record({&table})) {
    record("embedding", {table}, {out}, [ids, table, n, vocab, dim, padding_idx](const Grads& g) {
      Tensor gt = empty_like(table);
      dispatch_float(table.dtype(), "embedding backward", [&]<typename T>() {
        DT_KERNEL(table.device(), embedding_backward<T>)(ids.data<int64_t>(), g[0].data<T>(), gt.data<T>(), n, vocab,
                                                         dim, padding_idx, exec_for(table.device()));
      });
      return Grads{gt};
    });
  }
  return out;
}

Tensor cross_entropy_masked(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  DT_CHECK(logits.defined() && logits.ndim() == 2, "cross_entropy_masked: logits must be (N, C), got ",
           logits.defined() ? logits.str() : "undefined");
  DT_CHECK(targets.defined() && targets.dtype() == DType::I64 && targets.ndim() == 1 &&
               targets.size(0) == logits.size(0),
           "cross_entropy_masked: targets must be i64 (N) with N = ", logits.size(0), ", got ",
           targets.defined() ? targets.str() : "undefined");
  DT_CHECK(targets.device() == logits.device(), "cross_entropy_masked: targets on ", targets.device().str(),
           " but logits on ", logits.device().str());
  const int64_t rows = logits.size(0), classes = logits.size(1);
  DT_CHECK(rows > 0 && classes > 0, "cross_entropy_masked: empty logits ", logits.str());
  Tensor probs = empty_like(logits);
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  Tensor count = Tensor::empty({1}, logits.dtype(), logits.device());
  dispatch_float(logits.dtype(), "cross_entropy_masked", [&]<typename T>() {
    DT_KERNEL(logits.device(), softmax_xent_masked_forward<T>)(logits.data<T>(), targets.data<int64_t>(),
                                                               probs.data<T>(), loss.data<T>(), count.data<T>(), rows,
                                                               classes, ignore_index, exec_for(logits.device()));
  });
  if (should_record({&logits})) {
    record("cross_entropy_masked", {logits}, {loss},
           [probs, targets, count, rows, classes, ignore_index](const Grads& g) {
             Tensor gl = empty_like(probs);
             dispatch_float(probs.dtype(), "cross_entropy_masked backward", [&]<typename T>() {
               DT_KERNEL(probs.device(), softmax_xent_masked_backward<T>)(
                   probs.data<T>(), targets.data<int64_t>(), count.data<T>(), g[0].data<T>(), gl.data<T>(), rows,
                   classes, ignore_index, exec_for(probs.device()));
             });
             return Grads{gl};
           });
  }
  return loss;
}

// ---- time slicing and length masks ---------------------------------------------------------------

std::vector<Tensor> unbind_time(const Tensor& x) {
  DT_CHECK(x.defined() && x.ndim() == 3, "unbind_time: expected (B, T, D), got ", x.defined() ? x.str() : "undefined");
  const int64_t batch = x.size(0), steps = x.size(1), dim = x.size(2);
  std::vector<Tensor> out;
  out.reserve(static_cast<size_t>(steps));
  for (int64_t t = 0; t < steps; ++t) {
    Tensor o = Tensor::empty({batch, dim}, x.dtype(), x.device());
    dispatch_float(x.dtype(), "unbind_time", [&]<typename T>() {
      DT_KERNEL(x.device(), time_gather<T>)(x.data<T>(), o.data<T>(), batch, steps, dim, t, exec_for(x.device()));
    });
    out.push_back(o);
  }
  if (should_record({&x})) {
    Shape shape = x.shape();
    DType dtype = x.dtype();
    Device device = x.device();
    // Unused steps get zero gradients from the tape, so every slot is written.
    record("unbind_time", {x}, out, [shape, dtype, device](const Grads& g) {
      Tensor gx = Tensor::empty(shape, dtype, device);
      dispatch_float(dtype, "unbind_time backward", [&]<typename T>() {
        for (int64_t t = 0; t < shape[1]; ++t) {
          DT_KERNEL(device, time_scatter<T>)(g[static_cast<size_t>(t)].data<T>(), gx.data<T>(), shape[0], shape[1],
                                             shape[2], t, exec_for(device));
        }
      });
      return Grads{gx};
    });
  }
  return out;
}

Tensor stack_time(const std::vector<Tensor>& steps) {
  DT_CHECK(!steps.empty(), "stack_time: no tensors");
  const Tensor& first = steps[0];
  DT_CHECK(first.defined() && first.ndim() == 2, "stack_time: expected (B, D) tensors, got ",
           first.defined() ? first.str() : "undefined");
  for (const Tensor& s : steps) {
    check_float_pair("stack_time", first, s);
    DT_CHECK(s.shape() == first.shape(), "stack_time: shapes differ, ", first.str(), " and ", s.str());
  }
  const int64_t batch = first.size(0), count = static_cast<int64_t>(steps.size()), dim = first.size(1);
  Tensor out = Tensor::empty({batch, count, dim}, first.dtype(), first.device());
  dispatch_float(first.dtype(), "stack_time", [&]<typename T>() {
    for (int64_t t = 0; t < count; ++t) {
      DT_KERNEL(first.device(), time_scatter<T>)(steps[static_cast<size_t>(t)].data<T>(), out.data<T>(), batch, count,
                                                 dim, t, exec_for(first.device()));
    }
  });
  bool any = false;
  for (const Tensor& s : steps) any = any || should_record({&s});
  if (any) {
    record("stack_time", steps, {out}, [steps](const Grads& g) {
      Grads gs;
      gs.reserve(steps.size());
      std::vector<Tensor> parts = unbind_time(g[0]);  // unrecorded: backward runs under NoGrad
      for (size_t t = 0; t < steps.size(); ++t) gs.push_back(needs(steps[t]) ? parts[t] : Tensor());
      return gs;
    });
  }
  return out;
}

Tensor concat_last(const Tensor& a, const Tensor& b) {
  check_float_pair("concat_last", a, b);
  DT_CHECK(a.shape() == b.shape() && a.ndim() >= 1, "concat_last: expected equal shapes, got ", a.str(), " and ",
           b.str());
  const int64_t dim = a.size(a.ndim() - 1);
  const int64_t rows = dim > 0 ? a.numel() / dim : 0;
  Shape shape = a.shape();
  shape.back() = 2 * dim;
  // (rows, dim) x 2 stacked as (rows, 2, dim) is (rows, 2 dim).
  return reshape(stack_time({reshape(a, {rows, dim}), reshape(b, {rows, dim})}), shape);
}

Tensor length_select(const Tensor& lengths, int64_t t, const Tensor& a, const Tensor& b) {
  check_float_pair("length_select", a, b);
  DT_CHECK(a.ndim() == 2 && a.shape() == b.shape(), "length_select: expected equal (B, D) shapes, got ", a.str(),
           " and ", b.str());
  check_lengths("length_select", lengths, a.size(0), a);
  Tensor out = length_select_raw(lengths, t, a, b);
  if (should_record({&a, &b})) {
    record("length_select", {a, b}, {out}, [lengths, t, a, b](const Grads& g) {
      Tensor zero = Tensor::zeros(g[0].shape(), g[0].dtype(), g[0].device());
      return Grads{needs(a) ? length_select_raw(lengths, t, g[0], zero) : Tensor(),
                   needs(b) ? length_select_raw(lengths, t, zero, g[0]) : Tensor()};
    });
  }
  return out;
}

// ---- LSTM -------------------------------------------------------------------------------------------

LstmState lstm_pointwise(const Tensor& gates, const Tensor& c_prev) {
  check_float_pair("lstm_pointwise", gates, c_prev);
  DT_CHECK(c_prev.ndim() == 2 && gates.ndim() == 2 && gates.size(0) == c_prev.size(0) &&
               gates.size(1) == 4 * c_prev.size(1),
           "lstm_pointwise: expected gates (B, 4H) and c_prev (B, H), got ", gates.str(), " and ", c_prev.str());
  const int64_t batch = c_prev.size(0), hidden = c_prev.size(1);
  Tensor act = empty_like(gates);
  Tensor h = empty_like(c_prev);
  Tensor c = empty_like(c_prev);
  dispatch_float(gates.dtype(), "lstm_pointwise", [&]<typename T>() {
    DT_KERNEL(gates.device(), lstm_cell_forward<T>)(gates.data<T>(), c_prev.data<T>(), act.data<T>(), h.data<T>(),
                                                    c.data<T>(), batch, hidden, exec_for(gates.device()));
  });
  if (should_record({&gates, &c_prev})) {
    Tensor c_saved = c.detach();
    record("lstm_pointwise", {gates, c_prev}, {h, c}, [act, c_prev, c_saved, batch, hidden](const Grads& g) {
      Tensor gg = empty_like(act);
      Tensor gc_prev = empty_like(c_prev);
      dispatch_float(act.dtype(), "lstm_pointwise backward", [&]<typename T>() {
        DT_KERNEL(act.device(), lstm_cell_backward<T>)(act.data<T>(), c_prev.data<T>(), c_saved.data<T>(),
                                                       g[0].data<T>(), g[1].data<T>(), gg.data<T>(),
                                                       gc_prev.data<T>(), batch, hidden, exec_for(act.device()));
      });
      return Grads{gg, needs(c_prev) ? gc_prev : Tensor()};
    });
  }
  return {h, c};
}

LstmState lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& b_ih, const Tensor& b_hh) {
  DT_CHECK(w_hh.defined() && w_hh.ndim() == 2 && w_hh.size(0) == 4 * w_hh.size(1), "lstm_cell: w_hh must be (4H, H), got ",
           w_hh.defined() ? w_hh.str() : "undefined");
  Tensor gates = add(linear(x, w_ih, b_ih), linear(h, w_hh, b_hh));
  return lstm_pointwise(gates, c);
}

LstmSequence lstm(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                  const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh, bool reverse) {
  DT_CHECK(x.defined() && x.ndim() == 3, "lstm: x must be (B, T, In), got ", x.defined() ? x.str() : "undefined");
  DT_CHECK(w_ih.defined() && w_hh.defined() && w_ih.ndim() == 2 && w_hh.ndim() == 2 &&
               w_hh.size(0) == 4 * w_hh.size(1) && w_ih.size(0) == w_hh.size(0) && w_ih.size(1) == x.size(2),
           "lstm: expected w_ih (4H, In = ", x.size(2), ") and w_hh (4H, H), got ",
           w_ih.defined() ? w_ih.str() : "undefined", " and ", w_hh.defined() ? w_hh.str() : "undefined");
  const int64_t batch = x.size(0), steps = x.size(1), in = x.size(2), hidden = w_hh.size(1);
  DT_CHECK(steps > 0 && batch > 0, "lstm: empty input ", x.str());
  if (lengths.defined()) check_lengths("lstm", lengths, batch, x);
  Tensor h = h0.defined() ? h0 : Tensor::zeros({batch, hidden}, x.dtype(), x.device());
  Tensor c = c0.defined() ? c0 : Tensor::zeros({batch, hidden}, x.dtype(), x.device());
  // The input projection for every step in one gemm: (B T, In) W_ih^T + b_ih + b_hh.
  Tensor gx = linear(reshape(x, {batch * steps, in}), w_ih, b_ih);
  if (b_hh.defined()) gx = bias_add(gx, b_hh);
  std::vector<Tensor> gx_t = unbind_time(reshape(gx, {batch, steps, 4 * hidden}));
  std::vector<Tensor> outs(static_cast<size_t>(steps));
  Tensor zero = lengths.defined() ? Tensor::zeros({batch, hidden}, x.dtype(), x.device()) : Tensor();
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = reverse ? steps - 1 - s : s;
    Tensor gates = add(gx_t[static_cast<size_t>(t)], matmul(h, w_hh, false, true));
    LstmState next = lstm_pointwise(gates, c);
    if (lengths.defined()) {
      // Note: finished samples keep their state; their outputs are zero (pad_packed_sequence).
      outs[static_cast<size_t>(t)] = length_select(lengths, t, next.h, zero);
      h = length_select(lengths, t, next.h, h);
      c = length_select(lengths, t, next.c, c);
    } else {
      outs[static_cast<size_t>(t)] = next.h;
      h = next.h;
      c = next.c;
    }
  }
  return {stack_time(outs), {h, c}};
}

// ---- attention ---------------------------------------------------------------------------------------

Tensor bmv(const Tensor& a, const Tensor& x, bool trans) {
  check_float_pair("bmv", a, x);
  DT_CHECK(a.ndim() == 3 && x.ndim() == 2 && x.size(0) == a.size(0) && x.size(1) == (trans ? a.size(1) : a.size(2)),
           "bmv: expected a (B, M, K) and x (B, ", trans ? "M" : "K", "), got ", a.str(), " and ", x.str());
  Tensor y = bmv_raw(a, x, trans);
  if (should_record({&a, &x})) {
    record("bmv", {a, x}, {y}, [a, x, trans](const Grads& g) {
      // y = A x: gA = g x^T, gx = A^T g. y = A^T x: gA = x g^T, gx = A g.
      Tensor ga = needs(a) ? (trans ? outer_raw(x, g[0]) : outer_raw(g[0], x)) : Tensor();
      Tensor gx = needs(x) ? bmv_raw(a, g[0], !trans) : Tensor();
      return Grads{ga, gx};
    });
  }
  return y;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_float_pair("bmm", a, b);
  DT_CHECK(a.ndim() == 3 && b.ndim() == 3 && a.size(0) == b.size(0) &&
               (trans_a ? a.size(1) : a.size(2)) == (trans_b ? b.size(2) : b.size(1)),
           "bmm: expected a (B, M, K) and b (B, K, N) after the transpositions, got ", a.str(), (trans_a ? "^T" : ""),
           " and ", b.str(), (trans_b ? "^T" : ""));
  Tensor out = bmm_raw(a, b, trans_a, trans_b);
  if (should_record({&a, &b})) {
    record("bmm", {a, b}, {out}, [a, b, trans_a, trans_b](const Grads& g) {
      // As matmul, per batch item: d op(A) = G op(B)^T, d op(B) = op(A)^T G, transposed
      // back to the stored layouts.
      Tensor ga, gb;
      if (needs(a)) ga = trans_a ? bmm_raw(b, g[0], trans_b, true) : bmm_raw(g[0], b, false, !trans_b);
      if (needs(b)) gb = trans_b ? bmm_raw(g[0], a, true, trans_a) : bmm_raw(a, g[0], !trans_a, false);
      return Grads{ga, gb};
    });
  }
  return out;
}

Tensor masked_softmax(const Tensor& x, const Tensor& lengths) {
  DT_CHECK(x.defined() && x.ndim() == 2, "masked_softmax: expected (R, S), got ", x.defined() ? x.str() : "undefined");
  check_lengths("masked_softmax", lengths, x.size(0), x);
  const int64_t rows = x.size(0), steps = x.size(1);
  Tensor y = empty_like(x);
  dispatch_float(x.dtype(), "masked_softmax", [&]<typename T>() {
    DT_KERNEL(x.device(), masked_softmax_forward<T>)(x.data<T>(), lengths.data<int64_t>(), y.data<T>(), rows, steps,
                                                     exec_for(x.device()));
  });
  if (should_record({&x})) {
    Tensor y_saved = y.detach();
    record("masked_softmax", {x}, {y}, [y_saved, rows, steps](const Grads& g) {
      Tensor gx = empty_like(y_saved);
      dispatch_float(y_saved.dtype(), "masked_softmax backward", [&]<typename T>() {
        DT_KERNEL(y_saved.device(), masked_softmax_backward<T>)(y_saved.data<T>(), g[0].data<T>(), gx.data<T>(), rows,
                                                                steps, exec_for(y_saved.device()));
      });
      return Grads{gx};
    });
  }
  return y;
}

Attention attention(const Tensor& query, const Tensor& keys, const Tensor& values, const Tensor& src_lengths,
                    const Tensor& w) {
  DT_CHECK(query.defined() && keys.defined() && values.defined() && query.ndim() == 2 && keys.ndim() == 3 &&
               values.ndim() == 3 && keys.size(0) == query.size(0) && values.size(0) == query.size(0) &&
               values.size(1) == keys.size(1),
           "attention: expected query (B, H), keys (B, T, Hk), values (B, T, Hv)");
  Tensor q = w.defined() ? matmul(query, w) : query;  // general: q^T W
  DT_CHECK(q.size(1) == keys.size(2), "attention: query ", q.str(), " does not match keys ", keys.str());
  Tensor scores = bmv(keys, q);  // (B, T)
  Tensor lengths = src_lengths.defined()
                       ? src_lengths
                       : Tensor::from_vector(std::vector<int64_t>(static_cast<size_t>(keys.size(0)), keys.size(1)),
                                             {keys.size(0)})
                             .to(keys.device());
  Tensor weights = masked_softmax(scores, lengths);
  Tensor context = bmv(values, weights, true);  // (B, Hv)
  return {context, weights};
}

namespace {

// The scoring and weighting shared by attention_seq and attention_map: queries (B, T, H),
// keys and values either sequence-major (B, S, Hk) and (B, S, Hv), or channel-major (B, Hk, S)
// and (B, Hv, S) (`channel_major`: a feature map's positions); row (b, t) masked by
// per_row[b * T + t] (S for none). The layouts differ only in which side of each batched
// gemm is transposed.
Attention attend(const Tensor& queries, const Tensor& keys, const Tensor& values, const std::vector<int64_t>& per_row,
                 const Tensor& w, bool channel_major) {
  const int64_t batch = queries.size(0), steps = queries.size(1), src = channel_major ? keys.size(2) : keys.size(1);
  const int64_t key_dim = channel_major ? keys.size(1) : keys.size(2);
  Tensor q = queries;
  if (w.defined()) {  // general: q_t^T W for every step in one gemm
    q = reshape(matmul(reshape(queries, {batch * steps, queries.size(2)}), w), {batch, steps, w.size(1)});
  }
  DT_CHECK(q.size(2) == key_dim, "attention: queries ", q.str(), " do not match keys ", keys.str());
  Tensor scores = bmm(q, keys, false, !channel_major);  // (B, T, S)
  Tensor rows = Tensor::from_vector(per_row, {batch * steps}).to(keys.device());
  Tensor weights = reshape(masked_softmax(reshape(scores, {batch * steps, src}), rows), {batch, steps, src});
  Tensor context = bmm(weights, values, false, channel_major);  // (B, T, Hv)
  return {context, weights};
}

}  // namespace

Attention attention_seq(const Tensor& queries, const Tensor& keys, const Tensor& values, const Tensor& src_lengths,
                        const Tensor& w) {
  DT_CHECK(queries.defined() && keys.defined() && values.defined() && queries.ndim() == 3 && keys.ndim() == 3 &&
               values.ndim() == 3 && keys.size(0) == queries.size(0) && values.size(0) == queries.size(0) &&
               values.size(1) == keys.size(1),
           "attention_seq: expected queries (B, T, H), keys (B, S, Hk), values (B, S, Hv)");
  const int64_t batch = queries.size(0), steps = queries.size(1), src = keys.size(1);
  // Each row (b, t) is masked by src_lengths[b].
  std::vector<int64_t> per_row(static_cast<size_t>(batch * steps), src);
  if (src_lengths.defined()) {
    check_lengths("attention_seq", src_lengths, batch, keys);
    std::vector<int64_t> l = src_lengths.to(Device::cpu()).to_vector<int64_t>();
    for (int64_t b = 0; b < batch; ++b) {
      std::fill_n(per_row.begin() + b * steps, steps, l[static_cast<size_t>(b)]);
    }
  }
  return attend(queries, keys, values, per_row, w, false);
}

Attention attention_map(const Tensor& queries, const Tensor& features, const Tensor& w) {
  DT_CHECK(queries.defined() && features.defined() && queries.ndim() == 3 && features.ndim() == 4 &&
               features.size(0) == queries.size(0),
           "attention_map: expected queries (B, T, H) and features (B, C, Y, X), got ",
           queries.defined() ? queries.str() : "undefined", " and ", features.defined() ? features.str() : "undefined");
  const int64_t batch = features.size(0), positions = features.size(2) * features.size(3);
  // (B, C, Y, X) is (B, C, P) in memory: the positions as channel-major keys and values.
  Tensor set = reshape(features, {batch, features.size(1), positions});
  return attend(queries, set, set, std::vector<int64_t>(static_cast<size_t>(batch * queries.size(1)), positions), w,
                true);
}

}  // namespace dtrain::fn
