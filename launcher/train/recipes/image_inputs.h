#pragma once
// What image recipes feed their networks. The loader delivers (p/255 - mean) / std per
// channel (the file's mean and std, "meanstd"); PixelInputs maps that, per channel, to
//   tanh: 2 p/255 - 1, in [-1, 1]   (x * 2 std + (2 mean - 1); a GAN's range)
//   unit: p/255, in [0, 1]          (x * std + mean; an autoencoder's pixels)
// with tensors of the batch's shape, cached; meanstd returns its input.
#include "core/tensor.h"
#include "datasets/schema.h"

namespace dtrain::launcher {

class PixelInputs {
 public:
  enum class Range { kMeanStd, kTanh, kUnit };
  Range range = Range::kMeanStd;
  Tensor apply(const Tensor& x, const data::ImageSchema& s);
  // "meanstd", "tanh" or "unit": for the agreement check and messages.
  const char* name() const;

 private:
  Shape shape_;
  Tensor scale_, shift_;
};

}  // namespace dtrain::launcher
