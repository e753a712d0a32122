#include "launcher/cli/commands.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/image.h"
#include "core/nn/layers.h"
#include "core/optim/optimizer.h"
#include "core/runtime.h"
#include "launcher/cli/args.h"

namespace dtrain::cli {

namespace {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    int index = name == "cuda" ? 0 : std::stoi(name.substr(5));
    cuda::check_device(index);
    return Device::cuda(index);
  }
  DT_THROW(ConfigError, "unknown device '", name, "': use cpu, cuda or cuda:N");
}

// ---- and ------------------------------------------------------------------------------
// One neuron, y = step(w . x + b) with w = (1, 1), b = -1.5: only (1, 1) clears the
// threshold, so the neuron computes x1 AND x2.
int demo_and(const cli::ArgParser& args) {
  Device device = parse_device(args.get("device"));
  Generator gen(0);
  nn::Linear neuron(2, 1, gen);
  neuron.weight().copy_(Tensor::from_vector<float>({1.0f, 1.0f}, {1, 2}));
  neuron.bias().copy_(Tensor::from_vector<float>({-1.5f}, {1}));
  neuron.to(device);
  nn::Step step;
  Tensor x = Tensor::from_vector<float>({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}).to(device);
  Tensor z = neuron(x);
  std::vector<float> zs = z.to(Device::cpu()).to_vector<float>();
  std::vector<float> ys = step(z).to(Device::cpu()).to_vector<float>();
  std::printf("AND neuron: y = step(w1*x1 + w2*x2 + b), w = (1, 1), b = -1.5, step(z) = 1 if z >= 0 else 0\n");
  std::printf(" x1  x2 |    z  | y\n");
  for (int i = 0; i < 4; ++i) {
    std::printf("  %d   %d | %5.1f | %d\n", i / 2, i % 2, zs[i], static_cast<int>(ys[i]));
  }
  return 0;
}

// ---- xor ------------------------------------------------------------------------------
// XOR is not linearly separable: one neuron cannot compute it, a hidden layer of two can.
// 2-2-1 with sigmoids = 2*2 + 2 + 2*1 + 1 = 9 parameters, trained by full-batch gradient
// descent on the mean squared error until the rounded outputs are the truth table.
int demo_xor(const cli::ArgParser& args) {
  Device device = parse_device(args.get("device"));
  uint64_t seed = static_cast<uint64_t>(args.get_int("seed"));
  double lr = args.get_double("lr");
  int64_t max_steps = args.get_int("max-steps");
  Generator gen(seed);
  nn::Sequential net{std::make_shared<nn::Linear>(2, 2, gen), std::make_shared<nn::Sigmoid>(),
                     std::make_shared<nn::Linear>(2, 1, gen), std::make_shared<nn::Sigmoid>()};
  net.to(device);
  std::printf("XOR network 2-2-1 (sigmoid), parameters: %lld\n", static_cast<long long>(net.num_parameters()));
  for (const auto& [name, p] : net.named_parameters()) std::printf("  %-9s %s\n", name.c_str(), shape_str(p.shape()).c_str());

  Tensor x = Tensor::from_vector<float>({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}).to(device);
  Tensor y = Tensor::from_vector<float>({0, 1, 1, 0}, {4, 1}).to(device);
  const float truth[4] = {0, 1, 1, 0};
  optim::SGD sgd(net.named_parameters(), optim::SGD::Options{.lr = lr, .momentum = 0.9});
  autograd::Tape tape;
  int64_t step = 0;
  std::vector<float> out;
  // Solved when every rounded output is the truth table's value, with a margin so the
  // answer does not hinge on an output of 0.499.
  double margin = args.get_double("margin");
  auto solved = [&] {
    for (int i = 0; i < 4; ++i) {
      if (std::fabs(out[i] - truth[i]) > 0.5 - margin) return false;
    }
    return true;
  };
  double loss_value = 0;
  for (; step <= max_steps; ++step) {
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      Tensor pred = net(x);
      loss = fn::mse_loss(pred, y);
      out = pred.to(Device::cpu()).to_vector<float>();
    }
    loss_value = loss.to(Device::cpu()).item<float>();
    if (step % 500 == 0) std::printf("step %6lld  loss %.6f\n", static_cast<long long>(step), loss_value);
    if (solved()) break;
    sgd.zero_grad();
    tape.backward(loss);
    sgd.step();
    tape.clear();
  }
  tape.clear();
  if (!solved()) {
    std::printf("not solved after %lld steps (loss %.6f); try another --seed or a larger --lr\n",
                static_cast<long long>(max_steps), loss_value);
    return 1;
  }
  std::printf("solved after %lld steps, loss %.6f\n", static_cast<long long>(step), loss_value);
  std::printf(" x1  x2 | output | rounded | x1 XOR x2\n");
  for (int i = 0; i < 4; ++i) {
    std::printf("  %d   %d | %.4f |       %ld |         %d\n", i / 2, i % 2, out[i], std::lround(out[i]),
                static_cast<int>(truth[i]));
  }
  return 0;
}

