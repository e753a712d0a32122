// Rank 0's status server (launcher/control/status_server.h) with fake callbacks, asked by
// real clients: curl, raw sockets for what curl will not send, and the `dtrain status` and
// `dtrain stop` commands. The bodies' formats, the run directory's files and their modes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "launcher/control/status_server.h"
#include "tests/support/run.h"

namespace {

using dtrain::control::JobStatus;
using dtrain::control::Phase;
using dtrain::control::RankStatus;
using dtrain::control::StatusConfig;
using dtrain::control::StatusServer;
using dtrain::testing::contains;
using dtrain::testing::run_dtrain;
using dtrain::testing::run_shell;

constexpr const char* kToken = "0123456789abcdef0123456789abcdef";

JobStatus fake_job() {
  JobStatus j;
  j.run = "configs/fashion_mnist_cnn.toml";
  j.step = 88;
  j.total_steps = 1000;
  j.epoch = 1.76;
  j.rate = 1234.5;
  j.rate_unit = "samples/s";
  j.eta_s = 723;
  j.last_checkpoint = "runs/cnn/step-80.h5";
  j.elapsed_s = 70;
  return j;
}

std::vector<RankStatus> fake_ranks() {
  std::vector<RankStatus> r(2);
  r[0].info = {0, "node1", 4242};
  r[0].connected = true;
  r[0].progress.step = 88;
  r[0].progress.phase = Phase::Forward;
  r[0].progress.issued = r[0].progress.done = 532;
  r[0].progress.phase_age_s = 0.25;
  r[1].info = {1, "node2", 4343};
  r[1].connected = true;
  r[1].heartbeat_age_s = 0.4;
  r[1].progress.step = 88;
  r[1].progress.phase = Phase::Collective;
  r[1].progress.detail = 3;
  r[1].progress.issued = 533;
  r[1].progress.done = 532;
  r[1].progress.waiting_kind = dtrain::control::CollectiveKind::AllReduce;
  r[1].progress.waiting_seq = 533;
  r[1].progress.phase_age_s = 12;
  return r;
}

boost::property_tree::ptree parse_json(const std::string& text) {
  boost::property_tree::ptree t;
  std::istringstream in(text);
  boost::property_tree::read_json(in, t);
  return t;
}

bool have(const char* program) { return run_shell(std::string("command -v ") + program).exit_code == 0; }

#define REQUIRE_CURL() \
  if (!have("curl")) GTEST_SKIP() << "curl is not installed (scripts/install-deps.sh installs it)"

struct Http {
  int code = 0;
  std::string content_type, body, output;
};

// curl ARGS URL: the status code, content type and body.
Http curl(const std::string& args, const std::string& url) {
  const dtrain::testing::CommandResult r =
      run_shell("curl -sS --noproxy '*' --max-time 10 -w '\\n@@%{http_code} %{content_type}' " + args + " '" + url +
                "'");
  Http h;
  h.output = r.output;
  const size_t at = r.output.rfind("\n@@");
  if (at == std::string::npos) return h;
  h.body = r.output.substr(0, at);
  std::istringstream tail(r.output.substr(at + 3));
  tail >> h.code;
  std::getline(tail >> std::ws, h.content_type);
  return h;
}

int port_of(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// A TCP connection made by hand, for requests curl would not send and clients that say nothing.
class RawClient {
 public:
  RawClient(const std::string& address, int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw std::runtime_error("connect failed");
  }
  ~RawClient() { ::close(fd_); }
  void send(const std::string& s) { ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), ssize_t(s.size())); }
  // Everything until the server closes (or 10 s pass).
  std::string read_all() {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  int fd_ = -1;
};

// A server with fake callbacks that counts the stops it was asked for.
struct Fixture {
  std::atomic<int> stops{0};
  std::atomic<bool> throw_in_job{false};
  JobStatus job = fake_job();
  std::vector<RankStatus> ranks = fake_ranks();
  std::unique_ptr<StatusServer> server;

