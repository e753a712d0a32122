// Checkpoint files: see checkpoint.h, Note [Checkpoint commit].
#include "core/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/io/h5.h"

namespace dtrain::ckpt {

namespace fs = std::filesystem;

// ---- XXH64 -----------------------------------------------------------------------------

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian hosts only (x86-64, aarch64)
  return v;
}
inline uint32_t read32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t round64(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = rotl(acc, 31);
  return acc * kP1;
}
inline uint64_t merge64(uint64_t acc, uint64_t val) {
  acc ^= round64(0, val);
  return acc * kP1 + kP4;
}

}  // namespace

Xxh64::Xxh64() : v_{kP1 + kP2, kP2, 0, 0 - kP1} {}

void Xxh64::update(const void* data, size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  total_ += n;
  if (buffered_ > 0) {
    size_t take = std::min(n, 32 - buffered_);
    std::memcpy(buf_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    n -= take;
    if (buffered_ < 32) return;
    for (int i = 0; i < 4; ++i) v_[i] = round64(v_[i], read64(buf_ + 8 * i));
    buffered_ = 0;
  }
  uint64_t v0 = v_[0], v1 = v_[1], v2 = v_[2], v3 = v_[3];
  while (n >= 32) {
    v0 = round64(v0, read64(p));
    v1 = round64(v1, read64(p + 8));
    v2 = round64(v2, read64(p + 16));
    v3 = round64(v3, read64(p + 24));
    p += 32;
    n -= 32;
  }
  v_[0] = v0, v_[1] = v1, v_[2] = v2, v_[3] = v3;
  std::memcpy(buf_, p, n);
  buffered_ = n;
}

uint64_t Xxh64::digest() const {
  uint64_t h;
  if (total_ >= 32) {
    h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
    for (int i = 0; i < 4; ++i) h = merge64(h, v_[i]);
  } else {
    h = v_[2] + kP5;  // v_[2] is the seed (0)
  }
  h += total_;
  const unsigned char* p = buf_;
  size_t n = buffered_;
  while (n >= 8) {
    h ^= round64(0, read64(p));
    h = rotl(h, 27) * kP1 + kP4;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    h ^= static_cast<uint64_t>(read32(p)) * kP1;
    h = rotl(h, 23) * kP2 + kP3;
    p += 4;
    n -= 4;
  }
  while (n > 0) {
    h ^= (*p) * kP5;
    h = rotl(h, 11) * kP1;
    ++p;
    --n;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// ---- POSIX file helpers ----------------------------------------------------------------

namespace {

std::string errno_text() { return std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void close_checked(const std::string& path) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) DT_THROW(IoError, "checkpoint: closing '", path, "' failed: ", errno_text());
  }

 private:
  int fd_;
};

void fsync_path(const std::string& path, bool directory) {
  Fd fd(::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) DT_THROW(IoError, "checkpoint: cannot open '", path, "' to fsync it: ", errno_text());
  if (::fsync(fd.get()) != 0) DT_THROW(IoError, "checkpoint: fsync of '", path, "' failed: ", errno_text());
}

void rename_checked(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    DT_THROW(IoError, "checkpoint: cannot rename '", from, "' to '", to, "': ", errno_text());
  }
}

// Writes `text` to `path` atomically and durably: path.tmp, fsync, rename, fsync dir.
void write_text_atomic(const std::string& path, const std::string& text, const std::string& dir) {
  std::string tmp = path + ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) DT_THROW(IoError, "checkpoint: cannot create '", tmp, "': ", errno_text());
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) DT_THROW(IoError, "checkpoint: writing '", tmp, "' failed: ", errno_text());
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) DT_THROW(IoError, "checkpoint: fsync of '", tmp, "' failed: ", errno_text());
    fd.close_checked(tmp);
  }
  rename_checked(tmp, path);
  fsync_path(dir, true);
}

std::string read_small_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  std::string s;
  char buf[1024];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && s.size() < 65536) s.append(buf, n);
  std::fclose(f);
  return s;
}

