#pragma once
// Comparing checkpoints in tests: bit for bit (a resume that continues exactly) and within
// a tolerance (W ranks at batch B against one process at W B, where the all-reduce sums
// in another order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/io/h5.h"

namespace dtrain::testing {

// Every dataset under `group` of two files, byte for byte; "" when equal, else the
// first difference.
inline std::string compare_group(const std::string& a, const std::string& b, const std::string& group) {
  io::H5File fa = io::H5File::open_read(a), fb = io::H5File::open_read(b);
  std::vector<std::string> na = fa.list(group), nb = fb.list(group);
  if (na != nb) return group + ": the files hold different tensors";
  if (na.empty()) return group + ": empty";
  for (const std::string& n : na) {
    Tensor ta = fa.read(group + "/" + n), tb = fb.read(group + "/" + n);
    if (ta.shape() != tb.shape() || ta.dtype() != tb.dtype()) return group + "/" + n + ": shape or dtype differs";
    if (std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()) != 0) return group + "/" + n + ": values differ";
  }
  return "";
}

// The complete training state of two checkpoints, bit for bit: the datasets under
// `groups` and the trainer's counters `attrs`.
inline void expect_same_state(const std::string& a, const std::string& b,
                              const std::vector<std::string>& groups = {"/model", "/optimizer", "/rng/rank0"},
                              const std::vector<std::string>& attrs = {"step", "epoch", "cursor", "optimizer_steps",
                                                                       "world_size", "global_batch"}) {
  for (const std::string& g : groups) EXPECT_EQ(compare_group(a, b, g), "") << a << " vs " << b;
  io::H5File fa = io::H5File::open_read(a), fb = io::H5File::open_read(b);
  for (const std::string& attr : attrs) {
    EXPECT_EQ(fa.get_attribute<int64_t>("/trainer", attr), fb.get_attribute<int64_t>("/trainer", attr)) << attr;
  }
}

struct ModelDifference {
  double max_abs = 0;
  double max_rel = 0;  // over values above 1e-4 in magnitude
  std::string worst;   // the tensor holding max_abs
};

// The models of two checkpoints, tensor by tensor: every value within `abs_tol` or
// `rel_tol` (a failure names the tensor and index); returns the largest differences.
inline ModelDifference expect_close_models(const ckpt::Contents& a, const ckpt::Contents& b, double abs_tol = 1e-6,
                                           double rel_tol = 1e-5) {
  ModelDifference d;
  EXPECT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < std::min(a.model.size(), b.model.size()); ++i) {
    const auto& [name, ta] = a.model[i];
    const auto& [name_b, tb] = b.model[i];
    EXPECT_EQ(name, name_b);
    if (ta.shape() != tb.shape() || ta.dtype() != tb.dtype()) {
      ADD_FAILURE() << name << ": shapes or dtypes differ";
      continue;
    }
    if (!is_floating(ta.dtype())) {  // counters (batch norm's batches seen): equal
      EXPECT_EQ(std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()), 0) << name << ": the counters differ";
      continue;
    }
    std::vector<float> va = ta.to_vector<float>(), vb = tb.to_vector<float>();
    for (size_t j = 0; j < va.size(); ++j) {
      const double diff = std::abs(static_cast<double>(va[j]) - vb[j]);
      const double rel = diff / std::max(std::abs(static_cast<double>(va[j])), 1e-30);
      if (diff > d.max_abs) {
        d.max_abs = diff;
        d.worst = name;
      }
      if (std::abs(va[j]) > 1e-4) d.max_rel = std::max(d.max_rel, rel);
      EXPECT_TRUE(diff <= abs_tol || rel <= rel_tol) << name << "[" << j << "]: " << va[j] << " vs " << vb[j];
    }
  }
  return d;
}

}  // namespace dtrain::testing
