// Element type conversion on the CPU: out[i] = D(x[i]) for the pairs of DT_CONVERT_PAIRS
// (ops/common/convert_value.h, which also states the rounding rules).   x, out: (n)
#include "ops/common/checks.h"
#include "ops/common/convert_value.h"
#include "ops/cpu.h"

namespace dtrain::ops::cpu {

template <typename S, typename D>
void convert(const S* x, D* out, int64_t n, Exec) {
  detail::check_size("cpu::convert", "n", n);
  detail::check_ptr("cpu::convert", "x", x, n);
  detail::check_ptr("cpu::convert", "out", out, n);
  for (int64_t i = 0; i < n; ++i) out[i] = detail::convert_value<S, D>(x[i]);
}

#define DT_INSTANTIATE(S, D) template void convert<S, D>(const S*, D*, int64_t, Exec);
DT_CONVERT_PAIRS(DT_INSTANTIATE)
#undef DT_INSTANTIATE

}  // namespace dtrain::ops::cpu
