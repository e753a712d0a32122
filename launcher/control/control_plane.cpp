// The control plane and the watchdog: see control_plane.h (Note [Watchdog]).
//
// The wire format is in wire.h and wire.cpp. A rank's first frame is its Hello; rank 0 answers with its own
// (the same token: each side proves it belongs to the job), then with a Heartbeat for
// every Heartbeat it receives, and with a Verdict when it decides that the job hangs.
//
// Everything but ranks() and pause_heartbeats_for_test() runs on the control thread, so
// the connections and timers need no locks; the table of ranks, which ranks() reads from
// other threads, sits behind a mutex.
#include "launcher/control/control_plane.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <bit>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "core/error.h"
#include "launcher/control/wire.h"

namespace dtrain::control {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
using namespace wire;

// Connections that have not said hello yet: enough for every rank at once, few enough
// that a flood of idle connections cannot exhaust rank 0's file descriptors.
constexpr size_t kMaxPending = 256;
// Frames queued for a peer that reads nothing: heartbeats beyond this are skipped.
constexpr size_t kMaxQueued = 64;
// How long rank 0 waits for its verdict to reach the other ranks before on_hang.
constexpr auto kVerdictGrace = std::chrono::seconds(1);
constexpr const char* kEndsNow = "the job ends now so that it can be resumed from its last checkpoint";

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Clock::duration to_duration(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

void log_line(const std::string& line) {
  // One write per line, so that lines from several threads do not interleave.
  std::fprintf(stderr, "control plane: %s\n", line.c_str());
  std::fflush(stderr);
}

// Compares without stopping at the first difference, so the time taken says nothing
// about how much of a guessed token was right.
bool same_token(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// ---- texts --------------------------------------------------------------------------

std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), s < 10 ? "%.1f s" : "%.0f s", s);
  return buf;
}

// "rank 1", "ranks 0,2"
std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ranks[i]);
  }
  return s;
}

std::string where(const RankInfo& info) { return "host " + info.host + ", pid " + std::to_string(info.pid); }

// "rank 1 on host h (pid p)": where to look.
std::string look_at(const RankInfo& info) {
  return "rank " + std::to_string(info.rank) + " on host " + info.host + " (pid " + std::to_string(info.pid) + ")";
}

// "all-reduce #533 (bucket 3) of step 88": the collective a rank waits in.
std::string collective_text(const ProgressSnapshot& s) {
  std::string t = std::string(collective_name(s.waiting_kind)) + " #" + std::to_string(s.waiting_seq);
  if (s.detail >= 0) t += " (bucket " + std::to_string(s.detail) + ")";
  return t + (s.step > 0 ? " of step " + std::to_string(s.step) : " before the first step");
}

std::string host_port(const std::string& host, unsigned port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string endpoint_text(const tcp::endpoint& ep) { return host_port(ep.address().to_string(), ep.port()); }

// "host:port", "[v6::addr]:port"; a bare host (or IPv6 address) gets `default_port`.
std::pair<std::string, std::string> split_host_port(const std::string& s, const std::string& default_port) {
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close != std::string::npos) {
      const std::string rest = s.substr(close + 1);
      return {s.substr(1, close - 1), rest.size() > 1 && rest[0] == ':' ? rest.substr(1) : default_port};
    }
  }
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || s.find(':') != colon) return {s, default_port};
  return {s.substr(0, colon), s.substr(colon + 1)};
}

// One connection: rank 0 has one per other rank (and, briefly, any that have not said
// hello yet); every other rank has one, to rank 0.
struct Conn {
  explicit Conn(tcp::socket s) : sock(std::move(s)) {}
  tcp::socket sock;
  std::string peer;   // "address:port", for messages
  int rank = -1;      // the peer's rank once it said hello
  bool open = true;
  Clock::time_point since = Clock::now();
  std::array<uint8_t, kHeaderBytes> header{};
  std::vector<uint8_t> payload;
  struct Out {
    std::string bytes;
    std::function<void()> done;  // after the write (or its failure), when set
  };
  std::deque<Out> out;
  bool writing = false;
};
using ConnPtr = std::shared_ptr<Conn>;

}  // namespace

