// Golden test against PyTorch for one DCGAN training step: a tiny float64 generator and
// discriminator (core/models/dcgan.h; z_dim 4, 1 channel, g_channels = d_channels = 4,
// batch 4) with the parameters, real batch and noise of tests/fixtures/golden_dcgan.h5
// must, through one launcher::GanStep (launcher/train/recipes/gan_step.h) with Adam(lr 2e-4, betas (0.5,
// 0.999)) for both networks, reproduce PyTorch's loss_d and loss_g, the discriminator
// step's and the generator step's gradients, both networks' parameters after the step
// and (with batch norm) the running statistics. Two variants: 28x28 with batch norm and
// the DCGAN initialization, 32x32 without batch norm. The fixture is written by
// scripts/make_golden_dcgan.py, which replicates GanStep's order (see there).
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "core/io/h5.h"
#include "core/models/dcgan.h"
#include "core/optim/optimizer.h"
#include "launcher/train/recipes/gan_step.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// Float64 throughout, so only the summation order differs from PyTorch's (on the CPU the
// largest differences are ~1e-15 relative): rtol 1e-9 and atol 1e-13 for losses,
// gradients, parameters and running statistics, room for other summation orders (CUDA). (Adam's first step
// moves each parameter by about lr * g / (|g| + eps), so the final parameters are as close
// as the gradients allow.)
constexpr Tolerance kTol{1e-9, 1e-13};

void load(const io::H5File& f, const std::string& group, const nn::NamedTensors& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors) names.push_back(name);
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names, f.list(group)) << group << ": names differ from PyTorch's state_dict names";
  for (const auto& [name, t] : tensors) {
    Tensor v = f.read_as(group + "/" + name, DType::F64);
    ASSERT_EQ(v.shape(), t.shape()) << group << "/" << name;
    Tensor dst = t;
    dst.copy_(v);
  }
}

void expect_close(const io::H5File& f, const std::string& group, const nn::NamedTensors& tensors, bool grads) {
  ASSERT_EQ(static_cast<size_t>(tensors.size()), f.list(group).size()) << group;
  for (const auto& [name, t] : tensors) {
    if (t.dtype() == DType::I64) {  // num_batches_tracked
      EXPECT_EQ(t.to(Device::cpu()).to_vector<int64_t>(), f.read_as(group + "/" + name, DType::I64).to_vector<int64_t>())
          << group << "/" << name;
      continue;
    }
    EXPECT_TRUE(tensors_close(group + "/" + name, grads ? t.grad() : t, f.read_as(group + "/" + name, DType::F64),
                              kTol));
  }
}

class GoldenDcgan : public ::testing::TestWithParam<std::tuple<DeviceKind, std::string>> {
 protected:
  void SetUp() override {
    if (std::get<0>(GetParam()) == DeviceKind::CUDA) {
      std::string why;
      if (!cuda::available(&why)) GTEST_SKIP() << "no usable CUDA device: " << why;
      device_ = Device::cuda(0);
    }
  }
  Device device_ = Device::cpu();
};

TEST_P(GoldenDcgan, OneGanStepMatchesPyTorch) {
  const std::string fixture = fixture_path("golden_dcgan.h5");
  const std::string script = "scripts/make_golden_dcgan.py";
  const std::string v = "/" + std::get<1>(GetParam());
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << fixture << " has no format_version attribute; regenerate it with " << script;
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kGoldenFormatVersion)
      << fixture << " has another format version than this test reads; regenerate it with " << script;

  models::DcganConfig config;
  config.image_size = static_cast<int>(f.get_attribute<int64_t>(v, "image_size"));
  config.channels = static_cast<int>(f.get_attribute<int64_t>(v, "channels"));
  config.z_dim = static_cast<int>(f.get_attribute<int64_t>(v, "z_dim"));
  config.g_channels = static_cast<int>(f.get_attribute<int64_t>(v, "g_channels"));
  config.d_channels = static_cast<int>(f.get_attribute<int64_t>(v, "d_channels"));
  config.batch_norm = f.get_attribute<int64_t>(v, "batch_norm") != 0;
  config.dtype = DType::F64;
  Generator gen(0);  // values are replaced by the fixture's
  auto g = models::make_dcgan_generator(config, gen);
  auto d = models::make_dcgan_discriminator(config, gen);
  load(f, v + "/params_g", g->named_parameters());
  load(f, v + "/params_d", d->named_parameters());
  g->to(device_);
  d->to(device_);

  const optim::Adam::Options adam{.lr = f.get_attribute<double>("/", "lr"),
                                  .beta1 = f.get_attribute<double>("/", "beta1"),
                                  .beta2 = f.get_attribute<double>("/", "beta2"),
                                  .eps = f.get_attribute<double>("/", "eps")};
  optim::Adam opt_g(g->named_parameters(), adam);
  optim::Adam opt_d(d->named_parameters(), adam);
  Generator noise(1);  // unused: the step gets the fixture's noise
  launcher::GanStep step(*g, *d, opt_g, opt_d, nullptr, nullptr, noise, {.z_dim = config.z_dim});
  const Tensor real = f.read_as(v + "/real", DType::F64).to(device_);
  const Tensor z = f.read_as(v + "/z", DType::F64).to(device_);
  launcher::GanStepResult r = step.step(real, z);

  EXPECT_TRUE(tensors_close("loss_d", Tensor::from_vector<double>({r.loss_d}, {}),
                            f.read_as(v + "/loss_d", DType::F64), kTol));
  EXPECT_TRUE(tensors_close("loss_g", Tensor::from_vector<double>({r.loss_g}, {}),
                            f.read_as(v + "/loss_g", DType::F64), kTol));
  // After the step D's gradients are still those of the discriminator step (frozen in the
  // generator step) and G's those of the generator step.
  expect_close(f, v + "/grads_d", d->named_parameters(), true);
  expect_close(f, v + "/grads_g", g->named_parameters(), true);
  expect_close(f, v + "/final_d", d->named_parameters(), false);
  expect_close(f, v + "/final_g", g->named_parameters(), false);
  if (config.batch_norm) {
    expect_close(f, v + "/buffers_d", d->named_buffers(), false);
    expect_close(f, v + "/buffers_g", g->named_buffers(), false);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, GoldenDcgan,
                         ::testing::Combine(::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                                            ::testing::Values(std::string("batch_norm"),
                                                              std::string("no_batch_norm"))),
                         [](const ::testing::TestParamInfo<GoldenDcgan::ParamType>& info) {
                           return std::string(std::get<0>(info.param) == DeviceKind::CPU ? "cpu" : "cuda") + "_" +
                                  std::get<1>(info.param);
                         });

}  // namespace
}  // namespace dtrain::testing