std::string marker_path_for(const std::string& path) {
  fs::path p(path);
  std::string name = p.filename().string();
  if (name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0) name.resize(name.size() - 3);
  return (p.parent_path() / (name + ".ok")).string();
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

int64_t as_i64(uint64_t v) {
  int64_t r;
  std::memcpy(&r, &v, 8);
  return r;
}
uint64_t as_u64(int64_t v) {
  uint64_t r;
  std::memcpy(&r, &v, 8);
  return r;
}

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

uint64_t hash_file(const std::string& path, uint64_t* size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) DT_THROW(IoError, "checkpoint: cannot open '", path, "': ", errno_text());
  Xxh64 h;
  std::vector<unsigned char> buf(8 << 20);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) DT_THROW(IoError, "checkpoint: reading '", path, "' failed: ", errno_text());
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  if (size) *size = total;
  return h.digest();
}

std::string file_name(int64_t step) { return "step-" + std::to_string(step) + ".h5"; }
std::string marker_name(int64_t step) { return "step-" + std::to_string(step) + ".ok"; }

std::optional<int64_t> step_of(const std::string& name) {
  if (name.size() < 9 || name.rfind("step-", 0) != 0 || name.compare(name.size() - 3, 3, ".h5") != 0) return {};
  std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return {};
  return std::stoll(digits);
}

// ---- write -----------------------------------------------------------------------------

std::string write(const std::string& dir, const Contents& c, const StageHook& hook) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) DT_THROW(IoError, "checkpoint: cannot create the directory '", dir, "': ", ec.message());
  const int64_t step = c.trainer.step;
  const std::string final_path = (fs::path(dir) / file_name(step)).string();
  const std::string tmp = final_path + ".tmp";
  const std::string marker = (fs::path(dir) / marker_name(step)).string();
  auto stage = [&](const char* s) {
    if (hook) hook(s);
  };
  bool renamed = false;  // step-<N>.h5 is the new file (the old marker is gone)
  try {
    {
      io::H5File f = io::H5File::create(tmp);
      for (const auto& [name, t] : c.model) f.write("/model/" + name, t);
      for (const auto& [name, t] : c.optimizer) f.write("/optimizer/" + name, t);
      for (const RngStream& r : c.rng) {
        Tensor s = Tensor::from_vector<int64_t>({as_i64(r.state.seed), as_i64(r.state.offset)}, {2});
        f.write("/rng/rank" + std::to_string(r.rank) + "/" + r.name, s);
      }
      const TrainerState& t = c.trainer;
      f.write("/trainer/loader_position", Tensor::from_vector<int64_t>({t.epoch, t.cursor}, {2}));
      f.set_attribute("/trainer", "format_version", t.format_version);
      f.set_attribute("/trainer", "step", t.step);
      f.set_attribute("/trainer", "epoch", t.epoch);
      f.set_attribute("/trainer", "cursor", t.cursor);
      f.set_attribute("/trainer", "seed", t.seed);
      f.set_attribute("/trainer", "world_size", t.world_size);
      f.set_attribute("/trainer", "global_batch", t.global_batch);
      f.set_attribute("/trainer", "schedule_step", t.schedule_step);
      f.set_attribute("/trainer", "optimizer_steps", c.optimizer_steps);
      f.set_attribute("/trainer", "config", t.config);
      f.set_attribute("/trainer", "build", t.build);
      stage("datasets");
      f.close();
    }
    uint64_t size = 0;
    const uint64_t sum = hash_file(tmp, &size);
    fsync_path(tmp, false);
    stage("synced");
    // A marker left by an abandoned run for this step must not vouch for the new file.
    if (::unlink(marker.c_str()) == 0) fsync_path(dir, true);
    rename_checked(tmp, final_path);
    renamed = true;
    fsync_path(dir, true);
    stage("renamed");
    std::ostringstream m;
    m << "dtrain checkpoint\nfile " << file_name(step) << "\nbytes " << size << "\nxxh64 " << hex64(sum)
      << "\nformat_version " << c.trainer.format_version << "\n";
    write_text_atomic(marker, m.str(), dir);
  } catch (...) {
    // Best effort: nothing of a failed write stays behind. A leftover never counts (no
    // marker vouches for it) and prune() removes it later, but a failed write should not
    // fill a nearly full disk further or leave an unmarked step-<N>.h5 that find_latest
    // warns about on every resume. The marker goes first (it may have been renamed into
    // place before a failed directory fsync), then the file it would vouch for.
    std::remove((marker + ".tmp").c_str());
    if (renamed) {
      std::remove(marker.c_str());
      std::remove(final_path.c_str());
    }
    std::remove(tmp.c_str());
    throw;
  }
  return final_path;
}

