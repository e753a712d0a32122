// Rank 0's live status: see status_server.h.
#include "launcher/control/status_server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "launcher/train/common.h"

namespace dtrain::control {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A request must arrive whole within this time: a client that connects and sends nothing
// (or trickles bytes) holds a socket and a little memory for no longer than this.
constexpr std::chrono::seconds kRequestTimeout{5};
constexpr std::chrono::seconds kWriteTimeout{5};
// The server's requests are a line and a few headers; anything much larger is not one.
constexpr uint32_t kHeaderLimit = 8 * 1024;
constexpr uint64_t kBodyLimit = 4 * 1024;
// Beyond this many open connections new ones are closed at once, so that a flood of idle
// clients costs bounded memory; the status is cheap to ask again.
constexpr int kMaxConnections = 64;
constexpr std::chrono::seconds kDrainTimeout{1};
constexpr size_t kDrainLimit = 256 * 1024;

std::string prom_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// A label value of the text exposition format: backslash, double quote and line feed escaped.
std::string prom_label(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += ch;
    }
  }
  return out + "\"";
}

std::string host_url(const asio::ip::address& a, int port) {
  const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return "http://" + host + ":" + std::to_string(port);
}

// A v4 address that reached a dual-stack socket arrives as ::ffff:a.b.c.d; compare it as a.b.c.d.
asio::ip::address unmapped(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  return a;
}

bool same_token(const std::string& given, const std::string& token) {
  if (token.empty() || given.size() != token.size()) return false;
  // Constant time in the contents, so that the answer's timing does not reveal a prefix.
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ token[i]);
  return diff == 0;
}

void log_error(const std::string& what) {
  std::fprintf(stderr, "dtrain: status server: %s\n", what.c_str());
  std::fflush(stderr);
}

}  // namespace

std::string status_json(const JobStatus& job, const std::vector<RankStatus>& ranks) {
  using launcher::json_number;
  using launcher::json_string;
  std::ostringstream os;
  os << "{\"run\":" << json_string(job.run) << ",\"step\":" << job.step << ",\"total_steps\":" << job.total_steps
     << ",\"epoch\":" << json_number(job.epoch) << ",\"rate\":" << json_number(job.rate)
     << ",\"rate_unit\":" << json_string(job.rate_unit) << ",\"eta_s\":" << json_number(job.eta_s)
     << ",\"last_checkpoint\":" << json_string(job.last_checkpoint) << ",\"elapsed_s\":" << json_number(job.elapsed_s)
     << ",\"finished\":" << (job.finished ? "true" : "false") << ",\"ranks\":[";
  for (size_t i = 0; i < ranks.size(); ++i) {
    const RankStatus& r = ranks[i];
    const ProgressSnapshot& p = r.progress;
    os << (i ? "," : "") << "{\"rank\":" << r.info.rank << ",\"host\":" << json_string(r.info.host)
       << ",\"pid\":" << r.info.pid << ",\"connected\":" << (r.connected ? "true" : "false")
       << ",\"heartbeat_age_s\":" << json_number(r.heartbeat_age_s) << ",\"step\":" << p.step
       << ",\"phase\":" << json_string(phase_name(p.phase)) << ",\"detail\":" << p.detail
       << ",\"collectives_issued\":" << p.issued << ",\"collectives_done\":" << p.done
       << ",\"phase_age_s\":" << json_number(p.phase_age_s) << ",\"doing\":" << json_string(describe(p)) << "}";
  }
  os << "]}\n";
  return os.str();
}

