// Loader throughput beside the raw contiguous HDF5 read rate of the same file, in one run.
//
//   bench_loader [--fashion PATH] [--synth-n N] [--epochs E] [--threads T] [--prefetch P]
//
// For Fashion-MNIST (data/fashion_mnist_train.h5 from scripts/prepare-data.sh, when
// present) and a synthetic 3x224x224 set written to a temporary file, it prints:
//   raw      H5Dread of contiguous hyperslabs of one chunk's rows, front to back, into
//            one buffer (no sampler, no threads, no direct reads): the rate
//            the loader is compared with (the page cache is warmed first, so both read
//            from memory);
//   loader   a rank-0-of-1 Loader over whole epochs: u8 as stored without augmentation
//            (acceptance: >= 0.8 x raw), f32 normalized, and f32 with crop+flip;
// with samples/s, the ratio to raw, and the consumer's data-wait share; then the rate at
// which the small VGG training step (3x32x32, batch 64, SGD momentum, CPU) consumes
// samples, measured in the same run, and the loader's f32+augmentation rate over it
// (acceptance: >= 3x). A synthetic CIFAR-shaped 3x32x32 set, the small VGG's own input,
// is benchmarked too. Last, the cost of Fletcher-32 checksums: the same synthetic sets
// written with and without them, one epoch per fresh loader, side by side.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/models/vgg.h"
#include "core/optim/optimizer.h"
#include "datasets/convert.h"
#include "datasets/loader.h"
#include "datasets/row_reader.h"

using namespace dtrain;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Samples/s of reading the whole of /images front to back in contiguous hyperslabs of
// `rows` rows (the file's chunk extent: 64 for the converters' files, as in the issue's
// "contiguous 64-row hyperslabs").
double raw_rate(const std::string& path, int64_t rows, int passes) {
  io::H5File f = io::H5File::open_read(path);
  data::RowReader r = data::RowReader::open(f, "/images", 0, /*direct=*/false);  // H5Dread, as any HDF5 user would
  std::vector<uint8_t> buf(static_cast<size_t>(rows) * r.row_bytes());
  const int64_t n = r.rows();
  auto t0 = Clock::now();
  for (int p = 0; p < passes; ++p) {
    for (int64_t s = 0; s < n; s += rows) r.read(s, std::min(rows, n - s), buf.data());
  }
  return static_cast<double>(n * passes) / seconds_since(t0);
}

struct LoaderRun {
  double rate, wait_share;
};

LoaderRun loader_rate(data::LoaderConfig cfg, int epochs, int* prefetch_used) {
  data::Loader l(cfg);
  *prefetch_used = l.prefetch();
  const int64_t steps = l.batches_per_epoch() * epochs;
  l.next();  // first batch: pipeline start-up, not steady state
  double wait0 = l.wait_seconds();
  auto t0 = Clock::now();
  int64_t samples = 0;
  for (int64_t s = 1; s < steps; ++s) samples += l.next().size;
  double t = seconds_since(t0);
  return {static_cast<double>(samples) / t, (l.wait_seconds() - wait0) / t};
}

