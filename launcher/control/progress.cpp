// A rank's progress signals: see progress.h.
//
// The seqlock: the one writer makes the version odd, stores the fields, and makes it even
// again; a reader that saw the same even version before and after reading the fields has
// a consistent copy. On x86 every store and load here is a plain move (the fences only
// keep the compiler from reordering), so a phase change costs about one steady-clock read.
#include "launcher/control/progress.h"

#include <chrono>
#include <thread>

namespace dtrain::control {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::Setup: return "set-up";
    case Phase::Data: return "data";
    case Phase::Forward: return "forward";
    case Phase::Backward: return "backward";
    case Phase::Collective: return "collective";
    case Phase::Optimizer: return "optimizer";
    case Phase::Boundary: return "boundary";
    case Phase::Evaluate: return "evaluate";
    case Phase::Checkpoint: return "checkpoint";
    case Phase::Finished: return "finished";
  }
  return "unknown";
}

const char* collective_name(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::None: return "collective";
    case CollectiveKind::AllReduce: return "all-reduce";
    case CollectiveKind::Broadcast: return "broadcast";
    case CollectiveKind::AllGather: return "all-gather";
    case CollectiveKind::Barrier: return "barrier";
  }
  return "collective";
}

std::string describe(const ProgressSnapshot& s) {
  const std::string of_step = s.step > 0 ? " of step " + std::to_string(s.step) : " before the first step";
  const std::string bucket = s.detail >= 0 ? " (bucket " + std::to_string(s.detail) + ")" : "";
  switch (s.phase) {
    case Phase::Setup: return "set-up";
    case Phase::Finished: return "finished";
    case Phase::Collective:
      return std::string("waiting in ") + collective_name(s.waiting_kind) + " #" + std::to_string(s.waiting_seq) +
             bucket + of_step;
    case Phase::Data: return "waiting for the batch" + of_step;
    case Phase::Boundary: return "the step-boundary exchange" + of_step;
    case Phase::Evaluate: return "evaluation" + of_step;
    case Phase::Checkpoint: return "checkpoint" + of_step;
    default: return phase_name(s.phase) + bucket + of_step;
  }
}

Progress::Progress() { phase_since_ns_.store(now_ns(), kRelaxed); }

void Progress::write_begin() {
  // One writer: nobody else changes the version, so a relaxed read of it is exact. The
  // release fence keeps the field stores below from moving above the odd version.
  version_.store(version_.load(kRelaxed) + 1, kRelaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void Progress::write_end() { version_.store(version_.load(kRelaxed) + 1, std::memory_order_release); }

void Progress::begin_step(int64_t step) {
  const int64_t now = now_ns();
  write_begin();
  step_.store(step, kRelaxed);
  phase_.store(static_cast<uint8_t>(Phase::Data), kRelaxed);
  detail_.store(-1, kRelaxed);
  waiting_kind_.store(static_cast<uint8_t>(CollectiveKind::None), kRelaxed);
  phase_since_ns_.store(now, kRelaxed);
  write_end();
}

void Progress::phase(Phase p, int32_t detail) {
  const int64_t now = now_ns();
  write_begin();
  phase_.store(static_cast<uint8_t>(p), kRelaxed);
  detail_.store(detail, kRelaxed);
  waiting_kind_.store(static_cast<uint8_t>(CollectiveKind::None), kRelaxed);
  phase_since_ns_.store(now, kRelaxed);
  write_end();
}

uint64_t Progress::issued(CollectiveKind kind) {
  const uint64_t seq = issued_.load(kRelaxed) + 1;
  write_begin();
  issued_.store(seq, kRelaxed);
  last_kind_.store(static_cast<uint8_t>(kind), kRelaxed);
  write_end();
  return seq;
}

void Progress::waiting(uint64_t seq, CollectiveKind kind) {
  // The detail stays: a wait inside the backward pass names the bucket it waits for.
  const int64_t now = now_ns();
  write_begin();
  phase_.store(static_cast<uint8_t>(Phase::Collective), kRelaxed);
  waiting_kind_.store(static_cast<uint8_t>(kind), kRelaxed);
  waiting_seq_.store(seq, kRelaxed);
  phase_since_ns_.store(now, kRelaxed);
  write_end();
}

void Progress::completed(uint64_t seq) {
  // Collectives complete in order on a rank, but a caller may report a later one first
  // (waiting on the last bucket completes every earlier one): the count never goes back.
  if (seq <= done_.load(kRelaxed)) return;
  write_begin();
  done_.store(seq, kRelaxed);
  write_end();
}

ProgressSnapshot Progress::snapshot() const {
  ProgressSnapshot s;
  int64_t since = 0;
  for (int tries = 1;; ++tries) {
    // A retry means a write in progress, which takes nanoseconds, unless the writer was
    // preempted in the middle of it: then let it run.
    if (tries % 64 == 0) std::this_thread::yield();
    const uint64_t v1 = version_.load(std::memory_order_acquire);
    if (v1 & 1) continue;
    s.step = step_.load(kRelaxed);
    s.phase = static_cast<Phase>(phase_.load(kRelaxed));
    s.detail = detail_.load(kRelaxed);
    s.issued = issued_.load(kRelaxed);
    s.done = done_.load(kRelaxed);
    s.last_kind = static_cast<CollectiveKind>(last_kind_.load(kRelaxed));
    s.waiting_kind = static_cast<CollectiveKind>(waiting_kind_.load(kRelaxed));
    s.waiting_seq = waiting_seq_.load(kRelaxed);
    since = phase_since_ns_.load(kRelaxed);
    // Keeps the field loads above from moving below the second version read.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (version_.load(kRelaxed) == v1) break;
  }
  const int64_t age = now_ns() - since;
  s.phase_age_s = age > 0 ? static_cast<double>(age) * 1e-9 : 0.0;
  return s;
}

}  // namespace dtrain::control
