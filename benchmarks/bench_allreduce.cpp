// All-reduce through the ProcessGroup against raw MPI, and the Reducer's exposed
// communication per training step with and without overlap. Run under mpirun:
//
//   mpirun -np 2 bench_allreduce [--part a|b|ab] [--reps N] [--min-kib N] [--max-mib N]
//                                [--steps N] [--warmup N] [--batch N] [--bucket-mib N]
//                                [--first-bucket-kib N] [--threads N]
//
// Part A: for f32 buffers of min-kib KiB .. max-mib MiB (powers of two), alternating in
// the same run on the same buffer: ProcessGroup::all_reduce(Sum) + wait() (MPI_Iallreduce
// on the group's duplicate communicator), raw MPI_Iallreduce + MPI_Wait and raw
// MPI_Allreduce (both MPI_IN_PLACE, on another duplicate). Each rep starts after a
// barrier; its time is the slowest rank's; the table shows the median over reps, the
// bus bandwidth 2 (W-1)/W * bytes / t, and the ratios PG / raw (the acceptance figure:
// at least 0.95 against MPI_Allreduce from 1 MiB on).
//
// Part B: the small VGG (models::small_vgg, CPU, --batch per rank) trained with the
// Reducer in four modes, one step of each in turn (so drifts hit all alike):
//   local       no Reducer, no communication (the compute floor);
//   overlap     the default Reducer: buckets launched from the ready-hooks, each hook
//               tests the launched ones (MPI progresses only inside MPI calls);
//   no-poll     overlap, but Work::is_completed() answers false without calling MPI,
//               so nothing progresses the launched buckets until finalize();
//   no-overlap  ReducerOptions::overlap = false: every bucket launched in finalize().
// Per step: the step time (zero_grad .. optimizer step, after a barrier, the slowest
// rank's) and the Reducer's last_wait_seconds() on each rank: the smallest (the rank
// that finished backward last waits only for communication not hidden behind backward:
// the exposed communication) and the largest (which includes the other rank's extra
// compute). The table shows medians over steps.
//
// Prints the tables to stdout on rank 0.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/models/vgg.h"
#include "core/optim/optimizer.h"
#include "distributed/reducer.h"
#include "ops/cpu_threads.h"

using namespace dtrain;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string part = "ab";
  int reps = 20;
  int min_kib = 4;
  int max_mib = 64;
  int steps = 20;
  int warmup = 2;
  int64_t batch = 32;
  int bucket_mib = 25;
  int first_bucket_kib = 1024;
  int threads = 1;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: mpirun -np N bench_allreduce [--part a|b|ab] [--reps N] [--min-kib N] [--max-mib N] "
               "[--steps N] [--warmup N] [--batch N] [--bucket-mib N] [--first-bucket-kib N] [--threads N]\n");
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (i + 1 >= argc) usage();
    std::string v = argv[++i];
    if (k == "--part") {
      a.part = v;
    } else if (k == "--reps") {
      a.reps = std::atoi(v.c_str());
    } else if (k == "--min-kib") {
      a.min_kib = std::atoi(v.c_str());
    } else if (k == "--max-mib") {
      a.max_mib = std::atoi(v.c_str());
    } else if (k == "--steps") {
      a.steps = std::atoi(v.c_str());
    } else if (k == "--warmup") {
      a.warmup = std::atoi(v.c_str());
    } else if (k == "--batch") {
      a.batch = std::atoi(v.c_str());
    } else if (k == "--bucket-mib") {
      a.bucket_mib = std::atoi(v.c_str());
    } else if (k == "--first-bucket-kib") {
      a.first_bucket_kib = std::atoi(v.c_str());
    } else if (k == "--threads") {
      a.threads = std::atoi(v.c_str());
    } else {
      usage();
    }
  }
  if (a.reps < 1 || a.min_kib < 1 || a.max_mib < 1 || a.steps < 1 || a.batch < 1 || a.bucket_mib < 1 ||
      a.first_bucket_kib < 1 || a.threads < 1) {
    usage();
  }
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The largest (slowest) rank's value.
double max_over_ranks(double x) {
  double m = 0;
  MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}
double min_over_ranks(double x) {
  double m = 0;
  MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  return m;
}

// ---- Part A --------------------------------------------------------------------------