const char* kind_name(Diagnosis::Kind k) {
  switch (k) {
    case Diagnosis::Kind::Silent: return "silent";
    case Diagnosis::Kind::Stalled: return "stalled";
    case Diagnosis::Kind::Desync: return "desync";
    case Diagnosis::Kind::HungCollective: return "hung_collective";
    case Diagnosis::Kind::CoordinatorSilent: return "coordinator_silent";
  }
  return "unknown";
}

std::string make_token() {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string t;
  for (int i = 0; i < 4; ++i) {
    const uint32_t v = rd();
    for (int j = 0; j < 8; ++j) t += kHex[(v >> (4 * j)) & 0xf];
  }
  return t;
}

struct ControlPlane::Impl {
  Impl(RankInfo self_, int world_size, const Progress& progress_, WatchdogConfig cfg_, std::string token_,
       std::function<void(const Diagnosis&)> on_hang_)
      : self(std::move(self_)), world(world_size), progress(progress_), cfg(cfg_), token(std::move(token_)),
        on_hang(std::move(on_hang_)), by_rank(static_cast<size_t>(std::max(world_size, 1))),
        table(static_cast<size_t>(std::max(world_size, 1))) {
    DT_CHECK(world >= 1 && self.rank >= 0 && self.rank < world, "ControlPlane: rank ", self.rank,
             " is outside a world of ", world);
    DT_CHECK(!cfg.enabled || (cfg.heartbeat_s > 0 && cfg.heartbeat_timeout_s > 0 && cfg.progress_timeout_s > 0),
             "ControlPlane: the watchdog's periods must be positive (heartbeat ", cfg.heartbeat_s, " s, timeout ",
             cfg.heartbeat_timeout_s, " s, progress timeout ", cfg.progress_timeout_s, " s)");
    for (int r = 0; r < world; ++r) table[static_cast<size_t>(r)].info.rank = r;
  }

  // on_hang runs on the control thread: it must return (or end the process) for this to
  // finish, and must not destroy the ControlPlane itself.
  ~Impl() {
    if (thread.joinable()) {
      farewell();
      io.stop();
      thread.join();
    }
    // No handler runs any more. Closing here rather than in handlers keeps destruction
    // from waiting on peers; the pending operations die with the io_context.
    error_code ec;
    acceptor.close(ec);
    for (const ConnPtr& c : pending) c->sock.close(ec);
    for (const ConnPtr& c : by_rank) {
      if (c) c->sock.close(ec);
    }
    if (coord) coord->sock.close(ec);
  }

  // A normal end: one last heartbeat to every peer with this rank's progress (the loop's
  // Phase::Finished), so that a rank leaving first reads as finished rather than as gone
  // quiet mid-step. Waits at most 200 ms for the writes; a peer that is gone costs nothing.
  void farewell() {
    auto left = std::make_shared<std::atomic<int>>(0);
    auto all_sent = std::make_shared<std::promise<void>>();
    std::future<void> sent = all_sent->get_future();
    asio::post(io, [this, left, all_sent] {
      std::vector<ConnPtr> peers;
      if (!paused && !decided) {
        if (self.rank == 0) {
          for (const ConnPtr& c : by_rank) {
            if (c && c->open) peers.push_back(c);
          }
        } else if (coord && coord->open) {
          peers.push_back(coord);
        }
      }
      if (peers.empty()) return all_sent->set_value();
      left->store(static_cast<int>(peers.size()));
      const std::string bytes = encode(Heartbeat{self.rank, progress.snapshot()});
      for (const ConnPtr& c : peers) {
        send(c, bytes, [left, all_sent] {
          if (left->fetch_sub(1) == 1) all_sent->set_value();
        });
      }
    });
    sent.wait_for(std::chrono::milliseconds(200));
  }

  // ---- set-up (caller's thread, before the control thread runs) ----

