#pragma once
// The control plane: a Boost.Asio thread in every rank, beside the training thread
// (docs/WATCHDOG.md). Rank 0 listens on TCP; every other rank connects to it once, with
// the job's token. Over those connections the ranks send heartbeats carrying their
// Progress, rank 0 watches them (the watchdog) and, when the job hangs, sends every rank
// the diagnosis. Rank 0 also serves the live status over HTTP (status_server.h).
//
// Note [Watchdog]
// - Liveness: each rank's control thread sends a heartbeat every `heartbeat_s`; rank 0
//   answers each with its own. A rank that rank 0 has not heard from for
//   `heartbeat_timeout_s` is silent (frozen, stopped, its node gone); a rank that has not
//   heard from rank 0 for that long declares the coordinator silent.
// - Progress: a rank that is alive but whose phase has not changed for
//   `progress_timeout_s` while other ranks wait in a collective is stalled; ranks that
//   all wait, in collectives of different numbers or kinds, are desynchronised; ranks
//   that all wait in the same collective for that long see a hung collective (the
//   network, the communication library).
// - The diagnosis goes to on_hang on every rank that can still run (rank 0 sends it to
//   every connected rank first). dtrain's World prints it, records it and ends the
//   process with exit code 86 (launcher/train/world.h); tests pass their own.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "launcher/control/progress.h"

namespace dtrain::control {

struct WatchdogConfig {
  bool enabled = true;
  double heartbeat_s = 1.0;            // how often heartbeats go out
  double heartbeat_timeout_s = 60.0;   // silence that makes a rank (or rank 0) silent
  double progress_timeout_s = 600.0;   // one phase this long while others wait: stalled
};

// Who a rank is, as it introduced itself.
struct RankInfo {
  int rank = 0;
  std::string host;
  int pid = 0;
};

// One rank as rank 0 sees it.
struct RankStatus {
  RankInfo info;
  bool connected = false;
  double heartbeat_age_s = 0;  // since its last heartbeat (rank 0: 0)
  ProgressSnapshot progress;
};

struct Diagnosis {
  enum class Kind { Silent, Stalled, Desync, HungCollective, CoordinatorSilent };
  Kind kind = Kind::Silent;
  std::vector<int> ranks;  // the culprits (Silent, Stalled), or every rank involved
  std::string text;        // one paragraph for people: who, where, for how long, what to do
};
const char* kind_name(Diagnosis::Kind k);  // "silent", "stalled", "desync", "hung_collective", "coordinator_silent"

class ControlPlane {
 public:
  // `progress` is this rank's (read by the control thread); `token` is the job's secret
  // that every connection must present (rank 0 makes it, the launcher broadcasts it).
  // `on_hang` runs on the control thread, at most once per process.
  ControlPlane(RankInfo self, int world_size, const Progress& progress, WatchdogConfig cfg, std::string token,
               std::function<void(const Diagnosis&)> on_hang);
  ~ControlPlane();  // stops the thread and closes the connections
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // Rank 0: starts listening on `bind_address` (port 0: any free port) and returns the
  // endpoint "host:port" the others connect to (`advertise_host` names this machine
  // to them). Call before start().
  std::string listen(const std::string& bind_address, const std::string& advertise_host);
  // Starts the control thread; ranks other than 0 connect to `rank0_endpoint` (retrying
  // for heartbeat_timeout_s).
  void start(const std::string& rank0_endpoint = "");

  // Rank 0: every rank as last heard (rank 0's own progress included).
  std::vector<RankStatus> ranks() const;

  // For tests: a rank whose control thread stops sending (as if frozen).
  void pause_heartbeats_for_test(bool paused);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A random token of 32 hex digits.
std::string make_token();

}  // namespace dtrain::control
