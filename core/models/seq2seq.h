#pragma once
// Sequence-to-sequence model with Luong attention (Luong, Pham & Manning, 2015), for the
// translation recipe and its PyTorch reference (docs/SEQ2SEQ.md). Batch-first:
//
//   src (B, S) --src_embed--> (B, S, E) --encoder LSTM (lengths)--> outputs (B, S, H)
//                                                                   final h, c per layer
//   tgt_in (B, T) --tgt_embed--> (B, T, E) --decoder LSTM (h0, c0 = encoder finals)--> h_t
//   context_t = attention(h_t over encoder outputs, masked by src_len)   (dot | general)
//   a_t = tanh(W_c [context_t; h_t])                                      (attentional hidden)
//   logits_t = out(a_t)                                                   (B, T, V) -> (B*T, V)
//
// Encoder and decoder both have config.layers layers. With bidirectional_encoder each
// encoder direction has hidden / 2 units (hidden must be even) and the two directions are
// concatenated: the outputs are (B, S, hidden) and each layer's final state is
// [h_forward; h_backward], which initializes the decoder's layer of the same index. No
// bridge layer is needed, and dot attention works unchanged (OpenNMT's "brnn" layout).
//
// Parameter names, in registration (and initialization) order:
//   src_embed.weight (Vs, E)         torch.nn.Embedding(padding_idx = pad_id), N(0, 1)
//   encoder.weight_ih_l0 ...         torch.nn.LSTM(E, H or H/2, layers, batch_first,
//                                    bidirectional) names, incl. _reverse
//   tgt_embed.weight (Vt, E)
//   decoder.weight_ih_l0 ...         torch.nn.LSTM(E, H, layers, batch_first)
//   attn.weight (H, H)               general only: torch.nn.Linear(H, H, bias=False);
//                                    score(h_t, h_s) = h_t . attn(h_s) = h_t^T W h_s
//   concat.weight (H, 2H)            torch.nn.Linear(2H, H, bias=False), input [context; h_t]
//   out.weight (Vt, H), out.bias     torch.nn.Linear(H, Vt)
// Every parameter uses its torch module's default initialization, drawn from `gen` in
// the order above.
//
// The decoder does not feed a_t back into its next input (no "input feeding"), so
// teacher forcing runs the decoder LSTM over the whole target in one call; greedy
// decoding runs the same LSTM one step at a time with the state carried over, which is
// the same computation.
#include <memory>
#include <string>
#include <vector>

#include "core/nn/layers.h"
#include "core/nn/recurrent.h"
#include "core/rng.h"

namespace dtrain::models {

struct Seq2SeqConfig {
  int64_t src_vocab = 0;
  int64_t tgt_vocab = 0;
  int64_t emb_dim = 256;
  int64_t hidden = 512;
  int64_t layers = 1;
  bool bidirectional_encoder = false;
  std::string attention = "dot";  // "dot" or "general"
  int64_t pad_id = 0;
  int64_t bos_id = 1;
  int64_t eos_id = 2;
  DType dtype = DType::F32;
};

// Decoder inputs and targets for teacher forcing from tgt = "<s> words </s> <pad>..."
// (B, L) (the loader's layout): tgt_in = tgt[:, :-1], tgt_out = tgt[:, 1:], both i64
// (B, L - 1) on tgt's device. Positions past a sample's end are <pad> in tgt_out and so
// are ignored by the loss.
struct TeacherPair {
  Tensor tgt_in, tgt_out;
};
TeacherPair teacher_pair(const Tensor& tgt);

class Seq2Seq : public nn::Module {
 public:
  Seq2Seq(const Seq2SeqConfig& config, Generator& gen);

  struct Encoded {
    Tensor outputs;            // (B, S, H), zero at padded steps
    Tensor lengths;            // i64 (B) on the outputs' device
    std::vector<Tensor> h, c;  // decoder initial state: layers tensors (B, H)
  };
  // src i32/i64 (B, S); src_len i32/i64 (B) with values in [1, S].
  Encoded encode(const Tensor& src, const Tensor& src_len);

  // Teacher forcing: logits (B * T, Vt) for decoder inputs tgt_in i32/i64 (B, T), row
  // b * T + t predicting tgt_out[b, t].
  Tensor forward_teacher(const Tensor& src, const Tensor& src_len, const Tensor& tgt_in);
  // Masked cross-entropy of those logits against tgt_out (B, T), ignoring pad_id.
  Tensor loss(const Tensor& logits, const Tensor& tgt_out) const;

  // Greedy decoding without gradient: i64 (B, max_len) on src's device. Each sample's
  // tokens run up to and including its first </s>; later positions are <pad>. Stops
  // early once every sample has produced </s>.
  Tensor greedy_decode(const Tensor& src, const Tensor& src_len, int64_t max_len);

  // Not a single-input model: throws ValueError (use forward_teacher).
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const Seq2SeqConfig& config() const { return config_; }

 private:
  // One decoder pass over tgt_in (B, T) from state (h, c); returns the decoder's top
  // layer outputs (B, T, H) and updates h, c in place.
  Tensor decode_steps(const Tensor& tgt_in, const Encoded& enc, std::vector<Tensor>& h, std::vector<Tensor>& c);
  // Attentional hidden -> logits for decoder outputs (B, T, H): (B * T, Vt).
  Tensor project(const Tensor& dec_out, const Encoded& enc);

  Seq2SeqConfig config_;
  std::shared_ptr<nn::Embedding> src_embed_, tgt_embed_;
  std::shared_ptr<nn::LSTM> encoder_, decoder_;
  std::shared_ptr<nn::Linear> attn_;  // general only
  std::shared_ptr<nn::Linear> concat_, out_;
};

}  // namespace dtrain::models
