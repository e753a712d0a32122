// See image_inputs.h.
#include "launcher/train/recipes/image_inputs.h"

#include <algorithm>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"

namespace dtrain::launcher {

Tensor PixelInputs::apply(const Tensor& x, const data::ImageSchema& s) {
  if (range == Range::kMeanStd) return x;
  const double k = range == Range::kTanh ? 2.0 : 1.0;  // (mean, std) -> k (p/255) + (k == 2 ? -1 : 0)
  if (!scale_.defined() || shape_ != x.shape()) {
    const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
    std::vector<float> scale(static_cast<size_t>(n * c * hw)), shift(scale.size());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const double mean = ch < static_cast<int64_t>(s.mean.size()) ? s.mean[static_cast<size_t>(ch)] : 0.0;
        const double sd = ch < static_cast<int64_t>(s.std.size()) ? s.std[static_cast<size_t>(ch)] : 1.0;
        const size_t at = static_cast<size_t>((i * c + ch) * hw);
        std::fill_n(scale.begin() + static_cast<std::ptrdiff_t>(at), hw, static_cast<float>(k * sd));
        std::fill_n(shift.begin() + static_cast<std::ptrdiff_t>(at), hw, static_cast<float>(k * mean - (k - 1)));
      }
    }
    shape_ = x.shape();
    scale_ = Tensor::from_vector<float>(scale, x.shape()).to(x.device()).to(x.dtype());
    shift_ = Tensor::from_vector<float>(shift, x.shape()).to(x.device()).to(x.dtype());
  }
  autograd::NoGrad no_grad;
  return fn::add(fn::mul(x, scale_), shift_);
}

const char* PixelInputs::name() const {
  switch (range) {
    case Range::kTanh: return "tanh";
    case Range::kUnit: return "unit";
    default: return "meanstd";
  }
}

}  // namespace dtrain::launcher
