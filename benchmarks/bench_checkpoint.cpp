// Checkpoint write and read throughput for VGG16-sized state beside the disk's
// sequential write rate, measured in the same run and directory.
//
//   bench_checkpoint [--dir DIR] [--repeat R]   (R rounds, default 3; medians are printed)
//
// State: torchvision VGG16's 138,357,544 f32 parameters plus an SGD momentum buffer of
// the same size (~1.1 GB), written with ckpt::write exactly as the trainer's rank 0 does
// (HDF5 .tmp, read-back XXH64, fsync, rename, marker). It prints:
//   dd          `dd if=/dev/zero bs=1M count=<state MiB> conv=fsync` into DIR: the disk's
//               sequential write rate including the flush (the ceiling for a write);
//   write       ckpt::write end to end, and its phases: HDF5 writing into the page cache,
//               checksum + fsync of the file, rename + marker (each with fsyncs);
//   verify      marker + XXH64 over the file (what --resume runs on rank 0);
//   read        verify + ckpt::read of every tensor;
//   blocked     the time a training step is held up by a checkpoint: the write is
//               synchronous on rank 0 (the other ranks wait for it at the next
//               collective), so it equals the write time; no asynchronous copy-then-write
//               is implemented.
// Each round runs dd, write, verify and read in turn, since a virtual disk's rate drifts;
// the table shows the median and the range over the rounds. Reads come from the page cache unless the run may drop it (root, /proc/sys/vm/drop_caches
// writable): the table says which.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/log.h"

using namespace dtrain;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// VGG16's parameter shapes (torchvision names), without building the model.
std::vector<std::pair<std::string, Shape>> vgg16_shapes() {
  std::vector<std::pair<std::string, Shape>> out;
  const int cfg[] = {64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1};
  int in = 3, idx = 0;
  for (int v : cfg) {
    if (v < 0) {
      idx += 1;
      continue;
    }
    out.push_back({"features." + std::to_string(idx) + ".weight", {v, in, 3, 3}});
    out.push_back({"features." + std::to_string(idx) + ".bias", {v}});
    in = v;
    idx += 2;
  }
  out.push_back({"classifier.0.weight", {4096, 512 * 7 * 7}});
  out.push_back({"classifier.0.bias", {4096}});
  out.push_back({"classifier.3.weight", {4096, 4096}});
  out.push_back({"classifier.3.bias", {4096}});
  out.push_back({"classifier.6.weight", {1000, 4096}});
  out.push_back({"classifier.6.bias", {1000}});
  return out;
}