std::string metrics_text(const JobStatus& job, const std::vector<RankStatus>& ranks) {
  std::ostringstream os;
  auto family = [&](const char* name, const char* type, const char* help) {
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  family("dtrain_step", "gauge", "The training step being worked on (1-based, 0 before the first).");
  os << "dtrain_step " << job.step << "\n";
  family("dtrain_total_steps", "gauge", "The steps the run trains for.");
  os << "dtrain_total_steps " << job.total_steps << "\n";
  family("dtrain_epoch", "gauge", "The epoch, fractional: steps done over steps per epoch.");
  os << "dtrain_epoch " << prom_number(job.epoch) << "\n";
  family("dtrain_throughput", "gauge", "Units per second over the last log interval; the label names the unit.");
  os << "dtrain_throughput{unit=" << prom_label(job.rate_unit) << "} " << prom_number(job.rate) << "\n";
  family("dtrain_eta_seconds", "gauge", "Estimated seconds until the last step, at the current rate.");
  os << "dtrain_eta_seconds " << prom_number(job.eta_s) << "\n";
  family("dtrain_elapsed_seconds", "gauge", "Seconds since the run started (this process).");
  os << "dtrain_elapsed_seconds " << prom_number(job.elapsed_s) << "\n";
  family("dtrain_finished", "gauge", "1 once the run has done its last step, else 0.");
  os << "dtrain_finished " << (job.finished ? 1 : 0) << "\n";

  family("dtrain_rank_connected", "gauge", "1 while the rank's control connection to rank 0 is up, else 0.");
  for (const RankStatus& r : ranks) {
    os << "dtrain_rank_connected{rank=\"" << r.info.rank << "\"} " << (r.connected ? 1 : 0) << "\n";
  }
  family("dtrain_rank_heartbeat_age_seconds", "gauge", "Seconds since rank 0 last heard the rank's heartbeat.");
  for (const RankStatus& r : ranks) {
    os << "dtrain_rank_heartbeat_age_seconds{rank=\"" << r.info.rank << "\",host=" << prom_label(r.info.host) << "} "
       << prom_number(r.heartbeat_age_s) << "\n";
  }
  family("dtrain_rank_step", "gauge", "The step the rank works on.");
  for (const RankStatus& r : ranks) {
    os << "dtrain_rank_step{rank=\"" << r.info.rank << "\"} " << r.progress.step << "\n";
  }
  family("dtrain_rank_phase", "gauge", "1 for the phase the rank is in (one series per rank).");
  for (const RankStatus& r : ranks) {
    os << "dtrain_rank_phase{rank=\"" << r.info.rank << "\",phase=" << prom_label(phase_name(r.progress.phase))
       << "} 1\n";
  }
  family("dtrain_rank_phase_age_seconds", "gauge", "Seconds the rank has been in its current phase.");
  for (const RankStatus& r : ranks) {
    os << "dtrain_rank_phase_age_seconds{rank=\"" << r.info.rank << "\"} " << prom_number(r.progress.phase_age_s)
       << "\n";
  }
  family("dtrain_rank_collectives_completed_total", "counter", "Collectives the rank has completed.");
  for (const RankStatus& r : ranks) {
    os << "dtrain_rank_collectives_completed_total{rank=\"" << r.info.rank << "\"} " << r.progress.done << "\n";
  }
  return os.str();
}

// Note [Status server]
// One thread runs an io_context; every connection is a Session that reads one request
// (bounded in size and time), answers it and closes. The callbacks run on that thread,
// between reads, so they must be quick (they copy what the training and control threads
// published). Nothing a client does can throw out of a handler: errors close that
// connection only, and the thread's loop logs and resumes on anything unexpected.
namespace {

struct ServerState {
  StatusConfig cfg;
  std::string token;
  std::function<JobStatus()> job;
  std::function<std::vector<RankStatus>()> ranks;
  std::function<void()> on_stop;
  std::vector<asio::ip::address> allowed;  // besides loopback
  std::string url;
  int connections = 0;  // server thread only
  // Declared last, destroyed first: the io_context frees the sessions it still holds, and
  // they count themselves out of `connections` above.
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread thread;

  void accept();
  bool allowed_address(const asio::ip::address& a) const {
    const asio::ip::address u = unmapped(a);
    if (u.is_loopback()) return true;
    for (const asio::ip::address& x : allowed) {
      if (unmapped(x) == u) return true;
    }
    return false;
  }
};

}  // namespace

struct StatusServer::Impl : ServerState {};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ServerState& server) : stream_(std::move(socket)), server_(server) {
    ++server_.connections;
    parser_.header_limit(kHeaderLimit);
    parser_.body_limit(kBodyLimit);
  }
  ~Session() { --server_.connections; }

  void start() {
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      return close();  // gone or silent: nobody to answer
    }
    // The rest of a refused request may still be arriving: drain it after the answer, or
    // closing with unread bytes resets the connection and the client loses the answer.
    drain_ = true;
    if (ec == http::error::body_limit) return reply(http::status::payload_too_large, "request body too large\n");
    if (ec == http::error::header_limit) {
      return reply(http::status::request_header_fields_too_large, "request headers too large\n");
    }
    if (ec) return reply(http::status::bad_request, "malformed request: " + ec.message() + "\n");
    drain_ = false;
    handle(parser_.get());
  }

  void handle(const http::request<http::string_body>& req) {
    beast::error_code ec;
    const tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    if (ec || !server_.allowed_address(peer.address())) {
      return reply(http::status::forbidden, "this address is not in the status server's allow list\n");
    }
    std::string path(req.target());
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    const std::string where = std::string(req.method_string()) + " " + path;
    try {
      if (path == "/status" || path == "/metrics") {
        if (req.method() != http::verb::get && req.method() != http::verb::head) return not_allowed("GET, HEAD");
        const JobStatus job = server_.job();
        const std::vector<RankStatus> ranks = server_.ranks();
        if (path == "/status") return reply(http::status::ok, status_json(job, ranks), "application/json", &req);
        return reply(http::status::ok, metrics_text(job, ranks), "text/plain; version=0.0.4; charset=utf-8", &req);
      }
      if (path == "/stop") {
        if (req.method() != http::verb::post) return not_allowed("POST");
        const auto auth = req.find(http::field::authorization);
        if (auth == req.end()) {
          return reply(http::status::unauthorized, "{\"error\":\"POST /stop needs Authorization: Bearer TOKEN\"}\n",
                       "application/json");
        }
        const std::string value(auth->value());
        const std::string prefix = "Bearer ";
        if (value.rfind(prefix, 0) != 0 || !same_token(value.substr(prefix.size()), server_.token)) {
          return reply(http::status::forbidden, "{\"error\":\"wrong token\"}\n", "application/json");
        }
        server_.on_stop();
        return reply(http::status::accepted,
                     "{\"stopping\":true,\"message\":\"the job checkpoints at the next step boundary and stops\"}\n",
                     "application/json");
      }
      return reply(http::status::not_found, "no such page; try /status, /metrics or POST /stop\n");
    } catch (const std::exception& e) {
      log_error(where + " failed: " + e.what());
      return reply(http::status::internal_server_error, std::string("internal error: ") + e.what() + "\n");
    } catch (...) {
      log_error(where + " failed: unknown exception");
      return reply(http::status::internal_server_error, "internal error\n");
    }
  }

  void not_allowed(const char* allow) {
    res_.set(http::field::allow, allow);
    reply(http::status::method_not_allowed, std::string("method not allowed; use ") + allow + "\n");
  }

  void reply(http::status status, std::string body, const char* type = "text/plain; charset=utf-8",
             const http::request<http::string_body>* req = nullptr) {
    res_.result(status);
    res_.version(11);
    res_.set(http::field::server, "dtrain");
    res_.set(http::field::content_type, type);
    res_.set(http::field::cache_control, "no-store");
    res_.keep_alive(false);  // one request per connection: nothing to keep track of between them
    res_.body() = std::move(body);
    res_.prepare_payload();
    if (req && req->method() == http::verb::head) res_.body().clear();  // the length stays the GET's
    stream_.expires_after(kWriteTimeout);
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || !self->drain_) return self->close();
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      self->stream_.expires_after(kDrainTimeout);
      self->drain();
    });
  }

  // Reads and drops what the client still sends, until it closes, kDrainLimit bytes or kDrainTimeout.
  void drain() {
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kDrainLimit) return self->close();
      self->drain();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  ServerState& server_;
  beast::flat_buffer buffer_{kHeaderLimit + kBodyLimit};
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> res_;
  bool drain_ = false;
  size_t drained_ = 0;
  std::array<char, 4096> scratch_;
};

}  // namespace

