#pragma once
// OpenMP helpers shared by the CPU kernels.
//
// Note [Deterministic parallel sums]
// A sum over n elements is split into fixed chunks of kSumChunk elements, whatever the
// thread count: each chunk is summed in double (lane_sum's fixed order, in parallel across
// chunks), then the chunk sums are added in chunk order. The result therefore depends on
// n only, never on OMP_NUM_THREADS or the schedule.
//
// Elementwise loops run in parallel only from kParallelMin elements on: below that the
// fork/join costs more than the loop.
#include <cstdint>
#include <vector>

namespace dtrain::ops::detail {

inline constexpr int64_t kParallelMin = int64_t{1} << 15;
inline constexpr int64_t kSumChunk = int64_t{1} << 14;

// f(i) for i in [0, n), in parallel when n >= kParallelMin. f must touch only element i.
template <typename F>
inline void parallel_for(int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// f(p) for each of `planes` independent planes of `plane_size` elements, in parallel when
// the total work is at least kParallelMin. f must write only plane p's outputs.
template <typename F>
inline void parallel_planes(int64_t planes, int64_t plane_size, F f) {
#pragma omp parallel for schedule(static) if (planes * plane_size >= kParallelMin && planes > 1)
  for (int64_t p = 0; p < planes; ++p) f(p);
}

// Sum of term(i) for i in [lo, hi) in double, element i going to accumulator i % 8 and
// the eight combined pairwise: an order fixed by lo and hi alone, and eight independent
// add chains instead of one latency-bound chain (vectorizable for plain loads).
template <typename F>
inline double lane_sum(int64_t lo, int64_t hi, F term) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = lo;
  for (; i + 8 <= hi; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += term(i + l);
  }
  for (int l = 0; i < hi; ++i, ++l) acc[l] += term(i);
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

// Sum of p[0, n) in double, by lane_sum's order.
template <typename T>
inline double sum_run(const T* p, int64_t n) {
  return lane_sum(0, n, [p](int64_t i) { return static_cast<double>(p[i]); });
}

// Sum of term(i) for i in [0, n) in double, by Note [Deterministic parallel sums].
template <typename F>
inline double chunked_sum(int64_t n, F term) {
  if (n <= kSumChunk) return lane_sum(0, n, term);
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kSumChunk;
    const int64_t hi = lo + kSumChunk < n ? lo + kSumChunk : n;
    partial[static_cast<size_t>(c)] = lane_sum(lo, hi, term);
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace dtrain::ops::detail
