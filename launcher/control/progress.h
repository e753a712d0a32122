#pragma once
// What a rank is doing, for the watchdog (docs/WATCHDOG.md): the step, the phase, and the
// collectives issued and completed. The training thread writes it at every phase change;
// the control thread reads it about once a second. One writer, any readers, no locks: a
// seqlock over relaxed atomics, a few nanoseconds per update.
#include <atomic>
#include <cstdint>
#include <string>

namespace dtrain::control {

enum class Phase : uint8_t {
  Setup,       // before the first step (set-up, agreement check, resume)
  Data,        // waiting for the loader's batch
  Forward,
  Backward,    // including the bucket all-reduces the overlapped reducer issues
  Collective,  // waiting for a collective to complete (detail: which one, below)
  Optimizer,
  Boundary,    // the step-boundary exchange of statistics and the stop flag
  Evaluate,
  Checkpoint,
  Finished,
};
const char* phase_name(Phase p);

enum class CollectiveKind : uint8_t { None, AllReduce, Broadcast, AllGather, Barrier };
const char* collective_name(CollectiveKind k);

struct ProgressSnapshot {
  int64_t step = 0;  // the step being worked on, 1-based (0 before the first)
  Phase phase = Phase::Setup;
  int32_t detail = -1;  // the phase's detail: a bucket index, -1 when none
  uint64_t issued = 0;  // collectives issued so far (the last one's number, 1-based)
  uint64_t done = 0;    // collectives completed so far
  CollectiveKind last_kind = CollectiveKind::None;  // of collective number `issued`
  CollectiveKind waiting_kind = CollectiveKind::None;  // in Phase::Collective: what it waits for
  uint64_t waiting_seq = 0;                            // ... and its number
  double phase_age_s = 0;  // seconds since the phase began (at the snapshot)
};

// Describes a snapshot for people: "forward of step 88", "all-reduce #533 (bucket 3) of
// step 88".
std::string describe(const ProgressSnapshot& s);

class Progress {
 public:
  Progress();
  // The training thread's side.
  void begin_step(int64_t step);                // also enters Phase::Data
  void phase(Phase p, int32_t detail = -1);     // enters p now
  uint64_t issued(CollectiveKind kind);         // a collective was issued; returns its number
  void waiting(uint64_t seq, CollectiveKind kind);  // enters Phase::Collective for it
  void completed(uint64_t seq);                 // collective `seq` (and all before it) completed
  // Any thread.
  ProgressSnapshot snapshot() const;

 private:
  void write_begin();
  void write_end();
  std::atomic<uint64_t> version_{0};
  std::atomic<int64_t> step_{0};
  std::atomic<uint8_t> phase_{0};
  std::atomic<int32_t> detail_{-1};
  std::atomic<uint64_t> issued_{0}, done_{0};
  std::atomic<uint8_t> last_kind_{0}, waiting_kind_{0};
  std::atomic<uint64_t> waiting_seq_{0};
  std::atomic<int64_t> phase_since_ns_{0};  // steady clock
};

}  // namespace dtrain::control