bool drop_page_cache() {
  ::sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  if (!f) return false;
  f << "3\n";
  f.flush();
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = (fs::temp_directory_path() / "dtrain_bench_checkpoint").string();
  int repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--dir") dir = argv[i + 1];
    else if (a == "--repeat") repeat = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_checkpoint [--dir DIR] [--repeat R]\n");
      return 2;
    }
  }
  fs::remove_all(dir);
  fs::create_directories(dir);

  // The state: parameters and momentum, filled with varied values (a constant file would
  // flatter nothing here, HDF5 stores raw bytes, but keep it honest).
  ckpt::Contents c;
  int64_t elements = 0;
  for (const auto& [name, shape] : vgg16_shapes()) {
    Tensor p = Tensor::empty(shape, DType::F32);
    Tensor m = Tensor::empty(shape, DType::F32);
    float* pp = p.data<float>();
    float* mp = m.data<float>();
    for (int64_t i = 0; i < p.numel(); ++i) {
      pp[i] = static_cast<float>((i * 2654435761u) % 1000003) * 1e-6f;
      mp[i] = -pp[i];
    }
    elements += p.numel();
    c.model.emplace_back(name, p);
    c.optimizer.emplace_back(name + ".momentum_buffer", m);
  }
  c.optimizer_steps = 1000;
  c.rng = {{0, "dropout.classifier.2", {1, 2}}, {0, "dropout.classifier.5", {3, 4}}};
  c.trainer.step = 1000;
  c.trainer.config = "model.name = \"vgg16\"\n";
  c.trainer.build = "bench";
  const double bytes = static_cast<double>(elements) * 2 * 4;
  const double mib = bytes / (1 << 20);
  std::printf("VGG16 state: %lld parameters + momentum, f32 = %.0f MiB (%.2f GB), directory %s\n",
              static_cast<long long>(elements), mib, bytes / 1e9, dir.c_str());

  // dd with fsync: the disk's sequential write rate, once per round.
  const std::string dd_file = dir + "/dd.bin";
  const std::string dd = "dd if=/dev/zero of=" + dd_file + " bs=1M count=" + std::to_string(static_cast<int>(mib)) +
                         " conv=fsync status=none";
  enum { kDd, kWrite, kH5, kSync, kCommit, kVerify, kRead, kCount };
  std::vector<std::vector<double>> t(kCount);
  bool cold = false;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = Clock::now();
    int rc = std::system(dd.c_str());
    t[kDd].push_back(since(t0));
    fs::remove(dd_file);
    if (rc != 0) std::fprintf(stderr, "dd failed (exit %d): the disk rate is wrong\n", rc);

    c.trainer.step = 1000 + r;
    Clock::time_point start = Clock::now(), at_datasets, at_synced;
    ckpt::StageHook hook = [&](const std::string& s) {
      if (s == "datasets") at_datasets = Clock::now();
      if (s == "synced") at_synced = Clock::now();
    };
    std::string path = ckpt::write(dir, c, hook);
    auto end = Clock::now();
    auto d = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    t[kWrite].push_back(d(start, end));
    t[kH5].push_back(d(start, at_datasets));
    t[kSync].push_back(d(at_datasets, at_synced));
    t[kCommit].push_back(d(at_synced, end));
    cold = drop_page_cache();
    t0 = Clock::now();
    ckpt::verify(path);
    t[kVerify].push_back(since(t0));
    if (cold) drop_page_cache();
    t0 = Clock::now();
    ckpt::Contents back = ckpt::read(path);
    t[kRead].push_back(since(t0));
    if (back.model.size() != c.model.size() || back.optimizer.size() != c.optimizer.size()) {
      std::fprintf(stderr, "read back %zu + %zu tensors, wrote %zu + %zu\n", back.model.size(), back.optimizer.size(),
                   c.model.size(), c.optimizer.size());
      return 1;
    }
    ckpt::prune(dir, 1);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  struct Row {
    std::string what;
    int which;
    bool rate;
  };
  const std::string cache = cold ? ", cold cache" : ", page cache";
  std::vector<Row> rows = {{"dd bs=1M conv=fsync (disk sequential write)", kDd, true},
                           {"ckpt::write total (= step blocked)", kWrite, true},
                           {"  HDF5 datasets -> page cache", kH5, true},
                           {"  close, XXH64 read-back, fsync file", kSync, true},
                           {"  rename, marker, directory fsyncs", kCommit, false},
                           {"ckpt::verify (marker + XXH64)" + cache, kVerify, true},
                           {"ckpt::read (verify + all tensors)" + cache, kRead, true}};
  const double dd_rate = mib / median(t[kDd]);
  std::printf("\n%d rounds; median seconds (range)\n%-46s %18s %10s %8s\n", repeat, "operation", "seconds", "MiB/s",
              "vs dd");
  for (const Row& r : rows) {
    const auto& v = t[r.which];
    char range[48];
    std::snprintf(range, sizeof range, "%.2f (%.2f-%.2f)", median(v), *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()));
    if (r.rate) {
      double rate = mib / median(v);
      std::printf("%-46s %18s %10.0f %7.2fx\n", r.what.c_str(), range, rate, rate / dd_rate);
    } else {
      std::printf("%-46s %18s %10s %8s\n", r.what.c_str(), range, "-", "-");
    }
  }
  const double write_s = median(t[kWrite]);
  std::printf("\nA training step that checkpoints is blocked for the whole write (%.2f s here): rank 0 writes\n"
              "synchronously and the other ranks wait at the next step's collective. %s\n",
              write_s, cold ? "" : "Reads were served from the page cache (it could not be dropped).");
  fs::remove_all(dir);
  return 0;
}
