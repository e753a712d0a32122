// Small VGG training-step throughput on the CPU (the dtrain side of
// benchmarks/compare_small_vgg.py, which runs PyTorch beside it).
//
//   bench_small_vgg [--threads N] [--steps N] [--warmup N] [--batch N]
//
// One step = zero_grad, forward, softmax cross-entropy, backward, SGD-momentum update,
// exactly what benchmarks/small_vgg_torch.py times. Prints a human line per step to
// stderr and one JSON line with the per-step images/s to stdout.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/models/vgg.h"
#include "core/optim/optimizer.h"
#include "ops/cpu_threads.h"

using namespace dtrain;

int main(int argc, char** argv) {
  int threads = 0, steps = 10, warmup = 3;
  int64_t batch = 64;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_small_vgg: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (a == "--threads") {
      threads = next();
    } else if (a == "--steps") {
      steps = next();
    } else if (a == "--warmup") {
      warmup = next();
    } else if (a == "--batch") {
      batch = next();
    } else {
      std::fprintf(stderr, "usage: bench_small_vgg [--threads N] [--steps N] [--warmup N] [--batch N]\n");
      return 2;
    }
  }
  if (threads > 0) ops::cpu::set_num_threads(threads);
  Generator gen(0);
  auto model = models::small_vgg(gen, 10);
  optim::SGD sgd(model->named_parameters(), optim::SGD::Options{.lr = 0.01, .momentum = 0.9});
  Tensor x = Tensor::empty({batch, 3, 32, 32});
  gen.normal_(x);
  std::vector<int64_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = static_cast<int64_t>(gen.next_below(10));
  Tensor y = Tensor::from_vector(labels, {batch});

  autograd::Tape tape;
  std::vector<double> rates;
  float loss_value = 0;
  for (int step = 0; step < warmup + steps; ++step) {
    auto t0 = std::chrono::steady_clock::now();
    sgd.zero_grad();
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      loss = fn::softmax_cross_entropy(model->forward(x), y);
    }
    tape.backward(loss);
    sgd.step();
    loss_value = loss.item<float>();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "step %d: %.1f img/s, loss %.4f%s\n", step, batch / dt, loss_value,
                 step < warmup ? " (warm-up)" : "");
    if (step >= warmup) rates.push_back(static_cast<double>(batch) / dt);
  }
  std::printf("{\"impl\": \"dtrain\", \"threads\": %d, \"images_per_s\": [", ops::cpu::num_threads());
  for (size_t i = 0; i < rates.size(); ++i) std::printf("%s%.3f", i ? ", " : "", rates[i]);
  std::printf("], \"final_loss\": %.6f}\n", loss_value);
  return 0;
}
