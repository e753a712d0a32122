#pragma once
// data.normalize = tanh for image recipes: the loader's (p/255 - mean) / std is mapped to
// 2 p/255 - 1 by x * 2 std + (2 mean - 1), per channel (tensors of the batch's shape,
// cached). With `on` false, apply() returns its input.
#include "core/tensor.h"
#include "datasets/schema.h"

namespace dtrain::launcher {

class TanhInputs {
 public:
  bool on = false;
  Tensor apply(const Tensor& x, const data::ImageSchema& s);

 private:
  Shape shape_;
  Tensor scale_, shift_;
};

}  // namespace dtrain::launcher
