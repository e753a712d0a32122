// The emulated device's NCCL (tests/emu/shim/nccl.h): the calls dtrain makes, checked the
// way a GPU run would reject them, and executed between ranks that are threads of one
// process or processes of one machine. It tests how dtrain calls NCCL, not NCCL: no
// rings, no channels, one simple protocol through shared memory.
//
// Note [Emulated NCCL]
// - The unique id names a fresh POSIX shared-memory segment ("/dtrain-nccl-<pid>-<n>-<random>"),
//   as NCCL's id holds the root's bootstrap address. Layout: Header, RankInfo x nranks,
//   then one staging slot of kChunk bytes per rank.
// - ncclCommInitRank: the first rank to arrive creates the segment (O_EXCL) at its full
//   size, writes the header and sets `ready`; the others map it and wait for that. A rank
//   claims its RankInfo (claimed twice: ncclInvalidUsage), publishes (host, device) and
//   counts itself in `joined`. The rank that completes the count unlinks the name, so
//   nothing stays in /dev/shm (the mappings live on); a rank that times out unlinks it
//   too. Then every rank checks that no two ranks share a device of one host, as NCCL
//   does after its bootstrap all-gather, so all of them report the same pair.
// - Waiting never spins: whoever changes shared state increments the shared `bell` and
//   wakes its futex (a shared futex, not FUTEX_PRIVATE, so it works across processes and
//   across separate mappings in one process); a waiter reads the bell, checks its
//   condition, and sleeps on the bell for at most kPoll.
// - Barrier k: a rank stores k in its `reached` and rings; the barrier is passed when every
//   rank's `reached` is >= k. The ranks missing at a timeout are exactly those below k.
// - A collective runs as an op on its stream (device::enqueue), in stream order, on the
//   stream's worker thread. It writes its signature (sequence number, kind, count, type,
//   op, root) into sig[seq & 1], passes a barrier and compares every rank's signature
//   with rank 0's (double buffered: no rank can get two collectives ahead of a reader).
//   Then, per chunk of at most kChunk bytes: copy this rank's part into its slot, barrier,
//   read every slot (reduce in rank order, or copy), barrier. Every rank reduces the same
//   values in the same order, so all get bit-identical results.
// - Errors while running (a mismatch, a timeout) are the comm's sticky async error, printed
//   once; the first one is also posted in the header, so peers waiting in a barrier stop
//   at once (ncclRemoteError) instead of timing out one by one. The op itself returns
//   normally: the real library reports these through ncclCommGetAsyncError.
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <nccl.h>

#include "ops/bf16.h"
#include "tests/emu/device/device.h"

namespace dev = dtrain::emu::device;

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kChunk = size_t{1} << 20;  // staging bytes per rank and chunk
constexpr int kMaxRanks = 1024;             // keeps the segment's size sane for a bad nranks
constexpr auto kPoll = std::chrono::milliseconds(100);
constexpr char kIdMagic[8] = {'d', 't', 'n', 'c', 'c', 'l', 'i', 'd'};
constexpr char kSegmentMagic[8] = {'d', 't', 'n', 'c', 'c', 'l', 's', 'g'};
constexpr const char* kTimeoutVar = "DTRAIN_EMU_NCCL_TIMEOUT_S";

static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free,
              "shared-memory atomics must be address-free");
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "the bell is a futex word");

// ---- the unique id and the shared segment --------------------------------------------

struct IdLayout {
  char magic[8];
  int32_t pid;
  uint32_t counter;
  uint64_t random;
  char name[96];  // the segment's name, NUL-terminated
};
static_assert(sizeof(IdLayout) <= NCCL_UNIQUE_ID_BYTES);

enum class Kind : int32_t { AllReduce = 1, Broadcast = 2, AllGather = 3 };

struct Signature {
  uint64_t seq = 0;
  uint64_t count = 0;
  int32_t kind = 0, dtype = 0, op = -1, root = -1;
  bool operator==(const Signature&) const = default;
};

struct alignas(64) RankInfo {
  std::atomic<uint32_t> claimed;
  std::atomic<uint32_t> published;  // pid, device and host below are written
  int32_t pid;
  int32_t device;
  char host[256];
  std::atomic<uint64_t> reached;  // barriers passed
  Signature sig[2];               // the current collective's, by seq & 1
};

struct alignas(64) Header {
  char magic[8];
  std::atomic<uint32_t> ready;  // the creator has written the fields below
  int32_t nranks;
  uint64_t bytes;
  std::atomic<uint32_t> joined;
  std::atomic<uint32_t> bell;     // rung (and futex-woken) on every change others wait for
  std::atomic<uint32_t> failure;  // 0 none, 1 being written, 2 written
  int32_t failed_rank;
  char failure_text[1024];
};

