// The watchdog's parts (launcher/control/): Progress, the seqlock the training thread
// writes and the control thread reads, and the control plane with the checks of Note
// [Watchdog]. Ranks are ControlPlanes in one process on 127.0.0.1, each with its own
// Progress, which the test thread moves through the phases a training rank would; the
// timeouts are a fraction of a second, so every hang is found within about one.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "launcher/control/control_plane.h"

namespace dtrain::control {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- Progress -------------------------------------------------------------------------

TEST(Progress, DescribesWhatARankDoes) {
  ProgressSnapshot s;
  EXPECT_EQ(describe(s), "set-up");
  s.step = 88;
  s.phase = Phase::Forward;
  EXPECT_EQ(describe(s), "forward of step 88");
  s.phase = Phase::Backward;
  s.detail = 3;
  EXPECT_EQ(describe(s), "backward (bucket 3) of step 88");
  s.phase = Phase::Collective;
  s.waiting_kind = CollectiveKind::AllReduce;
  s.waiting_seq = 533;
  EXPECT_EQ(describe(s), "waiting in all-reduce #533 (bucket 3) of step 88");
  s.detail = -1;
  s.waiting_kind = CollectiveKind::Broadcast;
  s.step = 0;
  EXPECT_EQ(describe(s), "waiting in broadcast #533 before the first step");
  s.phase = Phase::Finished;
  EXPECT_EQ(describe(s), "finished");

  EXPECT_STREQ(collective_name(CollectiveKind::AllReduce), "all-reduce");
  EXPECT_STREQ(collective_name(CollectiveKind::Broadcast), "broadcast");
  EXPECT_STREQ(collective_name(CollectiveKind::AllGather), "all-gather");
  EXPECT_STREQ(collective_name(CollectiveKind::Barrier), "barrier");
  EXPECT_STREQ(phase_name(Phase::Forward), "forward");
  EXPECT_STREQ(phase_name(Phase::Setup), "set-up");
}

TEST(Progress, CountsCollectivesAndPhases) {
  Progress p;
  EXPECT_EQ(p.snapshot().phase, Phase::Setup);
  p.begin_step(4);
  ProgressSnapshot s = p.snapshot();
  EXPECT_EQ(s.step, 4);
  EXPECT_EQ(s.phase, Phase::Data);
  EXPECT_EQ(p.issued(CollectiveKind::AllReduce), 1u);
  EXPECT_EQ(p.issued(CollectiveKind::Broadcast), 2u);
  p.waiting(1, CollectiveKind::AllReduce);
  s = p.snapshot();
  EXPECT_EQ(s.phase, Phase::Collective);
  EXPECT_EQ(s.issued, 2u);
  EXPECT_EQ(s.last_kind, CollectiveKind::Broadcast);
  EXPECT_EQ(s.waiting_kind, CollectiveKind::AllReduce);
  EXPECT_EQ(s.waiting_seq, 1u);
  p.completed(2);
  p.completed(1);  // late news of an earlier one: the count stays
  EXPECT_EQ(p.snapshot().done, 2u);
  p.phase(Phase::Optimizer);
  s = p.snapshot();
  EXPECT_EQ(s.phase, Phase::Optimizer);
  EXPECT_EQ(s.waiting_kind, CollectiveKind::None);
}

TEST(Progress, PhaseAgeRunsFromThePhaseChange) {
  Progress p;
  p.phase(Phase::Forward);
  std::this_thread::sleep_for(50ms);
  const double age = p.snapshot().phase_age_s;
  EXPECT_GE(age, 0.045);
  EXPECT_LT(age, 5.0);
  p.phase(Phase::Backward);
  EXPECT_LT(p.snapshot().phase_age_s, age);
}

// A reader never sees half of an update: every snapshot is a state between two of the
// writer's calls, which the invariants below tell apart from a torn one.
TEST(Progress, SnapshotsAreConsistentWhileWritten) {
  Progress p;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int64_t i = 1; !stop.load(std::memory_order_relaxed); ++i) {
      p.begin_step(i);                                        // step i, issued i-1, done i-1, data
      const uint64_t seq = p.issued(CollectiveKind::AllReduce);  // issued i
      p.waiting(seq, CollectiveKind::AllReduce);             // collective i
      p.completed(seq);                                      // done i
    }
  });
  int64_t checked = 0, bad = 0;
  const auto t0 = Clock::now();
  while (since(t0) < 0.3) {
    const ProgressSnapshot s = p.snapshot();
    if (s.step == 0) continue;
    const auto step = static_cast<uint64_t>(s.step);
    bool ok = false;
    if (s.phase == Phase::Data) {
      ok = s.done == step - 1 && (s.issued == step - 1 || s.issued == step);
    } else if (s.phase == Phase::Collective) {
      ok = s.issued == step && s.waiting_seq == step && s.waiting_kind == CollectiveKind::AllReduce &&
           (s.done == step - 1 || s.done == step);
    }
    bad += !ok;
    ++checked;
  }
  stop = true;
  writer.join();
  EXPECT_GT(checked, 1000);
  EXPECT_EQ(bad, 0) << "of " << checked << " snapshots";
}

