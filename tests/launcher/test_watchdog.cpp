// The watchdog end to end (docs/WATCHDOG.md): `dtrain train` under mpirun with small
// watchdog limits, then a rank frozen with SIGSTOP (a non-zero rank, then rank 0) or held
// in one phase by a test knob. Every process must be gone within the limits plus a few
// seconds, the output must name the rank and its phase, the exit code must be 86 and the
// metrics file must hold the diagnosis. Skipped, visibly, without mpirun.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/e2e.h"

namespace {

using namespace dtrain::testing::e2e;
using Clock = std::chrono::steady_clock;

constexpr double kHeartbeatTimeout = 2.0, kProgressTimeout = 3.0;

class Watchdog : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_mpirun()) GTEST_SKIP() << "mpirun is not on PATH";
    dir_ = dtrain::testing::make_test_dir("watchdog");
    const std::string train = (dir_ / "train.h5").string();
    CliRun r = shell(bin() + " data synth images --out " + train +
                     " --n 256 --height 8 --width 8 --channels 1 --classes 4 --seed 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    metrics_ = (dir_ / "metrics.jsonl").string();
    config_ = (dir_ / "w.toml").string();
    std::ofstream(config_) << "batch_size = 8\nsteps = 100000\nthreads = 1\n"
                              "[model]\nname = \"mlp\"\nhidden = 8\n"
                              "[data]\ntrain = \"" << train << "\"\n"
                              "[log]\ninterval = 1\nmetrics = \"" << metrics_ << "\"\n"
                              "[eval]\ninterval = 0\n"
                              "[watchdog]\nheartbeat_s = 0.2\nheartbeat_timeout_s = " << kHeartbeatTimeout
                           << "\nprogress_timeout_s = " << kProgressTimeout << "\n";
    pids_ = (dir_ / "pids").string();
    fs::create_directories(pids_);
  }
  void TearDown() override {
    // Never leave a stopped rank behind, whatever happened.
    for (long pid : pids()) {
      if (pid > 0) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
        ::kill(static_cast<pid_t>(pid), SIGCONT);
      }
    }
    fs::remove_all(dir_);
  }

  // The ranks' pids once every rank wrote its file (after set-up), or an empty vector.
  std::vector<long> pids(int ranks = 0) const {
    std::vector<long> out;
    for (int r = 0; ranks == 0 || r < ranks; ++r) {
      long pid = 0;
      std::ifstream in(pids_ + "/rank" + std::to_string(r) + ".pid");
      if (!(in >> pid)) break;
      out.push_back(pid);
    }
    return out;
  }

  // Starts `ranks` ranks in the background; returns when every rank runs and a few steps
  // are done.
  void start(int ranks, const std::string& env = "", const std::string& args = "") {
    t0_ = Clock::now();
    thread_ = std::thread([this, ranks, env, args] {
      run_ = shell("env DTRAIN_TEST_PID_DIR=" + pids_ + " DTRAIN_TEST_STEP_DELAY_MS=20 " + env + " " +
                   dtrain::testing::mpirun_prefix(120) + " -np " + std::to_string(ranks) + " " + bin() + " train " +
                   config_ + " " + args);
    });
    while (Clock::now() - t0_ < std::chrono::seconds(60) && static_cast<int>(pids(ranks).size()) < ranks) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
  }
  // Waits for mpirun to end; the seconds from `since`.
  double finish(Clock::time_point since) {
    thread_.join();
    return std::chrono::duration<double>(Clock::now() - since).count();
  }
  // A process that still runs or is stopped (a zombie is gone: it only waits to be reaped).
  static char state(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    const auto paren = text.rfind(')');
    return paren == std::string::npos || paren + 2 >= text.size() ? 'X' : text[paren + 2];
  }
  // True when `pid` is still there after a grace of `seconds` (the launcher's last kills).
  static bool outlives(long pid, double seconds = 5.0) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
      const char s = state(pid);
      if (s == 'X' || s == 'Z') return false;
      if (Clock::now() > until) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // The watchdog record of the metrics file ("" when none).
  std::string record() const {
    for (const std::string& l : read_lines(metrics_)) {
      if (contains(l, "\"kind\":\"watchdog\"")) return l;
    }
    return "";
  }

  fs::path dir_;
  std::string metrics_, config_, pids_;
  std::thread thread_;
  Clock::time_point t0_;
  CliRun run_;
};

void expect_frozen_rank_named(const CliRun& run, int rank) {
  EXPECT_TRUE(contains(run.output, "watchdog (rank")) << run.output;
  EXPECT_TRUE(contains(run.output, "rank " + std::to_string(rank))) << run.output;
  EXPECT_TRUE(contains(run.output, "exit code 86")) << run.output;
}