// ---- line -----------------------------------------------------------------------------
// Gradient descent on a line: fit y = a*x + b to samples of y = 3x + 0.5 from a = -2,
// b = 1, loss = mean over samples of (y - (a*x + b))^2. Each step prints a, b, the mean
// gradients dL/da = mean(-2 x (y - a x - b)), dL/db = mean(-2 (y - a x - b)) and the
// mean loss, then moves a, b against the gradient.
int demo_line(const cli::ArgParser& args) {
  Device device = parse_device(args.get("device"));
  double lr = args.get_double("lr");
  int64_t max_steps = args.get_int("max-steps");
  double tol = args.get_double("tol");
  const std::vector<float> xs = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 2.5f};
  const float true_a = 3.0f, true_b = 0.5f;
  std::vector<float> ys;
  for (float v : xs) ys.push_back(true_a * v + true_b);
  int64_t n = static_cast<int64_t>(xs.size());
  Tensor x = Tensor::from_vector(xs, {n}).to(device);
  Tensor y = Tensor::from_vector(ys, {n}).to(device);
  Tensor ones = Tensor::ones({n}, DType::F32, device);
  Tensor a = Tensor::from_vector<float>({-2.0f}, {1}).to(device).set_requires_grad(true);
  Tensor b = Tensor::from_vector<float>({1.0f}, {1}).to(device).set_requires_grad(true);
  optim::SGD sgd({{"a", a}, {"b", b}}, optim::SGD::Options{.lr = lr});
  std::printf("samples of y = %.1f*x + %.1f at x =", true_a, true_b);
  for (float v : xs) std::printf(" %.1f", v);
  std::printf("\nstart a = -2, b = 1, learning rate %g\n", lr);
  std::printf("%6s %10s %10s %12s %12s %12s\n", "step", "a", "b", "dL/da", "dL/db", "loss");
  autograd::Tape tape;
  int64_t step = 0;
  float av = 0, bv = 0;
  for (; step < max_steps; ++step) {
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      Tensor pred = fn::add(fn::mul_scalar_tensor(x, a), fn::mul_scalar_tensor(ones, b));
      loss = fn::mse_loss(pred, y);
    }
    sgd.zero_grad();
    tape.backward(loss);
    av = a.to(Device::cpu()).item<float>();
    bv = b.to(Device::cpu()).item<float>();
    float ga = a.grad().to(Device::cpu()).item<float>();
    float gb = b.grad().to(Device::cpu()).item<float>();
    float l = loss.to(Device::cpu()).item<float>();
    std::printf("%6lld %10.5f %10.5f %12.6f %12.6f %12.8f\n", static_cast<long long>(step), av, bv, ga, gb, l);
    if (std::fabs(ga) < tol && std::fabs(gb) < tol) break;
    sgd.step();
  }
  bool converged = std::fabs(av - true_a) < 1e-3 && std::fabs(bv - true_b) < 1e-3;
  std::printf("fitted y = %.5f*x + %.5f after %lld steps; generating line y = %.1f*x + %.1f (%s)\n", av, bv,
              static_cast<long long>(step), true_a, true_b, converged ? "converged within 1e-3" : "NOT converged");
  return converged ? 0 : 1;
}

