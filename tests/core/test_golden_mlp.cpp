// Golden test against PyTorch: a small MLP (Linear-Tanh-Linear-ReLU-Linear) with the
// parameters, input and labels of tests/fixtures/golden_mlp.h5 must reproduce PyTorch's
// logits, cross-entropy loss and parameter gradients, then five SGD steps (momentum,
// weight decay) must reproduce PyTorch's step losses and final parameters. The fixture is
// written by scripts/make_golden_mlp.py (see there for its layout).
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include <memory>

#include "core/nn/layers.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// Per-tensor tolerances: float32 rounding level (summation order differs from
// PyTorch's), for logits, gradients, losses and the parameters after five steps.
constexpr GoldenTolerances kTolerances{{1e-5, 1e-6}, {1e-5, 1e-6}, {1e-5, 0.0}, {1e-5, 1e-6}};

using GoldenMlp = DeviceParamTest;

TEST_P(GoldenMlp, MatchesPyTorch) {
  Generator gen(0);  // values are replaced by the fixture's
  nn::Sequential mlp{std::make_shared<nn::Linear>(6, 16, gen), std::make_shared<nn::Tanh>(),
                     std::make_shared<nn::Linear>(16, 16, gen), std::make_shared<nn::ReLU>(),
                     std::make_shared<nn::Linear>(16, 4, gen)};
  check_golden_classifier(fixture_path("golden_mlp.h5"), "scripts/make_golden_mlp.py", mlp, device_, kTolerances,
                          optim::SGD::Options{.lr = 0.1, .momentum = 0.9, .dampening = 0.0, .weight_decay = 1e-4,
                                              .nesterov = false});
}

INSTANTIATE_TEST_SUITE_P(Devices, GoldenMlp, ::testing::Values(DeviceKind::CPU, DeviceKind::CUDA), device_param_name);

}  // namespace
}  // namespace dtrain::testing