size_t header_bytes(int nranks) {
  const size_t raw = sizeof(Header) + static_cast<size_t>(nranks) * sizeof(RankInfo);
  return (raw + 4095) / 4096 * 4096;
}
size_t segment_bytes(int nranks) { return header_bytes(nranks) + static_cast<size_t>(nranks) * kChunk; }

void futex_wait(std::atomic<uint32_t>* word, uint32_t seen, Clock::duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, seen, &ts, nullptr, 0);
}
void futex_wake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}
void ring(Header* h) {
  h->bell.fetch_add(1, std::memory_order_acq_rel);
  futex_wake(&h->bell);
}

// Sleeps on `word` until `done()` or the deadline; false at the deadline.
template <typename Done>
bool wait_on(std::atomic<uint32_t>* word, Clock::time_point deadline, Done done) {
  for (;;) {
    const uint32_t seen = word->load(std::memory_order_acquire);
    if (done()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    futex_wait(word, seen, std::min<Clock::duration>(deadline - now, kPoll));
  }
}

// ---- names for messages --------------------------------------------------------------

size_t type_size(int t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
  }
  return 0;
}

std::string type_name(int t) {
  switch (t) {
    case ncclInt8: return "int8";
    case ncclUint8: return "uint8";
    case ncclInt32: return "int32";
    case ncclUint32: return "uint32";
    case ncclInt64: return "int64";
    case ncclUint64: return "uint64";
    case ncclFloat16: return "float16";
    case ncclFloat32: return "float32";
    case ncclFloat64: return "float64";
    case ncclBfloat16: return "bfloat16";
  }
  return "datatype " + std::to_string(t);
}

std::string op_name(int op) {
  switch (op) {
    case ncclSum: return "sum";
    case ncclProd: return "prod";
    case ncclMax: return "max";
    case ncclMin: return "min";
    case ncclAvg: return "avg";
  }
  return "op " + std::to_string(op);
}

const char* kind_name(int32_t kind) {
  switch (static_cast<Kind>(kind)) {
    case Kind::AllReduce: return "ncclAllReduce";
    case Kind::Broadcast: return "ncclBroadcast";
    case Kind::AllGather: return "ncclAllGather";
  }
  return "(no collective)";
}

std::string describe(const Signature& s) {
  std::string text = std::string(kind_name(s.kind)) + "(" + std::to_string(s.count) + " x " + type_name(s.dtype);
  if (s.kind == static_cast<int32_t>(Kind::AllReduce)) text += ", " + op_name(s.op);
  if (s.kind == static_cast<int32_t>(Kind::Broadcast)) text += ", root " + std::to_string(s.root);
  return text + ")";
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// ---- reductions ----------------------------------------------------------------------

// Integers wrap as on the GPU (two's complement), so they are added and multiplied as
// unsigned; bf16 is accumulated in float and rounded once.
template <typename T>
struct Acc {
  using type = T;
};
template <>
struct Acc<dtrain::ops::bf16> {
  using type = float;
};

template <typename T>
typename Acc<T>::type load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if constexpr (std::is_same_v<T, dtrain::ops::bf16>) {
    return dtrain::ops::bf16_to_float(v);
  } else {
    return v;
  }
}
template <typename T>
void store(unsigned char* p, typename Acc<T>::type a) {
  if constexpr (std::is_same_v<T, dtrain::ops::bf16>) {
    const dtrain::ops::bf16 v = dtrain::ops::float_to_bf16(a);
    std::memcpy(p, &v, sizeof v);
  } else {
    std::memcpy(p, &a, sizeof a);
  }
}

template <typename A>
A add(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}
template <typename A>
A mul(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    // uint32_t, not a promoted int, for the narrow types: no signed overflow.
    using U = std::conditional_t<(sizeof(A) < 4), uint32_t, std::make_unsigned_t<A>>;
    return static_cast<A>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
  } else {
    return a * b;
  }
}

template <typename T, typename Fold>
void fold_ranks(const std::vector<const unsigned char*>& in, unsigned char* out, size_t n, bool average, Fold f) {
  using A = typename Acc<T>::type;
  const int nranks = static_cast<int>(in.size());
  for (size_t i = 0; i < n; ++i) {
    const size_t at = i * sizeof(T);
    A acc = load<T>(in[0] + at);
    for (int r = 1; r < nranks; ++r) acc = f(acc, load<T>(in[static_cast<size_t>(r)] + at));
    if (average) acc = static_cast<A>(acc / static_cast<A>(nranks));
    store<T>(out + at, acc);
  }
}

