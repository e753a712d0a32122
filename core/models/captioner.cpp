#include "core/models/captioner.h"

#include <algorithm>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/functional.h"
#include "core/nn/conv.h"

namespace dtrain::models {

int64_t CaptionerConfig::map_height() const {
  int64_t y = height;
  for (int64_t s = 0; s < stages; ++s) y /= 2;
  return y;
}

int64_t CaptionerConfig::map_width() const {
  int64_t x = width;
  for (int64_t s = 0; s < stages; ++s) x /= 2;
  return x;
}

Captioner::Captioner(const CaptionerConfig& config, Generator& gen) : config_(config) {
  const CaptionerConfig& c = config_;
  DT_CHECK(c.channels > 0 && c.vocab > 0 && c.conv_width > 0 && c.stages > 0 && c.emb_dim > 0 && c.hidden > 0,
           "Captioner: sizes must be positive, got channels=", c.channels, " vocab=", c.vocab,
           " conv_width=", c.conv_width, " stages=", c.stages, " emb_dim=", c.emb_dim, " hidden=", c.hidden);
  DT_CHECK(c.map_height() >= 1 && c.map_width() >= 1, "Captioner: ", c.height, "x", c.width, " images are too small for ",
           c.stages, " poolings by 2 (at least ", int64_t{1} << c.stages, " pixels a side)");
  for (int64_t id : {c.pad_id, c.bos_id, c.eos_id}) {
    DT_CHECK(id >= 0 && id < c.vocab, "Captioner: special token id ", id, " outside the vocabulary of ", c.vocab);
  }
  encoder_ = register_module("encoder", std::make_shared<nn::Sequential>());
  int64_t in = c.channels;
  for (int64_t s = 0; s < c.stages; ++s) {
    const int64_t out = c.conv_width << s;
    encoder_->add(std::make_shared<nn::Conv2d>(in, out, 3, gen, 1, 1, true, c.dtype))
        .add(std::make_shared<nn::ReLU>())
        .add(std::make_shared<nn::MaxPool2d>(2));
    in = out;
  }
  const int64_t d = c.feature_channels();
  init_h_ = register_module("init_h", std::make_shared<nn::Linear>(d, c.hidden, gen, true, c.dtype));
  init_c_ = register_module("init_c", std::make_shared<nn::Linear>(d, c.hidden, gen, true, c.dtype));
  embed_ = register_module("embed", std::make_shared<nn::Embedding>(c.vocab, c.emb_dim, gen, c.pad_id, c.dtype));
  decoder_ = register_module("decoder", std::make_shared<nn::LSTM>(c.emb_dim, c.hidden, gen, 1, false, c.dtype));
  attn_ = register_module("attn", std::make_shared<nn::Linear>(d, c.hidden, gen, false, c.dtype));
  ctx_proj_ = register_module("ctx_proj", std::make_shared<nn::Linear>(d, c.hidden, gen, false, c.dtype));
  hid_proj_ = register_module("hid_proj", std::make_shared<nn::Linear>(c.hidden, c.hidden, gen, false, c.dtype));
  out_ = register_module("out", std::make_shared<nn::Linear>(c.hidden, c.vocab, gen, true, c.dtype));
}

Captioner::Encoded Captioner::encode(const Tensor& images) {
  const CaptionerConfig& c = config_;
  DT_CHECK(images.defined() && images.ndim() == 4 && images.size(1) == c.channels && images.size(2) == c.height &&
               images.size(3) == c.width,
           "Captioner: images must be (B, ", c.channels, ", ", c.height, ", ", c.width, "), got ",
           images.defined() ? images.str() : "undefined");
  Encoded e;
  e.features = encoder_->forward(images);  // (B, D, Y, X)
  const int64_t batch = images.size(0), d = c.feature_channels();
  Tensor pooled = fn::reshape(fn::adaptive_avg_pool2d(e.features, 1, 1), {batch, d});  // (B, D)
  e.h = {fn::tanh((*init_h_)(pooled))};
  e.c = {fn::tanh((*init_c_)(pooled))};
  return e;
}

Tensor Captioner::decode_steps(const Tensor& tgt_in, std::vector<Tensor>& h, std::vector<Tensor>& c) {
  DT_CHECK(tgt_in.defined() && tgt_in.ndim() == 2 && tgt_in.size(0) == h[0].size(0) &&
               (tgt_in.dtype() == DType::I32 || tgt_in.dtype() == DType::I64),
           "Captioner: tgt_in must be i32/i64 (B, T) with B = ", h[0].size(0), ", got ",
           tgt_in.defined() ? tgt_in.str() : "undefined");
  Tensor y = (*embed_)(tgt_in.to(DType::I64).to(h[0].device()));  // (B, T, E)
  nn::LstmOutput r = decoder_->forward(y, Tensor(), h, c);
  h = r.h;
  c = r.c;
  return r.output;
}

Tensor Captioner::project(const Tensor& dec_out, const Tensor& features, Tensor* weights) {
  const int64_t batch = dec_out.size(0), steps = dec_out.size(1), hidden = config_.hidden;
  const int64_t d = config_.feature_channels();
  fn::Attention a = fn::attention_map(dec_out, features, attn_->weight());  // context (B, T, D)
  if (weights != nullptr) *weights = a.weights;
  Tensor ctx = (*ctx_proj_)(fn::reshape(a.context, {batch * steps, d}));
  Tensor hid = (*hid_proj_)(fn::reshape(dec_out, {batch * steps, hidden}));
  return (*out_)(fn::tanh(fn::add(ctx, hid)));  // (B * T, V)
}

Tensor Captioner::forward_teacher(const Tensor& images, const Tensor& tgt_in, Tensor* weights) {
  Encoded e = encode(images);
  Tensor dec_out = decode_steps(tgt_in, e.h, e.c);
  return project(dec_out, e.features, weights);
}

Tensor Captioner::loss(const Tensor& logits, const Tensor& tgt_out) const {
  DT_CHECK(tgt_out.defined() && tgt_out.ndim() == 2 && tgt_out.numel() == logits.size(0) &&
               (tgt_out.dtype() == DType::I32 || tgt_out.dtype() == DType::I64),
           "Captioner::loss: tgt_out must be i32/i64 (B, T) with B * T = ", logits.size(0), " rows, got ",
           tgt_out.defined() ? tgt_out.str() : "undefined");
  Tensor targets = fn::reshape(tgt_out.to(DType::I64).to(logits.device()), {tgt_out.numel()});
  return fn::cross_entropy_masked(logits, targets, config_.pad_id);
}

Tensor Captioner::greedy_decode(const Tensor& images, int64_t max_len, Tensor* weights) {
  DT_CHECK(max_len > 0, "Captioner::greedy_decode: max_len must be positive, got ", max_len);
  autograd::NoGrad no_grad;
  Encoded e = encode(images);
  const int64_t batch = images.size(0), vocab = config_.vocab;
  const int64_t positions = e.features.size(2) * e.features.size(3);
  const Device device = e.features.device();
  std::vector<int64_t> result(static_cast<size_t>(batch * max_len), config_.pad_id);
  std::vector<double> alpha(weights != nullptr ? static_cast<size_t>(batch * max_len * positions) : 0, 0.0);
  std::vector<int64_t> prev(static_cast<size_t>(batch), config_.bos_id);
  std::vector<bool> done(static_cast<size_t>(batch), false);
  for (int64_t t = 0; t < max_len; ++t) {
    Tensor in = Tensor::from_vector(prev, {batch, 1}).to(device);
    Tensor w;
    Tensor logits = project(decode_steps(in, e.h, e.c), e.features, weights != nullptr ? &w : nullptr);  // (B, V)
    std::vector<double> v = logits.to(Device::cpu()).to(DType::F64).to_vector<double>();
    std::vector<double> wv;
    if (weights != nullptr) wv = w.to(Device::cpu()).to(DType::F64).to_vector<double>();  // (B, 1, P)
    bool all_done = true;
    for (int64_t b = 0; b < batch; ++b) {
      if (done[static_cast<size_t>(b)]) continue;
      const double* row = v.data() + b * vocab;
      const int64_t best = std::max_element(row, row + vocab) - row;
      result[static_cast<size_t>(b * max_len + t)] = best;
      prev[static_cast<size_t>(b)] = best;
      if (weights != nullptr) {
        std::copy_n(wv.begin() + b * positions, positions, alpha.begin() + (b * max_len + t) * positions);
      }
      if (best == config_.eos_id) done[static_cast<size_t>(b)] = true;
      all_done = all_done && done[static_cast<size_t>(b)];
    }
    if (all_done) break;
  }
  if (weights != nullptr) *weights = Tensor::from_vector(alpha, {batch, max_len, positions}).to(DType::F32);
  return Tensor::from_vector(result, {batch, max_len}).to(images.device());
}

Tensor Captioner::forward(const Tensor& /*x*/) {
  DT_THROW(ValueError, "Captioner: use forward_teacher(images, tgt_in) or greedy_decode(images, max_len)");
}

std::string Captioner::describe() const {
  const CaptionerConfig& c = config_;
  std::ostringstream os;
  os << "Captioner(" << c.channels << "x" << c.height << "x" << c.width << " -> " << c.stages << " conv stages from "
     << c.conv_width << " channels -> " << c.map_height() << "x" << c.map_width() << "x" << c.feature_channels()
     << " positions; emb " << c.emb_dim << ", LSTM " << c.hidden << ", vocab " << c.vocab << ")";
  return os.str();
}

}  // namespace dtrain::models
