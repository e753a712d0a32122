// `dtrain status` and `dtrain stop`: clients of rank 0's status server
// (launcher/control/status_server.h). See commands.h.
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "launcher/cli/args.h"
#include "launcher/cli/commands.h"
#include "launcher/control/status_server.h"
#include "launcher/train/common.h"

namespace dtrain::cli {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace pt = boost::property_tree;
using tcp = asio::ip::tcp;

// Rank 0 answers from memory in microseconds; a job that takes longer is wedged or gone.
constexpr std::chrono::seconds kTimeout{5};

constexpr const char* kStatusEpilog =
    "TARGET is the job's run directory (its checkpoint.dir, where rank 0 writes status.json with\n"
    "the server's address), HOST:PORT, or http://HOST:PORT; without it, the current directory.\n"
    "The summary says the step, epoch, throughput, ETA and last checkpoint; the table says what\n"
    "every rank does, for how long, and when rank 0 last heard from it (docs/WATCHDOG.md).\n"
    "\n"
    "Examples:\n"
    "  dtrain status runs/cnn\n"
    "  dtrain status node17:8471 --json\n"
    "\n"
    "Exit codes: 0 the job answered, 1 nothing answers (the job may have ended) or no status.json,\n"
    "2 bad usage.\n";

constexpr const char* kStopEpilog =
    "Asks the job to checkpoint at the next step boundary and stop, as SIGTERM would. RUN_DIR is\n"
    "the job's checkpoint.dir: status.json there says where rank 0 listens, and control.token\n"
    "(readable by the job's user only) proves that you may stop it.\n"
    "\n"
    "Example:\n"
    "  dtrain stop runs/cnn\n"
    "\n"
    "Exit codes: 0 the job accepted, 1 it refused the token, nothing answers, or a file is\n"
    "missing, 2 bad usage.\n";

struct Url {
  std::string text, host, port;
};

Url parse_url(const std::string& url) {
  static const std::regex re(R"(^http://(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+):([0-9]{1,5})/?$)");
  std::smatch m;
  DT_CHECK_AS(std::regex_match(url, m, re), ConfigError, "'", url, "' is not an address http://HOST:PORT");
  Url u{url, m[1], m[2]};
  if (u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  if (u.text.back() == '/') u.text.pop_back();
  return u;
}

// TARGET of `dtrain status`: a run directory, HOST:PORT or a URL.
Url resolve_target(const std::string& target) {
  if (target.rfind("http://", 0) == 0) return parse_url(target);
  if (std::filesystem::is_directory(target)) return parse_url(control::read_run_files(target, false).url);
  static const std::regex host_port(R"(^(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+):[0-9]{1,5}$)");
  DT_CHECK_AS(std::regex_match(target, host_port), ConfigError, "dtrain status: '", target,
              "' is neither a directory nor HOST:PORT; name the job's run directory (its checkpoint.dir)");
  return parse_url("http://" + target);
}

struct Reply {
  int status = 0;
  std::string reason, body;
};

// One HTTP/1.1 request, bounded in time at every stage: the job's server may be gone, or
// its machine unreachable, and the command must say so rather than hang.
Reply request(const Url& url, http::verb verb, const std::string& path, const std::string& token = "") {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  http::request<http::empty_body> req{verb, path, 11};
  req.set(http::field::host, url.host + ":" + url.port);
  req.set(http::field::user_agent, "dtrain");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.prepare_payload();
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> res;
  res.body_limit(16 * 1024 * 1024);
  beast::error_code failed;
  const char* stage = "connect";
  bool done = false;

  resolver.async_resolve(url.host, url.port, [&](beast::error_code ec, tcp::resolver::results_type found) {
    if (ec) {
      failed = ec;
      stage = "resolve";
      return;
    }
    stream.expires_after(kTimeout);
    stream.async_connect(found, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) {
        failed = ec;
        return;
      }
      stage = "send";
      http::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) {
          failed = ec;
          return;
        }
        stage = "answer";
        http::async_read(stream, buffer, res, [&](beast::error_code ec, size_t) {
          failed = ec;
          done = !ec;
        });
      });
    });
  });
  ioc.run_for(3 * kTimeout);  // the name lookup has no timeout of its own
  if (!done && !failed) failed = beast::error::timeout;
  if (failed) {
    const std::string why = failed == beast::error::timeout
                                ? "no answer within " + std::to_string(kTimeout.count()) + " s"
                                : failed.message();
    if (std::string(stage) == "answer") {
      DT_THROW(IoError, url.text, " accepted the connection but gave no answer (", why,
               "): the job may be ending or its machine overloaded; try again");
    }
    DT_THROW(IoError, "nothing answers at ", url.text, " (", stage, ": ", why,
             "): the job may have ended, or its address is not reachable from here");
  }
  const auto& msg = res.get();
  return {static_cast<int>(msg.result_int()), std::string(msg.reason()), msg.body()};
}

double number(const pt::ptree& t, const std::string& key) {
  const auto v = t.get_optional<double>(key);  // null (not finite) reads as absent
  return v ? *v : std::nan("");
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "?";
  return launcher::format("%.*f", digits, v);
}