void part_a(const Args& args, dist::ProcessGroup& group, int rank, int world) {
  MPI_Comm raw;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw);
  // One buffer per size, shared by all three ways, so they see the same memory.
  // Values 0: the sums stay 0 rep after rep (no overflow, no denormals); correctness is
  // checked once per size before timing.
  enum Way { kGroup, kIallreduce, kAllreduce, kWays };
  if (rank == 0) {
    std::printf("Part A: all-reduce (sum, f32, in place), %d ranks, median of %d reps (slowest rank)\n", world,
                args.reps);
    std::printf("%10s | %10s %8s | %10s %8s | %10s %8s | %8s %8s\n", "bytes", "PG us", "PG GB/s", "Iar us",
                "Iar GB/s", "Ar us", "Ar GB/s", "PG/Iar", "PG/Ar");
  }
  for (size_t bytes = size_t(args.min_kib) << 10; bytes <= size_t(args.max_mib) << 20; bytes *= 2) {
    const int64_t n = static_cast<int64_t>(bytes / 4);
    Tensor t = Tensor::full({n}, rank + 1.0);
    group.all_reduce(t, dist::ReduceOp::Sum)->wait();
    const float want = world * (world + 1) / 2.0f;
    if (t.data<float>()[0] != want || t.data<float>()[n - 1] != want) {
      std::fprintf(stderr, "rank %d: wrong all-reduce result at %zu bytes\n", rank, bytes);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    t.zero_();
    float* p = t.data<float>();
    auto run = [&](Way w) {
      MPI_Barrier(MPI_COMM_WORLD);
      auto t0 = Clock::now();
      if (w == kGroup) {
        group.all_reduce(t, dist::ReduceOp::Sum)->wait();
      } else if (w == kIallreduce) {
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, p, static_cast<int>(n), MPI_FLOAT, MPI_SUM, raw, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
      } else {
        MPI_Allreduce(MPI_IN_PLACE, p, static_cast<int>(n), MPI_FLOAT, MPI_SUM, raw);
      }
      return max_over_ranks(std::chrono::duration<double>(Clock::now() - t0).count());
    };
    for (int w = 0; w < kWays; ++w) run(Way(w));  // warm-up
    std::vector<double> times[kWays];
    for (int rep = 0; rep < args.reps; ++rep) {
      // Rotate the order so that none is always first after the barrier.
      for (int k = 0; k < kWays; ++k) {
        const Way w = Way((rep + k) % kWays);
        times[w].push_back(run(w));
      }
    }
    double med[kWays], bw[kWays];
    for (int w = 0; w < kWays; ++w) {
      med[w] = median(times[w]);
      bw[w] = 2.0 * (world - 1) / world * double(bytes) / med[w] / 1e9;
    }
    if (rank == 0) {
      std::printf("%10zu | %10.1f %8.2f | %10.1f %8.2f | %10.1f %8.2f | %8.3f %8.3f\n", bytes, med[0] * 1e6, bw[0],
                  med[1] * 1e6, bw[1], med[2] * 1e6, bw[2], med[1] / med[0], med[2] / med[0]);
    }
  }
  if (rank == 0) std::printf("(ratio = raw time / PG time = PG bandwidth / raw bandwidth)\n\n");
  MPI_Comm_free(&raw);
}

// ---- Part B --------------------------------------------------------------------------

// A group whose Work::is_completed() never calls MPI (always "not yet"): the Reducer's
// polling from the ready-hooks then drives no progress, as if it did not poll.
class NoPollGroup : public dist::ProcessGroup {
 public:
  explicit NoPollGroup(dist::ProcessGroup& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return inner_.backend(); }
  dist::WorkPtr all_reduce(const Tensor& t, dist::ReduceOp op) override {
    return std::make_shared<NoPollWork>(inner_.all_reduce(t, op));
  }
  dist::WorkPtr broadcast(const Tensor& t, int root) override { return inner_.broadcast(t, root); }
  dist::WorkPtr all_gather(const Tensor& in, const Tensor& out) override { return inner_.all_gather(in, out); }
  dist::WorkPtr barrier() override { return inner_.barrier(); }

 private:
  struct NoPollWork : dist::Work {
    explicit NoPollWork(dist::WorkPtr w) : inner(std::move(w)) {}
    bool is_completed() override { return false; }
    void wait() override { inner->wait(); }
    dist::WorkPtr inner;
  };
  dist::ProcessGroup& inner_;
};

struct Mode {
  std::string name;
  std::shared_ptr<models::Vgg> model;
  std::unique_ptr<optim::SGD> sgd;
  std::unique_ptr<dist::Reducer> reducer;  // null: local
  std::vector<double> step, wait_max, wait_min;
};

