#pragma once
// L-BFGS (limited-memory BFGS), with the behaviour of PyTorch's torch.optim.LBFGS: one
// step(closure) runs up to max_iter iterations, each a two-loop recursion over the last
// history_size curvature pairs (s, y) followed by either a fixed step of length lr (the
// first iteration: min(1, 1 / |g|_1) * lr) or a strong-Wolfe line search (cubic
// interpolation, c1 = 1e-4, c2 = 0.9, at most 25 evaluations); it stops early on a small
// gradient (max |g| <= tolerance_grad), a small change of the loss or of the parameters
// (tolerance_change), or max_eval evaluations of the closure. State (the curvature pairs,
// the last direction and step) carries over between step() calls, as in PyTorch.
//
// Unlike the other optimizers it needs the loss at points it chooses, so it is not an
// Optimizer: the closure must zero the gradients, compute the loss, run backward and
// return the loss value; step() reads the parameters' gradients after each call.
//
// Note [L-BFGS on the host]: the vectors of the method (the flattened gradient, direction
// and history) live on the host in double, whatever the parameters' device and dtype;
// each evaluation copies the gradients to the host and each update copies the new values
// back. That is cheap next to the closure for what L-BFGS is used for here (an image's
// pixels: a few hundred thousand values), and makes the iterates agree with PyTorch's
// run in float64. Memory: about 2 * history_size * numel doubles.
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/nn/module.h"

namespace dtrain::optim {

class LBFGS {
 public:
  struct Options {
    double lr = 1.0;
    int64_t max_iter = 20;
    std::optional<int64_t> max_eval = std::nullopt;  // default max_iter * 5 / 4, as PyTorch
    double tolerance_grad = 1e-7;
    double tolerance_change = 1e-9;
    int64_t history_size = 100;
    bool strong_wolfe = false;  // PyTorch's line_search_fn="strong_wolfe"; false: None
  };
  using Closure = std::function<double()>;

  LBFGS(nn::NamedTensors params, Options options);
  // Runs one optimizer step (up to max_iter iterations) and returns the loss of the first
  // evaluation (PyTorch's orig_loss). Not recorded by autograd outside the closure.
  double step(const Closure& closure);

  int64_t iterations() const { return n_iter_; }          // over all step() calls
  int64_t function_evaluations() const { return func_evals_; }
  const Options& options() const { return opt_; }
  const nn::NamedTensors& params() const { return params_; }

 private:
  std::vector<double> gather_flat_grad() const;
  std::vector<double> gather_params() const;
  void set_params(const std::vector<double>& x);
  // params += t * d
  void add_grad(double t, const std::vector<double>& d);
  // Evaluates the closure at x + t d, returns (loss, gradient) and restores x.
  std::pair<double, std::vector<double>> directional_evaluate(const Closure& closure, const std::vector<double>& x,
                                                              double t, const std::vector<double>& d);
  struct LineSearch {
    double f;
    std::vector<double> g;
    double t;
    int64_t evals;
  };
  LineSearch strong_wolfe(const Closure& closure, const std::vector<double>& x, double t,
                          const std::vector<double>& d, double f, const std::vector<double>& g, double gtd);

  nn::NamedTensors params_;
  Options opt_;
  int64_t numel_ = 0;
  // State carried between step() calls (PyTorch's state dict of the first parameter).
  int64_t n_iter_ = 0;
  int64_t func_evals_ = 0;
  std::vector<double> d_, prev_flat_grad_;
  double t_ = 0;
  double h_diag_ = 1;
  double prev_loss_ = 0;
  std::deque<std::vector<double>> old_dirs_, old_stps_;  // y and s pairs, oldest first
  std::deque<double> ro_;
};

}  // namespace dtrain::optim