template <typename T>
void reduce_typed(ncclRedOp_t op, const std::vector<const unsigned char*>& in, unsigned char* out, size_t n) {
  using A = typename Acc<T>::type;
  switch (op) {
    case ncclSum: return fold_ranks<T>(in, out, n, false, add<A>);
    case ncclAvg: return fold_ranks<T>(in, out, n, true, add<A>);
    case ncclProd: return fold_ranks<T>(in, out, n, false, mul<A>);
    case ncclMax: return fold_ranks<T>(in, out, n, false, [](A a, A b) { return b > a ? b : a; });
    case ncclMin: return fold_ranks<T>(in, out, n, false, [](A a, A b) { return b < a ? b : a; });
    case ncclNumOps: break;
  }
}

void reduce(ncclDataType_t t, ncclRedOp_t op, const std::vector<const unsigned char*>& in, unsigned char* out,
            size_t n) {
  switch (t) {
    case ncclInt8: return reduce_typed<int8_t>(op, in, out, n);
    case ncclUint8: return reduce_typed<uint8_t>(op, in, out, n);
    case ncclInt32: return reduce_typed<int32_t>(op, in, out, n);
    case ncclUint32: return reduce_typed<uint32_t>(op, in, out, n);
    case ncclInt64: return reduce_typed<int64_t>(op, in, out, n);
    case ncclUint64: return reduce_typed<uint64_t>(op, in, out, n);
    case ncclFloat32: return reduce_typed<float>(op, in, out, n);
    case ncclFloat64: return reduce_typed<double>(op, in, out, n);
    case ncclBfloat16: return reduce_typed<dtrain::ops::bf16>(op, in, out, n);
    case ncclFloat16: case ncclNumTypes: break;  // refused when the call was made
  }
}

// ---- last errors -----------------------------------------------------------------------

// The calling thread's last failed call; ncclGetLastError(nullptr) returns it (NCCL keeps
// one per process, but ranks as threads would overwrite each other's).
thread_local std::string t_last_error;

ncclResult_t fail_call(ncclResult_t rc, const std::string& text) {
  t_last_error = text;
  std::fprintf(stderr, "NCCL (emulated) error: %s\n", text.c_str());
  return rc;
}

}  // namespace

// ---- the communicator ----------------------------------------------------------------

struct ncclComm {
  int rank = 0, nranks = 0, device = 0;
  double timeout_s = 120;
  std::string name;  // the segment's, for messages
  void* map = nullptr;
  size_t map_bytes = 0;
  Header* header = nullptr;
  RankInfo* ranks = nullptr;
  unsigned char* slots = nullptr;

  std::mutex issue_mu;
  uint64_t issued = 0;  // sequence numbers given out when the calls were made

  std::atomic<bool> aborted{false};
  uint64_t phase = 0;  // barriers passed; touched only by the collective that has its turn

  std::mutex mu;                // guards what follows
  std::condition_variable turn;  // next_to_run changed
  uint64_t next_to_run = 1;
  ncclResult_t error = ncclSuccess;
  std::string error_text;

  ~ncclComm() {
    if (map) munmap(map, map_bytes);
  }
  Clock::time_point deadline() const {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  }
  unsigned char* slot(int r) const { return slots + static_cast<size_t>(r) * kChunk; }
};