void part_b(const Args& args, dist::ProcessGroup& group, int rank, int world) {
  NoPollGroup no_poll(group);
  dist::ReducerOptions opt;
  opt.first_bucket_bytes = size_t(args.first_bucket_kib) << 10;
  opt.bucket_bytes = size_t(args.bucket_mib) << 20;
  std::vector<Mode> modes;
  for (const char* name : {"local", "overlap", "no-poll", "no-overlap"}) {
    Mode m;
    m.name = name;
    Generator gen(1);  // the same initial model in every mode and on every rank
    m.model = models::small_vgg(gen, 10);
    m.sgd = std::make_unique<optim::SGD>(m.model->named_parameters(), optim::SGD::Options{.lr = 0.01, .momentum = 0.9});
    dist::ReducerOptions o = opt;
    if (m.name == "no-overlap") o.overlap = false;
    if (m.name == "overlap" || m.name == "no-overlap") {
      m.reducer = std::make_unique<dist::Reducer>(group, m.model->named_parameters(), o);
    } else if (m.name == "no-poll") {
      m.reducer = std::make_unique<dist::Reducer>(no_poll, m.model->named_parameters(), o);
    }
    modes.push_back(std::move(m));
  }
  if (rank == 0) {
    std::printf("Part B: small VGG, batch %lld per rank, %d ranks, %d CPU thread(s) per rank, buckets:\n",
                static_cast<long long>(args.batch), world, ops::cpu::num_threads());
    const auto& bs = modes[1].reducer->buckets();
    for (size_t i = 0; i < bs.size(); ++i) {
      std::printf("  bucket %zu: %zu params, %.2f MiB (%s .. %s)\n", i, bs[i].params.size(), bs[i].bytes / 1048576.0,
                  bs[i].params.front().c_str(), bs[i].params.back().c_str());
    }
  }
  Generator data_gen(1000 + rank);
  Tensor x = Tensor::empty({args.batch, 3, 32, 32});
  data_gen.normal_(x);
  std::vector<int64_t> labels(static_cast<size_t>(args.batch));
  for (auto& l : labels) l = static_cast<int64_t>(data_gen.next_below(10));
  Tensor y = Tensor::from_vector(labels, {args.batch});

  for (int step = 0; step < args.warmup + args.steps; ++step) {
    for (size_t k = 0; k < modes.size(); ++k) {
      Mode& m = modes[(step + k) % modes.size()];  // rotated: none always runs first
      MPI_Barrier(MPI_COMM_WORLD);
      auto t0 = Clock::now();
      m.sgd->zero_grad();
      autograd::Tape tape;
      Tensor loss;
      {
        autograd::GradRecorder rec(tape);
        loss = fn::softmax_cross_entropy(m.model->forward(x), y);
      }
      tape.backward(loss);
      if (m.reducer) m.reducer->finalize();
      m.sgd->step();
      const double dt = max_over_ranks(std::chrono::duration<double>(Clock::now() - t0).count());
      const double wait = m.reducer ? m.reducer->last_wait_seconds() : 0.0;
      const double wait_max = max_over_ranks(wait), wait_min = min_over_ranks(wait);
      if (step >= args.warmup) {
        m.step.push_back(dt);
        m.wait_max.push_back(wait_max);
        m.wait_min.push_back(wait_min);
      }
    }
  }
  // The reduced modes train the same model on the same data: their parameters agree.
  const std::vector<float> a = modes[1].model->parameters()[0].to_vector<float>();
  const std::vector<float> b = modes[3].model->parameters()[0].to_vector<float>();
  if (a != b && rank == 0) std::printf("warning: overlap and no-overlap parameters differ\n");

  if (rank == 0) {
    const double local = median(modes[0].step);
    std::printf("median over %d steps:\n", args.steps);
    std::printf("%-11s | %9s | %14s | %14s | %14s\n", "mode", "step ms", "exposed ms", "wait max ms",
                "step - local");
    for (const Mode& m : modes) {
      const double s = median(m.step);
      std::printf("%-11s | %9.1f | %14.2f | %14.2f | %11.1f ms\n", m.name.c_str(), s * 1e3,
                  median(m.wait_min) * 1e3, median(m.wait_max) * 1e3, (s - local) * 1e3);
    }
    std::printf(
        "(Reducer::last_wait_seconds(), the wait in finalize(): exposed = on the rank that finished backward last,\n"
        " the communication not hidden; wait max = on the first, which also waits for the other's compute)\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  const Args args = parse(argc, argv);
  ops::cpu::set_num_threads(args.threads);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  {
    std::unique_ptr<dist::ProcessGroup> group = dist::make_mpi_group(reinterpret_cast<void*>(MPI_COMM_WORLD));
    if (args.part.find('a') != std::string::npos) part_a(args, *group, rank, world);
    if (args.part.find('b') != std::string::npos) part_b(args, *group, rank, world);
  }
  MPI_Finalize();
  return 0;
}
