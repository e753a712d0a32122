#pragma once
// `dtrain score`: an Inception-Score-style quality measure of image files (e.g. a GAN's
// gan.export) with a classifier trained by dtrain (docs/GAN.md, "Sample quality").
//
// For class probabilities p(y|x) of N samples over K classes, with the marginal
// p(y) = mean_x p(y|x):
//   score = exp( mean_x KL(p(y|x) || p(y)) ),  KL(p || q) = sum_y p_y (ln p_y - ln q_y),
// terms with p_y = 0 counting 0. The score lies in [1, K]: 1 when every sample gets the
// same distribution (in particular when the classifier cannot tell them apart), K when
// each sample is classified with certainty and the classes are used equally often.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace dtrain::cli {

// `probs` holds N rows of K probabilities (row-major, each row summing to 1). Throws
// ValueError for N = 0, K = 0 or a size that is not N x K.
inline double inception_score(const std::vector<double>& probs, int64_t n, int64_t k) {
  DT_CHECK_AS(n > 0 && k > 0 && static_cast<int64_t>(probs.size()) == n * k, ValueError,
              "inception_score: expected ", n, " x ", k, " probabilities (N, K > 0), got ", probs.size());
  std::vector<double> marginal(static_cast<size_t>(k), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = 0; y < k; ++y) marginal[static_cast<size_t>(y)] += probs[static_cast<size_t>(i * k + y)];
  }
  for (double& m : marginal) m /= static_cast<double>(n);
  double kl_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = 0; y < k; ++y) {
      const double p = probs[static_cast<size_t>(i * k + y)];
      if (p > 0) kl_sum += p * (std::log(p) - std::log(marginal[static_cast<size_t>(y)]));
    }
  }
  return std::exp(kl_sum / static_cast<double>(n));
}

// Runs `dtrain score ARGS...`; returns the process exit code.

}  // namespace dtrain::cli