namespace {

std::mutex g_live_mu;
std::set<const ncclComm*> g_live;  // communicators made and not yet destroyed

bool live(const ncclComm* c) {
  std::lock_guard<std::mutex> lock(g_live_mu);
  return c && g_live.count(c);
}

double timeout_from_env() {
  const char* v = std::getenv(kTimeoutVar);
  if (!v || !*v) return 120;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (end == v || *end || !(s > 0)) {
    std::fprintf(stderr, "NCCL (emulated): %s=%s is not a positive number of seconds; using 120\n", kTimeoutVar, v);
    return 120;
  }
  return s;
}

std::optional<std::string> segment_name(const ncclUniqueId& id) {
  IdLayout l;
  std::memcpy(&l, id.internal, sizeof l);
  if (std::memcmp(l.magic, kIdMagic, sizeof kIdMagic) != 0) return std::nullopt;
  const char* end = static_cast<const char*>(std::memchr(l.name, 0, sizeof l.name));
  if (!end || l.name[0] != '/' || end == l.name + 1 || std::strchr(l.name + 1, '/')) return std::nullopt;
  return std::string(l.name);
}

// Creates or opens the segment and maps it, the header ready. nullopt on success, else
// the failure (the caller frees c).
std::optional<std::pair<ncclResult_t, std::string>> attach(ncclComm& c, Clock::time_point deadline) {
  const std::string call = "ncclCommInitRank (rank " + std::to_string(c.rank) + "): ";
  const size_t want = segment_bytes(c.nranks);
  auto system_error = [&](const char* what) {
    return std::make_pair(ncclSystemError, call + what + "(" + c.name + "): " + std::strerror(errno));
  };
  for (;;) {
    int fd = shm_open(c.name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    const bool creator = fd >= 0;
    if (creator) {
      if (ftruncate(fd, static_cast<off_t>(want)) != 0) {
        auto e = system_error("ftruncate");
        close(fd);
        shm_unlink(c.name.c_str());
        return e;
      }
    } else {
      if (errno != EEXIST) return system_error("shm_open");
      fd = shm_open(c.name.c_str(), O_RDWR, 0);
      if (fd < 0) {
        if (errno == ENOENT) continue;  // unlinked in between (its group finished or failed): start afresh
        return system_error("shm_open");
      }
    }
    // The creator sizes the segment right after creating it; until then its size is 0.
    struct stat st {};
    for (auto pause = std::chrono::microseconds(50);; pause = std::min(pause * 2, std::chrono::microseconds(20000))) {
      if (fstat(fd, &st) != 0) {
        auto e = system_error("fstat");
        close(fd);
        return e;
      }
      if (st.st_size > 0) break;
      if (Clock::now() >= deadline) {
        close(fd);
        return std::make_pair(ncclSystemError, call + "the segment " + c.name + " was never sized by its creator");
      }
      std::this_thread::sleep_for(pause);
    }
    const size_t bytes = static_cast<size_t>(st.st_size);
    void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      auto e = system_error("mmap");
      close(fd);
      return e;
    }
    close(fd);
    c.map = map;
    c.map_bytes = bytes;
    c.header = static_cast<Header*>(map);
    if (creator) {
      std::memcpy(c.header->magic, kSegmentMagic, sizeof kSegmentMagic);
      c.header->nranks = c.nranks;
      c.header->bytes = want;
      c.header->ready.store(1, std::memory_order_release);
      futex_wake(&c.header->ready);
    } else if (!wait_on(&c.header->ready, deadline, [&] { return c.header->ready.load() != 0; })) {
      return std::make_pair(ncclSystemError, call + "the segment " + c.name + " was never initialised by its creator");
    }
    if (bytes < sizeof(Header) || std::memcmp(c.header->magic, kSegmentMagic, sizeof kSegmentMagic) != 0) {
      return std::make_pair(ncclInvalidArgument, call + c.name + " is not a communicator's segment");
    }
    if (c.header->nranks != c.nranks || c.header->bytes != bytes) {
      return std::make_pair(ncclInvalidArgument, call + "called with nranks " + std::to_string(c.nranks) +
                                                     ", but the communicator of this unique id was created with " +
                                                     std::to_string(c.header->nranks) +
                                                     " ranks; every rank must pass the same nranks");
    }
    c.ranks = reinterpret_cast<RankInfo*>(static_cast<unsigned char*>(map) + sizeof(Header));
    c.slots = static_cast<unsigned char*>(map) + header_bytes(c.nranks);
    return std::nullopt;
  }
}

// Claims the rank, waits for the others and checks their devices.
std::optional<std::pair<ncclResult_t, std::string>> join(ncclComm& c, Clock::time_point deadline) {
  const std::string call = "ncclCommInitRank (rank " + std::to_string(c.rank) + " of " + std::to_string(c.nranks) +
                           "): ";
  RankInfo& me = c.ranks[c.rank];
  uint32_t unclaimed = 0;
  if (!me.claimed.compare_exchange_strong(unclaimed, 1)) {
    return std::make_pair(ncclInvalidUsage, call + "rank " + std::to_string(c.rank) +
                                                " was already claimed by another caller with this unique id "
                                                "(two ranks were given the same rank number)");
  }
  me.pid = static_cast<int32_t>(getpid());
  me.device = c.device;
  const std::string host = dev::host_name();
  std::snprintf(me.host, sizeof me.host, "%s", host.c_str());
  me.published.store(1, std::memory_order_release);
  if (c.header->joined.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<uint32_t>(c.nranks)) {
    shm_unlink(c.name.c_str());  // all mapped it: the name has served
  }
  ring(c.header);
  const auto all_joined = [&] { return c.header->joined.load(std::memory_order_acquire) == uint32_t(c.nranks); };
  if (!wait_on(&c.header->bell, deadline, all_joined)) {
    shm_unlink(c.name.c_str());  // nobody is coming to finish it; a late rank makes a new one and times out too
    std::vector<int> missing;
    for (int r = 0; r < c.nranks; ++r) {
      if (!c.ranks[r].published.load(std::memory_order_acquire)) missing.push_back(r);
    }
    return std::make_pair(ncclSystemError, call + "timed out after " + seconds(c.timeout_s) + " (" + kTimeoutVar +
                                               ") waiting for " + rank_list(missing) +
                                               " to join; every rank must call ncclCommInitRank with the same "
                                               "unique id and nranks");
  }
  for (int a = 0; a < c.nranks; ++a) {
    for (int b = a + 1; b < c.nranks; ++b) {
      const RankInfo &x = c.ranks[a], &y = c.ranks[b];
      if (x.device == y.device && std::strcmp(x.host, y.host) == 0) {
        return std::make_pair(ncclInvalidUsage, call + "Duplicate GPU detected: rank " + std::to_string(a) +
                                                    " and rank " + std::to_string(b) + " both on cuda:" +
                                                    std::to_string(x.device) + " of host " + x.host +
                                                    "; each rank of a host needs its own device");
      }
    }
  }
  return std::nullopt;
}

// ---- running a collective ------------------------------------------------------------

struct Failure {
  ncclResult_t rc;
  std::string text;
};

// Makes `f` the comm's sticky error (the first one wins), prints it once and posts it for
// the peers.
void fail_comm(ncclComm& c, const Failure& f) {
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.error != ncclSuccess) return;
    c.error = f.rc;
    c.error_text = f.text;
  }
  std::fprintf(stderr, "NCCL (emulated) error on rank %d (cuda:%d): %s\n", c.rank, c.device, f.text.c_str());
  Header* h = c.header;
  uint32_t none = 0;
  if (h->failure.compare_exchange_strong(none, 1)) {
    h->failed_rank = c.rank;
    std::snprintf(h->failure_text, sizeof h->failure_text, "%s", f.text.c_str());
    h->failure.store(2, std::memory_order_release);
    ring(h);
  }
}

