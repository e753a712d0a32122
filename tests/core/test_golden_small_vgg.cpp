// Golden test against PyTorch for the convolution stack: a reduced-width small VGG
// (conv8-conv8-pool-conv16-conv16-pool-conv32-pool-fc32-fc10 on 3x32x32) with the
// parameters, input and labels of tests/fixtures/golden_small_vgg.h5 must reproduce
// PyTorch's logits, cross-entropy loss and every parameter gradient, then five SGD steps
// (momentum, weight decay) must reproduce PyTorch's step losses and final parameters.
// The fixture is written by scripts/make_golden_small_vgg.py (see there for its layout).
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include "core/models/vgg.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// Float rounding level. Convolutions sum up to 3*3*32 = 288 products per output and
// the first linear layer 512, in another order than PyTorch's (oneDNN), so values,
// gradients and final parameters get rtol 1e-4, atol 1e-5; losses rtol 1e-5, atol 1e-6.
constexpr GoldenTolerances kTolerances{{1e-4, 1e-5}, {1e-4, 1e-5}, {1e-5, 1e-6}, {1e-4, 1e-5}};

using GoldenSmallVgg = DeviceParamTest;

TEST_P(GoldenSmallVgg, MatchesPyTorch) {
  const std::string fixture = fixture_path("golden_small_vgg.h5");
  models::SmallVggConfig config;
  config.layers = {8, 8, 0, 16, 16, 0, 32, 0};
  config.hidden = 32;
  config.num_classes = 10;
  Generator gen(0);  // values are replaced by the fixture's
  auto model = models::make_small_vgg(config, gen);
  // The optimizer settings are recorded in the fixture by the script.
  io::H5File f = io::H5File::open_read(fixture);
  optim::SGD::Options sgd{.lr = f.get_attribute<double>("/", "lr"),
                          .momentum = f.get_attribute<double>("/", "momentum"),
                          .dampening = 0.0,
                          .weight_decay = f.get_attribute<double>("/", "weight_decay"),
                          .nesterov = false};
  f.close();
  check_golden_classifier(fixture, "scripts/make_golden_small_vgg.py", *model, device_, kTolerances, sgd);
}

INSTANTIATE_TEST_SUITE_P(Devices, GoldenSmallVgg, ::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                         device_param_name);

}  // namespace
}  // namespace dtrain::testing
