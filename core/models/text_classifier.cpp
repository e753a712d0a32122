// The recurrent text classifier: see text_classifier.h.
#include "core/models/text_classifier.h"

#include <sstream>

#include "core/error.h"
#include "core/functional.h"

namespace dtrain::models {

TextClassifier::TextClassifier(const TextClassifierConfig& c, Generator& gen) : config_(c) {
  DT_CHECK_AS(c.vocab >= 2 && c.classes >= 2 && c.emb_dim >= 1 && c.hidden >= 1 && c.layers >= 1, ConfigError,
              "text classifier: vocabulary ", c.vocab, ", classes ", c.classes, ", emb ", c.emb_dim, ", hidden ",
              c.hidden, ", layers ", c.layers, ": each must be at least 1 (vocabulary and classes at least 2)");
  embed_ = register_module("embed", std::make_shared<nn::Embedding>(c.vocab, c.emb_dim, gen, 0, c.dtype));
  lstm_ = register_module("lstm", std::make_shared<nn::LSTM>(c.emb_dim, c.hidden, gen, c.layers, c.bidirectional,
                                                            c.dtype));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(c.hidden * (c.bidirectional ? 2 : 1), c.classes, gen,
                                                          true, c.dtype));
}

Tensor TextClassifier::forward(const Tensor& tokens, const Tensor& lengths) {
  DT_CHECK(tokens.defined() && tokens.ndim() == 2 && (tokens.dtype() == DType::I32 || tokens.dtype() == DType::I64),
           "TextClassifier: tokens must be i32/i64 (B, L), got ", tokens.defined() ? tokens.str() : "undefined");
  const Device device = embed_->weight().device();
  Tensor x = (*embed_)(tokens.to(DType::I64).to(device));  // (B, L, emb)
  nn::LstmOutput r = lstm_->forward(x, lengths.defined() ? lengths.to(DType::I64).to(device) : Tensor());
  // The last layer's final states: h_n's last entries (PyTorch's order: layer, then direction).
  const size_t dirs = config_.bidirectional ? 2 : 1, last = r.h.size() - dirs;
  Tensor h = config_.bidirectional ? fn::concat_last(r.h[last], r.h[last + 1]) : r.h[last];
  return (*fc_)(h);
}

Tensor TextClassifier::forward(const Tensor& tokens) { return forward(tokens, Tensor()); }

std::string TextClassifier::describe() const {
  std::ostringstream os;
  os << "TextClassifier(vocab " << config_.vocab << ", emb " << config_.emb_dim << ", "
     << (config_.bidirectional ? "bidirectional " : "") << "LSTM " << config_.hidden << " x " << config_.layers
     << ", " << config_.classes << " classes)";
  return os.str();
}

}  // namespace dtrain::models
