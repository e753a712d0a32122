// Tensor: factories, dtype checks and conversions, copies, views and autograd flags.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/runtime.h"
#include "core/tensor.h"

namespace dtrain::testing {
namespace {

template <typename E, typename F>
std::string what_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

TEST(Tensor, ShapeStr) {
  EXPECT_EQ(shape_str({2, 3}), "(2, 3)");
  EXPECT_EQ(shape_str({4}), "(4,)");
  EXPECT_EQ(shape_str({}), "()");
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({2, 0, 5}), 0);
  EXPECT_EQ(Tensor::zeros({2, 3}).str(), "f32(2, 3) on cpu");
}

TEST(Tensor, Factories) {
  Tensor z = Tensor::zeros({2, 3}, DType::F64);
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.ndim(), 2);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.nbytes(), 48u);
  EXPECT_EQ(z.size(-1), 3);
  EXPECT_EQ(z.size(0), 2);
  EXPECT_THROW(z.size(2), ValueError);
  EXPECT_EQ(z.to_vector<double>(), std::vector<double>(6, 0.0));

  Tensor o = Tensor::ones({4});
  EXPECT_EQ(o.dtype(), DType::F32);
  EXPECT_EQ(o.device(), Device::cpu());
  EXPECT_EQ(o.to_vector<float>(), std::vector<float>(4, 1.0f));

  Tensor f = Tensor::full({2, 2}, -2.5, DType::F64);
  EXPECT_EQ(f.to_vector<double>(), std::vector<double>(4, -2.5));

  Tensor fi = Tensor::full({3}, 7.0, DType::I64);
  EXPECT_EQ(fi.to_vector<int64_t>(), (std::vector<int64_t>{7, 7, 7}));
  Tensor fb = Tensor::full({2}, 0.5, DType::BF16);
  EXPECT_EQ(fb.to(DType::F32).to_vector<float>(), (std::vector<float>{0.5f, 0.5f}));

  Tensor s = Tensor::scalar(3.25, DType::F64);
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item<double>(), 3.25);

  Tensor v = Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {3, 2});
  EXPECT_EQ(v.dtype(), DType::I32);
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_EQ(v.data<int32_t>()[5], 6);
  EXPECT_EQ(v.to_vector<int32_t>(), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));

  Tensor empty = Tensor::from_vector<float>({}, {0, 3});
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_TRUE(empty.to_vector<float>().empty());

  EXPECT_THROW(Tensor::empty({2, -1}), ValueError);
  EXPECT_FALSE(Tensor().defined());
  EXPECT_THROW(Tensor().shape(), ValueError);
}

TEST(Tensor, FromVectorSizeMismatchNamesTheShape) {
  std::string msg =
      what_of<ValueError>([] { Tensor::from_vector<float>({1.0f, 2.0f, 3.0f}, {2, 2}); });
  EXPECT_NE(msg.find("(2, 2)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 values"), std::string::npos) << msg;
}

TEST(Tensor, ItemNeedsOneElement) {
  EXPECT_THROW(Tensor::zeros({2}).item<float>(), ValueError);
  EXPECT_EQ(Tensor::full({1, 1}, 4.0).item<float>(), 4.0f);
}

TEST(Tensor, DataAndToVectorCheckTheDtype) {
  Tensor t = Tensor::zeros({2});
  EXPECT_NO_THROW(t.data<float>());
  EXPECT_THROW(t.data<double>(), ValueError);
  EXPECT_THROW(t.data<int64_t>(), ValueError);
  EXPECT_THROW(t.to_vector<double>(), ValueError);
  std::string msg = what_of<ValueError>([&] { t.data<double>(); });
  EXPECT_NE(msg.find("f64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f32"), std::string::npos) << msg;
}

TEST(Tensor, FloatConversions) {
  Tensor f = Tensor::from_vector<float>({1.5f, -0.1f, 3.0e38f}, {3});
  Tensor d = f.to(DType::F64);
  EXPECT_EQ(d.dtype(), DType::F64);
  EXPECT_EQ(d.shape(), f.shape());
  std::vector<double> dv = d.to_vector<double>();
  EXPECT_EQ(dv[0], 1.5);
  EXPECT_EQ(dv[1], static_cast<double>(-0.1f));  // widening is exact
  EXPECT_EQ(d.to(DType::F32).to_vector<float>(), f.to_vector<float>());

  Tensor d2 = Tensor::from_vector<double>({0.1}, {1});
  EXPECT_EQ(d2.to(DType::F32).item<float>(), 0.1f);  // narrowing rounds to nearest

  // Same dtype: the same tensor, not a copy.
  EXPECT_EQ(f.to(DType::F32).id(), f.id());
  EXPECT_NE(d.raw_data(), f.raw_data());
}

