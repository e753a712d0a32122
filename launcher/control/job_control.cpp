// The run's watchdog and status: job_control.h.
#include "launcher/control/job_control.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "launcher/train/common.h"

namespace dtrain::control {
namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    const auto a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a != std::string::npos) out.push_back(item.substr(a, b - a + 1));
  }
  return out;
}

// The IPv4 address of network interface `name`; ConfigError naming the ones there are.
std::string interface_address(const std::string& name) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) DT_THROW(IoError, "watchdog.interface: cannot list the network interfaces");
  std::string found, names;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {0};
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
    if (name == a->ifa_name && found.empty()) found = text;
    names += (names.empty() ? "" : ", ") + std::string(a->ifa_name) + " (" + text + ")";
  }
  ::freeifaddrs(list);
  if (found.empty()) {
    DT_THROW(ConfigError, "watchdog.interface = '", name, "': no such interface with an IPv4 address on this host; "
             "there are: ", names.empty() ? "none" : names);
  }
  return found;
}

// The loopback address `host` resolves to here, or "" when it resolves to none (or not at
// all: the other nodes may still resolve it).
std::string loopback_address_of(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return "";
  std::string lo;
  for (addrinfo* r = res; r != nullptr && lo.empty(); r = r->ai_next) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (r->ai_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(r->ai_addr);
      if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) lo = ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    } else if (r->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(r->ai_addr);
      if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) lo = ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    }
  }
  ::freeaddrinfo(res);
  return lo;
}

std::string ranks_json(const std::vector<int>& ranks) {
  std::string s = "[";
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(ranks[i]);
  }
  return s + "]";
}

}  // namespace

JobControl::JobControl(launcher::World& world, const launcher::Config& cfg, const std::string& run_name,
                       std::function<void()> request_stop)
    : world_(world) {
  job_.run = run_name;
  const auto& w = cfg.watchdog;
  WatchdogConfig wd;
  wd.enabled = w.enabled;
  wd.heartbeat_s = w.heartbeat_s;
  wd.heartbeat_timeout_s = w.heartbeat_timeout_s;
  wd.progress_timeout_s = w.progress_timeout_s;
  // A world of one has no one to wait for and no one to watch it: the status server alone.
  if (world.size() == 1) wd.enabled = false;
  auto make_plane = [&](const std::string& token) {
    plane_ = std::make_unique<ControlPlane>(RankInfo{world.rank(), world.host(), static_cast<int>(::getpid())},
                                            world.size(), world.progress(), wd, token,
                                            [this](const Diagnosis& d) { on_hang(d); });
  };
  // Rank 0 makes the token and listens; both reach every rank over the control group.
  std::string shared;
  std::exception_ptr error;
  if (world.rank() == 0) {
    try {
      const std::string token = make_token();
      make_plane(token);
      // The others connect to this name: rank 0's host name must resolve to an address
      // they can reach (docs/MULTINODE.md), or watchdog.advertise names one that does.
      std::string advertise = w.advertise;
      if (advertise.empty() && !w.interface.empty()) advertise = interface_address(w.interface);
      if (advertise.empty()) advertise = world.host();
      if (wd.enabled && world.hosts() > 1) {
        if (const std::string lo = loopback_address_of(advertise); !lo.empty()) {
          DT_THROW(ConfigError, "watchdog: rank 0 would advertise '", advertise, "', which resolves to the loopback "
                   "address ", lo, " on ", world.host(), ": the ranks on the other ", world.hosts() - 1,
                   " node(s) cannot reach it there; set watchdog.interface (the network the nodes share, e.g. "
                   "eth0) or watchdog.advertise (a name or address they can reach); docs/MULTINODE.md");
        }
      }
      const std::string endpoint = wd.enabled ? plane_->listen(w.address, advertise) : "";
      shared = token + " " + endpoint;
    } catch (...) {
      error = std::current_exception();
    }
  }
  world.check_all_ok(error, "control plane set-up");
  shared = world.share_from_rank0(shared);
  const auto space = shared.find(' ');
  const std::string token = shared.substr(0, space), endpoint = shared.substr(space + 1);
  if (world.rank() != 0) make_plane(token);
  plane_->start(endpoint);
  if (world.rank() == 0 && w.status) {
    StatusConfig sc;
    sc.bind_address = w.status_address;
    sc.port = static_cast<int>(w.status_port);
    sc.allow = split_commas(w.status_allow);
    status_ = std::make_unique<StatusServer>(
        sc, token,
        [this] {
          std::lock_guard<std::mutex> lock(mu_);
          return job_;
        },
        [this] { return plane_->ranks(); }, std::move(request_stop));
    if (!cfg.checkpoint_dir.empty()) write_run_files(cfg.checkpoint_dir, status_->url(), token);
  }
}

JobControl::~JobControl() {
  status_.reset();
  plane_.reset();
}

void JobControl::publish(const JobStatus& status) {
  std::lock_guard<std::mutex> lock(mu_);
  job_ = status;
}

void JobControl::set_record_writer(std::function<void(const std::string&)> write) {
  std::lock_guard<std::mutex> lock(mu_);
  write_record_ = std::move(write);
}

std::string JobControl::status_url() const { return status_ ? status_->url() : ""; }

void JobControl::on_hang(const Diagnosis& d) {
  // On the control thread, while the training thread may be blocked in a collective:
  // say why, record it, release the collective, and end this process.
  std::fprintf(stderr, "\nwatchdog (rank %d on %s): %s\nwatchdog: ending this rank with exit code %d\n",
               world_.rank(), world_.host().c_str(), d.text.c_str(), kExitHung);
  std::fflush(stderr);
  std::function<void(const std::string&)> write;
  {
    std::lock_guard<std::mutex> lock(mu_);
    write = write_record_;
  }
  if (write) {
    write("{\"kind\":\"watchdog\",\"diagnosis\":" + launcher::json_string(kind_name(d.kind)) +
          ",\"ranks\":" + ranks_json(d.ranks) + ",\"rank\":" + std::to_string(world_.rank()) +
          ",\"text\":" + launcher::json_string(d.text) + "}");
  }
  // `dtrain submit`'s batch shell learns of the watchdog from this file too: srun reports
  // the frozen rank's kill, not this exit code.
  if (const char* marker = std::getenv("DTRAIN_WATCHDOG_MARKER"); marker != nullptr && *marker != '\0') {
    if (std::FILE* f = std::fopen(marker, "w")) {
      std::fprintf(f, "%s\n", d.text.c_str());
      std::fclose(f);
    }
  }
  world_.group().abort();
  std::fflush(stdout);
  ::_exit(kExitHung);
}

}  // namespace dtrain::control