std::optional<Failure> barrier(ncclComm& c, const Signature& sig) {
  const uint64_t k = ++c.phase;
  Header* h = c.header;
  c.ranks[c.rank].reached.store(k, std::memory_order_release);
  ring(h);
  std::vector<int> missing;
  std::optional<Failure> stop;
  const auto passed = [&] {
    missing.clear();
    for (int r = 0; r < c.nranks; ++r) {
      if (c.ranks[r].reached.load(std::memory_order_acquire) < k) missing.push_back(r);
    }
    if (missing.empty()) return true;
    if (c.aborted.load()) {
      stop = Failure{ncclInvalidUsage, "collective #" + std::to_string(sig.seq) + " " + describe(sig) +
                                           ": the communicator was aborted (ncclCommAbort)"};
      return true;
    }
    if (h->failure.load(std::memory_order_acquire) == 2 && h->failed_rank != c.rank) {
      stop = Failure{ncclRemoteError, "collective #" + std::to_string(sig.seq) + " " + describe(sig) + ": rank " +
                                          std::to_string(h->failed_rank) + " failed: " + h->failure_text};
      return true;
    }
    return false;
  };
  if (!wait_on(&h->bell, c.deadline(), passed)) {
    return Failure{ncclSystemError, "collective #" + std::to_string(sig.seq) + " " + describe(sig) + " on rank " +
                                        std::to_string(c.rank) + ": " + rank_list(missing) + " of " +
                                        std::to_string(c.nranks) + " did not arrive within " + seconds(c.timeout_s) +
                                        " (" + kTimeoutVar +
                                        "); a rank skipped the collective or stopped. Every rank must issue the "
                                        "same collectives in the same order"};
  }
  return stop;
}

std::optional<Failure> check_signatures(const ncclComm& c, const Signature& mine) {
  const size_t b = mine.seq & 1;
  const Signature& first = c.ranks[0].sig[b];
  std::string differ;
  for (int r = 1; r < c.nranks; ++r) {
    const Signature& s = c.ranks[r].sig[b];
    if (!(s == first)) differ += ", rank " + std::to_string(r) + " called " + describe(s);
  }
  if (differ.empty()) return std::nullopt;
  return Failure{ncclInvalidUsage, "collective #" + std::to_string(mine.seq) + ": rank 0 called " + describe(first) +
                                       differ + "; every rank must issue the same collectives in the same order"};
}