TEST(Progress, PhaseChangesAreCheap) {
  Progress p;
  constexpr int kN = 1'000'000;
  const auto t0 = Clock::now();
  for (int i = 0; i < kN; ++i) p.phase(i % 2 ? Phase::Forward : Phase::Backward, i & 7);
  const double ns = since(t0) * 1e9 / kN;
  std::printf("a phase change takes %.1f ns\n", ns);
  // A few tens of nanoseconds on an idle machine; the bound leaves room for a busy one.
  EXPECT_LT(ns, 1000.0);
}

// ---- the control plane ----------------------------------------------------------------

TEST(ControlPlane, TokensAreRandomHex) {
  const std::string a = make_token(), b = make_token();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_TRUE(std::all_of(a.begin(), a.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }));
  EXPECT_NE(a, b);
  EXPECT_STREQ(kind_name(Diagnosis::Kind::HungCollective), "hung_collective");
  EXPECT_STREQ(kind_name(Diagnosis::Kind::CoordinatorSilent), "coordinator_silent");
}

WatchdogConfig fast() {
  WatchdogConfig c;
  c.heartbeat_s = 0.1;
  c.heartbeat_timeout_s = 0.6;
  c.progress_timeout_s = 0.8;
  return c;
}

// One rank's on_hang calls, from its control thread.
class Verdicts {
 public:
  void add(const Diagnosis& d) {
    std::lock_guard<std::mutex> lock(mu_);
    all_.push_back(d);
    cv_.notify_all();
  }
  std::optional<Diagnosis> wait(double timeout_s) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return !all_.empty(); });
    if (all_.empty()) return std::nullopt;
    return all_.front();
  }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Diagnosis> all_;
};

// A job of `n` ranks on 127.0.0.1; rank r is "node-r" with pid 1000 + r. The first
// `started` ranks start (all by default).
class Job {
 public:
  explicit Job(int n, int started = -1, WatchdogConfig cfg = fast()) : n_(n), cfg_(cfg), token_(make_token()) {
    for (int r = 0; r < n; ++r) {
      progress.push_back(std::make_unique<Progress>());
      verdicts.push_back(std::make_unique<Verdicts>());
    }
    planes.resize(static_cast<size_t>(n));
    make(0);
    endpoint = planes[0]->listen("127.0.0.1", "127.0.0.1");
    planes[0]->start();
    for (int r = 1; r < (started < 0 ? n : started); ++r) {
      make(r);
      planes[static_cast<size_t>(r)]->start(endpoint);
    }
  }

  void make(int r) {
    Verdicts* v = verdicts[static_cast<size_t>(r)].get();
    planes[static_cast<size_t>(r)] = std::make_unique<ControlPlane>(
        RankInfo{r, "node-" + std::to_string(r), 1000 + r}, n_, *progress[static_cast<size_t>(r)], cfg_, token_,
        [v](const Diagnosis& d) { v->add(d); });
  }

