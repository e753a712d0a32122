#include "core/nn/recurrent.h"

#include <cmath>

#include "core/error.h"

namespace dtrain::nn {

Embedding::Embedding(int64_t num_embeddings, int64_t dim, Generator& gen, int64_t padding_idx, DType dtype)
    : vocab_(num_embeddings), dim_(dim), padding_idx_(padding_idx) {
  DT_CHECK(num_embeddings > 0 && dim > 0, "Embedding: sizes must be positive, got ", num_embeddings, "x", dim);
  DT_CHECK(padding_idx >= -1 && padding_idx < num_embeddings, "Embedding: padding_idx ", padding_idx,
           " outside [-1, ", num_embeddings, ")");
  Tensor w = Tensor::empty({num_embeddings, dim}, DType::F64);
  gen.normal_(w, 0.0, 1.0);
  if (padding_idx >= 0) {
    double* row = w.data<double>() + padding_idx * dim;
    for (int64_t d = 0; d < dim; ++d) row[d] = 0.0;
  }
  weight_ = register_parameter("weight", w.to(dtype));
}

Tensor Embedding::forward(const Tensor& ids) { return fn::embedding(ids, weight_, padding_idx_); }

std::string Embedding::describe() const {
  return "Embedding(" + std::to_string(vocab_) + ", " + std::to_string(dim_) +
         (padding_idx_ >= 0 ? ", padding_idx=" + std::to_string(padding_idx_) + ")" : ")");
}

LSTM::LSTM(int64_t input_size, int64_t hidden_size, Generator& gen, int64_t num_layers, bool bidirectional,
           DType dtype)
    : input_(input_size), hidden_(hidden_size), layers_(num_layers), bidirectional_(bidirectional) {
  DT_CHECK(input_size > 0 && hidden_size > 0 && num_layers > 0, "LSTM: sizes must be positive, got input=",
           input_size, " hidden=", hidden_size, " layers=", num_layers);
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  auto param = [&](const std::string& name, const Shape& shape) {
    Tensor t = Tensor::empty(shape, dtype);
    gen.uniform_(t, -bound, bound);
    return register_parameter(name, t);
  };
  for (int64_t l = 0; l < num_layers; ++l) {
    const int64_t in = l == 0 ? input_size : hidden_size * directions();
    for (int64_t d = 0; d < directions(); ++d) {
      const std::string suffix = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      Weights w;
      w.w_ih = param("weight_ih" + suffix, {4 * hidden_size, in});
      w.w_hh = param("weight_hh" + suffix, {4 * hidden_size, hidden_size});
      w.b_ih = param("bias_ih" + suffix, {4 * hidden_size});
      w.b_hh = param("bias_hh" + suffix, {4 * hidden_size});
      weights_.push_back(w);
    }
  }
}

LstmOutput LSTM::forward(const Tensor& x, const Tensor& lengths, const std::vector<Tensor>& h0,
                         const std::vector<Tensor>& c0) {
  DT_CHECK(x.defined() && x.ndim() == 3 && x.size(2) == input_, "LSTM: expected x (B, T, ", input_, "), got ",
           x.defined() ? x.str() : "undefined");
  const size_t states = weights_.size();
  DT_CHECK(h0.empty() || h0.size() == states, "LSTM: h0 needs ", states, " tensors, got ", h0.size());
  DT_CHECK(c0.empty() || c0.size() == states, "LSTM: c0 needs ", states, " tensors, got ", c0.size());
  Tensor len;
  if (lengths.defined()) {
    DT_CHECK(lengths.ndim() == 1 && lengths.size(0) == x.size(0) &&
                 (lengths.dtype() == DType::I64 || lengths.dtype() == DType::I32),
             "LSTM: lengths must be i32 or i64 (B) with B = ", x.size(0), ", got ", lengths.str());
    if (lengths.dtype() == DType::I64) {
      len = lengths.to(x.device());
    } else {
      std::vector<int32_t> v = lengths.to(Device::cpu()).to_vector<int32_t>();
      len = Tensor::from_vector(std::vector<int64_t>(v.begin(), v.end()), {x.size(0)}).to(x.device());
    }
  }
  LstmOutput out;
  Tensor input = x;
  for (int64_t l = 0; l < layers_; ++l) {
    std::vector<Tensor> dir_out;
    for (int64_t d = 0; d < directions(); ++d) {
      const size_t k = static_cast<size_t>(l * directions() + d);
      const Weights& w = weights_[k];
      fn::LstmSequence r = fn::lstm(input, len, h0.empty() ? Tensor() : h0[k], c0.empty() ? Tensor() : c0[k], w.w_ih,
                                    w.w_hh, w.b_ih, w.b_hh, d == 1);
      dir_out.push_back(r.output);
      out.h.push_back(r.final.h);
      out.c.push_back(r.final.c);
    }
    input = dir_out.size() == 1 ? dir_out[0] : fn::concat_last(dir_out[0], dir_out[1]);
  }
  out.output = input;
  return out;
}

std::string LSTM::describe() const {
  return "LSTM(" + std::to_string(input_) + ", " + std::to_string(hidden_) + ", layers=" + std::to_string(layers_) +
         (bidirectional_ ? ", bidirectional)" : ")");
}

}  // namespace dtrain::nn