std::optional<Failure> execute(ncclComm& c, const Signature& sig, const void* send, void* recv) {
  c.ranks[c.rank].sig[sig.seq & 1] = sig;
  if (auto f = barrier(c, sig)) return f;
  if (auto f = check_signatures(c, sig)) return f;

  const auto type = static_cast<ncclDataType_t>(sig.dtype);
  const size_t elem = type_size(sig.dtype);
  const size_t per_chunk = kChunk / elem;
  const auto* in = static_cast<const unsigned char*>(send);
  auto* out = static_cast<unsigned char*>(recv);
  std::vector<const unsigned char*> slots(static_cast<size_t>(c.nranks));
  for (int r = 0; r < c.nranks; ++r) slots[static_cast<size_t>(r)] = c.slot(r);

  for (size_t first = 0; first < sig.count; first += per_chunk) {
    const size_t n = std::min(per_chunk, sig.count - first);
    const size_t at = first * elem, bytes = n * elem;
    switch (static_cast<Kind>(sig.kind)) {
      case Kind::AllReduce:
        std::memcpy(c.slot(c.rank), in + at, bytes);
        if (auto f = barrier(c, sig)) return f;
        reduce(type, static_cast<ncclRedOp_t>(sig.op), slots, out + at, n);
        break;
      case Kind::Broadcast:
        if (c.rank == sig.root) {
          std::memcpy(c.slot(c.rank), in + at, bytes);
          if (out != in) std::memmove(out + at, in + at, bytes);
        }
        if (auto f = barrier(c, sig)) return f;
        if (c.rank != sig.root) std::memcpy(out + at, c.slot(sig.root), bytes);
        break;
      case Kind::AllGather:
        // In place, this rank's part of recvbuff is sendbuff: the copy back writes the same bytes.
        std::memcpy(c.slot(c.rank), in + at, bytes);
        if (auto f = barrier(c, sig)) return f;
        for (int r = 0; r < c.nranks; ++r) {
          std::memcpy(out + static_cast<size_t>(r) * sig.count * elem + at, c.slot(r), bytes);
        }
        break;
    }
    // Nobody refills a slot before every rank has read this chunk.
    if (auto f = barrier(c, sig)) return f;
  }
  return std::nullopt;
}

// The enqueued op: waits for its turn (the comm's collectives run in the order they were
// issued, even from several streams), then runs unless the comm has failed.
void run(ncclComm& c, const Signature& sig, const void* send, void* recv) {
  bool skip = false;
  {
    std::unique_lock<std::mutex> lock(c.mu);
    if (!c.turn.wait_until(lock, c.deadline(), [&] { return c.next_to_run == sig.seq; })) {
      lock.unlock();
      fail_comm(c, {ncclInvalidUsage, "collective #" + std::to_string(sig.seq) + " " + describe(sig) +
                                          " waited " + seconds(c.timeout_s) + " for collective #" +
                                          std::to_string(sig.seq - 1) +
                                          " of the same communicator, issued earlier on another stream that "
                                          "has not run it"});
      lock.lock();
      c.turn.wait(lock, [&] { return c.next_to_run == sig.seq; });
    }
    skip = c.error != ncclSuccess || c.aborted.load();
  }
  if (!skip) {
    if (auto f = execute(c, sig, send, recv)) fail_comm(c, *f);
  }
  std::lock_guard<std::mutex> lock(c.mu);
  ++c.next_to_run;
  c.turn.notify_all();
}

// The checks NCCL makes when a collective is called, then the enqueue. `in_place_at` is
// where sendbuff lies in recvbuff in the in-place form (0, or this rank's part for
// all-gather).
ncclResult_t issue(const char* call, Signature sig, const void* send, size_t send_bytes, void* recv,
                   size_t recv_bytes, size_t in_place_at, ncclComm_t comm, cudaStream_t stream) {
  const std::string at = std::string(call) + ": ";
  if (!live(comm)) return fail_call(ncclInvalidArgument, at + "comm is null or was destroyed");
  ncclComm& c = *comm;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.error != ncclSuccess) {
      const ncclResult_t rc = c.error;
      const std::string text = at + "the communicator of rank " + std::to_string(c.rank) +
                               " has failed (abort it): " + c.error_text;
      return fail_call(rc, text);
    }
  }
  if (c.aborted.load()) return fail_call(ncclInvalidUsage, at + "the communicator was aborted");
  try {
    if (sig.count > 0) {
      if (send) dev::require_device(call, "sendbuff", send, send_bytes, c.device);
      dev::require_device(call, "recvbuff", recv, recv_bytes, c.device);
      // NCCL does not check this; it silently computes garbage. dtrain should never do it.
      const auto s = reinterpret_cast<uintptr_t>(send), r = reinterpret_cast<uintptr_t>(recv);
      if (send && s < r + recv_bytes && r < s + send_bytes && s != r + in_place_at) {
        return fail_call(ncclInvalidArgument, at + "sendbuff and recvbuff overlap without being the in-place form "
                                                   "(sendbuff == recvbuff + " + std::to_string(in_place_at) +
                                                   " bytes)");
      }
    }
    const int stream_device = dev::stream_device(stream);
    if (stream_device != c.device) {
      return fail_call(ncclInvalidUsage, at + "the stream belongs to cuda:" + std::to_string(stream_device) +
                                             ", but the communicator of rank " + std::to_string(c.rank) +
                                             " is on cuda:" + std::to_string(c.device));
    }
    std::lock_guard<std::mutex> lock(c.issue_mu);
    sig.seq = c.issued + 1;
    dev::enqueue(stream, call, [comm, sig, send, recv] { run(*comm, sig, send, recv); });
    c.issued = sig.seq;
  } catch (const dev::Error& e) {
    return fail_call(ncclInvalidArgument, e.what());
  }
  return ncclSuccess;
}

