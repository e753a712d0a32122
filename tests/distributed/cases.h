#pragma once
// Test bodies shared by the threads-backend suites (tests/distributed/, in dtrain_tests)
// and the MPI executables (tests/mpi/, under mpiexec): one body per behaviour, run on
// every rank with that rank's ProcessGroup (STYLE 19). A body throws CaseFailure with
// what went wrong; the runners turn that into a gtest failure or a printed FAIL line.
#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/nn/layers.h"
#include "core/optim/optimizer.h"
#include "core/rng.h"
#include "distributed/agreement.h"
#include "distributed/process_group.h"
#include "distributed/reducer.h"

namespace dtrain::dist::cases {

struct CaseFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define DT_CASE_CHECK(cond, ...)                                                                   \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      throw ::dtrain::dist::cases::CaseFailure(::dtrain::detail::concat(                           \
          __FILE__, ":", __LINE__, ": ", #cond, ": ", __VA_ARGS__));                               \
    }                                                                                              \
  } while (0)

template <typename T>
std::string join(const std::vector<T>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << +v[i];
  os << "]";
  return os.str();
}

// ---- collectives ----------------------------------------------------------------------

// Rank r contributes x_i = (r + 1) * (i + 1) (and i - r for Max), small integers, so
// sums are exact in every dtype.
template <typename T>
inline void all_reduce_sum(ProcessGroup& g) {
  const int r = g.rank(), w = g.size();
  std::vector<T> x(5);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>((r + 1) * (i + 1));
  Tensor t = Tensor::from_vector(x, {5});
  WorkPtr work = g.all_reduce(t, ReduceOp::Sum);
  work->wait();
  DT_CASE_CHECK(work->is_completed(), "completed after wait");
  std::vector<T> got = t.to_vector<T>(), want(5);
  for (size_t i = 0; i < 5; ++i) want[i] = static_cast<T>(w * (w + 1) / 2 * static_cast<int>(i + 1));
  DT_CASE_CHECK(got == want, dtype_name(t.dtype()), " sum on rank ", r, ": got ", join(got), ", want ", join(want));
}

template <typename T>
inline void all_reduce_average(ProcessGroup& g) {
  const int r = g.rank(), w = g.size();
  Tensor t = Tensor::from_vector(std::vector<T>{T(r), T(2 * r + 1), T(-3)}, {3});
  g.all_reduce(t, ReduceOp::Average)->wait();
  std::vector<T> got = t.to_vector<T>();
  std::vector<T> want = {T((w - 1) / 2.0), T(w), T(-3)};  // mean of r, 2r + 1, -3
  for (size_t i = 0; i < 3; ++i) {
    DT_CASE_CHECK(std::abs(got[i] - want[i]) <= 1e-6 * std::max<T>(1, std::abs(want[i])), "average on rank ", r,
                  ": got ", join(got), ", want ", join(want));
  }
}

template <typename T>
inline void all_reduce_max(ProcessGroup& g) {
  const int r = g.rank(), w = g.size();
  // Element 0: largest on the last rank; element 1: largest on rank 0; element 2: mixed.
  Tensor t = Tensor::from_vector(std::vector<T>{T(r), T(10 - r), T((r % 2) ? 7 : 3)}, {3});
  g.all_reduce(t, ReduceOp::Max)->wait();
  std::vector<T> want = {T(w - 1), T(10), T(w > 1 ? 7 : 3)};
  DT_CASE_CHECK(t.to_vector<T>() == want, "max on rank ", r, ": got ", join(t.to_vector<T>()), ", want ", join(want));
}

inline void broadcast_from_last_rank(ProcessGroup& g) {
  const int r = g.rank(), root = g.size() - 1;  // a non-zero root when size > 1
  Tensor t = Tensor::from_vector(std::vector<float>{float(r), float(r) * 2, -1.5f}, {3});
  g.broadcast(t, root)->wait();
  std::vector<float> want = {float(root), float(root) * 2, -1.5f};
  DT_CASE_CHECK(t.to_vector<float>() == want, "broadcast on rank ", r, ": got ", join(t.to_vector<float>()));
  // Integer dtypes travel as bytes too.
  Tensor i = Tensor::from_vector(std::vector<int64_t>{r == 0 ? int64_t{1} << 40 : 0}, {1});
  g.broadcast(i, 0)->wait();
  DT_CASE_CHECK(i.item<int64_t>() == int64_t{1} << 40, "i64 broadcast on rank ", r);
}

inline void all_gather_in_rank_order(ProcessGroup& g) {
  const int r = g.rank(), w = g.size();
  Tensor in = Tensor::from_vector(std::vector<int32_t>{100 * r, 100 * r + 1}, {2});
  Tensor out = Tensor::zeros({2 * w}, DType::I32);
  g.all_gather(in, out)->wait();
  std::vector<int32_t> want;
  for (int k = 0; k < w; ++k) {
    want.push_back(100 * k);
    want.push_back(100 * k + 1);
  }
  DT_CASE_CHECK(out.to_vector<int32_t>() == want, "all_gather on rank ", r, ": got ", join(out.to_vector<int32_t>()));
}

inline void barrier_completes(ProcessGroup& g) {
  for (int i = 0; i < 3; ++i) {
    WorkPtr w = g.barrier();
    w->wait();
    DT_CASE_CHECK(w->is_completed(), "barrier completed");
  }
}

// Several collectives in flight at once complete, in any wait order, with right values.
inline void many_in_flight(ProcessGroup& g) {
  const int w = g.size();
  std::vector<Tensor> ts;
  std::vector<WorkPtr> works;
  for (int k = 0; k < 8; ++k) {
    ts.push_back(Tensor::full({1000}, k + 1.0));
    works.push_back(g.all_reduce(ts.back(), ReduceOp::Sum));
  }
  for (int k = 8; k-- > 0;) works[k]->wait();
  for (int k = 0; k < 8; ++k) {
    std::vector<float> v = ts[k].to_vector<float>();
    DT_CASE_CHECK(std::all_of(v.begin(), v.end(), [&](float x) { return x == float(w * (k + 1)); }), "tensor ", k);
  }
}

inline void rejects_bad_arguments(ProcessGroup& g) {
  bool threw = false;
  try {
    g.all_reduce(Tensor::zeros({2}, DType::I64), ReduceOp::Average);
  } catch (const ValueError&) {
    threw = true;
  }
  DT_CASE_CHECK(threw, "average of an integer tensor must be rejected before any communication");
  threw = false;
  try {
    g.all_gather(Tensor::zeros({2}), Tensor::zeros({2 * g.size() + 1}));
  } catch (const ValueError&) {
    threw = true;
  }
  DT_CASE_CHECK(threw, "all_gather with a wrong output size must be rejected");
}

inline const std::vector<std::pair<std::string, std::function<void(ProcessGroup&)>>>& collective_cases() {
  static const std::vector<std::pair<std::string, std::function<void(ProcessGroup&)>>> cases = {
      {"all_reduce sum f32", all_reduce_sum<float>},
      {"all_reduce sum f64", all_reduce_sum<double>},
      {"all_reduce sum i32", all_reduce_sum<int32_t>},
      {"all_reduce sum i64", all_reduce_sum<int64_t>},
      {"all_reduce sum u8", all_reduce_sum<uint8_t>},
      {"all_reduce average f32", all_reduce_average<float>},
      {"all_reduce average f64", all_reduce_average<double>},
      {"all_reduce max f32", all_reduce_max<float>},
      {"all_reduce max i64", all_reduce_max<int64_t>},
      {"broadcast from the last rank", broadcast_from_last_rank},
      {"all_gather in rank order", all_gather_in_rank_order},
      {"barrier", barrier_completes},
      {"many collectives in flight", many_in_flight},
      {"bad arguments rejected", rejects_bad_arguments},
  };
  return cases;
}

// ---- training equivalence -------------------------------------------------------------

struct TrainSpec {
  int world = 1;       // ranks the global batch is split over
  int batch = 8;       // per-rank batch B
  int steps = 3;       // K
  int micro = 1;       // micro-batches per step (gradient accumulation)
  ReducerOptions reducer{64, 256};  // small caps: several buckets even for a tiny MLP
};

inline std::shared_ptr<nn::Sequential> make_mlp(uint64_t seed) {
  Generator gen(seed);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(4, 16, gen), std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(16, 8, gen),
      std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(8, 3, gen)});
}