// "1234", "1.23k", "4.56M": throughput at a glance.
std::string rate_text(double v) {
  if (!std::isfinite(v)) return "?";
  if (v >= 1e6) return launcher::format("%.2fM", v / 1e6);
  if (v >= 1e4) return launcher::format("%.1fk", v / 1e3);
  return launcher::format("%.4g", v);
}

void print_status(const std::string& body) {
  pt::ptree t;
  try {
    std::istringstream in(body);
    pt::read_json(in, t);
  } catch (const std::exception& e) {
    DT_THROW(IoError, "the job's /status is not JSON (", e.what(), "); is that address a dtrain job?");
  }
  const int64_t step = t.get<int64_t>("step", 0), total = t.get<int64_t>("total_steps", 0);
  std::string line = "run " + t.get<std::string>("run", "?") + ": step " + std::to_string(step) + "/" +
                     std::to_string(total);
  if (total > 0) line += " (" + fixed(100.0 * static_cast<double>(step) / static_cast<double>(total), 1) + "%)";
  line += ", epoch " + fixed(number(t, "epoch"), 2) + ", " + rate_text(number(t, "rate")) + " " +
          t.get<std::string>("rate_unit", "") + ", ";
  line += t.get<std::string>("finished", "false") == "true" ? std::string("finished")
                                                            : "ETA " + launcher::duration_text(number(t, "eta_s"));
  line += ", elapsed " + launcher::duration_text(number(t, "elapsed_s"));
  std::printf("%s\n", line.c_str());
  const std::string ckpt = t.get<std::string>("last_checkpoint", "");
  std::printf("last checkpoint: %s\n", ckpt.empty() ? "none yet" : ckpt.c_str());

  std::vector<std::vector<std::string>> rows = {{"rank", "host", "pid", "step", "heartbeat", "for", "doing"}};
  if (auto ranks = t.get_child_optional("ranks")) {
    for (const auto& [key, r] : *ranks) {
      const bool connected = r.get<std::string>("connected", "false") == "true";
      rows.push_back({r.get<std::string>("rank", "?"), r.get<std::string>("host", "?"), r.get<std::string>("pid", "?"),
                      r.get<std::string>("step", "?"),
                      connected ? fixed(number(r, "heartbeat_age_s"), 1) + "s ago"
                                : "lost " + launcher::duration_text(number(r, "heartbeat_age_s")) + " ago",
                      launcher::duration_text(number(r, "phase_age_s")), r.get<std::string>("doing", "?")});
    }
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string out;
    for (size_t c = 0; c < row.size(); ++c) {
      // Numbers right-aligned, words left; the last column unpadded.
      const bool right = c == 0 || c == 2 || c == 3 || c == 4 || c == 5;
      const std::string pad(width[c] - row[c].size(), ' ');
      if (c + 1 == row.size()) {
        out += row[c];
      } else {
        out += (right ? pad + row[c] : row[c] + pad) + "  ";
      }
    }
    std::printf("%s\n", out.c_str());
  }
}

}  // namespace

int status_main(const std::vector<std::string>& args) {
  ArgParser p("dtrain status", "Shows a running job's progress and what each of its ranks is doing.");
  p.add_positional("TARGET", "the job's run directory, HOST:PORT or http://HOST:PORT (default: .)", false);
  p.add_flag("json", "print the server's JSON as it came (for scripts)");
  p.set_epilog(kStatusEpilog);
  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  const Url url = resolve_target(p.has("TARGET") ? p.get("TARGET") : ".");
  const Reply r = request(url, http::verb::get, "/status");
  DT_CHECK_AS(r.status == 200, IoError, url.text, "/status answered ", r.status, " ", r.reason, ": ", r.body);
  if (p.flag("json")) {
    std::printf("%s", r.body.c_str());
    if (!r.body.empty() && r.body.back() != '\n') std::printf("\n");
    return 0;
  }
  print_status(r.body);
  return 0;
}

int stop_main(const std::vector<std::string>& args) {
  ArgParser p("dtrain stop", "Asks a running job to checkpoint and stop.");
  p.add_positional("RUN_DIR", "the job's run directory (its checkpoint.dir)");
  p.set_epilog(kStopEpilog);
  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  const std::string dir = p.get("RUN_DIR");
  const control::RunFiles files = control::read_run_files(dir, true);
  const Url url = parse_url(files.url);
  const Reply r = request(url, http::verb::post, "/stop", files.token);
  std::string said = r.body;
  while (!said.empty() && std::isspace(static_cast<unsigned char>(said.back()))) said.pop_back();
  // 403 is also the answer to an address outside the server's allow list: only a token
  // refusal blames the files.
  if (r.status == 401 || (r.status == 403 && said.find("token") != std::string::npos)) {
    DT_THROW(IoError, "the job at ", url.text, " refused the token of ",
             (std::filesystem::path(dir) / "control.token").string(), " (", r.status, " ", r.reason,
             "): those files are not that job's (left by an earlier run of ", dir, "?); nothing was stopped");
  }
  DT_CHECK_AS(r.status == 200 || r.status == 202, IoError, url.text, "/stop answered ", r.status, " ", r.reason, ": ",
              said, "; nothing was stopped");
  std::printf("stop requested at %s: the job checkpoints at the next step boundary and ends ('dtrain status %s' "
              "shows it)\n",
              url.text.c_str(), dir.c_str());
  return 0;
}

}  // namespace dtrain::cli
