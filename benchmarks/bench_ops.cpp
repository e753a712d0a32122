// Micro-benchmark: the overhead of dtrain's op path (Tensor, dispatch, autograd
// recording) over calling the kernel library directly, side by side in one run.
//
//   bench_ops [--reps N]
//
// For each case it prints the median time of dtrain's path and of the baseline and
// their ratio (baseline / dtrain: 1.0 means no overhead, below 1 means dtrain is slower).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/rng.h"

using namespace dtrain;

namespace {

double median_ms(const std::function<void()>& f, int reps) {
  std::vector<double> t;
  f();  // warm-up
  for (int i = 0; i < reps; ++i) {
    auto s = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const char* name, double ours, double base) {
  std::printf("%-34s dtrain %9.4f ms   baseline %9.4f ms   ratio %.3f\n", name, ours, base, base / ours);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 50;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_ops [--reps N]\n");
      return 2;
    }
  }
  Generator gen(7);
  std::printf("median of %d repetitions, CPU, f32\n", reps);
  for (int64_t n : {64, 256, 512}) {
    Tensor a = Tensor::empty({n, n}), b = Tensor::empty({n, n});
    gen.normal_(a);
    gen.normal_(b);
    std::vector<float> c(static_cast<size_t>(n * n));
    double ours = median_ms([&] { fn::matmul(a, b); }, reps);
    double base = median_ms(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n,
                      0.0f, c.data(), n);
        },
        reps);
    report(("matmul " + std::to_string(n) + "x" + std::to_string(n)).c_str(), ours, base);
  }
  // A small MLP layer forward + backward through the tape versus the same three GEMMs by hand.
  {
    int64_t batch = 64, in = 256, out = 256;
    Tensor x = Tensor::empty({batch, in}), w = Tensor::empty({out, in});
    gen.normal_(x);
    gen.normal_(w);
    w.set_requires_grad(true);
    std::vector<float> y(static_cast<size_t>(batch * out)), gw(static_cast<size_t>(out * in)),
        gx(static_cast<size_t>(batch * in));
    autograd::Tape tape;
    double ours = median_ms(
        [&] {
          Tensor loss;
          {
            autograd::GradRecorder rec(tape);
            loss = fn::sum(fn::matmul(x, w, false, true));
          }
          tape.backward(loss);
        },
        reps);
    std::vector<float> ones(y.size(), 1.0f);
    double base = median_ms(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, out, in, 1.0f, x.data<float>(), in,
                      w.data<float>(), in, 0.0f, y.data(), out);
          double s = 0;
          for (float v : y) s += v;
          (void)s;
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, batch, 1.0f, ones.data(), out, x.data<float>(),
                      in, 0.0f, gw.data(), in);
        },
        reps);
    report("linear 64x256x256 fwd+bwd", ours, base);
  }
  return 0;
}