TEST_F(Watchdog, AFrozenRankEndsEveryProcessAndIsNamed) {
  for (int ranks : {2, 3}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    fs::remove_all(pids_);
    fs::create_directories(pids_);
    start(ranks);
    const std::vector<long> p = pids(ranks);
    ASSERT_EQ(static_cast<int>(p.size()), ranks);
    const auto frozen_at = Clock::now();
    ASSERT_EQ(::kill(static_cast<pid_t>(p[1]), SIGSTOP), 0);
    const double seconds = finish(frozen_at);
    for (long pid : p) EXPECT_FALSE(outlives(pid)) << "pid " << pid << " outlived the job (state " << state(pid) << ")";
    const double gone = std::chrono::duration<double>(Clock::now() - frozen_at).count();
    std::printf("%d ranks, rank 1 frozen: mpirun returned after %.1f s, every rank gone after %.1f s\n", ranks,
                seconds, gone);
    EXPECT_EQ(run_.exit_code, 86) << run_.output;
    EXPECT_LT(gone, kHeartbeatTimeout + 8.0) << run_.output;
    expect_frozen_rank_named(run_, 1);
    EXPECT_TRUE(contains(run_.output, "silent")) << run_.output;
    const std::string rec = record();
    EXPECT_TRUE(contains(rec, "\"diagnosis\":\"silent\"")) << rec;
    EXPECT_TRUE(contains(rec, "\"ranks\":[1]")) << rec;
  }
}

TEST_F(Watchdog, AFrozenRankZeroIsNoticedByTheOthers) {
  start(2);
  const std::vector<long> p = pids(2);
  ASSERT_EQ(p.size(), 2u);
  const auto frozen_at = Clock::now();
  ASSERT_EQ(::kill(static_cast<pid_t>(p[0]), SIGSTOP), 0);
  const double seconds = finish(frozen_at);
  for (long pid : p) EXPECT_FALSE(outlives(pid)) << "pid " << pid << " outlived the job (state " << state(pid) << ")";
  const double gone = std::chrono::duration<double>(Clock::now() - frozen_at).count();
  std::printf("2 ranks, rank 0 frozen: mpirun returned after %.1f s, every rank gone after %.1f s\n", seconds, gone);
  EXPECT_EQ(run_.exit_code, 86) << run_.output;
  EXPECT_LT(gone, kHeartbeatTimeout + 8.0) << run_.output;
  EXPECT_TRUE(contains(run_.output, "watchdog (rank 1")) << run_.output;
  EXPECT_TRUE(contains(run_.output, "rank 0")) << run_.output;
}

TEST_F(Watchdog, ARankHeldInOnePhaseIsNamedWithItsPhase) {
  start(3, "DTRAIN_TEST_HOLD=1:3");
  const double seconds = finish(t0_);
  EXPECT_EQ(run_.exit_code, 86) << run_.output;
  EXPECT_LT(seconds, 60.0);
  EXPECT_TRUE(contains(run_.output, "rank 1 has been in forward of step 3")) << run_.output;
  EXPECT_TRUE(contains(run_.output, "ranks 0,2 have waited")) << run_.output;
  const std::string rec = record();
  EXPECT_TRUE(contains(rec, "\"diagnosis\":\"stalled\"")) << rec;
}

// The live status of a running 2-rank job, through its run directory: `dtrain status`,
// /status and /metrics with curl and promtool, a garbage request that must not disturb
// training, the token file's mode, and `dtrain stop`, which ends the run at a step
// boundary with a checkpoint (exit code 75).
TEST_F(Watchdog, LiveStatusAndStopDuringARun) {
  const std::string ckpt = (dir_ / "ckpt").string();
  start(2, "", "--checkpoint-dir " + ckpt);
  std::string url;
  for (int i = 0; i < 200 && url.empty(); ++i) {
    std::ifstream in(ckpt + "/status.json");
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    const auto at = text.find("http://");
    if (at != std::string::npos) url = text.substr(at, text.find('"', at) - at);
    if (url.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(url.empty()) << "no status.json in " << ckpt;
  EXPECT_EQ(fs::status(ckpt + "/control.token").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  CliRun status = shell(bin() + " status " + ckpt);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_TRUE(contains(status.output, "step")) << status.output;
  if (shell("command -v curl").exit_code == 0) {
    CliRun json = shell("curl -sS --max-time 5 " + url + "/status");
    EXPECT_TRUE(contains(json.output, "\"step\":")) << json.output;
    EXPECT_TRUE(contains(json.output, "\"rank\":1")) << json.output;
    CliRun garbage = shell("curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X BREW " + url + "/status");
    EXPECT_EQ(garbage.output, "405") << garbage.output;
    if (shell("command -v promtool").exit_code == 0) {
      CliRun prom = shell("curl -sS --max-time 5 " + url + "/metrics | promtool check metrics");
      EXPECT_EQ(prom.exit_code, 0) << prom.output;
    }
  }
  const std::string port = url.substr(url.rfind(':') + 1);
  shell("timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + port + "; printf \"\\x00\\x01garbage\\r\\n\\r\\n\" >&3; cat <&3'");
  CliRun stop = shell(bin() + " stop " + ckpt);
  EXPECT_EQ(stop.exit_code, 0) << stop.output;
  finish(t0_);
  EXPECT_EQ(run_.exit_code, 75) << run_.output;
  EXPECT_TRUE(contains(run_.output, "stop requested")) << run_.output;
  EXPECT_FALSE(contains(run_.output, "watchdog (rank")) << run_.output;
}

TEST_F(Watchdog, AHealthyRunIsNotDisturbed) {
  // Limits far below the default, a run with a checkpoint and an evaluation-free loop:
  // nothing may trip.
  CliRun r = shell(dtrain::testing::mpirun_prefix(120) + " -np 2 " + bin() + " train " + config_ +
                   " --set steps=40 --checkpoint-dir " + (dir_ / "ckpt").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(r.output, "watchdog (rank")) << r.output;
  EXPECT_TRUE(contains(r.output, "status: http://127.0.0.1:")) << r.output;
}

}  // namespace
