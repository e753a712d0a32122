// Every op on every device against the f64 CPU reference.
//
// Parameterized over device x op: the f32 result (output and input gradients) on the CPU
// and on CUDA must agree with the same op computed in f64 on the CPU. Where no CUDA
// device is usable, the CUDA instances are skipped with the reason, never passed.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/optim/optimizer.h"
#include "core/runtime.h"
#include "tests/support/op_cases.h"

namespace dtrain::testing {
namespace {

struct Result {
  std::vector<double> output;
  std::vector<std::vector<double>> grads;  // per input; empty for non-differentiable ones
};

Result run_case(const OpCase& c, DType dtype, Device device) {
  std::vector<Tensor> inputs = make_inputs(c, dtype, device, 7);
  Result r;
  autograd::Tape tape;
  Tensor out;
  {
    autograd::GradRecorder rec(tape);
    if (c.differentiable) {
      for (size_t i = 0; i < inputs.size(); ++i) {
        if (is_differentiable_input(c.inputs[i])) inputs[i].set_requires_grad(true);
      }
    }
    out = c.f(inputs);
  }
  r.output = out.to(Device::cpu()).to(DType::F64).to_vector<double>();
  if (c.differentiable) {
    // Seed with a fixed pattern so every output element's gradient path is used.
    std::vector<double> seed(static_cast<size_t>(out.numel()));
    for (size_t i = 0; i < seed.size(); ++i) seed[i] = 0.5 + 0.25 * static_cast<double>(i % 5);
    tape.backward(out, Tensor::from_vector(seed, out.shape()).to(dtype).to(device));
    for (size_t i = 0; i < inputs.size(); ++i) {
      r.grads.push_back(is_differentiable_input(c.inputs[i])
                            ? inputs[i].grad().to(Device::cpu()).to(DType::F64).to_vector<double>()
                            : std::vector<double>{});
    }
  }
  return r;
}

::testing::AssertionResult close(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << what << ": size " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    double tol = 2e-5 + 2e-5 * std::fabs(want[i]);
    if (!(std::fabs(got[i] - want[i]) <= tol)) {
      return ::testing::AssertionFailure() << what << "[" << i << "] = " << got[i] << ", reference " << want[i];
    }
  }
  return ::testing::AssertionSuccess();
}

class DeviceAgreement : public ::testing::TestWithParam<std::tuple<DeviceKind, OpCase>> {
 protected:
  Device device() {
    if (std::get<0>(GetParam()) == DeviceKind::CPU) return Device::cpu();
    return Device::cuda(0);
  }
  void SetUp() override {
    if (std::get<0>(GetParam()) == DeviceKind::CUDA) {
      std::string why;
      if (!cuda::available(&why)) GTEST_SKIP() << "no usable CUDA device: " << why;
    }
  }
};

TEST_P(DeviceAgreement, F32MatchesF64CpuReference) {
  const OpCase& c = std::get<1>(GetParam());
  Result ref = run_case(c, DType::F64, Device::cpu());
  Result got = run_case(c, DType::F32, device());
  EXPECT_TRUE(close(got.output, ref.output, "output")) << c.name << " on " << device().str();
  for (size_t i = 0; i < got.grads.size(); ++i) {
    EXPECT_TRUE(close(got.grads[i], ref.grads[i], ("grad of input " + std::to_string(i)).c_str()))
        << c.name << " on " << device().str();
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, DeviceAgreement,
                         ::testing::Combine(::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                                            ::testing::ValuesIn(op_cases())),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == DeviceKind::CPU ? "Cpu_" : "Cuda_") +
                                  std::get<1>(info.param).name;
                         });

// Kernels that are not autograd functions: optimizer updates, random fills, conversions.
class DeviceKernels : public ::testing::TestWithParam<DeviceKind> {
 protected:
  Device device() { return GetParam() == DeviceKind::CPU ? Device::cpu() : Device::cuda(0); }
  void SetUp() override {
    if (GetParam() == DeviceKind::CUDA) {
      std::string why;
      if (!cuda::available(&why)) GTEST_SKIP() << "no usable CUDA device: " << why;
    }
  }
};

