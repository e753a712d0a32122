#include "core/nn/layers.h"

#include <cmath>

namespace dtrain::nn {

Linear::Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias, DType dtype)
    : in_(in_features), out_(out_features) {
  DT_CHECK(in_features > 0 && out_features > 0, "Linear: feature counts must be positive, got in=", in_features,
           " out=", out_features);
  double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  Tensor w = Tensor::empty({out_features, in_features}, dtype);
  gen.uniform_(w, -bound, bound);
  weight_ = register_parameter("weight", w);
  if (bias) {
    Tensor b = Tensor::empty({out_features}, dtype);
    gen.uniform_(b, -bound, bound);
    bias_ = register_parameter("bias", b);
  }
}

Tensor Linear::forward(const Tensor& x) { return fn::linear(x, weight_, bias_); }

std::string Linear::describe() const {
  return "Linear(in=" + std::to_string(in_) + ", out=" + std::to_string(out_) + (bias_.defined() ? ", bias)" : ")");
}

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) add(m);
}

Sequential& Sequential::add(std::shared_ptr<Module> m) {
  DT_CHECK(m != nullptr, "Sequential::add: null module");
  register_module(std::to_string(children().size()), std::move(m));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [name, child] : children()) h = child->forward(h);
  return h;
}

}  // namespace dtrain::nn