TEST(Tensor, Bf16ConversionsRoundToNearestEven) {
  // 1 + 2^-8 lies halfway between bf16 1.0 (even mantissa) and 1 + 2^-7: rounds down.
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  // 1 + 2^-8 + 2^-20 is above halfway: rounds up.
  Tensor f = Tensor::from_vector<float>({1.0f, 1.00390625f, 1.01171875f, 1.0f + 0.00390625f + 0x1p-20f, -2.0f}, {5});
  Tensor b = f.to(DType::BF16);
  EXPECT_EQ(b.dtype(), DType::BF16);
  EXPECT_EQ(b.nbytes(), 10u);
  std::vector<ops::bf16> bits = b.to_vector<ops::bf16>();
  EXPECT_EQ(bits[0].bits, 0x3F80);
  EXPECT_EQ(bits[1].bits, 0x3F80);
  EXPECT_EQ(bits[2].bits, 0x3F82);
  EXPECT_EQ(bits[3].bits, 0x3F81);
  EXPECT_EQ(bits[4].bits, 0xC000);
  EXPECT_EQ(b.to(DType::F32).to_vector<float>(),
            (std::vector<float>{1.0f, 1.0f, 1.015625f, 1.0078125f, -2.0f}));
  EXPECT_EQ(b.to(DType::F64).to_vector<double>(), (std::vector<double>{1.0, 1.0, 1.015625, 1.0078125, -2.0}));
  EXPECT_EQ(Tensor::from_vector<double>({1.00390625}, {1}).to(DType::BF16).to(DType::F64).item<double>(), 1.0);
}

TEST(Tensor, IntegerConversions) {
  Tensor i = Tensor::from_vector<int64_t>({-3, 0, 16777216, 7}, {2, 2});
  Tensor f = i.to(DType::F32);
  EXPECT_EQ(f.shape(), (Shape{2, 2}));
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{-3.0f, 0.0f, 16777216.0f, 7.0f}));
  // float -> integer truncates toward zero.
  Tensor g = Tensor::from_vector<float>({2.9f, -2.9f}, {2});
  EXPECT_EQ(g.to(DType::I64).to_vector<int64_t>(), (std::vector<int64_t>{2, -2}));
  Tensor u = Tensor::from_vector<uint8_t>({0, 255}, {2});
  EXPECT_EQ(u.to(DType::F64).to_vector<double>(), (std::vector<double>{0.0, 255.0}));
}

TEST(Tensor, CloneIsADeepCopy) {
  Tensor a = Tensor::from_vector<double>({1, 2, 3}, {3});
  Tensor b = a.clone();
  EXPECT_NE(b.raw_data(), a.raw_data());
  EXPECT_NE(b.id(), a.id());
  EXPECT_EQ(b.to_vector<double>(), a.to_vector<double>());
  b.data<double>()[0] = 100;
  EXPECT_EQ(a.to_vector<double>()[0], 1.0);
  // A copied handle shares the data.
  Tensor c = a;
  c.data<double>()[1] = -5;
  EXPECT_EQ(a.to_vector<double>()[1], -5.0);
}

TEST(Tensor, CopyInto) {
  Tensor dst = Tensor::zeros({2, 2});
  Tensor src = Tensor::from_vector<float>({1, 2, 3, 4}, {4});  // same count, other shape
  dst.copy_(src);
  EXPECT_EQ(dst.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(dst.shape(), (Shape{2, 2}));
  EXPECT_THROW(dst.copy_(Tensor::zeros({3})), ValueError);
  EXPECT_THROW(dst.copy_(Tensor::zeros({4}, DType::F64)), ValueError);
  std::string msg = what_of<ValueError>([&] { dst.copy_(Tensor::zeros({4}, DType::F64)); });
  EXPECT_NE(msg.find("dtype"), std::string::npos) << msg;
}

TEST(Tensor, RowsViewsShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  Tensor r = t.rows(1, 2);
  EXPECT_EQ(r.shape(), (Shape{2, 2}));
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_EQ(r.raw_data(), static_cast<char*>(t.raw_data()) + 2 * sizeof(float));
  r.data<float>()[0] = 20;
  r.fill_(-1);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 1, -1, -1, -1, -1, 6, 7}));
  // A view of a view keeps the offset.
  Tensor rr = r.rows(1, 1);
  rr.fill_(9);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 1, -1, -1, 9, 9, 6, 7}));
  // Empty and full ranges are allowed; anything past the end is not.
  EXPECT_EQ(t.rows(4, 0).numel(), 0);
  EXPECT_EQ(t.rows(0, 4).to_vector<float>(), t.to_vector<float>());
  EXPECT_THROW(t.rows(3, 2), ValueError);
  EXPECT_THROW(t.rows(-1, 1), ValueError);
  EXPECT_THROW(t.rows(0, -1), ValueError);
  EXPECT_THROW(Tensor::scalar(1.0).rows(0, 1), ValueError);
}