// ---- verify and read -------------------------------------------------------------------

void verify(const std::string& path) {
  const std::string marker = marker_path_for(path);
  if (!fs::exists(path)) DT_THROW(IoError, "checkpoint '", path, "' does not exist");
  if (!fs::exists(marker)) {
    DT_THROW(IoError, "checkpoint '", path, "' is incomplete: its completeness marker '", marker,
             "' is missing (the write was interrupted); use an older checkpoint");
  }
  std::map<std::string, std::string> fields;
  std::istringstream in(read_small_file(marker));
  for (std::string line; std::getline(in, line);) {
    auto sp = line.find(' ');
    if (sp != std::string::npos) fields[line.substr(0, sp)] = line.substr(sp + 1);
  }
  DT_CHECK_AS(fields.count("file") && fields.count("bytes") && fields.count("xxh64"), IoError, "checkpoint marker '",
              marker, "' is malformed (expected lines 'file', 'bytes', 'xxh64'); the checkpoint cannot be trusted");
  const std::string name = fs::path(path).filename().string();
  DT_CHECK_AS(fields["file"] == name, IoError, "checkpoint marker '", marker, "' belongs to '", fields["file"],
              "', not to '", name, "'");
  uint64_t size = 0;
  const uint64_t sum = hash_file(path, &size);
  DT_CHECK_AS(std::to_string(size) == fields["bytes"], IoError, "checkpoint '", path, "' is truncated or damaged: ",
              size, " bytes, but its marker records ", fields["bytes"]);
  DT_CHECK_AS(hex64(sum) == fields["xxh64"], IoError, "checkpoint '", path,
              "' is corrupt: its checksum (xxh64 ", hex64(sum), ") differs from the one its marker records (",
              fields["xxh64"], ")");
  io::H5File f = io::H5File::open_read(path);
  DT_CHECK_AS(f.has("/trainer") && f.has_attribute("/trainer", "format_version"), IoError, "checkpoint '", path,
              "' has no /trainer format_version attribute: not a dtrain checkpoint");
  const int64_t version = f.get_attribute<int64_t>("/trainer", "format_version");
  DT_CHECK_AS(version == kFormatVersion, IoError, "checkpoint '", path, "' has format version ", version,
              "; this dtrain reads version ", kFormatVersion, " (use the dtrain build that wrote it)");
}

Contents read(const std::string& path, bool verified) {
  if (!verified) verify(path);
  io::H5File f = io::H5File::open_read(path);
  Contents c;
  for (const std::string& n : f.list("/model")) c.model.emplace_back(n, f.read("/model/" + n));
  if (f.has("/optimizer")) {
    for (const std::string& n : f.list("/optimizer")) c.optimizer.emplace_back(n, f.read("/optimizer/" + n));
  }
  if (f.has("/rng")) {
    for (const std::string& g : f.list("/rng")) {
      DT_CHECK_AS(g.rfind("rank", 0) == 0, IoError, "checkpoint '", path, "': unexpected group /rng/", g);
      int rank = std::stoi(g.substr(4));
      for (const std::string& n : f.list("/rng/" + g)) {
        std::vector<int64_t> v = f.read_as("/rng/" + g + "/" + n, DType::I64).to_vector<int64_t>();
        DT_CHECK_AS(v.size() == 2, IoError, "checkpoint '", path, "': /rng/", g, "/", n, " must hold 2 values");
        c.rng.push_back({rank, n, {as_u64(v[0]), as_u64(v[1])}});
      }
    }
  }
  TrainerState& t = c.trainer;
  auto i64 = [&](const char* name) { return f.get_attribute<int64_t>("/trainer", name); };
  t.format_version = i64("format_version");
  t.step = i64("step");
  t.epoch = i64("epoch");
  t.cursor = i64("cursor");
  t.seed = i64("seed");
  t.world_size = i64("world_size");
  t.global_batch = i64("global_batch");
  t.schedule_step = i64("schedule_step");
  c.optimizer_steps = i64("optimizer_steps");
  t.config = f.get_attribute<std::string>("/trainer", "config");
  t.build = f.get_attribute<std::string>("/trainer", "build");
  return c;
}