// Datatype, count and op checks shared by the collectives; the byte count of `count`
// elements, or the failure.
std::optional<ncclResult_t> check_type(const char* call, size_t count, ncclDataType_t type, size_t factor,
                                       size_t* bytes) {
  const std::string at = std::string(call) + ": ";
  if (static_cast<int>(type) < 0 || static_cast<int>(type) >= ncclNumTypes) {
    return fail_call(ncclInvalidArgument, at + "invalid datatype " + std::to_string(static_cast<int>(type)));
  }
  if (type == ncclFloat16) {
    return fail_call(ncclInvalidArgument, at + "float16 is not supported by the emulated NCCL (the host has no "
                                               "half type; dtrain reduces bf16, f32 and f64)");
  }
  const size_t elem = type_size(type);
  if (count > SIZE_MAX / elem / factor) {
    return fail_call(ncclInvalidArgument, at + "count " + std::to_string(count) + " x " + type_name(type) +
                                              " overflows the address space");
  }
  *bytes = count * elem;
  return std::nullopt;
}

}  // namespace

// ---- the API -------------------------------------------------------------------------

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error (ncclSuccess)";
    case ncclUnhandledCudaError: return "unhandled cuda error (ncclUnhandledCudaError)";
    case ncclSystemError: return "unhandled system error (ncclSystemError)";
    case ncclInternalError: return "internal error (ncclInternalError)";
    case ncclInvalidArgument: return "invalid argument (ncclInvalidArgument)";
    case ncclInvalidUsage: return "invalid usage (ncclInvalidUsage)";
    case ncclRemoteError: return "remote process exited or there was a network error (ncclRemoteError)";
    case ncclInProgress: return "NCCL operation in progress (ncclInProgress)";
    case ncclNumResults: break;
  }
  return "unknown result code";
}

const char* ncclGetLastError(ncclComm_t comm) {
  if (comm && live(comm)) {
    std::lock_guard<std::mutex> lock(comm->mu);
    // Set once and never changed: the pointer stays valid while the comm lives.
    if (comm->error != ncclSuccess) return comm->error_text.c_str();
  }
  return t_last_error.c_str();
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return fail_call(ncclInvalidArgument, "ncclGetUniqueId: id is null");
  static std::atomic<uint32_t> counter{0};
  static std::mutex random_mu;
  static std::mt19937_64 random{std::random_device{}()};
  IdLayout l{};
  std::memcpy(l.magic, kIdMagic, sizeof kIdMagic);
  l.pid = static_cast<int32_t>(getpid());
  l.counter = counter.fetch_add(1);
  {
    // A process forked after a first id has the same generator state: mix in the pid.
    std::lock_guard<std::mutex> lock(random_mu);
    l.random = random() ^ (static_cast<uint64_t>(l.pid) << 32);
  }
  std::snprintf(l.name, sizeof l.name, "/dtrain-nccl-%d-%u-%016llx", static_cast<int>(l.pid), l.counter,
                static_cast<unsigned long long>(l.random));
  std::memset(id->internal, 0, sizeof id->internal);
  std::memcpy(id->internal, &l, sizeof l);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  const char* call = "ncclCommInitRank: ";
  if (!comm) return fail_call(ncclInvalidArgument, std::string(call) + "comm is null");
  *comm = nullptr;
  if (nranks < 1 || nranks > kMaxRanks) {
    return fail_call(ncclInvalidArgument, call + ("nranks " + std::to_string(nranks)) + " is not in [1, " +
                                              std::to_string(kMaxRanks) + "]");
  }
  if (rank < 0 || rank >= nranks) {
    return fail_call(ncclInvalidArgument, call + ("rank " + std::to_string(rank)) + " is not in [0, " +
                                              std::to_string(nranks) + ")");
  }
  const std::optional<std::string> name = segment_name(id);
  if (!name) {
    return fail_call(ncclInvalidArgument,
                     std::string(call) + "the unique id was not made by ncclGetUniqueId (or was corrupted on its "
                                         "way to this rank)");
  }
  auto c = std::make_unique<ncclComm>();
  c->rank = rank;
  c->nranks = nranks;
  c->device = dev::current();
  c->timeout_s = timeout_from_env();
  c->name = *name;
  const auto deadline = c->deadline();
  if (auto f = attach(*c, deadline)) return fail_call(f->first, f->second);
  if (auto f = join(*c, deadline)) return fail_call(f->first, f->second);
  std::lock_guard<std::mutex> lock(g_live_mu);
  g_live.insert(c.get());
  *comm = c.release();
  return ncclSuccess;
}