// Median samples/s of the small VGG training step on the CPU (what the loader must feed).
double small_vgg_rate() {
  Generator gen(0);
  auto model = models::small_vgg(gen, 10);
  optim::SGD sgd(model->named_parameters(), optim::SGD::Options{.lr = 0.01, .momentum = 0.9});
  const int64_t batch = 64;
  Tensor x = Tensor::empty({batch, 3, 32, 32});
  gen.normal_(x);
  Tensor y = Tensor::zeros({batch}, DType::I64);
  autograd::Tape tape;
  std::vector<double> rates;
  for (int step = 0; step < 7; ++step) {
    auto t0 = Clock::now();
    sgd.zero_grad();
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      loss = fn::softmax_cross_entropy(model->forward(x), y);
    }
    tape.backward(loss);
    sgd.step();
    loss.item<float>();
    if (step >= 2) rates.push_back(static_cast<double>(batch) / seconds_since(t0));
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

void bench(const std::string& name, const std::string& path, int64_t batch, int epochs, int threads, int prefetch,
           double vgg_rate) {
  io::H5File f = io::H5File::open_read(path);
  Shape shape = f.shape_of("/images");
  io::DatasetLayout layout = f.layout_of("/images");
  f.close();
  std::printf("\n== %s: %s, images u8 %s, chunk rows %lld, batch %lld, %d loader thread(s), prefetch %d (0: auto)\n",
              name.c_str(), path.c_str(), shape_str(shape).c_str(),
              static_cast<long long>(layout.chunks.empty() ? 0 : layout.chunks[0]), static_cast<long long>(batch),
              threads, prefetch);
  int effective_prefetch = 0;
  const int64_t chunk = layout.chunks.empty() ? 64 : layout.chunks[0];
  raw_rate(path, chunk, 1);  // warm the page cache
  double raw = raw_rate(path, chunk, epochs);
  std::printf("%-44s %12.0f samples/s   ratio 1.00\n", "raw contiguous HDF5 read, chunk-row hyperslabs", raw);
  struct Variant {
    const char* label;
    bool raw;
    data::Augment aug;
  };
  double last_rate = 0;
  for (const Variant& v : {Variant{"loader u8, no augmentation", true, {}},
                           Variant{"loader f32 normalized", false, {}},
                           Variant{"loader f32 normalized + crop(pad 4) + flip", false, {4, true}}}) {
    data::LoaderConfig cfg;
    cfg.path = path;
    cfg.batch_size = batch;
    cfg.seed = 1;
    cfg.threads = threads;
    cfg.prefetch = prefetch;
    cfg.raw = v.raw;
    cfg.augment = v.aug;
    LoaderRun r = loader_rate(cfg, epochs, &effective_prefetch);
    std::printf("%-44s %12.0f samples/s   ratio %.2f   consumer waited %.0f%% of the time\n", v.label, r.rate,
                r.rate / raw, 100 * r.wait_share);
    last_rate = r.rate;
  }
  std::printf("%-44s %12.0f samples/s   loader f32+augment / consumption = %.1fx\n",
              "small VGG training step consumption", vgg_rate, last_rate / vgg_rate);
  std::printf("(prefetch depth used: %d)\n", effective_prefetch);
}

// The cost of Fletcher-32 checksums (Note [Checksummed chunks]): the same synthetic set
// written with and without them, each read for one epoch by a fresh loader (so that every
// chunk is checked, as in a run's first epoch), alternately, median of `reps`.
void checksum_cost(int64_t n, int64_t h, int threads, int prefetch, int reps) {
  const std::string base = (std::filesystem::temp_directory_path() / ("dtrain_bench_sums_" + std::to_string(getpid())))
                               .string();
  const std::string with = base + "_with.h5", without = base + "_without.h5";
  data::synth_images(with, n, h, h, 3, 10, 7, {64, 0, true});
  data::synth_images(without, n, h, h, 3, 10, 7, {64, 0, false});
  std::printf("\n== checksums: synthetic 3x%lldx%lld, %lld samples, chunks of 64 rows, with and without a Fletcher-32 "
              "checksum per chunk; one epoch per fresh loader (u8, no augmentation, %d thread(s)), median of %d\n",
              static_cast<long long>(h), static_cast<long long>(h), static_cast<long long>(n), threads, reps);
  std::vector<double> a, b;
  int used = 0;
  for (int r = 0; r < reps + 1; ++r) {
    for (const std::string& path : {with, without}) {
      data::LoaderConfig cfg;
      cfg.path = path;
      cfg.batch_size = 64;
      cfg.seed = static_cast<uint64_t>(r + 1);
      cfg.threads = threads;
      cfg.prefetch = prefetch;
      cfg.raw = true;
      const double rate = loader_rate(cfg, 1, &used).rate;
      if (r > 0) (path == with ? a : b).push_back(rate);  // the first round warms the page cache
    }
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const double ra = a[a.size() / 2], rb = b[b.size() / 2];
  std::printf("%-44s %12.0f samples/s   ratio 1.00\n", "without checksums", rb);
  std::printf("%-44s %12.0f samples/s   ratio %.2f\n", "with checksums (every chunk checked)", ra, ra / rb);
  std::filesystem::remove(with);
  std::filesystem::remove(without);
}

}  // namespace

int main(int argc, char** argv) {
  std::string fashion = "data/fashion_mnist_train.h5";
  int64_t synth_n = 2048;
  int epochs = 3, threads = std::max(2, std::min(8, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)))), prefetch = 0;
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_loader: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--fashion")) {
      fashion = value();
    } else if (!std::strcmp(argv[i], "--synth-n")) {
      synth_n = std::atoll(value());
    } else if (!std::strcmp(argv[i], "--epochs")) {
      epochs = std::atoi(value());
    } else if (!std::strcmp(argv[i], "--threads")) {
      threads = std::atoi(value());
    } else if (!std::strcmp(argv[i], "--prefetch")) {
      prefetch = std::atoi(value());
    } else {
      std::fprintf(stderr,
                   "usage: bench_loader [--fashion PATH] [--synth-n N] [--epochs E] [--threads T] [--prefetch P (0: auto)]\n");
      return 2;
    }
  }
  try {
    double vgg = small_vgg_rate();
    std::printf("small VGG training step (CPU, batch 64): %.0f samples/s\n", vgg);
    if (std::filesystem::exists(fashion)) {
      bench("Fashion-MNIST train", fashion, 128, epochs, threads, prefetch, vgg);
    } else {
      std::printf("== Fashion-MNIST: %s not found (run scripts/prepare-data.sh); skipped\n", fashion.c_str());
    }
    std::string synth = (std::filesystem::temp_directory_path() /
                         ("dtrain_bench_loader_" + std::to_string(getpid()) + ".h5"))
                            .string();
    data::synth_images(synth, 4 * synth_n, 32, 32, 3, 10, 7, {64, 0});
    bench("synthetic 3x32x32 (CIFAR-shaped)", synth, 64, epochs, threads, prefetch, vgg);
    auto t0 = Clock::now();
    data::synth_images(synth, synth_n, 224, 224, 3, 10, 7, {8, 0});
    std::printf("\n(synthetic 3x224x224 set: %lld samples written in %.2f s)\n", static_cast<long long>(synth_n),
                seconds_since(t0));
    bench("synthetic 3x224x224", synth, 64, std::max(1, epochs / 2), threads, prefetch, vgg);
    std::filesystem::remove(synth);
    checksum_cost(4 * synth_n, 32, threads, prefetch, 5);
    checksum_cost(synth_n / 2, 224, threads, prefetch, 3);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