  explicit Fixture(StatusConfig cfg = {}) {
    server = std::make_unique<StatusServer>(
        std::move(cfg), kToken,
        [this] {
          if (throw_in_job) throw std::runtime_error("the job's status is not there");
          return job;
        },
        [this] { return ranks; }, [this] { ++stops; });
  }
  std::string url(const std::string& path) const { return server->url() + path; }
};

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(StatusJson, HasTheJobAndEveryRank) {
  const std::string text = dtrain::control::status_json(fake_job(), fake_ranks());
  const auto t = parse_json(text);
  EXPECT_EQ(t.get<std::string>("run"), "configs/fashion_mnist_cnn.toml");
  EXPECT_EQ(t.get<int>("step"), 88);
  EXPECT_EQ(t.get<int>("total_steps"), 1000);
  EXPECT_DOUBLE_EQ(t.get<double>("epoch"), 1.76);
  EXPECT_DOUBLE_EQ(t.get<double>("rate"), 1234.5);
  EXPECT_EQ(t.get<std::string>("rate_unit"), "samples/s");
  EXPECT_DOUBLE_EQ(t.get<double>("eta_s"), 723);
  EXPECT_EQ(t.get<std::string>("last_checkpoint"), "runs/cnn/step-80.h5");
  EXPECT_DOUBLE_EQ(t.get<double>("elapsed_s"), 70);
  EXPECT_EQ(t.get<std::string>("finished"), "false");
  std::vector<boost::property_tree::ptree> ranks;
  for (const auto& kv : t.get_child("ranks")) ranks.push_back(kv.second);
  ASSERT_EQ(ranks.size(), 2u) << text;
  EXPECT_EQ(ranks[0].get<int>("rank"), 0);
  EXPECT_EQ(ranks[0].get<std::string>("host"), "node1");
  EXPECT_EQ(ranks[0].get<int>("pid"), 4242);
  EXPECT_EQ(ranks[0].get<std::string>("connected"), "true");
  EXPECT_EQ(ranks[0].get<std::string>("phase"), "forward");
  EXPECT_EQ(ranks[0].get<std::string>("doing"), "forward of step 88");
  EXPECT_EQ(ranks[1].get<std::string>("phase"), "collective");
  EXPECT_EQ(ranks[1].get<int>("detail"), 3);
  EXPECT_EQ(ranks[1].get<int>("collectives_issued"), 533);
  EXPECT_EQ(ranks[1].get<int>("collectives_done"), 532);
  EXPECT_DOUBLE_EQ(ranks[1].get<double>("heartbeat_age_s"), 0.4);
  EXPECT_DOUBLE_EQ(ranks[1].get<double>("phase_age_s"), 12);
  EXPECT_EQ(ranks[1].get<std::string>("doing"), "waiting in all-reduce #533 (bucket 3) of step 88");
  // No ranks yet (before the control plane has any): still an object with an empty list.
  EXPECT_TRUE(contains(dtrain::control::status_json(JobStatus{}, {}), "\"ranks\":[]"));
}

TEST(StatusJson, EscapesStrings) {
  JobStatus j = fake_job();
  j.run = "a \"quoted\" run\\name\nwith\ttabs\x01";
  j.eta_s = std::numeric_limits<double>::infinity();  // no estimate yet
  std::vector<RankStatus> r = fake_ranks();
  r[1].info.host = "evil\",\"injected\":\"1";
  const std::string text = dtrain::control::status_json(j, r);
  EXPECT_TRUE(contains(text, R"("run":"a \"quoted\" run\\name\nwith\ttabs\u0001")")) << text;
  EXPECT_TRUE(contains(text, "\"eta_s\":null")) << text;
  const auto t = parse_json(text);
  EXPECT_EQ(t.get<std::string>("run"), j.run);
  EXPECT_FALSE(t.get_optional<std::string>("injected"));
  std::vector<std::string> hosts;
  for (const auto& kv : t.get_child("ranks")) hosts.push_back(kv.second.get<std::string>("host"));
  EXPECT_EQ(hosts.at(1), r[1].info.host);
}

TEST(MetricsText, HasEveryFamilyAndEscapesLabels) {
  std::vector<RankStatus> r = fake_ranks();
  r[1].info.host = "we\"ird\\host\nname";
  r[1].connected = false;
  const std::string text = dtrain::control::metrics_text(fake_job(), r);
  for (const char* family : {"dtrain_step", "dtrain_total_steps", "dtrain_epoch", "dtrain_throughput",
                             "dtrain_eta_seconds", "dtrain_elapsed_seconds", "dtrain_rank_heartbeat_age_seconds",
                             "dtrain_rank_step", "dtrain_rank_phase", "dtrain_rank_connected"}) {
    EXPECT_TRUE(contains(text, std::string("# HELP ") + family + " ")) << family;
    EXPECT_TRUE(contains(text, std::string("# TYPE ") + family + " gauge\n")) << family;
  }
  EXPECT_TRUE(contains(text, "# TYPE dtrain_rank_collectives_completed_total counter\n")) << text;
  EXPECT_TRUE(contains(text, "\ndtrain_step 88\n")) << text;
  EXPECT_TRUE(contains(text, "\ndtrain_throughput{unit=\"samples/s\"} 1234.5\n")) << text;
  EXPECT_TRUE(contains(text, "\ndtrain_rank_phase{rank=\"0\",phase=\"forward\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "\ndtrain_rank_phase{rank=\"1\",phase=\"collective\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "\ndtrain_rank_collectives_completed_total{rank=\"1\"} 532\n")) << text;
  EXPECT_TRUE(contains(text, "\ndtrain_rank_connected{rank=\"1\"} 0\n")) << text;
  EXPECT_TRUE(contains(text, "dtrain_rank_heartbeat_age_seconds{rank=\"1\",host=\"we\\\"ird\\\\host\\nname\"} 0.4\n"))
      << text;
}

TEST(MetricsText, PassesPromtool) {
  if (!have("promtool")) {
    GTEST_SKIP() << "promtool is not installed (Debian's prometheus package; scripts/install-deps.sh)";
  }
  const auto dir = dtrain::testing::make_test_dir("status");
  std::vector<RankStatus> r = fake_ranks();
  r[1].info.host = "we\"ird\\host\nname";
  JobStatus j = fake_job();
  j.eta_s = std::nan("");
  for (const auto& [name, text] : {std::pair{"normal", dtrain::control::metrics_text(fake_job(), fake_ranks())},
                                   std::pair{"odd", dtrain::control::metrics_text(j, r)},
                                   std::pair{"empty", dtrain::control::metrics_text(JobStatus{}, {})}}) {
    const std::string path = (dir / (std::string(name) + ".prom")).string();
    std::ofstream(path) << text;
    const auto res = run_shell("promtool check metrics < " + path);
    EXPECT_EQ(res.exit_code, 0) << name << ":\n" << res.output << "\n" << text;
    EXPECT_EQ(res.output, "") << name << ": lint problems:\n" << res.output;
  }
}

TEST(StatusServer, ServesStatusAndMetrics) {
  REQUIRE_CURL();
  Fixture f;
  EXPECT_EQ(f.server->url().rfind("http://127.0.0.1:", 0), 0u) << f.server->url();
  Http s = curl("", f.url("/status"));
  ASSERT_EQ(s.code, 200) << s.output;
  EXPECT_EQ(s.content_type, "application/json");
  EXPECT_EQ(s.body, dtrain::control::status_json(f.job, f.ranks));
  f.job.step = 89;  // asked anew for every request
  EXPECT_EQ(parse_json(curl("", f.url("/status?pretty=0")).body).get<int>("step"), 89);
  Http m = curl("", f.url("/metrics"));
  ASSERT_EQ(m.code, 200) << m.output;
  EXPECT_EQ(m.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << m.content_type;
  EXPECT_TRUE(contains(m.body, "\ndtrain_step 89\n")) << m.body;
  if (have("promtool")) {
    const auto res =
        run_shell("curl -sS --noproxy '*' --max-time 10 " + f.url("/metrics") + " | promtool check metrics");
    EXPECT_EQ(res.exit_code, 0) << res.output;
  }
}

TEST(StatusServer, StopNeedsTheToken) {
  REQUIRE_CURL();
  Fixture f;
  Http none = curl("-X POST", f.url("/stop"));
  EXPECT_EQ(none.code, 401) << none.output;
  Http wrong = curl("-X POST -H 'Authorization: Bearer 0123456789abcdef0123456789abcdee'", f.url("/stop"));
  EXPECT_EQ(wrong.code, 403) << wrong.output;
  Http shorter = curl("-X POST -H 'Authorization: Bearer 0123'", f.url("/stop"));
  EXPECT_EQ(shorter.code, 403) << shorter.output;
  Http basic = curl(std::string("-X POST -H 'Authorization: Basic ") + kToken + "'", f.url("/stop"));
  EXPECT_EQ(basic.code, 403) << basic.output;
  Http get = curl(std::string("-H 'Authorization: Bearer ") + kToken + "'", f.url("/stop"));
  EXPECT_EQ(get.code, 405) << get.output;
  EXPECT_EQ(f.stops, 0);
  Http ok = curl(std::string("-X POST -H 'Authorization: Bearer ") + kToken + "'", f.url("/stop"));
  EXPECT_EQ(ok.code, 202) << ok.output;
  EXPECT_EQ(ok.content_type, "application/json");
  EXPECT_EQ(parse_json(ok.body).get<std::string>("stopping"), "true") << ok.body;
  EXPECT_EQ(f.stops, 1);
}

TEST(StatusServer, UnknownPathIs404AndOtherMethods405) {
  REQUIRE_CURL();
  Fixture f;
  EXPECT_EQ(curl("", f.url("/")).code, 404);
  EXPECT_EQ(curl("", f.url("/statusx")).code, 404);
  EXPECT_EQ(curl("-X POST", f.url("/status")).code, 405);
  EXPECT_EQ(curl("-X DELETE", f.url("/metrics")).code, 405);
  EXPECT_EQ(curl("-I", f.url("/status")).code, 200);
}

TEST(StatusServer, GarbageGets400AndTheServerKeepsServing) {
  REQUIRE_CURL();
  Fixture f;
  const int port = port_of(f.server->url());
  // Not HTTP; a bad Content-Length; a TLS client hello (https:// to an http:// server).
  for (const std::string& bad : {std::string("GARBAGE\r\n\r\n"),
                                 std::string("GET /status HTTP/1.1\r\nContent-Length: nope\r\n\r\n"),
                                 std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)}) {
    RawClient c("127.0.0.1", port);
    c.send(bad);
    const std::string answer = c.read_all();
    EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  }
  EXPECT_EQ(curl("", f.url("/status")).code, 200);
  EXPECT_EQ(f.stops, 0);
}

TEST(StatusServer, RefusesOversizedHeadersAndBodies) {
  REQUIRE_CURL();
  Fixture f;
  Http big_header = curl("-H 'X-Big: " + std::string(20000, 'a') + "'", f.url("/status"));
  EXPECT_EQ(big_header.code, 431) << big_header.output.substr(0, 300);
  const auto dir = dtrain::testing::make_test_dir("status");
  std::ofstream(dir / "body") << std::string(64 * 1024, 'x');
  Http big_body = curl(std::string("-X POST -H 'Authorization: Bearer ") + kToken + "' --data-binary @" +
                           (dir / "body").string(),
                       f.url("/stop"));
  EXPECT_EQ(big_body.code, 413) << big_body.output.substr(0, 300);
  EXPECT_EQ(f.stops, 0);
  EXPECT_EQ(curl("", f.url("/status")).code, 200);
}

TEST(StatusServer, CallbackErrorGives500) {
  REQUIRE_CURL();
  Fixture f;
  f.throw_in_job = true;
  Http h = curl("", f.url("/status"));
  EXPECT_EQ(h.code, 500) << h.output;
  EXPECT_TRUE(contains(h.body, "the job's status is not there")) << h.body;
  f.throw_in_job = false;
  EXPECT_EQ(curl("", f.url("/status")).code, 200);
}

TEST(StatusServer, SilentClientBlocksNobodyAndIsClosed) {
  REQUIRE_CURL();
  Fixture f;
  const auto t0 = std::chrono::steady_clock::now();
  RawClient silent("127.0.0.1", port_of(f.server->url()));
  RawClient half("127.0.0.1", port_of(f.server->url()));
  half.send("GET /status HTTP/1.1\r\nHost: x\r\n");  // and never the blank line
  for (int i = 0; i < 3; ++i) {
    const auto t1 = std::chrono::steady_clock::now();
    EXPECT_EQ(curl("", f.url("/status")).code, 200);
    EXPECT_LT(since(t1), 2.0);
  }
  // The server gives up on both after its request timeout (a few seconds): they read end of stream.
  EXPECT_EQ(silent.read_all(), "");
  EXPECT_EQ(half.read_all(), "");
  EXPECT_GT(since(t0), 3.0);
  EXPECT_LT(since(t0), 9.0);
}

// The first IPv4 address of this machine that is not loopback, "" when it has none.
std::string non_loopback_address() {
  const auto r = run_shell("hostname -I");
  std::istringstream in(r.exit_code == 0 ? r.output : "");
  for (std::string a; in >> a;) {
    if (a.find('.') != std::string::npos && a.rfind("127.", 0) != 0) return a;
  }
  return "";
}

TEST(StatusServer, RefusesAddressesOutsideAllow) {
  REQUIRE_CURL();
  const std::string here = non_loopback_address();
  if (here.empty()) GTEST_SKIP() << "this machine has no non-loopback IPv4 address to connect from";
  StatusConfig open;
  open.bind_address = "0.0.0.0";
  {
    Fixture f(open);  // allow empty: loopback only
    const std::string port = std::to_string(port_of(f.server->url()));
    EXPECT_EQ(curl("", "http://127.0.0.1:" + port + "/status").code, 200);
    Http far = curl("", "http://" + here + ":" + port + "/status");
    EXPECT_EQ(far.code, 403) << far.output;
    Http stop = curl(std::string("-X POST -H 'Authorization: Bearer ") + kToken + "'",
                     "http://" + here + ":" + port + "/stop");
    EXPECT_EQ(stop.code, 403) << stop.output;
    EXPECT_EQ(f.stops, 0);
  }
  open.allow = {here};
  Fixture f(open);
  const std::string port = std::to_string(port_of(f.server->url()));
  EXPECT_EQ(curl("", "http://" + here + ":" + port + "/status").code, 200);
  EXPECT_EQ(curl("", "http://127.0.0.1:" + port + "/status").code, 200);  // loopback always
}

TEST(StatusServer, BadConfigIsAClearError) {
  auto make = [](StatusConfig cfg) {
    StatusServer s(std::move(cfg), kToken, [] { return JobStatus{}; }, [] { return std::vector<RankStatus>{}; }, [] {});
  };
  StatusConfig bad_bind;
  bad_bind.bind_address = "localhost:80";
  EXPECT_THROW(make(bad_bind), dtrain::ConfigError);
  StatusConfig bad_allow;
  bad_allow.allow = {"10.0.0.0/8"};
  EXPECT_THROW(make(bad_allow), dtrain::ConfigError);
  // A port in use.
  Fixture f;
  StatusConfig taken;
  taken.port = port_of(f.server->url());
  try {
    make(taken);
    ADD_FAILURE() << "listening twice on one port did not fail";
  } catch (const dtrain::IoError& e) {
    EXPECT_TRUE(contains(e.what(), "cannot listen on http://127.0.0.1:" + std::to_string(taken.port))) << e.what();
  }
}

TEST(StatusServer, DestructorReturnsWithClientsConnected) {
  auto f = std::make_unique<Fixture>();
  const int port = port_of(f->server->url());
  RawClient silent("127.0.0.1", port);
  RawClient half("127.0.0.1", port);
  half.send("GET /sta");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  f.reset();
  EXPECT_LT(since(t0), 1.0);
  EXPECT_EQ(silent.read_all(), "");  // closed, not left hanging
}

TEST(RunFiles, WritesModesAndReadsBack) {
  const auto dir = dtrain::testing::make_test_dir("status");
  const mode_t old = ::umask(0077);  // a strict umask must not hide status.json from others
  dtrain::control::write_run_files(dir.string(), "http://127.0.0.1:4321", kToken);
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "control.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "status.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  const auto t = parse_json(dtrain::testing::read_lines((dir / "status.json").string()).at(0));
  EXPECT_EQ(t.get<std::string>("url"), "http://127.0.0.1:4321");
  EXPECT_EQ(t.get<int>("pid"), ::getpid());
  EXPECT_FALSE(t.get<std::string>("host").empty());
  auto files = dtrain::control::read_run_files(dir.string(), true);
  EXPECT_EQ(files.url, "http://127.0.0.1:4321");
  EXPECT_EQ(files.token, kToken);
  EXPECT_EQ(dtrain::control::read_run_files(dir.string(), false).token, "");
  // Rewritten by the next job: replaced whole, no temporary files left.
  dtrain::control::write_run_files(dir.string(), "http://127.0.0.1:9999", "fedcba");
  files = dtrain::control::read_run_files(dir.string(), true);
  EXPECT_EQ(files.url, "http://127.0.0.1:9999");
  EXPECT_EQ(files.token, "fedcba");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 2);
}

TEST(RunFiles, ErrorsNameTheFile) {
  const auto dir = dtrain::testing::make_test_dir("status");
  auto message = [](const std::string& d, bool token) -> std::string {
    try {
      dtrain::control::read_run_files(d, token);
    } catch (const dtrain::IoError& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string none = message(dir.string(), false);
  EXPECT_TRUE(contains(none, "no status.json in " + dir.string() + ": is the job running with checkpoint.dir"))
      << none;
  EXPECT_TRUE(contains(message((dir / "absent").string(), false), "no run directory")) << none;
  std::ofstream(dir / "status.json") << "{\"url\":\"http://127.0.0.1:1\"}\n";
  EXPECT_EQ(message(dir.string(), false), "no error");
  const std::string no_token = message(dir.string(), true);
  EXPECT_TRUE(contains(no_token, "no control.token in " + dir.string())) << no_token;
  std::ofstream(dir / "status.json") << "not json";
  const std::string bad = message(dir.string(), false);
  EXPECT_TRUE(contains(bad, (dir / "status.json").string() + " is not a status file")) << bad;
}

// `dtrain status` and `dtrain stop` against a server of this process.
TEST(StatusCli, StatusPrintsSummaryAndRanks) {
  Fixture f;
  const auto dir = dtrain::testing::make_test_dir("status");
  dtrain::control::write_run_files(dir.string(), f.server->url(), kToken);
  const auto r = run_dtrain("status " + dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "run configs/fashion_mnist_cnn.toml: step 88/1000 (8.8%), epoch 1.76")) << r.output;
  EXPECT_TRUE(contains(r.output, "1234 samples/s, ETA 12m03s, elapsed 1m10s")) << r.output;
  EXPECT_TRUE(contains(r.output, "last checkpoint: runs/cnn/step-80.h5")) << r.output;
  // The table: rank, host, pid, step, heartbeat, time in the phase, what it does.
  const std::regex row0(R"(\n +0  node1  4242  +88  +0\.0s ago +0s  forward of step 88\n)");
  const std::regex row1(R"(\n +1  node2  4343  +88  +0\.4s ago +12s  waiting in all-reduce #533 \(bucket 3\) of step 88\n)");
  EXPECT_TRUE(std::regex_search(r.output, row0)) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, row1)) << r.output;
  EXPECT_LT(r.seconds, 5.0);

  const auto by_address = run_dtrain("status " + f.server->url().substr(7) + " --json");
  ASSERT_EQ(by_address.exit_code, 0) << by_address.output;
  EXPECT_EQ(by_address.output, dtrain::control::status_json(f.job, f.ranks));
  EXPECT_EQ(run_dtrain("status " + f.server->url()).exit_code, 0);
  const auto here = run_shell("cd " + dir.string() + " && " + dtrain::testing::dtrain_bin() + " status");
  EXPECT_EQ(here.exit_code, 0) << here.output;
}

TEST(StatusCli, StopWithTheRunDirsToken) {
  Fixture f;
  const auto dir = dtrain::testing::make_test_dir("status");
  dtrain::control::write_run_files(dir.string(), f.server->url(), kToken);
  const auto r = run_dtrain("stop " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "stop requested at " + f.server->url())) << r.output;
  EXPECT_EQ(f.stops, 1);
}

TEST(StatusCli, StopRefusedWithoutOrWithWrongToken) {
  Fixture f;
  const auto dir = dtrain::testing::make_test_dir("status");
  dtrain::control::write_run_files(dir.string(), f.server->url(), "not-the-token");
  const auto wrong = run_dtrain("stop " + dir.string());
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  EXPECT_TRUE(contains(wrong.output, "refused the token of " + (dir / "control.token").string())) << wrong.output;
  EXPECT_TRUE(contains(wrong.output, "nothing was stopped")) << wrong.output;
  std::filesystem::remove(dir / "control.token");
  const auto none = run_dtrain("stop " + dir.string());
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_TRUE(contains(none.output, "no control.token in " + dir.string())) << none.output;
  EXPECT_EQ(f.stops, 0);
}

TEST(StatusCli, NothingAnswersAfterTheJobEnded) {
  const auto dir = dtrain::testing::make_test_dir("status");
  std::string url;
  {
    Fixture f;
    url = f.server->url();
    dtrain::control::write_run_files(dir.string(), url, kToken);
  }
  for (const char* cmd : {"status ", "stop "}) {
    const auto r = run_dtrain(cmd + dir.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(contains(r.output, "nothing answers at " + url)) << r.output;
    EXPECT_TRUE(contains(r.output, "the job may have ended")) << r.output;
    EXPECT_LT(r.seconds, 5.0);
  }
  const auto empty = run_dtrain("status " + (dir / "nothing").string());
  EXPECT_EQ(empty.exit_code, 2) << empty.output;
  EXPECT_TRUE(contains(empty.output, "neither a directory nor HOST:PORT")) << empty.output;
  std::filesystem::create_directories(dir / "other");
  const auto no_status = run_dtrain("status " + (dir / "other").string());
  EXPECT_EQ(no_status.exit_code, 1) << no_status.output;
  EXPECT_TRUE(contains(no_status.output, "no status.json in")) << no_status.output;
}

TEST(StatusCli, HelpAndUsage) {
  for (const char* cmd : {"status", "stop"}) {
    const auto r = run_dtrain(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, std::string("usage: dtrain ") + cmd)) << r.output;
    EXPECT_TRUE(contains(r.output, "Exit codes")) << r.output;
  }
  EXPECT_EQ(run_dtrain("stop").exit_code, 2);
  EXPECT_EQ(run_dtrain("status a b").exit_code, 2);
  EXPECT_TRUE(contains(run_dtrain("--help").output, "status DIR"));
}

}  // namespace
