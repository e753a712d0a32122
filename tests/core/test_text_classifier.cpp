// The recurrent text classifier (core/models/text_classifier.h): padding past a sample's
// length never changes its logits, the shapes, and the gradient reaches every parameter.
#include <gtest/gtest.h>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/models/text_classifier.h"

namespace dtrain::models {
namespace {

TEST(TextClassifier, PaddingNeverChangesTheLogits) {
  for (bool bidirectional : {false, true}) {
    TextClassifierConfig c;
    c.vocab = 10;
    c.classes = 3;
    c.emb_dim = 5;
    c.hidden = 4;
    c.layers = 2;
    c.bidirectional = bidirectional;
    Generator gen = Generator::derive(7, 0, "init");
    TextClassifier m(c, gen);
    // Two words of lengths 3 and 2 at width 3, and padded to width 6 with <pad> (0) and,
    // for the second, junk tokens past its length: the same logits (up to the rounding of
    // the input projection's GEMM, whose blocking depends on the width).
    const Tensor lengths = Tensor::from_vector<int64_t>({3, 2}, {2});
    Tensor narrow = m.forward(Tensor::from_vector<int64_t>({4, 5, 6, 7, 8, 0}, {2, 3}), lengths);
    Tensor wide = m.forward(Tensor::from_vector<int64_t>({4, 5, 6, 0, 0, 0, 7, 8, 9, 9, 9, 9}, {2, 6}), lengths);
    ASSERT_EQ(wide.shape(), (Shape{2, 3}));
    std::vector<float> vn = narrow.to_vector<float>(), vw = wide.to_vector<float>();
    for (size_t j = 0; j < vn.size(); ++j) EXPECT_NEAR(vn[j], vw[j], 1e-6) << "bidirectional " << bidirectional;
    // Alone in its batch, the first word gets the same logits up to the GEMM's rounding.
    Tensor alone = m.forward(Tensor::from_vector<int64_t>({4, 5, 6}, {1, 3}), Tensor::from_vector<int64_t>({3}, {1}));
    std::vector<float> va = alone.to_vector<float>();
    for (size_t j = 0; j < 3; ++j) EXPECT_NEAR(vw[j], va[j], 1e-6) << "bidirectional " << bidirectional;
  }
}

TEST(TextClassifier, EveryParameterGetsAGradient) {
  TextClassifierConfig c;
  c.vocab = 6;
  c.classes = 2;
  c.emb_dim = 3;
  c.hidden = 2;
  Generator gen = Generator::derive(1, 0, "init");
  TextClassifier m(c, gen);
  autograd::Tape tape;
  Tensor loss;
  {
    autograd::GradRecorder rec(tape);
    loss = fn::softmax_cross_entropy(
        m.forward(Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 0}, {2, 3}), Tensor::from_vector<int64_t>({3, 2}, {2})),
        Tensor::from_vector<int64_t>({0, 1}, {2}));
  }
  tape.backward(loss);
  for (const auto& [name, p] : m.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    double sum = 0;
    for (float g : p.grad().to_vector<float>()) sum += std::abs(g);
    EXPECT_GT(sum, 0) << name;
  }
}

}  // namespace
}  // namespace dtrain::models
