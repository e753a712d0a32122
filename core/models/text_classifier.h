#pragma once
// A recurrent text classifier (the lecture's network that reads a text token by token and
// classifies it): token ids (B, L) with lengths (B) -> logits (B, classes).
//
//   embed   Embedding(vocab, emb, padding 0)                 (B, L, emb)
//   lstm    LSTM(emb, hidden, layers, bidirectional), lengths  final states of the last layer
//   fc      Linear(hidden * directions, classes)             the forward direction's final state
//                                                            [, the backward direction's] -> logits
//
// The LSTM honours the lengths as packed sequences do, so the padding past a sample's
// length never changes its logits. Parameter names: embed.weight, lstm.weight_ih_l0, ...,
// fc.weight, fc.bias, as torch modules with those children; torch's initializations.
#include <cstdint>
#include <memory>

#include "core/nn/layers.h"
#include "core/nn/recurrent.h"
#include "core/rng.h"

namespace dtrain::models {

struct TextClassifierConfig {
  int64_t vocab = 0;
  int64_t classes = 0;
  int64_t emb_dim = 32;
  int64_t hidden = 128;  // per direction
  int64_t layers = 1;
  bool bidirectional = true;
  DType dtype = DType::F32;
};

class TextClassifier : public nn::Module {
 public:
  TextClassifier(const TextClassifierConfig& config, Generator& gen);
  // tokens i32/i64 (B, L), lengths i32/i64 (B) in [1, L] -> logits (B, classes).
  Tensor forward(const Tensor& tokens, const Tensor& lengths);
  // Without lengths every row is taken as L long.
  Tensor forward(const Tensor& tokens) override;
  std::string describe() const override;
  const TextClassifierConfig& config() const { return config_; }

 private:
  TextClassifierConfig config_;
  std::shared_ptr<nn::Embedding> embed_;
  std::shared_ptr<nn::LSTM> lstm_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace dtrain::models
