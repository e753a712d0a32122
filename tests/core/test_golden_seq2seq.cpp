// Golden test against PyTorch for the seq2seq model (core/models/seq2seq.h): a float64
// Seq2Seq (vocab 10 -> 11, emb 6, hidden 8, one layer), in two variants, a unidirectional
// encoder with dot attention and a bidirectional one with general attention, with the
// parameters and batch of tests/fixtures/golden_seq2seq.h5 (three samples of different
// source lengths, PAD-padded targets) must reproduce PyTorch's teacher-forced logits,
// masked cross-entropy loss and every parameter gradient; then one Adam step must
// reproduce PyTorch's parameters and the loss after it. The fixture is written by
// scripts/make_golden_seq2seq.py (see there for its layout and the PyTorch model, written
// by hand with nn.Embedding(padding_idx), nn.LSTM on packed sequences and masked
// attention).
//
// Runs on the CPU, and on CUDA when a device is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "core/autograd.h"
#include "core/io/h5.h"
#include "core/models/seq2seq.h"
#include "core/optim/optimizer.h"
#include "tests/support/golden.h"
#include "tests/support/paths.h"

namespace dtrain::testing {
namespace {

// Float64 throughout, so only the summation order differs from PyTorch's (on the CPU the
// largest differences are ~1e-16 relative): rtol 1e-9 with atol 1e-12 for values,
// gradients, losses and the updated parameters, room for other summation orders (CUDA).
constexpr Tolerance kTol{1e-9, 1e-12};

class GoldenSeq2Seq : public ::testing::TestWithParam<std::tuple<DeviceKind, std::string>> {
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

TEST_P(GoldenSeq2Seq, OneStepMatchesPyTorch) {
  const std::string v = "/" + std::get<1>(GetParam());
  const std::string fixture = fixture_path("golden_seq2seq.h5");
  const std::string script = "scripts/make_golden_seq2seq.py";
  io::H5File f = io::H5File::open_read(fixture);
  ASSERT_TRUE(f.has_attribute("/", "format_version"))
      << fixture << " has no format_version attribute; regenerate it with " << script;
  ASSERT_EQ(f.get_attribute<int64_t>("/", "format_version"), kGoldenFormatVersion)
      << fixture << " has another format version than this test reads; regenerate it with " << script;

  models::Seq2SeqConfig config;
  config.src_vocab = f.get_attribute<int64_t>("/", "src_vocab");
  config.tgt_vocab = f.get_attribute<int64_t>("/", "tgt_vocab");
  config.emb_dim = f.get_attribute<int64_t>("/", "emb_dim");
  config.hidden = f.get_attribute<int64_t>("/", "hidden");
  config.pad_id = f.get_attribute<int64_t>("/", "pad_id");
  config.layers = 1;
  config.bidirectional_encoder = f.get_attribute<int64_t>(v, "bidirectional_encoder") != 0;
  config.attention = f.get_attribute<std::string>(v, "attention");
  config.dtype = DType::F64;
  Generator gen(0);  // values are replaced by the fixture's
  models::Seq2Seq model(config, gen);

  nn::NamedTensors params = model.named_parameters();
  ASSERT_NO_FATAL_FAILURE(load_golden_params(f, v, params, DType::F64));
  model.to(device_);

  const Tensor src = f.read_as("/src", DType::I64).to(device_);
  const Tensor src_len = f.read_as("/src_len", DType::I64).to(device_);
  const Tensor tgt_in = f.read_as("/tgt_in", DType::I64).to(device_);
  const Tensor tgt_out = f.read_as("/tgt_out", DType::I64).to(device_);

  // One forward and backward.
  autograd::Tape tape;
  Tensor logits, loss;
  {
    autograd::GradRecorder rec(tape);
    logits = model.forward_teacher(src, src_len, tgt_in);
    loss = model.loss(logits, tgt_out);
  }
  ASSERT_EQ(logits.dtype(), DType::F64);
  EXPECT_TRUE(tensors_close("logits", logits, f.read_as(v + "/logits", DType::F64), kTol));
  EXPECT_TRUE(tensors_close("loss", loss, f.read_as(v + "/loss", DType::F64), kTol));
  optim::Adam opt(model.named_parameters(), {.lr = f.get_attribute<double>("/", "lr"),
                                             .beta1 = f.get_attribute<double>("/", "beta1"),
                                             .beta2 = f.get_attribute<double>("/", "beta2"),
                                             .eps = f.get_attribute<double>("/", "eps")});
  opt.zero_grad();
  tape.backward(loss);
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(tensors_close("grad of " + name, p.grad(), f.read_as(v + "/grads/" + name, DType::F64), kTol));
  }

  // One Adam step with those gradients, then the loss of the updated model.
  opt.step();
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(tensors_close("final " + name, p, f.read_as(v + "/final_params/" + name, DType::F64), kTol));
  }
  Tensor loss_after;
  {
    autograd::NoGrad no_grad;
    loss_after = model.loss(model.forward_teacher(src, src_len, tgt_in), tgt_out);
  }
  EXPECT_TRUE(tensors_close("loss after Adam", loss_after, f.read_as(v + "/loss_after", DType::F64), kTol));
}

INSTANTIATE_TEST_SUITE_P(Variants, GoldenSeq2Seq,
                         ::testing::Combine(::testing::Values(DeviceKind::CPU, DeviceKind::CUDA),
                                            ::testing::Values(std::string("unidirectional_dot"),
                                                              std::string("bidirectional_general"))),
                         [](const ::testing::TestParamInfo<GoldenSeq2Seq::ParamType>& info) {
                           return std::string(std::get<0>(info.param) == DeviceKind::CPU ? "cpu" : "cuda") + "_" +
                                  std::get<1>(info.param);
                         });

}  // namespace
}  // namespace dtrain::testing
