#include "core/rng.h"

#include "core/dispatch.h"
#include "ops/philox.h"

namespace dtrain {

namespace {
// SplitMix64 finalizer: mixes a 64-bit value so nearby inputs give unrelated keys.
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

Generator Generator::derive(uint64_t seed, uint64_t rank, const char* purpose) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the purpose string
  for (const char* p = purpose; *p; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
  return Generator(mix64(mix64(mix64(seed) ^ rank) ^ h));
}

void Generator::uniform_(Tensor& t, double low, double high) {
  int64_t n = t.numel();
  if (n == 0) return;
  dispatch_float(t.dtype(), "Generator::uniform_", [&]<typename T>() {
    DT_KERNEL(t.device(), philox_uniform<T>)(t.data<T>(), n, state_.seed, state_.offset, static_cast<T>(low),
                                             static_cast<T>(high), exec_for(t.device()));
  });
  state_.offset += static_cast<uint64_t>((n + 3) / 4);
}

void Generator::normal_(Tensor& t, double mean, double stddev) {
  int64_t n = t.numel();
  if (n == 0) return;
  dispatch_float(t.dtype(), "Generator::normal_", [&]<typename T>() {
    DT_KERNEL(t.device(), philox_normal<T>)(t.data<T>(), n, state_.seed, state_.offset, static_cast<T>(mean),
                                            static_cast<T>(stddev), exec_for(t.device()));
  });
  state_.offset += static_cast<uint64_t>((n + 1) / 2);
}

double Generator::next_double() {
  ops::philox::Block b = ops::philox::generate(state_.seed, state_.offset++);
  uint64_t bits = (static_cast<uint64_t>(b.v[0]) << 21) ^ b.v[1];  // 53 random bits
  return static_cast<double>(bits & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
}

uint64_t Generator::next_below(uint64_t n) {
  DT_CHECK(n > 0, "Generator::next_below: n must be positive");
  // Rejection sampling on 64-bit draws: unbiased for every n.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  while (true) {
    ops::philox::Block b = ops::philox::generate(state_.seed, state_.offset++);
    uint64_t x = (static_cast<uint64_t>(b.v[0]) << 32) | b.v[1];
    if (x < limit) return x % n;
  }
}

}  // namespace dtrain