  // Until rank 0 sees every rank connected (false after `timeout_s`).
  bool wait_connected(double timeout_s = 3) const {
    const auto t0 = Clock::now();
    while (since(t0) < timeout_s) {
      const auto ranks = planes[0]->ranks();
      if (std::all_of(ranks.begin(), ranks.end(), [](const RankStatus& s) { return s.connected; })) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  size_t verdict_count() const {
    size_t n = 0;
    for (const auto& v : verdicts) n += v->count();
    return n;
  }

  Progress& p(int r) { return *progress[static_cast<size_t>(r)]; }
  const std::string& token() const { return token_; }

  // Declared first, destroyed last: the planes read them.
  std::vector<std::unique_ptr<Progress>> progress;
  std::vector<std::unique_ptr<Verdicts>> verdicts;
  std::string endpoint;
  std::vector<std::unique_ptr<ControlPlane>> planes;

 private:
  int n_;
  WatchdogConfig cfg_;
  std::string token_;
};

// One step of a healthy rank, every phase and a collective.
void step(Progress& p, int64_t s) {
  p.begin_step(s);
  p.phase(Phase::Forward);
  p.phase(Phase::Backward, 0);
  const uint64_t seq = p.issued(CollectiveKind::AllReduce);
  p.waiting(seq, CollectiveKind::AllReduce);
  p.completed(seq);
  p.phase(Phase::Optimizer);
}

// Ranks that wait in collective `seq` (issuing it first).
void wait_in(Progress& p, int64_t s, uint64_t seq, CollectiveKind kind = CollectiveKind::AllReduce) {
  p.begin_step(s);
  while (p.snapshot().issued < seq) p.issued(kind);
  p.waiting(seq, kind);
}

TEST(ControlPlane, HealthyJobHasNoVerdict) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  const auto t0 = Clock::now();
  bool checked = false;
  for (int64_t s = 1; since(t0) < 2.0; ++s) {
    for (int r = 0; r < 3; ++r) step(job.p(r), s);
    job.p(2).phase(Phase::Backward, 3);
    if (!checked && since(t0) > 1.0) {
      checked = true;
      const auto ranks = job.planes[0]->ranks();
      ASSERT_EQ(ranks.size(), 3u);
      for (int r = 0; r < 3; ++r) {
        const RankStatus& st = ranks[static_cast<size_t>(r)];
        EXPECT_EQ(st.info.rank, r);
        EXPECT_EQ(st.info.host, "node-" + std::to_string(r));
        EXPECT_EQ(st.info.pid, 1000 + r);
        EXPECT_TRUE(st.connected);
        EXPECT_LT(st.heartbeat_age_s, 0.6);
        EXPECT_GT(st.progress.step, 0);
        EXPECT_GT(st.progress.issued, 0u);
      }
      EXPECT_EQ(ranks[0].heartbeat_age_s, 0);
      EXPECT_EQ(ranks[0].progress.phase, Phase::Optimizer);  // rank 0's own, live
      EXPECT_EQ(ranks[0].progress.step, s);
    }
    std::this_thread::sleep_for(20ms);
  }
  // A rank that idles in one phase (its own, no one waits) is no hang either.
  std::this_thread::sleep_for(200ms);
  const auto ranks = job.planes[0]->ranks();
  EXPECT_EQ(ranks[2].progress.phase, Phase::Backward);
  EXPECT_EQ(ranks[2].progress.detail, 3);
  // The other ranks know rank 0 and themselves.
  const auto seen_by_1 = job.planes[1]->ranks();
  ASSERT_EQ(seen_by_1.size(), 2u);
  EXPECT_EQ(seen_by_1[0].info.host, "node-0");
  EXPECT_TRUE(seen_by_1[0].connected);
  EXPECT_EQ(job.verdict_count(), 0u);
}

TEST(ControlPlane, SilentRankIsNamed) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  for (int r = 0; r < 3; ++r) step(job.p(r), 7);
  job.p(1).phase(Phase::Forward);
  std::this_thread::sleep_for(200ms);  // a heartbeat with the forward phase reaches rank 0
  const auto t0 = Clock::now();
  job.planes[1]->pause_heartbeats_for_test(true);
  for (int r : {0, 2}) {
    const auto d = job.verdicts[static_cast<size_t>(r)]->wait(3);
    ASSERT_TRUE(d) << "rank " << r << " got no verdict";
    EXPECT_EQ(d->kind, Diagnosis::Kind::Silent) << d->text;
    EXPECT_EQ(d->ranks, std::vector<int>{1});
    EXPECT_TRUE(contains(d->text, "rank 1 (host node-1, pid 1001)")) << d->text;
    EXPECT_TRUE(contains(d->text, "forward of step 7")) << d->text;
    EXPECT_TRUE(contains(d->text, "resumed from its last checkpoint")) << d->text;
  }
  EXPECT_GT(since(t0), 0.5);  // not before the heartbeat timeout
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(job.verdicts[0]->count(), 1u);  // at most once
}