// The global batch of `step`: (rows, 4) inputs and (rows) labels, the same on every rank.
inline std::pair<Tensor, Tensor> global_batch(int step, int64_t rows) {
  Generator gen(1000 + step);
  Tensor x = Tensor::empty({rows, 4});
  gen.normal_(x);
  std::vector<int64_t> y(rows);
  for (int64_t i = 0; i < rows; ++i) y[i] = static_cast<int64_t>(gen.next_below(3));
  return {x, Tensor::from_vector(y, {rows})};
}

// Trains the MLP for spec.steps SGD steps and returns its parameters (host copies).
// With `group`, this rank takes rows [rank * B, (rank + 1) * B) of each global batch of
// world * B rows and averages gradients with a Reducer; the model starts from a
// rank-dependent initialization that broadcast_from_rank0 must overwrite. Without a
// group it is the single-process reference at batch world * B.
inline std::vector<std::vector<float>> train_mlp(ProcessGroup* group, const TrainSpec& spec) {
  const int rank = group ? group->rank() : 0;
  const int64_t rows = group ? spec.batch : int64_t{spec.batch} * spec.world;
  auto model = make_mlp(group ? 7 + rank : 7);
  std::unique_ptr<Reducer> reducer;
  if (group) {
    reducer = std::make_unique<Reducer>(*group, model->named_parameters(), spec.reducer);
    reducer->broadcast_from_rank0(model->named_buffers());
  }
  optim::SGD opt(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  for (int step = 0; step < spec.steps; ++step) {
    auto [gx, gy] = global_batch(step, int64_t{spec.batch} * spec.world);
    Tensor x = gx.rows(rank * rows, rows), y = gy.rows(rank * rows, rows);
    opt.zero_grad();
    const int micro = group ? spec.micro : 1;
    const int64_t mrows = rows / micro;
    for (int m = 0; m < micro; ++m) {
      if (reducer) reducer->set_sync(m == micro - 1);
      autograd::Tape tape;
      Tensor loss;
      {
        autograd::GradRecorder rec(tape);
        loss = fn::scale(fn::softmax_cross_entropy((*model)(x.rows(m * mrows, mrows)), y.rows(m * mrows, mrows)),
                         1.0 / micro);
      }
      tape.backward(loss);
    }
    if (reducer) reducer->finalize();
    opt.step();
  }
  std::vector<std::vector<float>> out;
  for (const Tensor& p : model->parameters()) out.push_back(p.to_vector<float>());
  return out;
}

// Largest relative difference max|a - b| / max|b| over the parameter tensors.
inline double max_relative_difference(const std::vector<std::vector<float>>& a,
                                      const std::vector<std::vector<float>>& b) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < a[k].size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(a[k][i] - b[k][i])));
      scale = std::max(scale, static_cast<double>(std::abs(b[k][i])));
    }
    worst = std::max(worst, diff / std::max(scale, 1e-12));
  }
  return worst;
}

