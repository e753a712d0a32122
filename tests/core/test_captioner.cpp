// The captioning model (core/models/captioner.h): parameter names and shapes as the torch
// reference's, the attention over the encoder's positions (weights summing to one per
// step), greedy decoding equal to the teacher-forced computation on its own output, and
// that it learns: a few scenes where the item's position decides the caption are
// memorized. CPU only.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/models/captioner.h"
#include "core/optim/optimizer.h"

namespace dtrain::models {
namespace {

CaptionerConfig small_config() {
  CaptionerConfig c;
  c.channels = 1;
  c.height = c.width = 16;
  c.vocab = 9;
  c.conv_width = 4;
  c.stages = 2;
  c.emb_dim = 6;
  c.hidden = 10;
  return c;
}

TEST(Captioner, ParametersAreNamedAndShapedAsTheTorchReference) {
  Generator gen = Generator::derive(1, 0, "test");
  Captioner m(small_config(), gen);
  std::map<std::string, Shape> got;
  for (const auto& [name, p] : m.named_parameters()) got[name] = p.shape();
  const std::map<std::string, Shape> want = {
      {"encoder.0.weight", {4, 1, 3, 3}}, {"encoder.0.bias", {4}},     {"encoder.3.weight", {8, 4, 3, 3}},
      {"encoder.3.bias", {8}},            {"init_h.weight", {10, 8}},   {"init_h.bias", {10}},
      {"init_c.weight", {10, 8}},         {"init_c.bias", {10}},        {"embed.weight", {9, 6}},
      {"decoder.weight_ih_l0", {40, 6}},  {"decoder.weight_hh_l0", {40, 10}}, {"decoder.bias_ih_l0", {40}},
      {"decoder.bias_hh_l0", {40}},       {"attn.weight", {10, 8}},     {"ctx_proj.weight", {10, 8}},
      {"hid_proj.weight", {10, 10}},      {"out.weight", {9, 10}},      {"out.bias", {9}}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(m.config().map_height(), 4);
  EXPECT_EQ(m.config().feature_channels(), 8);
}

TEST(Captioner, TeacherForcingAttendsOverEveryPositionAndGreedyDecodingAgrees) {
  Generator gen = Generator::derive(2, 0, "test");
  Captioner m(small_config(), gen);
  m.eval();
  Tensor images = Tensor::empty({3, 1, 16, 16}, DType::F32);
  gen.normal_(images);
  // Greedy decoding, then the teacher-forced pass over <s> + its own output: the same
  // tokens are the argmax at every step, and the same attention.
  Tensor alpha_greedy;
  const int64_t steps = 5;
  Tensor out = m.greedy_decode(images, steps, &alpha_greedy);
  ASSERT_EQ(out.shape(), (Shape{3, steps}));
  ASSERT_EQ(alpha_greedy.shape(), (Shape{3, steps, 16}));
  std::vector<int64_t> ids = out.to_vector<int64_t>();
  std::vector<int64_t> tin;
  for (int64_t b = 0; b < 3; ++b) {
    tin.push_back(1);
    for (int64_t t = 0; t + 1 < steps; ++t) tin.push_back(ids[static_cast<size_t>(b * steps + t)]);
  }
  Tensor alpha;
  Tensor logits;
  {
    autograd::NoGrad ng;
    logits = m.forward_teacher(images, Tensor::from_vector(tin, {3, steps}), &alpha);
  }
  ASSERT_EQ(logits.shape(), (Shape{3 * steps, 9}));
  ASSERT_EQ(alpha.shape(), (Shape{3, steps, 16}));
  const std::vector<float> l = logits.to_vector<float>(), a = alpha.to_vector<float>(),
                           ag = alpha_greedy.to_vector<float>();
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t tok = ids[static_cast<size_t>(b * steps + t)];
      if (t > 0 && ids[static_cast<size_t>(b * steps + t - 1)] == 2) break;  // after </s>: padding
      const float* row = l.data() + (b * steps + t) * 9;
      EXPECT_EQ(std::max_element(row, row + 9) - row, tok) << "sample " << b << " step " << t;
      double sum = 0;
      for (int64_t p = 0; p < 16; ++p) {
        const size_t i = static_cast<size_t>((b * steps + t) * 16 + p);
        sum += a[i];
        EXPECT_NEAR(a[i], ag[i], 1e-5);
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
  EXPECT_THROW(m.forward(images), ValueError);
  EXPECT_THROW(m.greedy_decode(Tensor::zeros({2, 1, 8, 8}, DType::F32), 3), ValueError);
}

// Scenes 16x16 with one bright 8x8 square in one of four quadrants: the caption names the
// quadrant ("a <q>"), so the model must use where the square is. 40 Adam steps memorize it.
TEST(Captioner, LearnsCaptionsThatDependOnWhereTheItemIs) {
  CaptionerConfig c = small_config();
  c.vocab = 8;  // <pad> <s> </s> <unk> a q0 q1 q2 q3 -> ids 4..7 for the quadrants, "a" as 3
  Generator gen = Generator::derive(3, 0, "test");
  Captioner m(c, gen);
  const int64_t n = 8;
  std::vector<float> px(static_cast<size_t>(n * 256), -0.5f);
  std::vector<int64_t> tin, tout;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t q = i % 4;
    for (int64_t y = 0; y < 8; ++y) {
      for (int64_t x = 0; x < 8; ++x) px[static_cast<size_t>(i * 256 + (q / 2 * 8 + y) * 16 + q % 2 * 8 + x)] = 1.5f;
    }
    tin.insert(tin.end(), {1, 3, 4 + q});
    tout.insert(tout.end(), {3, 4 + q, 2});
  }
  Tensor images = Tensor::from_vector(px, {n, 1, 16, 16});
  Tensor tgt_in = Tensor::from_vector(tin, {n, 3}), tgt_out = Tensor::from_vector(tout, {n, 3});
  optim::Adam opt(m.named_parameters(), optim::Adam::Options{.lr = 0.03});
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    autograd::Tape tape;
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      loss = m.loss(m.forward_teacher(images, tgt_in), tgt_out);
    }
    tape.backward(loss);
    opt.step();
    (step == 0 ? first : last) = loss.item<float>();
  }
  EXPECT_LT(last, 0.1 * first);
  m.eval();
  const std::vector<int64_t> got = m.greedy_decode(images, 4).to_vector<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(std::vector<int64_t>(got.begin() + i * 4, got.begin() + i * 4 + 3),
              (std::vector<int64_t>{3, 4 + i % 4, 2}))
        << "scene " << i;
  }
}

}  // namespace
}  // namespace dtrain::models
