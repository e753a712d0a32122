// What keeping the watchdog informed costs the training thread (docs/WATCHDOG.md): the
// price of one phase change and of one collective's bookkeeping (issued, waiting,
// completed) in control::Progress, while a reader thread takes snapshots as the control
// thread does (far more often than its once a second, to make contention visible).
//
//   bench_watchdog [--repeat R]   (R rounds, default 5; medians are printed)
//
// The step-time overhead of the whole control plane, side by side in one run, is
// benchmarks/watchdog_overhead.sh.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "launcher/control/progress.h"

using namespace dtrain::control;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_watchdog [--repeat R]\n");
      return 2;
    }
  }
  constexpr int kN = 2'000'000;
  Progress progress;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> snapshots{0};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      volatile int64_t s = progress.snapshot().step;
      (void)s;
      snapshots.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  std::vector<double> phase_ns, collective_ns;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = Clock::now();
    for (int i = 0; i < kN; ++i) {
      if ((i & 7) == 0) progress.begin_step(i);
      progress.phase(static_cast<Phase>(1 + (i % 6)), i & 3);
    }
    phase_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kN);
    t0 = Clock::now();
    for (int i = 0; i < kN; ++i) {
      const uint64_t seq = progress.issued(CollectiveKind::AllReduce);
      progress.waiting(seq, CollectiveKind::AllReduce);
      progress.completed(seq);
      progress.phase(Phase::Backward);
    }
    collective_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kN);
  }
  stop = true;
  reader.join();
  const double p = median(phase_ns), c = median(collective_ns);
  std::printf("phase change: %.1f ns (median of %d rounds of %d)\n", p, repeat, kN);
  std::printf("collective bookkeeping (issued + waiting + completed + phase back): %.1f ns\n", c);
  std::printf("snapshots taken meanwhile by the reader thread: %llu\n",
              static_cast<unsigned long long>(snapshots.load()));
  // A step of the README's small CNN (2 ranks, batch 64) takes about 10 ms on 2 CPU cores
  // and makes about 8 phase changes and 6 collectives.
  const double per_step_ns = 8 * p + 6 * c;
  std::printf("per step (8 phase changes, 6 collectives): %.2f us = %.4f%% of a 10 ms step\n", per_step_ns / 1e3,
              100.0 * per_step_ns / 1e7);
  return 0;
}
