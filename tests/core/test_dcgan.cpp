// DCGAN generator and discriminator: output shapes for 28x28 and 32x32, parameter
// counts and names (the PyTorch DCGAN example's), and the DCGAN initialization.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/models/dcgan.h"

namespace dtrain::models {
namespace {

struct Moments {
  double mean = 0, stddev = 0;
};
Moments moments(const Tensor& t) {
  std::vector<double> v = t.to(DType::F64).to_vector<double>();
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.stddev += (x - m.mean) * (x - m.mean);
  m.stddev = std::sqrt(m.stddev / static_cast<double>(v.size()));
  return m;
}

class DcganSizes : public ::testing::TestWithParam<int> {};

TEST_P(DcganSizes, ShapesAndParameterCounts) {
  const int size = GetParam();
  DcganConfig c;
  c.image_size = size;
  Generator gen(1);
  auto g = make_dcgan_generator(c, gen);
  auto d = make_dcgan_discriminator(c, gen);
  // ngf = ndf = 64, nz = 100; the 28x28 variant's middle layers have 3x3 kernels:
  //   G: 100*256*16 + 2*256 + 256*128*k*k + 2*128 + 128*64*16 + 2*64 + 64*16
  //   D: 16*64 + 64*128*16 + 2*128 + 128*256*k*k + 2*256 + 256*16
  EXPECT_EQ(g->num_parameters(), size == 32 ? 1066880 : 837504);
  EXPECT_EQ(d->num_parameters(), size == 32 ? 661248 : 431872);

  DcganConfig tiny = c;  // small widths keep the CPU forward quick
  tiny.g_channels = 8;
  tiny.d_channels = 8;
  tiny.z_dim = 10;
  auto tg = make_dcgan_generator(tiny, gen);
  auto td = make_dcgan_discriminator(tiny, gen);
  Tensor z = Tensor::empty({3, 10, 1, 1});
  gen.normal_(z);
  autograd::NoGrad no_grad;
  Tensor x = (*tg)(z);
  EXPECT_EQ(x.shape(), (Shape{3, 1, size, size}));
  std::vector<float> xv = x.to_vector<float>();
  for (float v : xv) ASSERT_TRUE(v > -1.0f && v < 1.0f) << "tanh output " << v;
  EXPECT_EQ((*tg)(fn::reshape(z, {3, 10})).shape(), x.shape()) << "(N, z) noise works too";
  Tensor logits = (*td)(x);
  EXPECT_EQ(logits.shape(), (Shape{3}));
  EXPECT_THROW((*td)(Tensor::zeros({3, 1, size + 1, size + 1})), ValueError);
  EXPECT_THROW((*tg)(Tensor::zeros({3, 11, 1, 1})), ValueError);
}

INSTANTIATE_TEST_SUITE_P(Sizes, DcganSizes, ::testing::Values(28, 32),
                         [](const auto& info) { return "S" + std::to_string(info.param); });

TEST(Dcgan, ParameterNamesFollowThePyTorchExample) {
  DcganConfig c;
  c.g_channels = c.d_channels = 4;
  c.z_dim = 5;
  Generator gen(2);
  auto g = make_dcgan_generator(c, gen);
  auto d = make_dcgan_discriminator(c, gen);
  std::vector<std::string> gn, dn;
  for (const auto& [n, t] : g->named_parameters()) gn.push_back(n);
  for (const auto& [n, t] : d->named_parameters()) dn.push_back(n);
  EXPECT_EQ(gn, (std::vector<std::string>{"main.0.weight", "main.1.weight", "main.1.bias", "main.3.weight",
                                          "main.4.weight", "main.4.bias", "main.6.weight", "main.7.weight",
                                          "main.7.bias", "main.9.weight"}));
  EXPECT_EQ(dn, (std::vector<std::string>{"main.0.weight", "main.2.weight", "main.3.weight", "main.3.bias",
                                          "main.5.weight", "main.6.weight", "main.6.bias", "main.8.weight"}));
  EXPECT_EQ(d->named_buffers().size(), 6u) << "two batch norms, three buffers each";

  c.batch_norm = false;
  auto plain = make_dcgan_discriminator(c, gen);
  std::vector<std::string> pn;
  for (const auto& [n, t] : plain->named_parameters()) pn.push_back(n);
  EXPECT_EQ(pn, (std::vector<std::string>{"main.0.weight", "main.2.weight", "main.4.weight", "main.6.weight"}));
  EXPECT_TRUE(plain->named_buffers().empty());
}

TEST(Dcgan, InitializationIsDcgans) {
  DcganConfig c;  // full size: enough weights for the moments to be tight
  Generator gen(3);
  auto g = make_dcgan_generator(c, gen);
  for (const auto& [name, t] : g->named_parameters()) {
    Moments m = moments(t);
    if (name == "main.0.weight" || name == "main.3.weight" || name == "main.6.weight") {
      EXPECT_NEAR(m.mean, 0.0, 0.002) << name;
      EXPECT_NEAR(m.stddev, 0.02, 0.002) << name;
    } else if (name.ends_with(".bias")) {
      EXPECT_EQ(m.mean, 0.0) << name;
      EXPECT_EQ(m.stddev, 0.0) << name;
    } else if (name != "main.9.weight") {  // batch norm gamma
      EXPECT_NEAR(m.mean, 1.0, 0.01) << name;
      EXPECT_NEAR(m.stddev, 0.02, 0.006) << name;
      EXPECT_GT(m.stddev, 0.0) << name;
    }
  }
  // Same seed, same networks.
  Generator a(9), b(9);
  auto d1 = make_dcgan_discriminator(c, a);
  auto d2 = make_dcgan_discriminator(c, b);
  EXPECT_EQ(d1->parameters()[1].to_vector<float>(), d2->parameters()[1].to_vector<float>());
}

TEST(Dcgan, RejectsOtherImageSizes) {
  DcganConfig c;
  c.image_size = 64;
  Generator gen(0);
  EXPECT_THROW(make_dcgan_generator(c, gen), ValueError);
  EXPECT_THROW(make_dcgan_discriminator(c, gen), ValueError);
}

}  // namespace
}  // namespace dtrain::models