// ---- sobel ----------------------------------------------------------------------------
// The lecture's convolution example: edge detection with the Sobel kernels
// Gx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] and Gy = Gx^T as the two output channels of
// one conv2d (padding 1, so the edges keep the image's size), then the gradient
// magnitude sqrt(gx^2 + gy^2) scaled so that its maximum is 255.
int demo_sobel(const cli::ArgParser& args) {
  Device device = parse_device(args.get("device"));
  io::Image image = io::to_grayscale(io::read_image(args.get("image")));
  Tensor x = io::image_to_tensor(image).to(device);  // (1, 1, H, W), values 0..255
  Tensor w = Tensor::from_vector<float>({-1, 0, 1, -2, 0, 2, -1, 0, 1,     // Gx
                                         -1, -2, -1, 0, 0, 0, 1, 2, 1},    // Gy = Gx^T
                                        {2, 1, 3, 3})
                 .to(device);
  Tensor g = fn::conv2d(x, w, Tensor(), 1, 1);  // (1, 2, H, W)
  std::vector<float> gv = g.to(Device::cpu()).to_vector<float>();
  int64_t hw = image.height * image.width;
  std::vector<double> magnitude(static_cast<size_t>(hw));
  double max_mag = 0;
  for (int64_t i = 0; i < hw; ++i) {
    double gx = gv[static_cast<size_t>(i)], gy = gv[static_cast<size_t>(hw + i)];
    magnitude[static_cast<size_t>(i)] = std::sqrt(gx * gx + gy * gy);
    max_mag = std::max(max_mag, magnitude[static_cast<size_t>(i)]);
  }
  io::Image out;
  out.height = image.height;
  out.width = image.width;
  out.channels = 1;
  out.pixels.resize(static_cast<size_t>(hw));
  for (int64_t i = 0; i < hw; ++i) {
    // A flat image has no edges: it stays black rather than dividing by zero.
    double v = max_mag > 0 ? magnitude[static_cast<size_t>(i)] * 255.0 / max_mag : 0.0;
    out.pixels[static_cast<size_t>(i)] = static_cast<uint8_t>(std::lround(v));
  }
  io::write_image(args.get("out"), out);
  std::printf("Sobel edges of %s: %lld x %lld pixels (width x height), max gradient magnitude %.3f "
              "(pixel values 0..255), scaled to 255 in %s\n",
              args.get("image").c_str(), static_cast<long long>(image.width), static_cast<long long>(image.height),
              max_mag, args.get("out").c_str());
  return 0;
}

struct DemoSpec {
  const char* summary;
  std::function<void(cli::ArgParser&)> options;
  std::function<int(const cli::ArgParser&)> run;
};

const std::map<std::string, DemoSpec>& demos() {
  static const std::map<std::string, DemoSpec> table = {
      {"and", {"a single neuron with a step activation computing x1 AND x2", [](cli::ArgParser&) {}, demo_and}},
      {"xor",
       {"a 2-2-1 sigmoid network trained by gradient descent until it computes XOR",
        [](cli::ArgParser& p) {
          p.add_option("seed", "N", "seed of the weight initialization", "1");
          p.add_option("lr", "RATE", "learning rate of SGD (momentum 0.9)", "0.5");
          p.add_option("max-steps", "N", "give up after this many steps", "20000");
          p.add_option("margin", "M", "stop once every output is within 0.5 - M of its target", "0.2");
        },
        demo_xor}},
      {"line",
       {"fit y = a*x + b by full-batch gradient descent, printing each step",
        [](cli::ArgParser& p) {
          p.add_option("lr", "RATE", "learning rate", "0.1");
          p.add_option("max-steps", "N", "stop after this many steps", "1000");
          p.add_option("tol", "EPS", "stop when both mean gradients are below this", "1e-5");
        },
        demo_line}},
      {"sobel",
       {"Sobel edge detection of an image by conv2d (PNG, JPEG, PGM or PPM in; PNG, JPEG or PGM out)",
        [](cli::ArgParser& p) {
          p.add_positional("image", "the input image (.png, .jpg, binary .pgm or .ppm; color becomes grayscale)");
          p.add_positional("out", "where to write the edge magnitudes (.png, .jpg or .pgm, chosen by extension)");
        },
        demo_sobel}},
  };
  return table;
}

}  // namespace

int demo_main(const std::vector<std::string>& args) {
  std::string list, names;
  for (const auto& [name, spec] : demos()) {
    list += "  " + name + std::string(8 - name.size(), ' ') + spec.summary + "\n";
    if (!names.empty()) names += ", ";
    names += name;
  }
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::printf("usage: dtrain demo NAME [options]\n\nThe lecture's demos. NAME is one of:\n%s\n"
                "Run 'dtrain demo NAME --help' for a demo's options.\n", list.c_str());
    if (args.empty()) DT_THROW(ConfigError, "dtrain demo: missing demo name; choose one of: ", names);
    return 0;
  }
  auto it = demos().find(args[0]);
  if (it == demos().end()) {
    DT_THROW(ConfigError, "dtrain demo: unknown demo '", args[0], "'; choose one of: ", names);
  }
  cli::ArgParser parser("dtrain demo " + args[0], it->second.summary);
  parser.add_option("device", "DEV", "cpu, cuda or cuda:N", "cpu");
  it->second.options(parser);
  parser.parse(std::vector<std::string>(args.begin() + 1, args.end()));
  if (parser.help_requested()) {
    std::printf("%s", parser.help().c_str());
    return 0;
  }
  return it->second.run(parser);
}

}  // namespace dtrain::cli