TEST(ControlPlane, RankThatNeverConnectsIsSilent) {
  Job job(3, /*started=*/2);
  const auto d = job.verdicts[0]->wait(3);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Diagnosis::Kind::Silent);
  EXPECT_EQ(d->ranks, std::vector<int>{2});
  EXPECT_TRUE(contains(d->text, "rank 2 never connected")) << d->text;
  EXPECT_TRUE(contains(d->text, job.endpoint)) << d->text;
  const auto d1 = job.verdicts[1]->wait(3);  // rank 0 told rank 1
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->text, d->text);
}

TEST(ControlPlane, SilentCoordinatorIsNoticed) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  for (int r = 0; r < 3; ++r) step(job.p(r), 12);
  job.p(2).phase(Phase::Checkpoint);
  job.planes[0]->pause_heartbeats_for_test(true);
  for (int r : {1, 2}) {
    const auto d = job.verdicts[static_cast<size_t>(r)]->wait(3);
    ASSERT_TRUE(d) << "rank " << r << " got no verdict";
    EXPECT_EQ(d->kind, Diagnosis::Kind::CoordinatorSilent) << d->text;
    EXPECT_EQ(d->ranks, std::vector<int>{0});
    EXPECT_TRUE(contains(d->text, "rank 0 (host node-0, pid 1000)")) << d->text;
    EXPECT_TRUE(contains(d->text, "this rank (rank " + std::to_string(r))) << d->text;
  }
  EXPECT_TRUE(contains(job.verdicts[2]->wait(0)->text, "checkpoint of step 12"));
  EXPECT_EQ(job.verdicts[0]->count(), 0u);  // a frozen rank 0 decides nothing
}

TEST(ControlPlane, StalledRankIsNamed) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  for (int r = 0; r < 3; ++r) step(job.p(r), 87);  // collective #1
  wait_in(job.p(0), 88, 3);
  wait_in(job.p(2), 88, 3);
  job.p(1).begin_step(88);
  job.p(1).phase(Phase::Forward);
  for (int r = 0; r < 3; ++r) {
    const auto d = job.verdicts[static_cast<size_t>(r)]->wait(4);
    ASSERT_TRUE(d) << "rank " << r << " got no verdict";
    EXPECT_EQ(d->kind, Diagnosis::Kind::Stalled) << d->text;
    EXPECT_EQ(d->ranks, std::vector<int>{1});
    EXPECT_TRUE(contains(d->text, "ranks 0,2 have waited")) << d->text;
    EXPECT_TRUE(contains(d->text, "in all-reduce #3 of step 88")) << d->text;
    EXPECT_TRUE(contains(d->text, "rank 1 has been in forward of step 88 for")) << d->text;
    EXPECT_TRUE(contains(d->text, "(host node-1, pid 1001)")) << d->text;
  }
}

TEST(ControlPlane, DesyncIsNoticed) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  wait_in(job.p(0), 5, 3);
  wait_in(job.p(1), 5, 3);
  wait_in(job.p(2), 5, 4, CollectiveKind::Broadcast);
  for (int r = 0; r < 3; ++r) {
    const auto d = job.verdicts[static_cast<size_t>(r)]->wait(4);
    ASSERT_TRUE(d) << "rank " << r << " got no verdict";
    EXPECT_EQ(d->kind, Diagnosis::Kind::Desync) << d->text;
    EXPECT_EQ(d->ranks, (std::vector<int>{0, 1, 2}));
    EXPECT_TRUE(contains(d->text, "ranks 0,1 have waited")) << d->text;
    EXPECT_TRUE(contains(d->text, "in all-reduce #3 of step 5")) << d->text;
    EXPECT_TRUE(contains(d->text, "rank 2 has waited")) << d->text;
    EXPECT_TRUE(contains(d->text, "in broadcast #4 of step 5")) << d->text;
  }
}

TEST(ControlPlane, HungCollectiveIsNoticed) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  for (int r = 0; r < 3; ++r) wait_in(job.p(r), 9, 17);
  for (int r = 0; r < 3; ++r) {
    const auto d = job.verdicts[static_cast<size_t>(r)]->wait(4);
    ASSERT_TRUE(d) << "rank " << r << " got no verdict";
    EXPECT_EQ(d->kind, Diagnosis::Kind::HungCollective) << d->text;
    EXPECT_EQ(d->ranks, (std::vector<int>{0, 1, 2}));
    EXPECT_TRUE(contains(d->text, "every rank has waited")) << d->text;
    EXPECT_TRUE(contains(d->text, "all-reduce #17 of step 9")) << d->text;
  }
}

