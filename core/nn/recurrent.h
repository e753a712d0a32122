#pragma once
// Recurrent building blocks with PyTorch's parameter names and initializations:
// Embedding (torch.nn.Embedding) and a multi-layer, optionally bidirectional LSTM
// (torch.nn.LSTM, batch_first = true) that honours per-sample lengths the way packed
// sequences do. Both run on core/functional_seq.cpp.
#include <cstdint>
#include <string>
#include <vector>

#include "core/functional.h"
#include "core/nn/module.h"
#include "core/rng.h"

namespace dtrain::nn {

// table (V, D) initialized N(0, 1) with the padding row zeroed, as torch.nn.Embedding.
// forward(ids i64 of any shape) -> ids.shape + (D); the padding row receives no gradient.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, Generator& gen, int64_t padding_idx = -1, DType dtype = DType::F32);
  Tensor forward(const Tensor& ids) override;
  std::string describe() const override;
  const Tensor& weight() const { return weight_; }  // (V, D)
  int64_t padding_idx() const { return padding_idx_; }

 private:
  int64_t vocab_, dim_, padding_idx_;
  Tensor weight_;
};

struct LstmOutput {
  Tensor output;          // (B, T, H * directions), zero at padded steps
  std::vector<Tensor> h;  // layers * directions tensors (B, H), PyTorch's h_n order (layer, then direction)
  std::vector<Tensor> c;  // likewise for c_n
};

// Parameters weight_ih_l{k} (4H, In), weight_hh_l{k} (4H, H), bias_ih_l{k}, bias_hh_l{k}
// (4H), with a _reverse twin per layer when bidirectional; all U(-1/sqrt(H), 1/sqrt(H))
// drawn in that registration order. Layer k > 0 reads layer k - 1's (B, T, H * dirs).
class LSTM : public Module {
 public:
  LSTM(int64_t input_size, int64_t hidden_size, Generator& gen, int64_t num_layers = 1, bool bidirectional = false,
       DType dtype = DType::F32);
  // x (B, T, In); lengths i32 or i64 (B) (undefined: all T) on any device; h0, c0 as
  // LstmOutput::h/c, or empty for zeros.
  LstmOutput forward(const Tensor& x, const Tensor& lengths, const std::vector<Tensor>& h0 = {},
                     const std::vector<Tensor>& c0 = {});
  // Without lengths or initial state: the output sequence only.
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()).output; }
  std::string describe() const override;
  int64_t hidden_size() const { return hidden_; }
  int64_t directions() const { return bidirectional_ ? 2 : 1; }

 private:
  struct Weights {
    Tensor w_ih, w_hh, b_ih, b_hh;
  };
  int64_t input_, hidden_, layers_;
  bool bidirectional_;
  std::vector<Weights> weights_;  // layer * directions + direction
};

}  // namespace dtrain::nn