TEST(Tensor, Reshape) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor a = t.reshape({3, -1});
  EXPECT_EQ(a.shape(), (Shape{3, 2}));
  EXPECT_EQ(a.raw_data(), t.raw_data());
  EXPECT_EQ(t.reshape({-1}).shape(), (Shape{6}));
  EXPECT_EQ(t.reshape({1, -1, 3}).shape(), (Shape{1, 2, 3}));
  a.data<float>()[5] = 50;
  EXPECT_EQ(t.to_vector<float>()[5], 50.0f);
  EXPECT_EQ(t.shape(), (Shape{2, 3})) << "reshape must not change the source";
  EXPECT_THROW(t.reshape({4, 2}), ValueError);
  EXPECT_THROW(t.reshape({4, -1}), ValueError);
  EXPECT_THROW(t.reshape({-1, -1}), ValueError);
  EXPECT_THROW(t.reshape({-2, 3}), ValueError);
  // A view of rows reshapes with its offset.
  Tensor r = t.rows(1, 1).reshape({3});
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{3, 4, 50}));
}

TEST(Tensor, DetachSharesDataWithoutAutogradState) {
  Tensor p = Tensor::from_vector<double>({1, 2}, {2});
  p.set_requires_grad(true);
  p.set_grad(Tensor::ones({2}, DType::F64));
  ASSERT_TRUE(p.grad().defined());
  Tensor d = p.detach();
  EXPECT_EQ(d.raw_data(), p.raw_data());
  EXPECT_NE(d.id(), p.id());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_FALSE(d.grad().defined());
  EXPECT_TRUE(d.is_leaf());
  d.data<double>()[0] = 7;
  EXPECT_EQ(p.to_vector<double>()[0], 7.0);
  EXPECT_TRUE(p.requires_grad());
}

TEST(Tensor, RequiresGradAndGrads) {
  EXPECT_THROW(Tensor::zeros({2}, DType::I64).set_requires_grad(true), ValueError);
  EXPECT_THROW(Tensor::zeros({2}, DType::BF16).set_requires_grad(true), ValueError);
  EXPECT_NO_THROW(Tensor::zeros({2}, DType::I64).set_requires_grad(false));
  Tensor p = Tensor::zeros({2, 2});
  EXPECT_FALSE(p.requires_grad());
  EXPECT_TRUE(p.set_requires_grad(true).requires_grad());
  EXPECT_THROW(p.set_grad(Tensor::zeros({4})), ValueError);
  EXPECT_THROW(p.set_grad(Tensor::zeros({2, 2}, DType::F64)), ValueError);
  p.set_grad(Tensor::full({2, 2}, 3.0));
  p.zero_grad();
  EXPECT_EQ(p.grad().to_vector<float>(), std::vector<float>(4, 0.0f));
  p.set_grad(Tensor());
  EXPECT_FALSE(p.grad().defined());
  EXPECT_NO_THROW(p.zero_grad());
}

TEST(Tensor, ToCpuIsTheSameTensor) {
  Tensor t = Tensor::ones({3});
  EXPECT_EQ(t.to(Device::cpu()).id(), t.id());
}

TEST(Tensor, MovingToAnUnusableCudaDeviceThrows) {
  std::string why;
  if (cuda::available(&why)) GTEST_SKIP() << "a CUDA device is usable here; the no-device path cannot be exercised";
  Tensor t = Tensor::ones({3});
  EXPECT_THROW(t.to(Device::cuda(0)), Error) << why;
  EXPECT_THROW(Tensor::zeros({2}, DType::F32, Device::cuda(0)), Error);
}

TEST(Tensor, MovingToANonexistentCudaOrdinalThrowsDeviceError) {
  // Ordinal 1000 exists on no machine; with CUDA compiled in this is a DeviceError, in a
  // build without CUDA a NotBuiltError.
  Tensor t = Tensor::ones({3});
  if (cuda::compiled()) {
    EXPECT_THROW(t.to(Device::cuda(1000)), DeviceError);
  } else {
    EXPECT_THROW(t.to(Device::cuda(1000)), NotBuiltError);
  }
}

}  // namespace
}  // namespace dtrain::testing
