#pragma once
// Rank 0's live status over HTTP (docs/WATCHDOG.md), served by its own thread:
//   GET  /status    JSON: the job (step, epoch, throughput, ETA, last checkpoint) and every
//                   rank (phase, step, heartbeat age)
//   GET  /metrics   the same as Prometheus's text exposition format
//   POST /stop      asks the job to checkpoint at the next step boundary and stop (the
//                   SIGTERM path); needs "Authorization: Bearer <token>"
// It binds 127.0.0.1 unless configured otherwise; a request from an address outside
// `allow` is refused (403), a malformed one answered 400, and neither disturbs training.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "launcher/control/control_plane.h"

namespace dtrain::control {

// What the training loop last published about the job (rank 0).
struct JobStatus {
  std::string run;  // the config file or run name
  int64_t step = 0, total_steps = 0;
  double epoch = 0;
  double rate = 0;          // units per second over the last log interval
  std::string rate_unit;    // "samples/s", "tok/s", ...
  double eta_s = 0;
  std::string last_checkpoint;  // path, "" when none yet
  double elapsed_s = 0;
  bool finished = false;
};

struct StatusConfig {
  std::string bind_address = "127.0.0.1";
  int port = 0;                     // 0: any free port
  std::vector<std::string> allow;   // client addresses allowed; empty: loopback only
};

class StatusServer {
 public:
  // `job` and `ranks` are called on the server's thread for every request; `on_stop` when
  // an authorised POST /stop arrives. `token` authorises /stop.
  StatusServer(StatusConfig cfg, std::string token, std::function<JobStatus()> job,
               std::function<std::vector<RankStatus>()> ranks, std::function<void()> on_stop);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // "http://ADDRESS:PORT" once listening (after construction).
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The run directory's files (the checkpoint directory): status.json, readable by anyone
// ({"url": ..., "host": ..., "pid": ...}), and control.token, readable by the job's user
// only (mode 0600), which `dtrain stop` presents. Written atomically (temporary file,
// rename); read_run_files throws a clear error naming the file when one is missing.
void write_run_files(const std::string& run_dir, const std::string& url, const std::string& token);
struct RunFiles {
  std::string url, token;
};
RunFiles read_run_files(const std::string& run_dir, bool need_token);

// The bodies the server sends, for tests and `dtrain status`.
std::string status_json(const JobStatus& job, const std::vector<RankStatus>& ranks);
std::string metrics_text(const JobStatus& job, const std::vector<RankStatus>& ranks);

}  // namespace dtrain::control
