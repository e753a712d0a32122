#pragma once
// Image captioning with attention ("show, attend and tell" in the Luong form of
// core/models/seq2seq.h), for the captioning recipe and its PyTorch reference
// (docs/CAPTIONING.md, benchmarks/captioning_torch.py). Batch-first:
//
//   images (B, C, H, W) --encoder (stages x [conv 3x3 pad 1, ReLU, max-pool 2])--> F (B, D, Y, X)
//   f = mean of F over its Y * X positions (B, D); h0 = tanh(init_h(f)), c0 = tanh(init_c(f))
//   tgt_in (B, T) --embed--> (B, T, E) --decoder LSTM (h0, c0)--> h_t (B, T, H)
//   context_t, alpha_t = attention_map(h_t over the Y * X positions of F)    general scoring
//   a_t = tanh(ctx_proj(context_t) + hid_proj(h_t))                          attentional hidden
//   logits_t = out(a_t)                                                      (B * T, V)
//
// The encoder is a small VGG: stage s has width * 2^s channels, so D = width * 2^(stages-1),
// Y = H / 2^stages, X = W / 2^stages (floored at each pooling). Its last feature map is the
// set of positions the decoder attends to, one key and value (D channels) per position;
// alpha_t (B, T, Y * X) says where the word of step t was looked for.
//
// Parameter names, in registration (and initialization) order, as the torch reference:
//   encoder.{3s}.weight (w_s, w_{s-1}, 3, 3), encoder.{3s}.bias  torch.nn.Conv2d
//   init_h.weight (H, D), init_h.bias; init_c.weight, .bias       torch.nn.Linear(D, H)
//   embed.weight (V, E)                                          torch.nn.Embedding(padding_idx = 0)
//   decoder.weight_ih_l0 (4H, E), weight_hh_l0, bias_ih_l0, bias_hh_l0   torch.nn.LSTM(E, H, batch_first)
//   attn.weight (H, D)          torch.nn.Linear(D, H, bias=False); score(h_t, f_p) = h_t^T W f_p
//   ctx_proj.weight (H, D)      torch.nn.Linear(D, H, bias=False)
//   hid_proj.weight (H, H)      torch.nn.Linear(H, H, bias=False)
//   out.weight (V, H), out.bias torch.nn.Linear(H, V)
// (ctx_proj and hid_proj are seq2seq's concat layer W_c [context; h_t] split in two, since
// D and H may differ.)
//
// Without input feeding the decoder LSTM runs over the whole caption in one call under
// teacher forcing; greedy decoding runs it one step at a time with the state carried over,
// which is the same computation.
#include <memory>
#include <string>
#include <vector>

#include "core/nn/layers.h"
#include "core/nn/recurrent.h"
#include "core/rng.h"

namespace dtrain::models {

struct CaptionerConfig {
  int64_t channels = 1, height = 56, width = 56;  // input images
  int64_t vocab = 0;
  int64_t conv_width = 16;  // channels of the first stage
  int64_t stages = 3;
  int64_t emb_dim = 32;
  int64_t hidden = 128;
  int64_t pad_id = 0, bos_id = 1, eos_id = 2;
  DType dtype = DType::F32;
  // The attended map's channels and positions.
  int64_t feature_channels() const { return conv_width << (stages - 1); }
  int64_t map_height() const;
  int64_t map_width() const;
};

class Captioner : public nn::Module {
 public:
  Captioner(const CaptionerConfig& config, Generator& gen);

  struct Encoded {
    Tensor features;  // (B, D, Y, X)
    std::vector<Tensor> h, c;  // the decoder's initial state, one (B, H) each
  };
  Encoded encode(const Tensor& images);

  // Teacher forcing: logits (B * T, V) for decoder inputs tgt_in i32/i64 (B, T); row
  // b * T + t predicts tgt_out[b, t]. `weights`, when given, receives alpha (B, T, Y * X).
  Tensor forward_teacher(const Tensor& images, const Tensor& tgt_in, Tensor* weights = nullptr);
  // Masked cross-entropy of those logits against tgt_out (B, T), ignoring pad_id.
  Tensor loss(const Tensor& logits, const Tensor& tgt_out) const;

  // Greedy decoding without gradient: i64 (B, max_len) on the images' device, each row up
  // to and including its first </s>, <pad> after; stops once every row has ended.
  // `weights`, when given, receives each step's alpha (B, max_len, Y * X) on the CPU
  // (zeros after a row's end).
  Tensor greedy_decode(const Tensor& images, int64_t max_len, Tensor* weights = nullptr);

  // Not a single-input model: throws ValueError (use forward_teacher).
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const CaptionerConfig& config() const { return config_; }

 private:
  // Decoder outputs (B, T, H) for tgt_in from state (h, c), updated in place.
  Tensor decode_steps(const Tensor& tgt_in, std::vector<Tensor>& h, std::vector<Tensor>& c);
  // Attention and projection of decoder outputs (B, T, H): logits (B * T, V).
  Tensor project(const Tensor& dec_out, const Tensor& features, Tensor* weights);

  CaptionerConfig config_;
  std::shared_ptr<nn::Sequential> encoder_;
  std::shared_ptr<nn::Linear> init_h_, init_c_;
  std::shared_ptr<nn::Embedding> embed_;
  std::shared_ptr<nn::LSTM> decoder_;
  std::shared_ptr<nn::Linear> attn_, ctx_proj_, hid_proj_, out_;
};

}  // namespace dtrain::models
