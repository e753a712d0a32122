#include "core/models/seq2seq.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/error.h"

namespace dtrain::models {
namespace {

// Host copy of an i32/i64 tensor as int64.
std::vector<int64_t> host_ids(const Tensor& t) {
  return t.to(Device::cpu()).to(DType::I64).to_vector<int64_t>();
}

Tensor as_i64(const Tensor& t, Device device) { return t.to(DType::I64).to(device); }

}  // namespace

TeacherPair teacher_pair(const Tensor& tgt) {
  DT_CHECK(tgt.defined() && tgt.ndim() == 2 && tgt.size(1) >= 2 &&
               (tgt.dtype() == DType::I32 || tgt.dtype() == DType::I64),
           "teacher_pair: expected tgt i32/i64 (B, L) with L >= 2, got ", tgt.defined() ? tgt.str() : "undefined");
  const int64_t batch = tgt.size(0), len = tgt.size(1), steps = len - 1;
  std::vector<int64_t> v = host_ids(tgt);
  std::vector<int64_t> in(static_cast<size_t>(batch * steps)), out(in.size());
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < steps; ++t) {
      in[static_cast<size_t>(b * steps + t)] = v[static_cast<size_t>(b * len + t)];
      out[static_cast<size_t>(b * steps + t)] = v[static_cast<size_t>(b * len + t + 1)];
    }
  }
  return {Tensor::from_vector(in, {batch, steps}).to(tgt.device()),
          Tensor::from_vector(out, {batch, steps}).to(tgt.device())};
}

Seq2Seq::Seq2Seq(const Seq2SeqConfig& config, Generator& gen) : config_(config) {
  const Seq2SeqConfig& c = config_;
  DT_CHECK(c.src_vocab > 0 && c.tgt_vocab > 0 && c.emb_dim > 0 && c.hidden > 0 && c.layers > 0,
           "Seq2Seq: sizes must be positive, got src_vocab=", c.src_vocab, " tgt_vocab=", c.tgt_vocab,
           " emb_dim=", c.emb_dim, " hidden=", c.hidden, " layers=", c.layers);
  DT_CHECK(c.attention == "dot" || c.attention == "general", "Seq2Seq: attention must be \"dot\" or \"general\", got \"",
           c.attention, "\"");
  DT_CHECK(!c.bidirectional_encoder || c.hidden % 2 == 0,
           "Seq2Seq: a bidirectional encoder needs an even hidden size (hidden / 2 per direction), got ", c.hidden);
  for (int64_t id : {c.pad_id, c.bos_id, c.eos_id}) {
    DT_CHECK(id >= 0 && id < c.tgt_vocab, "Seq2Seq: special token id ", id, " outside the target vocabulary of ",
             c.tgt_vocab);
  }
  DT_CHECK(c.pad_id < c.src_vocab, "Seq2Seq: pad_id ", c.pad_id, " outside the source vocabulary of ", c.src_vocab);
  const int64_t enc_hidden = c.bidirectional_encoder ? c.hidden / 2 : c.hidden;
  src_embed_ = register_module("src_embed",
                               std::make_shared<nn::Embedding>(c.src_vocab, c.emb_dim, gen, c.pad_id, c.dtype));
  encoder_ = register_module(
      "encoder", std::make_shared<nn::LSTM>(c.emb_dim, enc_hidden, gen, c.layers, c.bidirectional_encoder, c.dtype));
  tgt_embed_ = register_module("tgt_embed",
                               std::make_shared<nn::Embedding>(c.tgt_vocab, c.emb_dim, gen, c.pad_id, c.dtype));
  decoder_ = register_module("decoder", std::make_shared<nn::LSTM>(c.emb_dim, c.hidden, gen, c.layers, false, c.dtype));
  if (c.attention == "general") {
    attn_ = register_module("attn", std::make_shared<nn::Linear>(c.hidden, c.hidden, gen, false, c.dtype));
  }
  concat_ = register_module("concat", std::make_shared<nn::Linear>(2 * c.hidden, c.hidden, gen, false, c.dtype));
  out_ = register_module("out", std::make_shared<nn::Linear>(c.hidden, c.tgt_vocab, gen, true, c.dtype));
}

Seq2Seq::Encoded Seq2Seq::encode(const Tensor& src, const Tensor& src_len) {
  DT_CHECK(src.defined() && src.ndim() == 2 && (src.dtype() == DType::I32 || src.dtype() == DType::I64),
           "Seq2Seq: src must be i32/i64 (B, S), got ", src.defined() ? src.str() : "undefined");
  DT_CHECK(src_len.defined() && src_len.ndim() == 1 && src_len.size(0) == src.size(0) &&
               (src_len.dtype() == DType::I32 || src_len.dtype() == DType::I64),
           "Seq2Seq: src_len must be i32/i64 (B) with B = ", src.size(0), ", got ",
           src_len.defined() ? src_len.str() : "undefined");
  for (int64_t l : host_ids(src_len)) {
    DT_CHECK(l >= 1 && l <= src.size(1), "Seq2Seq: source length ", l, " outside [1, ", src.size(1), "]");
  }
  const Device device = src_embed_->weight().device();
  Encoded enc;
  enc.lengths = as_i64(src_len, device);
  Tensor x = (*src_embed_)(as_i64(src, device));  // (B, S, E)
  nn::LstmOutput r = encoder_->forward(x, enc.lengths);
  enc.outputs = r.output;
  for (int64_t l = 0; l < config_.layers; ++l) {
    if (config_.bidirectional_encoder) {
      const size_t f = static_cast<size_t>(2 * l), b = f + 1;
      enc.h.push_back(fn::concat_last(r.h[f], r.h[b]));
      enc.c.push_back(fn::concat_last(r.c[f], r.c[b]));
    } else {
      enc.h.push_back(r.h[static_cast<size_t>(l)]);
      enc.c.push_back(r.c[static_cast<size_t>(l)]);
    }
  }
  return enc;
}

