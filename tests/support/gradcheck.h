#pragma once
// A reusable gradient checker: compares autograd's gradients with central differences,
// in double on the CPU.
//
// f maps input tensors to any output; the checker reduces it to a scalar with a fixed
// random projection, L = sum(f(x) * R), so every output element's gradient is exercised.
// Elements within `kink_range` of a kink are skipped, since a finite difference across a
// kink measures neither side: a fixed point (`kink`, ReLU's 0) or an element-specific one
// (`at_kink`, e.g. a max-pool element within range of a rival in its window: a tie). Tolerance per element:
// threshold * max(|analytic|, |numeric|, 1).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <optional>
#include <sstream>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/rng.h"

namespace dtrain::testing {

struct GradCheckOptions {
  double eps = 1e-6;
  double threshold = 1e-6;
  std::optional<double> kink;  // a point where the function is not differentiable
  double kink_range = 1e-3;
  // Whether element `element` of input `input` sits at a kink given the current values.
  std::function<bool(size_t input, int64_t element, const std::vector<Tensor>& inputs, double range)> at_kink;
  uint64_t seed = 1701;
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

inline ::testing::AssertionResult check_gradients(const TensorFn& f, std::vector<Tensor> inputs,
                                                 const std::vector<bool>& differentiable,
                                                 const GradCheckOptions& opt = {}) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (differentiable[i]) {
      if (inputs[i].dtype() != DType::F64 || !inputs[i].device().is_cpu()) {
        return ::testing::AssertionFailure() << "gradient check inputs must be f64 on the CPU, input " << i << " is "
                                             << inputs[i].str();
      }
      inputs[i].set_requires_grad(true);
    }
  }
  // The projection R, fixed by the seed.
  Tensor probe;
  {
    autograd::NoGrad ng;
    probe = f(inputs);
  }
  Tensor r = Tensor::empty(probe.shape(), DType::F64);
  Generator gen(opt.seed);
  gen.normal_(r);
  auto objective = [&]() {
    autograd::NoGrad ng;
    return fn::sum(fn::mul(f(inputs), r)).item<double>();
  };

  autograd::Tape tape;
  Tensor loss;
  {
    autograd::GradRecorder rec(tape);
    loss = fn::sum(fn::mul(f(inputs), r));
  }
  if (!loss.requires_grad()) return ::testing::AssertionFailure() << "the function recorded nothing on the tape";
  tape.backward(loss);

  std::ostringstream failures;
  int bad = 0, checked = 0, skipped = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!differentiable[i]) continue;
    Tensor& x = inputs[i];
    Tensor g = x.grad();
    if (!g.defined()) return ::testing::AssertionFailure() << "input " << i << " received no gradient";
    std::vector<double> analytic = g.to_vector<double>();
    double* xd = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      double orig = xd[j];
      if ((opt.kink && std::fabs(orig - *opt.kink) < opt.kink_range) ||
          (opt.at_kink && opt.at_kink(i, j, inputs, opt.kink_range))) {
        ++skipped;
        continue;
      }
      xd[j] = orig + opt.eps;
      double plus = objective();
      xd[j] = orig - opt.eps;
      double minus = objective();
      xd[j] = orig;
      double numeric = (plus - minus) / (2 * opt.eps);
      double a = analytic[static_cast<size_t>(j)];
      double scale = std::max({std::fabs(a), std::fabs(numeric), 1.0});
      ++checked;
      if (std::fabs(a - numeric) > opt.threshold * scale) {
        if (++bad <= 5) {
          failures << "\n  input " << i << " element " << j << ": analytic " << a << " numeric " << numeric;
        }
      }
    }
    x.set_grad(Tensor());
  }
  if (checked == 0) return ::testing::AssertionFailure() << "no element was checked (" << skipped << " skipped at kinks)";
  if (bad) return ::testing::AssertionFailure() << bad << " of " << checked << " gradient elements differ" << failures.str();
  return ::testing::AssertionSuccess() << checked << " elements checked, " << skipped << " skipped at kinks";
}

// Max-pool kinks: element j of input 0 ties (within `range`) with another element of its
// (n, c) plane of `plane` elements. Conservative: any element of the plane counts as a
// rival, whether or not the two share a window.
inline bool max_pool_tie(int64_t plane, int64_t j, const std::vector<Tensor>& inputs, double range) {
  const double* x = inputs[0].data<double>();
  int64_t start = j / plane * plane;
  for (int64_t k = start; k < start + plane; ++k) {
    if (k != j && std::fabs(x[k] - x[j]) < range) return true;
  }
  return false;
}

}  // namespace dtrain::testing
