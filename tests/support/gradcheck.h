#pragma once
// A reusable gradient checker: compares autograd's gradients with central differences,
// in double on the CPU.
//
// f maps input tensors to any output; the checker reduces it to a scalar with a fixed
// random projection, L = sum(f(x) * R), so every output element's gradient is exercised.
// Elements within `kink_range` of a kink (ReLU's 0, a max-pool tie) are skipped, since a
// finite difference across a kink measures neither side. Tolerance per element:
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
      if (opt.kink && std::fabs(orig - *opt.kink) < opt.kink_range) {
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

}  // namespace dtrain::testing