inline void reducer_matches_single_process(ProcessGroup& g, int micro) {
  TrainSpec spec;
  spec.world = g.size();
  spec.micro = micro;
  std::vector<std::vector<float>> got = train_mlp(&g, spec);
  std::vector<std::vector<float>> want = train_mlp(nullptr, spec);
  double rel = max_relative_difference(got, want);
  DT_CASE_CHECK(rel < 1e-5, "rank ", g.rank(), " of ", g.size(), " (", micro,
                " micro-batches): parameters differ from the single-process run at batch ", spec.world * spec.batch,
                " by ", rel, " (relative)");
}

// ---- agreement ------------------------------------------------------------------------

// The last rank disagrees on the batch size; every rank must throw, naming both values.
inline void agreement_batch_size_mismatch(ProcessGroup& g) {
  const int r = g.rank(), w = g.size();
  AgreementItems items = {{"parameters", describe_parameters(make_mlp(7)->named_parameters())},
                          {"batch size", r == w - 1 ? "64" : "32"},
                          {"dataset", "fashion_mnist_train.h5 sha 1234"}};
  std::string message;
  try {
    check_agreement(g, items);
  } catch (const DistributedError& e) {
    message = e.what();
  }
  DT_CASE_CHECK(!message.empty(), "rank ", r, ": check_agreement returned although the batch sizes differ");
  std::string others = w == 2 ? "rank 0 has '32'" : (w == 3 ? "ranks 0, 1 have '32'" : "ranks 0, 1, 2 have '32'");
  std::string expected = "batch size: " + others + "; rank " + std::to_string(w - 1) + " has '64'";
  DT_CASE_CHECK(message.find(expected) != std::string::npos, "rank ", r, ": message lacks \"", expected, "\": ",
                message);
  DT_CASE_CHECK(message.find("parameters:") == std::string::npos && message.find("dataset:") == std::string::npos,
                "only the differing item is named: ", message);
}

// Rank 1 builds a wider hidden layer and reads another dataset file.
inline void agreement_shape_and_dataset_mismatch(ProcessGroup& g) {
  const int r = g.rank();
  Generator gen(3);
  nn::Sequential model({std::make_shared<nn::Linear>(4, r == 1 ? 9 : 8, gen), std::make_shared<nn::Tanh>(),
                        std::make_shared<nn::Linear>(r == 1 ? 9 : 8, 2, gen)});
  AgreementItems items = {{"parameters", describe_parameters(model.named_parameters())},
                          {"batch size", "32"},
                          {"dataset", r == 1 ? "data/cifar10_train.h5" : "data/fashion_mnist_train.h5"}};
  std::string message;
  try {
    check_agreement(g, items);
  } catch (const DistributedError& e) {
    message = e.what();
  }
  DT_CASE_CHECK(!message.empty(), "rank ", r, ": check_agreement returned although shapes differ");
  for (const char* part : {"parameters: ", "rank 1 has line 1 '0.weight f32 (9, 4)'", "line 1 '0.weight f32 (8, 4)'",
                           "dataset: ", "rank 1 has 'data/cifar10_train.h5'", "'data/fashion_mnist_train.h5'"}) {
    DT_CASE_CHECK(message.find(part) != std::string::npos, "rank ", r, ": message lacks \"", part, "\": ", message);
  }
}

inline void agreement_passes_when_equal(ProcessGroup& g) {
  check_agreement(g, {{"parameters", describe_parameters(make_mlp(7)->named_parameters())},
                      {"batch size", "32"},
                      {"long", std::string(5000, 'x')}});
}

}  // namespace dtrain::dist::cases