  std::string listen(const std::string& bind_address, const std::string& advertise_host) {
    DT_CHECK(self.rank == 0, "ControlPlane::listen is rank 0's; rank ", self.rank, " connects in start()");
    DT_CHECK(!started, "ControlPlane::listen must come before start()");
    if (!cfg.enabled) return "";
    const auto [host, port] = split_host_port(bind_address, "0");
    try {
      tcp::resolver resolver(io);
      const auto results = resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service);
      const tcp::endpoint ep = results.begin()->endpoint();
      acceptor.open(ep.protocol());
      acceptor.set_option(tcp::acceptor::reuse_address(true));
      acceptor.bind(ep);
      acceptor.listen();
    } catch (const boost::system::system_error& e) {
      DT_THROW(DistributedError, "control plane: cannot listen on ", bind_address, ": ", e.what());
    }
    advertised = host_port(advertise_host, acceptor.local_endpoint().port());
    return advertised;
  }

  void start(const std::string& rank0_endpoint) {
    if (!cfg.enabled || started) return;
    started = true;
    start_time = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu);
      started_at = start_time;
    }
    if (self.rank == 0) {
      DT_CHECK(acceptor.is_open(), "ControlPlane: rank 0 must listen() before start()");
      accept();
    } else {
      DT_CHECK(!rank0_endpoint.empty(), "ControlPlane: rank ", self.rank, " needs rank 0's endpoint to start");
      advertised = rank0_endpoint;
      std::tie(coord_host, coord_port) = split_host_port(rank0_endpoint, "");
      DT_CHECK(!coord_host.empty() && !coord_port.empty(), "ControlPlane: rank 0's endpoint '", rank0_endpoint,
               "' is not host:port");
      last_from_coord = start_time;
      connect();
      heartbeat();
    }
    schedule_check();
    thread = std::thread([this] {
      for (;;) {
        try {
          io.run();
          return;
        } catch (const std::exception& e) {
          // A bug in a handler: keep the thread (and the other connections) alive.
          log_line(std::string("unexpected error: ") + e.what());
        }
      }
    });
  }

  // ---- connections (control thread) ----

  void accept() {
    acceptor.async_accept([this](error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of file descriptors and the like: try again a little later.
        log_line("cannot accept a connection: " + ec.message());
        accept_timer.expires_after(std::chrono::milliseconds(100));
        accept_timer.async_wait([this](error_code e) {
          if (!e) accept();
        });
        return;
      }
      auto c = std::make_shared<Conn>(std::move(sock));
      error_code ignored;
      const tcp::endpoint remote = c->sock.remote_endpoint(ignored);
      c->peer = ignored ? "an unknown address" : endpoint_text(remote);
      c->sock.set_option(tcp::no_delay(true), ignored);
      if (pending.size() >= kMaxPending) {
        drop(c, "too many connections that have not said hello");
      } else {
        pending.insert(c);
        read_frame(c);
      }
      accept();
    });
  }

  void connect() {
    resolver.async_resolve(coord_host, coord_port, [this](error_code ec, tcp::resolver::results_type results) {
      if (ec) {
        retry_connect("cannot resolve " + coord_host + ": " + ec.message());
        return;
      }
      auto c = std::make_shared<Conn>(tcp::socket(io));
      asio::async_connect(c->sock, results, [this, c](error_code e, const tcp::endpoint& ep) {
        if (e) {
          retry_connect(e.message());
          return;
        }
        error_code ignored;
        c->sock.set_option(tcp::no_delay(true), ignored);
        c->peer = endpoint_text(ep);
        coord = c;
        send(c, encode(Hello{self.rank, self.pid, self.host, token}));
        send_heartbeat();
        read_frame(c);
      });
    });
  }

  void retry_connect(const std::string& why) {
    if (decided) return;
    last_connect_error = why;
    connect_timer.expires_after(to_duration(backoff_s));
    backoff_s = std::min(backoff_s * 2, 1.0);
    connect_timer.async_wait([this](error_code ec) {
      if (!ec && !decided) connect();
    });
  }

  void read_frame(const ConnPtr& c) {
    asio::async_read(c->sock, asio::buffer(c->header), [this, c](error_code ec, size_t) {
      if (ec) {
        closed(c, ec);
        return;
      }
      MsgType type{};
      uint32_t len = 0;
      if (std::string why = check_header(c->header.data(), &type, &len); !why.empty()) {
        drop(c, why);
        return;
      }
      c->payload.resize(len);
      asio::async_read(c->sock, asio::buffer(c->payload), [this, c, type](error_code e, size_t) {
        if (e) {
          closed(c, e);
          return;
        }
        if (handle(c, type)) read_frame(c);
      });
    });
  }

  // Dispatches one frame; false when the connection was dropped.
  bool handle(const ConnPtr& c, MsgType type) {
    Decoder d(c->payload.data(), c->payload.size());
    return self.rank == 0 ? handle_at_rank0(c, type, d) : handle_from_rank0(c, type, d);
  }

  bool handle_at_rank0(const ConnPtr& c, MsgType type, Decoder& d) {
    const auto now = Clock::now();
    if (c->rank < 0) {
      Hello h;
      if (type != MsgType::Hello) return drop(c, std::string("a ") + type_name(type) + " before its hello");
      if (!decode(d, h)) return drop(c, "a malformed hello");
      if (!same_token(h.token, token)) return drop(c, "wrong token");
      if (h.rank < 1 || h.rank >= world) {
        return drop(c, "rank " + std::to_string(h.rank) + " is not another rank of a world of " +
                           std::to_string(world));
      }
      const ConnPtr& old = by_rank[static_cast<size_t>(h.rank)];
      if (old && old->open) {
        return drop(c, "rank " + std::to_string(h.rank) + " is already connected (from " + old->peer + ")");
      }
      pending.erase(c);
      c->rank = h.rank;
      by_rank[static_cast<size_t>(h.rank)] = c;
      {
        std::lock_guard<std::mutex> lock(mu);
        Entry& e = table[static_cast<size_t>(h.rank)];
        e.info = RankInfo{h.rank, h.host, h.pid};
        e.known = e.connected = true;
        e.heard = e.progress_at = now;
      }
      send(c, encode(Hello{0, self.pid, self.host, token}));
      return true;
    }
    Heartbeat hb;
    if (type != MsgType::Heartbeat) return drop(c, std::string("an unexpected ") + type_name(type));
    if (!decode(d, hb)) return drop(c, "a malformed heartbeat");
    if (hb.rank != c->rank) {
      return drop(c, "a heartbeat for rank " + std::to_string(hb.rank) + " on rank " + std::to_string(c->rank) +
                         "'s connection");
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      Entry& e = table[static_cast<size_t>(c->rank)];
      e.heard = e.progress_at = now;
      e.progress = hb.progress;
    }
    if (!paused) send(c, encode(Heartbeat{0, progress.snapshot()}));
    return true;
  }

  bool handle_from_rank0(const ConnPtr& c, MsgType type, Decoder& d) {
    const auto now = Clock::now();
    if (c->rank < 0) {
      Hello h;
      if (type != MsgType::Hello) return drop(c, std::string("a ") + type_name(type) + " before its hello");
      if (!decode(d, h)) return drop(c, "a malformed hello");
      if (!same_token(h.token, token)) return drop(c, "wrong token");
      if (h.rank != 0) return drop(c, "it says it is rank " + std::to_string(h.rank) + ", not rank 0");
      c->rank = 0;
      last_from_coord = now;
      std::lock_guard<std::mutex> lock(mu);
      Entry& e = table[0];
      e.info = RankInfo{0, h.host, h.pid};
      e.known = e.connected = true;
      e.heard = e.progress_at = now;
      return true;
    }
    if (type == MsgType::Heartbeat) {
      Heartbeat hb;
      if (!decode(d, hb) || hb.rank != 0) return drop(c, "a malformed heartbeat");
      last_from_coord = now;
      std::lock_guard<std::mutex> lock(mu);
      Entry& e = table[0];
      e.heard = e.progress_at = now;
      e.progress = hb.progress;
      return true;
    }
    if (type == MsgType::Verdict) {
      Diagnosis v;
      if (!decode(d, v, world)) return drop(c, "a malformed verdict");
      last_from_coord = now;
      decide(std::move(v));
      return true;
    }
    return drop(c, std::string("an unexpected ") + type_name(type));
  }

  void send(const ConnPtr& c, std::string bytes, std::function<void()> done = {}) {
    if (!c->open) {
      if (done) asio::post(io, std::move(done));
      return;
    }
    if (c->out.size() >= kMaxQueued && !done) return;
    c->out.push_back({std::move(bytes), std::move(done)});
    if (!c->writing) write_next(c);
  }

  void write_next(const ConnPtr& c) {
    c->writing = true;
    asio::async_write(c->sock, asio::buffer(c->out.front().bytes), [this, c](error_code ec, size_t) {
      c->writing = false;
      std::function<void()> done = std::move(c->out.front().done);
      c->out.pop_front();
      if (done) done();
      if (ec) closed(c, ec);
      if (!c->open) {
        flush(c);
      } else if (!c->out.empty()) {
        write_next(c);
      }
    });
  }

  // Runs the completions of the frames that will never be written.
  void flush(const ConnPtr& c) {
    while (!c->out.empty()) {
      std::function<void()> done = std::move(c->out.front().done);
      c->out.pop_front();
      if (done) done();
    }
  }

  // Refuses a peer; always false, for handle()'s callers.
  bool drop(const ConnPtr& c, const std::string& why) {
    if (self.rank == 0) {
      log_line("dropped a connection from " + c->peer + ": " + why);
    } else {
      log_line("dropped the connection to rank 0 at " + c->peer + ": " + why);
    }
    close(c);
    return false;
  }

  // The peer went away (or we closed it): forget the connection; the watchdog's timeouts
  // decide whether that matters.
  void closed(const ConnPtr& c, const error_code& ec) {
    if (!c->open) return;
    const bool ours = ec == asio::error::operation_aborted;
    if (!ours && self.rank != 0 && c->rank < 0) {
      last_connect_error = "rank 0 at " + c->peer + " closed the connection before its hello (" + ec.message() +
                           "); a wrong token?";
    }
    if (!ours && c->rank >= 0) {
      std::lock_guard<std::mutex> lock(mu);
      const Entry& e = table[static_cast<size_t>(c->rank)];
      if (e.progress.phase != Phase::Finished && !decided) {
        log_line((self.rank == 0 ? "rank " + std::to_string(c->rank) + " (" + where(e.info) + ") closed its connection"
                                 : std::string("rank 0 closed the connection")) +
                 " (" + ec.message() + "); it was last in " + describe(e.progress));
      }
    }
    close(c);
  }

  void close(const ConnPtr& c) {
    if (!c->open) return;
    c->open = false;
    error_code ignored;
    c->sock.close(ignored);
    pending.erase(c);
    if (c->rank >= 0) {
      if (self.rank == 0 && by_rank[static_cast<size_t>(c->rank)] == c) by_rank[static_cast<size_t>(c->rank)].reset();
      std::lock_guard<std::mutex> lock(mu);
      table[static_cast<size_t>(c->rank)].connected = false;
    }
    if (self.rank != 0 && coord == c) coord.reset();
    if (!c->writing) flush(c);
  }

  // ---- heartbeats and checks (control thread) ----

  // Every other rank: a heartbeat to rank 0 every heartbeat_s.
  void heartbeat() {
    beat_timer.expires_after(to_duration(cfg.heartbeat_s));
    beat_timer.async_wait([this](error_code ec) {
      if (ec) return;
      send_heartbeat();
      heartbeat();
    });
  }

  void send_heartbeat() {
    if (coord && !paused) send(coord, encode(Heartbeat{self.rank, progress.snapshot()}));
  }

  void schedule_check() {
    check_timer.expires_after(to_duration(std::clamp(cfg.heartbeat_s / 2, 0.01, 1.0)));
    check_timer.async_wait([this](error_code ec) {
      if (ec || decided) return;
      if (self.rank == 0) expire_pending();
      if (!paused) self.rank == 0 ? check_ranks() : check_coordinator();
      if (!decided) schedule_check();
    });
  }

  // Rank 0: a connection that has not said hello within the heartbeat timeout is no rank.
  void expire_pending() {
    const auto now = Clock::now();
    std::vector<ConnPtr> late;
    for (const ConnPtr& c : pending) {
      if (seconds_between(c->since, now) > cfg.heartbeat_timeout_s) late.push_back(c);
    }
    for (const ConnPtr& c : late) drop(c, "no hello within " + secs(cfg.heartbeat_timeout_s));
  }

  struct View {
    RankInfo info;
    bool known = false, connected = false;
    double silence_s = 0;  // since last heard (or since the start, when never)
    ProgressSnapshot p;    // ages as of now
  };

  // Rank 0: Note [Watchdog], in order: silence, then progress.
  void check_ranks() {
    const auto now = Clock::now();
    std::vector<View> v(static_cast<size_t>(world));
    {
      std::lock_guard<std::mutex> lock(mu);
      for (int r = 1; r < world; ++r) {
        const Entry& e = table[static_cast<size_t>(r)];
        View& x = v[static_cast<size_t>(r)];
        x.info = e.info;
        x.known = e.known;
        x.connected = e.connected;
        x.silence_s = seconds_between(e.known ? e.heard : start_time, now);
        x.p = e.progress;
        if (e.known) x.p.phase_age_s += seconds_between(e.progress_at, now);
      }
    }
    v[0] = View{self, true, true, 0, progress.snapshot()};

    std::vector<int> silent;
    for (int r = 1; r < world; ++r) {
      const View& x = v[static_cast<size_t>(r)];
      if (x.known && x.p.phase == Phase::Finished) continue;  // done and gone: not a hang
      if (x.silence_s > cfg.heartbeat_timeout_s) silent.push_back(r);
    }
    if (!silent.empty()) {
      // A node lost with all its ranks goes quiet for all of them at once, but their last
      // heartbeats came a little apart: name as well the ranks of a silent rank's host
      // that have been quiet for half the timeout, so that the diagnosis names the node.
      for (int r = 1; r < world; ++r) {
        const View& x = v[static_cast<size_t>(r)];
        if (std::find(silent.begin(), silent.end(), r) != silent.end() || !x.known) continue;
        if (x.p.phase == Phase::Finished) continue;
        if (x.silence_s <= std::max(2 * cfg.heartbeat_s, cfg.heartbeat_timeout_s / 2)) continue;
        const bool same_host = std::any_of(silent.begin(), silent.end(), [&](int s) {
          return v[static_cast<size_t>(s)].known && v[static_cast<size_t>(s)].info.host == x.info.host;
        });
        if (same_host) silent.push_back(r);
      }
      std::sort(silent.begin(), silent.end());
      return decide(silent_diagnosis(v, silent));
    }
    for (const View& x : v) {
      if (!x.known) return;  // not everyone here yet, and not for long
    }

    const double limit = cfg.progress_timeout_s;
    std::vector<int> waiting, stuck;
    for (int r = 0; r < world; ++r) {
      const ProgressSnapshot& p = v[static_cast<size_t>(r)].p;
      if (p.phase_age_s <= limit) continue;
      (p.phase == Phase::Collective ? waiting : stuck).push_back(r);
    }
    if (waiting.empty()) return;
    if (!stuck.empty()) return decide(stalled_diagnosis(v, waiting, stuck));
    if (static_cast<int>(waiting.size()) < world) return;  // the others may still join
    const ProgressSnapshot& first = v[0].p;
    const bool same = std::all_of(v.begin(), v.end(), [&](const View& x) {
      return x.p.waiting_seq == first.waiting_seq && x.p.waiting_kind == first.waiting_kind;
    });
    decide(same ? hung_diagnosis(v) : desync_diagnosis(v));
  }

  // Every other rank: is rank 0 still there?
  void check_coordinator() {
    const auto now = Clock::now();
    const double silence = seconds_between(last_from_coord, now);
    if (silence <= cfg.heartbeat_timeout_s) return;
    const ProgressSnapshot mine = progress.snapshot();
    if (mine.phase == Phase::Finished) return;
    Entry rank0;
    {
      std::lock_guard<std::mutex> lock(mu);
      rank0 = table[0];
    }
    if (rank0.known && rank0.progress.phase == Phase::Finished) return;
    Diagnosis d;
    d.kind = Diagnosis::Kind::CoordinatorSilent;
    d.ranks = {0};
    const std::string me = "this rank (rank " + std::to_string(self.rank) + ", " + where(self) + ") was in " +
                           describe(mine) + " for " + secs(mine.phase_age_s);
    if (!rank0.known) {
      d.text = "coordinator silent: rank 0 at " + advertised + " could not be reached within " +
               secs(cfg.heartbeat_timeout_s) + " (" + (last_connect_error.empty() ? "no answer" : last_connect_error) +
               "); " + me + ". Look at rank 0: did it start (its log, the scheduler), is " + advertised +
               " reachable from " + self.host + " (a firewall, the wrong network interface); " + kEndsNow + ".";
    } else {
      d.text = "coordinator silent: nothing from rank 0 (" + where(rank0.info) + ") for " + secs(silence) +
               " (the heartbeat timeout is " + secs(cfg.heartbeat_timeout_s) + "); it was last in " +
               describe(rank0.progress) + "; " + me + ". Look at " + look_at(rank0.info) +
               ": a stopped process (kill -STOP), a frozen or lost node, a network partition; " + kEndsNow + ".";
    }
    decide(std::move(d));
  }

  Diagnosis silent_diagnosis(const std::vector<View>& v, const std::vector<int>& silent) const {
    Diagnosis d;
    d.kind = Diagnosis::Kind::Silent;
    d.ranks = silent;
    std::string what, look;
    bool never = false;
    for (int r : silent) {
      const View& x = v[static_cast<size_t>(r)];
      if (!what.empty()) what += "; ";
      if (!look.empty()) look += " and ";
      if (!x.known) {
        never = true;
        what += "rank " + std::to_string(r) + " never connected in the " + secs(x.silence_s) + " since the start";
        look += "rank " + std::to_string(r);
        continue;
      }
      what += "rank " + std::to_string(r) + " (" + where(x.info) + ") " +
              (x.connected ? "has sent no heartbeat for " : "closed its connection and has been silent for ") +
              secs(x.silence_s) + ", last in " + describe(x.p);
      look += look_at(x.info);
    }
    d.text = "silent: " + what + " (the heartbeat timeout is " + secs(cfg.heartbeat_timeout_s) + "). Look at " +
             look + ": a stopped process (kill -STOP), a crashed one (its log), a frozen or lost node, a network " +
             "partition" +
             (never ? std::string(", a rank that did not start or cannot reach rank 0 at ") + advertised : "") +
             "; " + kEndsNow + ".";
    return d;
  }

  // "ranks 0,2 have waited 312 s in all-reduce #533 of step 88", one clause per collective.
  static std::string waiting_text(const std::vector<View>& v, const std::vector<int>& ranks) {
    std::vector<int> left = ranks;
    std::string s;
    while (!left.empty()) {
      const ProgressSnapshot& p = v[static_cast<size_t>(left.front())].p;
      const std::string what = collective_text(p);
      std::vector<int> group, rest;
      double age = 1e300;
      for (int r : left) {
        const ProgressSnapshot& q = v[static_cast<size_t>(r)].p;
        if (collective_text(q) == what) {
          group.push_back(r);
          age = std::min(age, q.phase_age_s);
        } else {
          rest.push_back(r);
        }
      }
      if (!s.empty()) s += "; ";
      s += rank_list(group) + (group.size() == 1 ? " has" : " have") + " waited " + secs(age) + " in " + what;
      left = rest;
    }
    return s;
  }

  Diagnosis stalled_diagnosis(const std::vector<View>& v, const std::vector<int>& waiting,
                              const std::vector<int>& stuck) const {
    Diagnosis d;
    d.kind = Diagnosis::Kind::Stalled;
    d.ranks = stuck;
    std::string who, look;
    for (int r : stuck) {
      const View& x = v[static_cast<size_t>(r)];
      if (!who.empty()) who += "; ";
      if (!look.empty()) look += " and ";
      who += "rank " + std::to_string(r) + " has been in " + describe(x.p) + " for " + secs(x.p.phase_age_s) + " (" +
             where(x.info) + ")";
      look += look_at(x.info);
    }
    d.text = "stalled: " + waiting_text(v, waiting) + "; " + who + ". Look at " + look +
             ": a stopped process (kill -STOP), a hung file system read, a stuck driver call, an endless loop "
             "(gdb -p PID shows where it is); " +
             kEndsNow + ".";
    return d;
  }

  Diagnosis desync_diagnosis(const std::vector<View>& v) const {
    Diagnosis d;
    d.kind = Diagnosis::Kind::Desync;
    for (int r = 0; r < world; ++r) d.ranks.push_back(r);
    d.text = "desynchronised: the ranks wait in different collectives: " + waiting_text(v, d.ranks) +
             ". The ranks issued different sequences of collectives (a data-dependent branch, ranks with different "
             "configs, data or builds): compare the ranks' logs around step " +
             std::to_string(v[0].p.step) + "; " + kEndsNow + ".";
    return d;
  }

  Diagnosis hung_diagnosis(const std::vector<View>& v) const {
    Diagnosis d;
    d.kind = Diagnosis::Kind::HungCollective;
    for (int r = 0; r < world; ++r) d.ranks.push_back(r);
    double age = 1e300;
    for (const View& x : v) age = std::min(age, x.p.phase_age_s);
    d.text = "hung collective: every rank has waited " + secs(age) + " in " + collective_text(v[0].p) +
             ", the same collective. The communication layer hangs (the network, NCCL or MPI, a GPU): look at the "
             "interconnect and the communication library's log (NCCL_DEBUG=INFO); " +
             kEndsNow + ".";
    return d;
  }

  // The verdict: rank 0 tells every connected rank first (for at most kVerdictGrace),
  // then calls on_hang; every other rank calls it at once.
  void decide(Diagnosis d) {
    if (decided) return;
    decided = true;
    check_timer.cancel();
    auto diag = std::make_shared<const Diagnosis>(std::move(d));
    if (self.rank != 0) return fire(*diag);
    auto left = std::make_shared<int>(0);
    const std::string frame = encode(*diag);
    for (const ConnPtr& c : by_rank) {
      if (!c || !c->open) continue;
      ++*left;
      send(c, frame, [this, left, diag] {
        if (--*left == 0) fire(*diag);
      });
    }
    if (*left == 0) return fire(*diag);
    verdict_timer.expires_after(kVerdictGrace);
    verdict_timer.async_wait([this, diag](error_code ec) {
      if (!ec) fire(*diag);
    });
  }

  void fire(const Diagnosis& d) {
    if (fired) return;
    fired = true;
    verdict_timer.cancel();
    try {
      on_hang(d);
    } catch (const std::exception& e) {
      log_line(std::string("on_hang threw: ") + e.what());
    } catch (...) {
      log_line("on_hang threw");
    }
  }

  std::vector<RankStatus> ranks() const {
    const auto now = Clock::now();
    std::vector<RankStatus> out;
    std::lock_guard<std::mutex> lock(mu);
    for (int r = 0; r < world; ++r) {
      const Entry& e = table[static_cast<size_t>(r)];
      RankStatus s;
      if (r == self.rank) {
        s.info = self;
        s.connected = true;
        s.progress = progress.snapshot();
      } else if (e.known || (self.rank == 0 && cfg.enabled)) {
        // Rank 0 lists every rank, connected or not; the others know only rank 0.
        s.info = e.info;
        s.connected = e.connected;
        s.heartbeat_age_s = e.known ? seconds_between(e.heard, now)
                                    : (started_at ? seconds_between(*started_at, now) : 0);
        s.progress = e.progress;
        if (e.known) s.progress.phase_age_s += seconds_between(e.progress_at, now);
      } else {
        continue;
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  void pause(bool p) {
    paused = p;
    if (!p) {
      // Back from a freeze: rank 0's silence while this rank slept is not its fault.
      asio::post(io, [this] { last_from_coord = Clock::now(); });
    }
  }

  const RankInfo self;
  const int world;
  const Progress& progress;
  const WatchdogConfig cfg;
  const std::string token;
  const std::function<void(const Diagnosis&)> on_hang;

  // First, so that it is destroyed last: the sockets and timers below belong to it.
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  tcp::acceptor acceptor{io};
  tcp::resolver resolver{io};
  asio::steady_timer check_timer{io}, beat_timer{io}, connect_timer{io}, accept_timer{io}, verdict_timer{io};
  std::thread thread;
  bool started = false;  // caller's thread
  std::atomic<bool> paused{false};

  // The control thread's.
  bool decided = false, fired = false;
  Clock::time_point start_time;
  std::string advertised;  // rank 0's endpoint
  std::set<ConnPtr> pending;
  std::vector<ConnPtr> by_rank;
  ConnPtr coord;
  std::string coord_host, coord_port, last_connect_error;
  double backoff_s = 0.05;
  Clock::time_point last_from_coord;

  // Every rank as last heard; ranks() reads it from any thread.
  struct Entry {
    RankInfo info;
    bool known = false;  // said hello
    bool connected = false;
    Clock::time_point heard, progress_at;
    ProgressSnapshot progress;
  };
  mutable std::mutex mu;
  std::vector<Entry> table;
  std::optional<Clock::time_point> started_at;
};

ControlPlane::ControlPlane(RankInfo self, int world_size, const Progress& progress, WatchdogConfig cfg,
                           std::string token, std::function<void(const Diagnosis&)> on_hang)
    : impl_(std::make_unique<Impl>(std::move(self), world_size, progress, cfg, std::move(token),
                                   std::move(on_hang))) {}

ControlPlane::~ControlPlane() = default;

std::string ControlPlane::listen(const std::string& bind_address, const std::string& advertise_host) {
  return impl_->listen(bind_address, advertise_host);
}

void ControlPlane::start(const std::string& rank0_endpoint) { impl_->start(rank0_endpoint); }

std::vector<RankStatus> ControlPlane::ranks() const { return impl_->ranks(); }

void ControlPlane::pause_heartbeats_for_test(bool paused) { impl_->pause(paused); }

}  // namespace dtrain::control