namespace {

// Destroy and abort: the comm's queued collectives must have run before it is freed (NCCL's
// destroy finalizes: it waits for them too); abort makes them fail fast instead.
ncclResult_t release(const char* call, ncclComm_t comm, bool abort) {
  if (!comm) return ncclSuccess;  // as NCCL: destroying null is a no-op
  if (!live(comm)) return fail_call(ncclInvalidArgument, std::string(call) + ": comm was already destroyed");
  if (abort) {
    comm->aborted.store(true);
    ring(comm->header);
  }
  uint64_t issued = 0;
  {
    std::lock_guard<std::mutex> lock(comm->issue_mu);
    issued = comm->issued;
  }
  {
    std::unique_lock<std::mutex> lock(comm->mu);
    comm->turn.wait(lock, [&] { return comm->next_to_run > issued; });
  }
  {
    std::lock_guard<std::mutex> lock(g_live_mu);
    g_live.erase(comm);
  }
  delete comm;
  return ncclSuccess;
}

}  // namespace

ncclResult_t ncclCommDestroy(ncclComm_t comm) { return release("ncclCommDestroy", comm, false); }
ncclResult_t ncclCommAbort(ncclComm_t comm) { return release("ncclCommAbort", comm, true); }

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (!live(comm)) return fail_call(ncclInvalidArgument, "ncclCommGetAsyncError: comm is null or was destroyed");
  if (!async_error) return fail_call(ncclInvalidArgument, "ncclCommGetAsyncError: async_error is null");
  std::lock_guard<std::mutex> lock(comm->mu);
  *async_error = comm->error;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(ncclComm_t comm, int* count) {
  if (!live(comm) || !count) return fail_call(ncclInvalidArgument, "ncclCommCount: comm or count is invalid");
  *count = comm->nranks;
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(ncclComm_t comm, int* rank) {
  if (!live(comm) || !rank) return fail_call(ncclInvalidArgument, "ncclCommUserRank: comm or rank is invalid");
  *rank = comm->rank;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  const char* call = "ncclAllReduce";
  size_t bytes = 0;
  if (auto rc = check_type(call, count, datatype, 1, &bytes)) return *rc;
  if (static_cast<int>(op) < 0 || static_cast<int>(op) >= ncclNumOps) {
    return fail_call(ncclInvalidArgument, std::string(call) + ": invalid reduction op " +
                                              std::to_string(static_cast<int>(op)));
  }
  if (count > 0 && !sendbuff) return fail_call(ncclInvalidArgument, std::string(call) + ": sendbuff is null");
  Signature sig;
  sig.kind = static_cast<int32_t>(Kind::AllReduce);
  sig.count = count;
  sig.dtype = datatype;
  sig.op = op;
  return issue(call, sig, sendbuff, bytes, recvbuff, bytes, 0, comm, stream);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  const char* call = "ncclBroadcast";
  size_t bytes = 0;
  if (auto rc = check_type(call, count, datatype, 1, &bytes)) return *rc;
  if (!live(comm)) return fail_call(ncclInvalidArgument, std::string(call) + ": comm is null or was destroyed");
  if (root < 0 || root >= comm->nranks) {
    return fail_call(ncclInvalidArgument, std::string(call) + ": root " + std::to_string(root) +
                                              " is not a rank of a communicator of " +
                                              std::to_string(comm->nranks));
  }
  // Only the root's sendbuff is read.
  const bool is_root = comm->rank == root;
  if (is_root && count > 0 && !sendbuff) {
    return fail_call(ncclInvalidArgument, std::string(call) + ": sendbuff of the root is null");
  }
  Signature sig;
  sig.kind = static_cast<int32_t>(Kind::Broadcast);
  sig.count = count;
  sig.dtype = datatype;
  sig.root = root;
  return issue(call, sig, is_root ? sendbuff : nullptr, bytes, recvbuff, bytes, 0, comm, stream);
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream) {
  const char* call = "ncclAllGather";
  if (!live(comm)) return fail_call(ncclInvalidArgument, std::string(call) + ": comm is null or was destroyed");
  size_t bytes = 0;
  if (auto rc = check_type(call, sendcount, datatype, static_cast<size_t>(comm->nranks), &bytes)) return *rc;
  if (sendcount > 0 && !sendbuff) return fail_call(ncclInvalidArgument, std::string(call) + ": sendbuff is null");
  Signature sig;
  sig.kind = static_cast<int32_t>(Kind::AllGather);
  sig.count = sendcount;
  sig.dtype = datatype;
  return issue(call, sig, sendbuff, bytes, recvbuff, bytes * static_cast<size_t>(comm->nranks),
               bytes * static_cast<size_t>(comm->rank), comm, stream);
}