TEST(ControlPlane, FinishedRanksAreNotSilent) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  for (int r = 0; r < 3; ++r) job.p(r).phase(Phase::Finished);
  std::this_thread::sleep_for(200ms);  // rank 0 hears that they finished
  job.planes[2].reset();               // and rank 2 leaves first
  job.planes[0].reset();               // then rank 0, long before rank 1
  std::this_thread::sleep_for(1000ms);
  EXPECT_EQ(job.verdict_count(), 0u);
}

// ---- strangers on rank 0's port ----

void put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

// A frame as control_plane.cpp's wire format has it.
std::string frame(uint8_t type, const std::string& payload, uint32_t len_field = UINT32_MAX) {
  std::string f = "DTC1";
  f += static_cast<char>(type);
  f += std::string(3, '\0');
  put32(f, len_field == UINT32_MAX ? static_cast<uint32_t>(payload.size()) : len_field);
  return f + payload;
}

std::string hello(int rank, const std::string& token) {
  std::string p;
  put32(p, static_cast<uint32_t>(rank));
  put32(p, 4242);
  const std::string host = "intruder";
  put32(p, static_cast<uint32_t>(host.size()));
  p += host;
  put32(p, static_cast<uint32_t>(token.size()));
  p += token;
  return frame(1, p);
}

// Connects to `endpoint` (127.0.0.1:PORT) with a raw socket, sends `bytes` and reports
// whether the other side closed the connection within `timeout_s`.
bool closed_after_sending(const std::string& endpoint, const std::string& bytes, double timeout_s = 3) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1))));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool closed = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    if (!bytes.empty()) (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_s);
    tv.tv_usec = static_cast<suseconds_t>((timeout_s - static_cast<double>(tv.tv_sec)) * 1e6);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[256];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) continue;
      closed = n == 0 || errno == ECONNRESET;
      break;
    }
  }
  ::close(fd);
  return closed;
}

TEST(ControlPlane, StrangersAreDropped) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  std::atomic<bool> stop{false};
  std::thread training([&] {
    for (int64_t s = 1; !stop; ++s) {
      for (int r = 0; r < 3; ++r) step(job.p(r), s);
      std::this_thread::sleep_for(20ms);
    }
  });
  testing::internal::CaptureStderr();
  const std::string http = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_TRUE(closed_after_sending(job.endpoint, http)) << "garbage";
  EXPECT_TRUE(closed_after_sending(job.endpoint, hello(2, std::string(32, '0')))) << "wrong token";
  EXPECT_TRUE(closed_after_sending(job.endpoint, frame(1, "", 1u << 20))) << "oversized";
  EXPECT_TRUE(closed_after_sending(job.endpoint, frame(7, "abc"))) << "unknown type";
  EXPECT_TRUE(closed_after_sending(job.endpoint, frame(2, std::string(61, 'x')))) << "heartbeat before hello";
  EXPECT_TRUE(closed_after_sending(job.endpoint, "")) << "never says hello";
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "control plane: dropped a connection from 127.0.0.1:")) << log;
  for (const char* why : {"bad magic", "wrong token", "over the limit", "unknown message type 7", "before its hello",
                          "no hello within"}) {
    EXPECT_TRUE(contains(log, why)) << why << " not in:\n" << log;
  }
  stop = true;
  training.join();
  EXPECT_EQ(job.verdict_count(), 0u);
  const auto ranks = job.planes[0]->ranks();
  for (const RankStatus& s : ranks) {
    EXPECT_TRUE(s.connected) << "rank " << s.info.rank;
    EXPECT_EQ(s.info.host, "node-" + std::to_string(s.info.rank));  // not "intruder"
  }
}