// Three steps of an optimizer on `device` in f32 against the f64 CPU run.
template <typename Make>
void check_optimizer(Device device, Make make) {
  auto run = [&](DType dtype, Device dev) {
    Generator gen(11);
    Tensor p = Tensor::empty({37}, DType::F64);
    Tensor g = Tensor::empty({37}, DType::F64);
    gen.normal_(p);
    gen.normal_(g);
    p = p.to(dtype).to(dev);
    p.set_requires_grad(true);
    auto opt = make(nn::NamedTensors{{"p", p}});
    for (int s = 0; s < 3; ++s) {
      p.set_grad(fn::scale(g.to(dtype).to(dev), 1.0 + s));
      opt->step();
    }
    return p.to(Device::cpu()).to(DType::F64).to_vector<double>();
  };
  EXPECT_TRUE(close(run(DType::F32, device), run(DType::F64, Device::cpu()), "parameters"));
}

TEST_P(DeviceKernels, SgdNesterovMatchesReference) {
  check_optimizer(device(), [](nn::NamedTensors p) {
    return std::make_unique<optim::SGD>(p, optim::SGD::Options{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2,
                                                              .nesterov = true});
  });
}

TEST_P(DeviceKernels, AdamWMatchesReference) {
  check_optimizer(device(), [](nn::NamedTensors p) {
    return std::make_unique<optim::AdamW>(p, optim::AdamW::Options{.lr = 0.01});
  });
}

TEST_P(DeviceKernels, PhiloxFillsMatchCpu) {
  for (DType dt : {DType::F32, DType::F64}) {
    Generator a(99), b(99);
    Tensor cpu_u = Tensor::empty({1001}, dt), dev_u = Tensor::empty({1001}, dt, device());
    Tensor cpu_n = Tensor::empty({1001}, dt), dev_n = Tensor::empty({1001}, dt, device());
    a.uniform_(cpu_u, -1, 3);
    b.uniform_(dev_u, -1, 3);
    a.normal_(cpu_n, 2, 0.5);
    b.normal_(dev_n, 2, 0.5);
    EXPECT_EQ(a.state(), b.state());
    EXPECT_TRUE(close(dev_u.to(Device::cpu()).to(DType::F64).to_vector<double>(),
                      cpu_u.to(DType::F64).to_vector<double>(), "uniform"));
    EXPECT_TRUE(close(dev_n.to(Device::cpu()).to(DType::F64).to_vector<double>(),
                      cpu_n.to(DType::F64).to_vector<double>(), "normal"));
  }
}

TEST_P(DeviceKernels, ConversionsMatchCpu) {
  Tensor x = Tensor::from_vector<float>({1.0f, -2.5f, 3.14159f, 1e-3f, 65504.f, -0.0f, 7.9f}, {7});
  for (DType dt : {DType::BF16, DType::F64, DType::I32, DType::I64, DType::U8}) {
    Tensor src = dt == DType::U8 ? Tensor::from_vector<float>({0, 1, 2, 200, 255, 3, 7}, {7}) : x;
    Tensor cpu = src.to(dt).to(DType::F64);
    Tensor dev = src.to(device()).to(dt).to(DType::F64).to(Device::cpu());
    EXPECT_EQ(cpu.to_vector<double>(), dev.to_vector<double>()) << "f32 -> " << dtype_name(dt);
  }
}

TEST_P(DeviceKernels, StepActivationMatchesDefinition) {
  Tensor x = Tensor::from_vector<float>({-2.0f, -1e-7f, 0.0f, 1e-7f, 3.0f}, {5}).to(device());
  EXPECT_EQ(fn::step(x).to(Device::cpu()).to_vector<float>(), (std::vector<float>{0, 0, 1, 1, 1}));
  EXPECT_FALSE(fn::step(x).requires_grad());
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceKernels, ::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                         [](const auto& info) { return std::string(info.param == DeviceKind::CPU ? "Cpu" : "Cuda"); });

}  // namespace
}  // namespace dtrain::testing