void ServerState::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;  // closing
    if (!ec) {
      if (connections >= kMaxConnections) {
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<Session>(std::move(socket), *this)->start();
      }
    }
    accept();
  });
}

StatusServer::StatusServer(StatusConfig cfg, std::string token, std::function<JobStatus()> job,
                           std::function<std::vector<RankStatus>()> ranks, std::function<void()> on_stop)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.cfg = std::move(cfg);
  s.token = std::move(token);
  s.job = std::move(job);
  s.ranks = std::move(ranks);
  s.on_stop = std::move(on_stop);
  for (const std::string& a : s.cfg.allow) {
    beast::error_code ec;
    s.allowed.push_back(asio::ip::make_address(a, ec));
    DT_CHECK_AS(!ec, ConfigError, "status server: allow entry '", a, "' is not an IP address (", ec.message(), ")");
  }
  beast::error_code ec;
  const asio::ip::address bind = asio::ip::make_address(s.cfg.bind_address, ec);
  DT_CHECK_AS(!ec, ConfigError, "status server: bind address '", s.cfg.bind_address,
              "' is not an IP address (e.g. 127.0.0.1, 0.0.0.0 or ::)");
  DT_CHECK_AS(s.cfg.port >= 0 && s.cfg.port <= 65535, ConfigError, "status server: port ", s.cfg.port,
              " is out of range (0-65535; 0 picks a free one)");
  const tcp::endpoint at(bind, static_cast<unsigned short>(s.cfg.port));
  s.acceptor.open(at.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(at, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  DT_CHECK_AS(!ec, IoError, "status server: cannot listen on ", host_url(bind, s.cfg.port), ": ", ec.message(),
              s.cfg.port != 0 ? " (is another job using that port? port 0 picks a free one)" : "");
  s.url = host_url(bind, s.acceptor.local_endpoint().port());
  s.accept();
  s.thread = std::thread([&s] {
    for (;;) {
      try {
        s.ioc.run();
        return;
      } catch (const std::exception& e) {
        log_error(std::string("unexpected error: ") + e.what());
      } catch (...) {
        log_error("unexpected error");
      }
    }
  });
}

StatusServer::~StatusServer() {
  // stop() abandons the pending reads and writes; their sessions (and sockets) are freed
  // when the io_context is destroyed, after the thread has left run().
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string StatusServer::url() const { return impl_->url; }

namespace {

// Writes `text` to `path` through a temporary file created with `mode` (O_EXCL: a fresh
// file, never one that existed with other permissions) and renamed over it, so that a
// reader sees the old file or the new one, never half of one.
void write_atomically(const std::filesystem::path& path, const std::string& text, mode_t mode) {
  const std::string tmp = path.string() + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover of a killed process with our pid
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  DT_CHECK_AS(fd >= 0, IoError, "cannot create ", tmp, ": ", std::strerror(errno));
  // The umask may have removed bits from `mode` (status.json is meant to be readable by
  // anyone); it can never have added any.
  bool ok = ::fchmod(fd, mode) == 0;
  size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  const int err = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : err;
    ::unlink(tmp.c_str());
    DT_THROW(IoError, "cannot write ", path.string(), ": ", std::strerror(e));
  }
}

std::string read_whole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

}  // namespace

void write_run_files(const std::string& run_dir, const std::string& url, const std::string& token) {
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  DT_CHECK_AS(!ec, IoError, "cannot create the run directory ", run_dir, ": ", ec.message());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown");
  const std::string status = "{\"url\":" + launcher::json_string(url) + ",\"host\":" + launcher::json_string(host) +
                             ",\"pid\":" + std::to_string(::getpid()) + "}\n";
  // The token first: a reader that finds the new status.json finds its token too.
  write_atomically(std::filesystem::path(run_dir) / "control.token", token + "\n", 0600);
  write_atomically(std::filesystem::path(run_dir) / "status.json", status, 0644);
}

RunFiles read_run_files(const std::string& run_dir, bool need_token) {
  namespace fs = std::filesystem;
  DT_CHECK_AS(fs::is_directory(run_dir), IoError, "no run directory ", run_dir,
              ": name the job's checkpoint.dir (where it writes status.json)");
  const fs::path status = fs::path(run_dir) / "status.json";
  DT_CHECK_AS(fs::exists(status), IoError, "no status.json in ", run_dir, ": is the job running with checkpoint.dir = ",
              run_dir, "? (rank 0 writes it when its status server starts)");
  RunFiles out;
  try {
    std::istringstream in(read_whole(status));
    boost::property_tree::ptree pt;
    boost::property_tree::read_json(in, pt);
    out.url = pt.get<std::string>("url");
  } catch (const std::exception& e) {
    DT_THROW(IoError, status.string(), " is not a status file of dtrain (", e.what(),
             "); it is rewritten when the job starts");
  }
  DT_CHECK_AS(out.url.rfind("http://", 0) == 0, IoError, status.string(), " names no http:// address (url '", out.url,
              "')");
  if (!need_token) return out;
  const fs::path token = fs::path(run_dir) / "control.token";
  DT_CHECK_AS(fs::exists(token), IoError, "no control.token in ", run_dir,
              ": the job writes it beside status.json when its status server starts");
  std::ifstream in(token);
  DT_CHECK_AS(in.good(), IoError, "cannot read ", token.string(), ": ", std::strerror(errno),
              " (it is readable by the job's user only: run this as that user)");
  std::getline(in, out.token);
  while (!out.token.empty() && std::isspace(static_cast<unsigned char>(out.token.back()))) out.token.pop_back();
  DT_CHECK_AS(!out.token.empty(), IoError, token.string(), " is empty; it is rewritten when the job starts");
  return out;
}

}  // namespace dtrain::control