void check_model(const std::string& path, const nn::NamedTensors& stored, const nn::NamedTensors& model) {
  std::map<std::string, const Tensor*> in_file;
  for (const auto& [n, t] : stored) in_file[n] = &t;
  for (const auto& [n, t] : model) {
    auto it = in_file.find(n);
    DT_CHECK_AS(it != in_file.end(), ValueError, "checkpoint '", path, "' is of another model: it has no '", n,
                "', which this model has (", stored.size(), " tensors in the file, ", model.size(), " in the model)");
    const Tensor& s = *it->second;
    DT_CHECK_AS(s.shape() == t.shape() && s.dtype() == t.dtype(), ValueError, "checkpoint '", path,
                "' is of another model: '", n, "' is ", dtype_name(s.dtype()), " ", shape_text(s.shape()),
                " in the file but ", dtype_name(t.dtype()), " ", shape_text(t.shape()), " in this model");
    in_file.erase(it);
  }
  DT_CHECK_AS(in_file.empty(), ValueError, "checkpoint '", path, "' is of another model: it has '",
              in_file.empty() ? "" : in_file.begin()->first, "', which this model lacks");
}

// ---- listing ---------------------------------------------------------------------------

std::vector<std::pair<int64_t, std::string>> list_complete(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::optional<int64_t> step = step_of(e.path().filename().string());
    if (!step) continue;
    if (fs::exists(fs::path(dir) / marker_name(*step))) out.emplace_back(*step, e.path().string());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

std::optional<std::pair<int64_t, std::string>> find_latest(const std::string& dir, const Logger& log) {
  // Every step-<N>.h5, newest first; those without a marker are interrupted writes.
  std::vector<std::pair<int64_t, std::string>> files;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (std::optional<int64_t> step = step_of(e.path().filename().string())) files.emplace_back(*step, e.path().string());
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [step, path] : files) {
    if (!fs::exists(fs::path(dir) / marker_name(step))) {
      log.warn("skipping checkpoint '", path, "': no completeness marker (the write was interrupted)");
      continue;
    }
    try {
      verify(path);
      return std::make_pair(step, path);
    } catch (const IoError& e) {
      std::string msg = e.what();
      if (auto at = msg.rfind(" ["); at != std::string::npos && msg.back() == ']') msg.resize(at);
      log.warn("skipping checkpoint '", path, "': ", msg);
    }
  }
  return std::nullopt;
}

std::vector<std::string> prune(const std::string& dir, int64_t keep_last) {
  std::vector<std::string> removed;
  if (keep_last <= 0) return removed;
  std::vector<std::pair<int64_t, std::string>> complete = list_complete(dir);
  if (complete.empty()) return removed;
  auto remove = [&](const fs::path& p) {
    std::error_code ec;
    if (fs::remove(p, ec)) removed.push_back(p.string());
  };
  for (size_t i = static_cast<size_t>(keep_last); i < complete.size(); ++i) {
    // The marker first: a crash between the two leaves a file without a marker, which
    // never counts, rather than a marker without its file.
    remove(fs::path(dir) / marker_name(complete[i].first));
    remove(complete[i].second);
  }
  // Leftovers of abandoned writes older than the newest complete checkpoint: .tmp files,
  // files without a marker, markers without a file.
  const int64_t newest = complete.front().first;
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    bool tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
    std::string base = tmp ? name.substr(0, name.size() - 4) : name;
    bool is_marker = base.size() > 3 && base.compare(base.size() - 3, 3, ".ok") == 0;
    if (is_marker) base = base.substr(0, base.size() - 3) + ".h5";
    std::optional<int64_t> step = step_of(base);
    if (!step || *step >= newest) continue;
    bool has_file = fs::exists(fs::path(dir) / file_name(*step));
    bool has_marker = fs::exists(fs::path(dir) / marker_name(*step));
    if (tmp || !has_file || !has_marker) leftovers.push_back(e.path());
  }
  for (const fs::path& p : leftovers) remove(p);
  return removed;
}

}  // namespace dtrain::ckpt
