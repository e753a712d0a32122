// Element type conversion on the CPU: out[i] = D(x[i]) for the pairs of DT_CONVERT_PAIRS
// (ops/kernels.inc); rounding rules in ops/common/convert_value.h.        x, out: (n)
#include "ops/common/checks.h"
#include "ops/common/convert_value.h"
#include "ops/common/instantiate.h"
#include "ops/cpu.h"

namespace dtrain::ops::cpu {

template <typename S, typename D>
void convert(const S* x, D* out, int64_t n, Exec) {
  detail::check_size("cpu::convert", "n", n);
  detail::check_ptr("cpu::convert", "x", x, n);
  detail::check_ptr("cpu::convert", "out", out, n);
  for (int64_t i = 0; i < n; ++i) out[i] = detail::convert_value<S, D>(x[i]);
}

DT_CONVERT_PAIRS(DT_INSTANTIATE_CONVERT)

}  // namespace dtrain::ops::cpu
