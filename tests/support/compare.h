#pragma once
// Elementwise tensor comparison for tests against reference values (golden fixtures,
// CPU-vs-CUDA agreement). A pair of elements agrees when
//     |actual - expected| <= atol + rtol * |expected|
// (NaN agrees only with NaN). On failure the message names the tensor and gives the max
// absolute error, the worst element's index and the first few mismatches, which is what
// one needs to tell a tolerance problem from a bug.
//
//     EXPECT_TRUE(testing::tensors_close("logits", got, want, {.rtol = 1e-5, .atol = 1e-6}));
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dtrain::testing {

struct Tolerance {
  double rtol = 1e-5;
  double atol = 1e-6;
};

namespace detail {
inline std::vector<double> values_as_double(const Tensor& t) {
  if (t.dtype() == DType::F64) return t.to_vector<double>();
  std::vector<float> f = t.to_vector<float>();
  return std::vector<double>(f.begin(), f.end());
}

// "[1, 2]" for flat index 6 of shape (3, 4).
inline std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? flat / shape[d] : 0;
  }
  std::ostringstream os;
  os << "[";
  for (size_t d = 0; d < idx.size(); ++d) os << (d ? ", " : "") << idx[d];
  os << "]";
  return os.str();
}
}  // namespace detail

// Compares f32/f64 tensors (any devices; dtypes may differ, values are compared as
// doubles). Shapes must match exactly.
inline ::testing::AssertionResult tensors_close(const std::string& name, const Tensor& actual,
                                                const Tensor& expected, Tolerance tol = {}) {
  if (!actual.defined() || !expected.defined()) {
    return ::testing::AssertionFailure() << name << ": " << (actual.defined() ? "expected" : "actual")
                                         << " tensor is undefined";
  }
  for (const Tensor* t : {&actual, &expected}) {
    if (t->dtype() != DType::F32 && t->dtype() != DType::F64) {
      return ::testing::AssertionFailure() << name << ": tensors_close compares f32/f64 tensors, got " << t->str();
    }
  }
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure() << name << ": shape " << shape_str(actual.shape()) << " != expected "
                                         << shape_str(expected.shape());
  }
  std::vector<double> a = detail::values_as_double(actual.to(Device::cpu()));
  std::vector<double> e = detail::values_as_double(expected.to(Device::cpu()));

  constexpr int kShown = 5;
  int64_t mismatches = 0;
  int64_t worst = -1;
  double max_abs = 0.0;
  std::ostringstream first;
  first << std::setprecision(9);
  for (size_t i = 0; i < a.size(); ++i) {
    bool ok;
    double err;
    if (std::isnan(a[i]) || std::isnan(e[i])) {
      ok = std::isnan(a[i]) && std::isnan(e[i]);
      err = ok ? 0.0 : INFINITY;
    } else if (std::isinf(a[i]) || std::isinf(e[i])) {
      ok = a[i] == e[i];
      err = ok ? 0.0 : INFINITY;
    } else {
      err = std::fabs(a[i] - e[i]);
      ok = err <= tol.atol + tol.rtol * std::fabs(e[i]);
    }
    if (worst < 0 || err > max_abs) {
      max_abs = err;
      worst = static_cast<int64_t>(i);
    }
    if (!ok) {
      if (mismatches < kShown) {
        first << "\n    " << detail::index_str(static_cast<int64_t>(i), actual.shape()) << ": actual "
              << a[i] << ", expected " << e[i] << " (abs err " << err << ")";
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  std::ostringstream out;
  out << std::setprecision(9) << name << " " << shape_str(actual.shape()) << ": " << mismatches << " of " << a.size()
      << " elements differ beyond atol " << tol.atol << " + rtol " << tol.rtol << " * |expected|; max abs error "
      << max_abs << " at " << detail::index_str(worst, actual.shape()) << " (actual " << a[worst] << ", expected "
      << e[worst] << "); first mismatches:" << first.str();
  return ::testing::AssertionFailure() << out.str();
}

}  // namespace dtrain::testing