Tensor Seq2Seq::decode_steps(const Tensor& tgt_in, const Encoded& enc, std::vector<Tensor>& h,
                             std::vector<Tensor>& c) {
  DT_CHECK(tgt_in.defined() && tgt_in.ndim() == 2 && tgt_in.size(0) == enc.outputs.size(0) &&
               (tgt_in.dtype() == DType::I32 || tgt_in.dtype() == DType::I64),
           "Seq2Seq: tgt_in must be i32/i64 (B, T) with B = ", enc.outputs.size(0), ", got ",
           tgt_in.defined() ? tgt_in.str() : "undefined");
  Tensor y = (*tgt_embed_)(as_i64(tgt_in, enc.outputs.device()));  // (B, T, E)
  nn::LstmOutput r = decoder_->forward(y, Tensor(), h, c);
  h = r.h;
  c = r.c;
  return r.output;
}

Tensor Seq2Seq::project(const Tensor& dec_out, const Encoded& enc) {
  const int64_t batch = dec_out.size(0), steps = dec_out.size(1), hidden = config_.hidden;
  const Tensor w = attn_ ? attn_->weight() : Tensor();
  // Every step at once (no input feeding): two batched gemms.
  Tensor ctx = fn::attention_seq(dec_out, enc.outputs, enc.outputs, enc.lengths, w).context;  // (B, T, H)
  Tensor cat = fn::reshape(fn::concat_last(ctx, dec_out), {batch * steps, 2 * hidden});
  Tensor attentional = fn::tanh((*concat_)(cat));
  return (*out_)(attentional);  // (B * T, Vt)
}

Tensor Seq2Seq::forward_teacher(const Tensor& src, const Tensor& src_len, const Tensor& tgt_in) {
  Encoded enc = encode(src, src_len);
  std::vector<Tensor> h = enc.h, c = enc.c;
  Tensor dec_out = decode_steps(tgt_in, enc, h, c);
  return project(dec_out, enc);
}

Tensor Seq2Seq::loss(const Tensor& logits, const Tensor& tgt_out) const {
  DT_CHECK(tgt_out.defined() && tgt_out.ndim() == 2 && tgt_out.numel() == logits.size(0) &&
               (tgt_out.dtype() == DType::I32 || tgt_out.dtype() == DType::I64),
           "Seq2Seq::loss: tgt_out must be i32/i64 (B, T) with B * T = ", logits.size(0), " rows, got ",
           tgt_out.defined() ? tgt_out.str() : "undefined");
  Tensor targets = fn::reshape(as_i64(tgt_out, logits.device()), {tgt_out.numel()});
  return fn::cross_entropy_masked(logits, targets, config_.pad_id);
}

Tensor Seq2Seq::greedy_decode(const Tensor& src, const Tensor& src_len, int64_t max_len) {
  DT_CHECK(max_len > 0, "Seq2Seq::greedy_decode: max_len must be positive, got ", max_len);
  autograd::NoGrad no_grad;
  Encoded enc = encode(src, src_len);
  const int64_t batch = src.size(0), vocab = config_.tgt_vocab;
  const Device device = enc.outputs.device();
  std::vector<Tensor> h = enc.h, c = enc.c;
  std::vector<int64_t> result(static_cast<size_t>(batch * max_len), config_.pad_id);
  std::vector<int64_t> prev(static_cast<size_t>(batch), config_.bos_id);
  std::vector<bool> done(static_cast<size_t>(batch), false);
  for (int64_t t = 0; t < max_len; ++t) {
    Tensor in = Tensor::from_vector(prev, {batch, 1}).to(device);
    Tensor logits = project(decode_steps(in, enc, h, c), enc);  // (B, Vt)
    std::vector<double> v = logits.to(Device::cpu()).to(DType::F64).to_vector<double>();
    bool all_done = true;
    for (int64_t b = 0; b < batch; ++b) {
      if (done[static_cast<size_t>(b)]) continue;
      const double* row = v.data() + b * vocab;
      const int64_t best = std::max_element(row, row + vocab) - row;
      result[static_cast<size_t>(b * max_len + t)] = best;
      prev[static_cast<size_t>(b)] = best;
      if (best == config_.eos_id) done[static_cast<size_t>(b)] = true;
      all_done = all_done && done[static_cast<size_t>(b)];
    }
    if (all_done) break;
  }
  return Tensor::from_vector(result, {batch, max_len}).to(src.device());
}

Tensor Seq2Seq::forward(const Tensor& /*x*/) {
  DT_THROW(ValueError, "Seq2Seq: use forward_teacher(src, src_len, tgt_in) or greedy_decode");
}

std::string Seq2Seq::describe() const {
  const Seq2SeqConfig& c = config_;
  return "Seq2Seq(src_vocab=" + std::to_string(c.src_vocab) + ", tgt_vocab=" + std::to_string(c.tgt_vocab) +
         ", emb=" + std::to_string(c.emb_dim) + ", hidden=" + std::to_string(c.hidden) +
         ", layers=" + std::to_string(c.layers) + (c.bidirectional_encoder ? ", bidirectional encoder" : "") +
         ", attention=" + c.attention + ")";
}

}  // namespace dtrain::models
