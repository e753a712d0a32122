// Dropout on the CPU with the Philox stream of philox_uniform (ops/philox.h): element i
// takes lane i % 4 of counter block offset + i / 4, u_i = uniform_value<T>(lane, 0, 1) in
// [0, 1) (ops/common/random_math.h), and is kept when u_i >= p. The CUDA twin uses the same
// formulas, so masks agree bit for bit; the kept values are x / (1 - p), one correctly
// rounded division on both backends.
//   forward:  y = kept ? x / (1 - p) : 0, mask = kept     x, y, mask: (n)
//   backward: gx = mask ? gy / (1 - p) : 0                gy, mask, gx: (n)
#include <string>

#include "ops/common/checks.h"
#include "ops/common/instantiate.h"
#include "ops/common/random_math.h"
#include "ops/cpu.h"
#include "ops/cpu/parallel.h"

namespace dtrain::ops::cpu {

using detail::check_ptr;
using detail::check_size;

namespace {

template <typename T>
void check_p(const char* kernel, T p) {
  if (!(p >= T(0) && p <= T(1))) detail::invalid(kernel, "p must be in [0, 1], got " + std::to_string(p));
}

}  // namespace

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, T p, uint64_t seed, uint64_t offset, Exec) {
  const char* kernel = "cpu::dropout_forward";
  check_size(kernel, "n", n);
  check_ptr(kernel, "x", x, n);
  check_ptr(kernel, "y", y, n);
  check_ptr(kernel, "mask", mask, n);
  check_p(kernel, p);
  const T keep = T(1) - p;  // p = 1 keeps nothing (u < 1), so keep = 0 never divides
  const int64_t blocks = (n + 3) / 4;
  detail::parallel_planes(blocks, 4, [&](int64_t b) {
    const philox::Block blk = philox::generate(seed, offset + static_cast<uint64_t>(b));
    for (int64_t lane = 0; lane < 4; ++lane) {
      const int64_t i = 4 * b + lane;
      if (i >= n) break;
      const bool kept = philox::uniform_value<T>(blk.v[lane], T(0), T(1)) >= p;
      mask[i] = kept ? 1 : 0;
      y[i] = kept ? x[i] / keep : T(0);
    }
  });
}

template <typename T>
void dropout_backward(const T* gy, const uint8_t* mask, T* gx, int64_t n, T p, Exec) {
  const char* kernel = "cpu::dropout_backward";
  check_size(kernel, "n", n);
  check_ptr(kernel, "gy", gy, n);
  check_ptr(kernel, "mask", mask, n);
  check_ptr(kernel, "gx", gx, n);
  check_p(kernel, p);
  const T keep = T(1) - p;
  detail::parallel_for(n, [&](int64_t i) { gx[i] = mask[i] ? gy[i] / keep : T(0); });
}

DT_INSTANTIATE_KERNELS(DT_DROPOUT_KERNELS)

}  // namespace dtrain::ops::cpu