TEST(ControlPlane, RankConnectingTwiceIsRefused) {
  Job job(3);
  ASSERT_TRUE(job.wait_connected());
  testing::internal::CaptureStderr();
  EXPECT_TRUE(closed_after_sending(job.endpoint, hello(1, job.token())));
  EXPECT_TRUE(closed_after_sending(job.endpoint, hello(3, job.token())));
  EXPECT_TRUE(closed_after_sending(job.endpoint, hello(0, job.token())));
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "rank 1 is already connected")) << log;
  EXPECT_TRUE(contains(log, "rank 3 is not another rank of a world of 3")) << log;
  EXPECT_TRUE(contains(log, "rank 0 is not another rank")) << log;
  std::this_thread::sleep_for(300ms);
  const auto ranks = job.planes[0]->ranks();
  EXPECT_EQ(ranks[1].info.host, "node-1");
  EXPECT_EQ(ranks[1].info.pid, 1001);
  EXPECT_TRUE(ranks[1].connected);
  EXPECT_LT(ranks[1].heartbeat_age_s, 0.6);
  EXPECT_EQ(job.verdict_count(), 0u);
}

TEST(ControlPlane, DestructionWithPeersGoneDoesNotHang) {
  {
    Job job(3);
    ASSERT_TRUE(job.wait_connected());
    for (int r : {0, 1, 2}) {  // rank 0 first: the others lose their peer
      const auto t0 = Clock::now();
      job.planes[static_cast<size_t>(r)].reset();
      EXPECT_LT(since(t0), 0.5) << "rank " << r;
    }
  }
  {
    Job job(3);
    ASSERT_TRUE(job.wait_connected());
    for (int r : {2, 1, 0}) {  // rank 0 last: its peers are gone
      const auto t0 = Clock::now();
      job.planes[static_cast<size_t>(r)].reset();
      EXPECT_LT(since(t0), 0.5) << "rank " << r;
    }
  }
  {
    // A rank still trying to reach a rank 0 that is gone, and one never started.
    std::string endpoint;
    {
      Progress p0;
      ControlPlane rank0({0, "node-0", 1000}, 2, p0, fast(), "t", [](const Diagnosis&) {});
      endpoint = rank0.listen("127.0.0.1", "127.0.0.1");
    }
    Progress p1, p2;
    auto rank1 = std::make_unique<ControlPlane>(RankInfo{1, "node-1", 1001}, 2, p1, fast(), "t",
                                                [](const Diagnosis&) {});
    rank1->start(endpoint);
    std::this_thread::sleep_for(200ms);
    const auto t0 = Clock::now();
    rank1.reset();
    auto idle = std::make_unique<ControlPlane>(RankInfo{1, "node-1", 1001}, 2, p2, fast(), "t",
                                               [](const Diagnosis&) {});
    idle.reset();
    EXPECT_LT(since(t0), 0.5);
  }
}

TEST(ControlPlane, UnreachableCoordinatorIsReported) {
  std::string endpoint;
  {
    Progress p0;
    ControlPlane rank0({0, "node-0", 1000}, 2, p0, fast(), "t", [](const Diagnosis&) {});
    endpoint = rank0.listen("127.0.0.1", "127.0.0.1");
  }
  Progress p1;
  Verdicts v;
  ControlPlane rank1({1, "node-1", 1001}, 2, p1, fast(), "t", [&v](const Diagnosis& d) { v.add(d); });
  rank1.start(endpoint);
  const auto d = v.wait(3);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Diagnosis::Kind::CoordinatorSilent);
  EXPECT_TRUE(contains(d->text, "rank 0 at " + endpoint + " could not be reached")) << d->text;
}

TEST(ControlPlane, DisabledDoesNothing) {
  WatchdogConfig cfg = fast();
  cfg.enabled = false;
  Progress p0, p1;
  Verdicts v0, v1;
  ControlPlane rank0({0, "node-0", 1000}, 2, p0, cfg, "t", [&v0](const Diagnosis& d) { v0.add(d); });
  ControlPlane rank1({1, "node-1", 1001}, 2, p1, cfg, "t", [&v1](const Diagnosis& d) { v1.add(d); });
  EXPECT_EQ(rank0.listen("127.0.0.1", "127.0.0.1"), "");
  rank0.start();
  rank1.start("127.0.0.1:1");
  p0.phase(Phase::Forward);
  std::this_thread::sleep_for(800ms);  // longer than the heartbeat timeout
  EXPECT_EQ(v0.count() + v1.count(), 0u);
  const auto ranks = rank0.ranks();
  ASSERT_EQ(ranks.size(), 1u);
  EXPECT_EQ(ranks[0].info.host, "node-0");
  EXPECT_EQ(ranks[0].progress.phase, Phase::Forward);
  ASSERT_EQ(rank1.ranks().size(), 1u);
}

}  // namespace
}  // namespace dtrain::control
