#include "core/optim/lbfgs.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"

namespace dtrain::optim {

namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

// y += alpha * x
void axpy(std::vector<double>& y, double alpha, const std::vector<double>& x) {
  for (size_t i = 0; i < y.size(); ++i) y[i] += alpha * x[i];
}

// The minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to bounds
// (default: between x1 and x2); the bounds' midpoint when the cubic has no minimum.
// PyTorch's _cubic_interpolate (from torch7's polyinterp.lua).
double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                         std::optional<std::pair<double, double>> bounds = std::nullopt) {
  const auto [lo, hi] = bounds ? *bounds : (x1 <= x2 ? std::pair{x1, x2} : std::pair{x2, x1});
  const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const double d2_square = d1 * d1 - g1 * g2;
  if (d2_square >= 0) {
    const double d2 = std::sqrt(d2_square);
    const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                                    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    return std::min(std::max(min_pos, lo), hi);
  }
  return (lo + hi) / 2;
}

}  // namespace

LBFGS::LBFGS(nn::NamedTensors params, Options options) : params_(std::move(params)), opt_(options) {
  DT_CHECK(!params_.empty(), "L-BFGS: no parameters to optimize");
  DT_CHECK(opt_.lr > 0, "L-BFGS: lr must be positive, got ", opt_.lr);
  DT_CHECK(opt_.max_iter > 0, "L-BFGS: max_iter must be positive, got ", opt_.max_iter);
  DT_CHECK(opt_.history_size > 0, "L-BFGS: history_size must be positive, got ", opt_.history_size);
  if (!opt_.max_eval) opt_.max_eval = opt_.max_iter * 5 / 4;
  for (const auto& [name, p] : params_) {
    DT_CHECK(p.defined() && p.requires_grad(), "L-BFGS: parameter '", name, "' does not require grad");
    DT_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F64, "L-BFGS: parameter '", name,
             "' is ", p.str(), "; only f32 and f64 parameters are supported");
    numel_ += p.numel();
  }
}

std::vector<double> LBFGS::gather_flat_grad() const {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(numel_));
  for (const auto& [name, p] : params_) {
    Tensor g = p.grad();
    if (!g.defined()) {
      out.insert(out.end(), static_cast<size_t>(p.numel()), 0.0);  // as PyTorch: no gradient = zeros
      continue;
    }
    std::vector<double> v = g.to(Device::cpu()).to(DType::F64).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<double> LBFGS::gather_params() const {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(numel_));
  for (const auto& [name, p] : params_) {
    std::vector<double> v = p.to(Device::cpu()).to(DType::F64).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

void LBFGS::set_params(const std::vector<double>& x) {
  size_t offset = 0;
  for (const auto& [name, p] : params_) {
    const auto n = static_cast<size_t>(p.numel());
    std::vector<double> part(x.begin() + static_cast<std::ptrdiff_t>(offset),
                             x.begin() + static_cast<std::ptrdiff_t>(offset + n));
    p.copy_(Tensor::from_vector(part, p.shape()).to(p.dtype()).to(p.device()));
    offset += n;
  }
}

void LBFGS::add_grad(double t, const std::vector<double>& d) {
  std::vector<double> x = gather_params();
  axpy(x, t, d);
  set_params(x);
}

std::pair<double, std::vector<double>> LBFGS::directional_evaluate(const Closure& closure,
                                                                   const std::vector<double>& x, double t,
                                                                   const std::vector<double>& d) {
  add_grad(t, d);
  const double loss = closure();
  std::vector<double> g = gather_flat_grad();
  set_params(x);
  return {loss, std::move(g)};
}

// PyTorch's _strong_wolfe (from torch7's lswolfe.lua), step for step: bracket an
// interval holding a point that satisfies the strong Wolfe conditions, then zoom in on
// it by cubic interpolation.
LBFGS::LineSearch LBFGS::strong_wolfe(const Closure& closure, const std::vector<double>& x, double t,
                                      const std::vector<double>& d, double f, const std::vector<double>& g,
                                      double gtd) {
  constexpr double c1 = 1e-4, c2 = 0.9;
  constexpr int64_t max_ls = 25;
  const double tolerance_change = 1e-9;  // PyTorch's default, not the optimizer's option
  const double d_norm = max_abs(d);
  auto [f_new, g_new] = directional_evaluate(closure, x, t, d);
  int64_t evals = 1;
  double gtd_new = dot(g_new, d);

  double t_prev = 0, f_prev = f, gtd_prev = gtd;
  std::vector<double> g_prev = g;
  bool done = false;
  int64_t ls_iter = 0;
  std::vector<double> bracket, bracket_f, bracket_gtd;
  std::vector<std::vector<double>> bracket_g;
  while (ls_iter < max_ls) {
    if (f_new > f + c1 * t * gtd || (ls_iter > 1 && f_new >= f_prev)) {
      bracket = {t_prev, t};
      bracket_f = {f_prev, f_new};
      bracket_g = {g_prev, g_new};
      bracket_gtd = {gtd_prev, gtd_new};
      break;
    }
    if (std::fabs(gtd_new) <= -c2 * gtd) {
      bracket = {t};
      bracket_f = {f_new};
      bracket_g = {g_new};
      done = true;
      break;
    }
    if (gtd_new >= 0) {
      bracket = {t_prev, t};
      bracket_f = {f_prev, f_new};
      bracket_g = {g_prev, g_new};
      bracket_gtd = {gtd_prev, gtd_new};
      break;
    }
    const double min_step = t + 0.01 * (t - t_prev), max_step = t * 10;
    const double tmp = t;
    t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, std::pair{min_step, max_step});
    t_prev = tmp;
    f_prev = f_new;
    g_prev = g_new;
    gtd_prev = gtd_new;
    std::tie(f_new, g_new) = directional_evaluate(closure, x, t, d);
    ++evals;
    gtd_new = dot(g_new, d);
    ++ls_iter;
  }
  if (ls_iter == max_ls) {
    bracket = {0, t};
    bracket_f = {f, f_new};
    bracket_g = {g, g_new};
  }

  // Zoom: refine the bracket until a point satisfies the conditions.
  bool insuf_progress = false;
  size_t low = bracket_f.front() <= bracket_f.back() ? 0 : 1, high = 1 - low;
  while (!done && ls_iter < max_ls) {
    if (std::fabs(bracket[1] - bracket[0]) * d_norm < tolerance_change) break;
    t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]);
    // Too close to an end of the bracket (twice in a row, or outside it): move to 10% of
    // its length from the nearer end.
    const double b_max = std::max(bracket[0], bracket[1]), b_min = std::min(bracket[0], bracket[1]);
    const double eps = 0.1 * (b_max - b_min);
    if (std::min(b_max - t, t - b_min) < eps) {
      if (insuf_progress || t >= b_max || t <= b_min) {
        t = std::fabs(t - b_max) < std::fabs(t - b_min) ? b_max - eps : b_min + eps;
        insuf_progress = false;
      } else {
        insuf_progress = true;
      }
    } else {
      insuf_progress = false;
    }
    std::tie(f_new, g_new) = directional_evaluate(closure, x, t, d);
    ++evals;
    gtd_new = dot(g_new, d);
    ++ls_iter;
    if (f_new > f + c1 * t * gtd || f_new >= bracket_f[low]) {
      bracket[high] = t;
      bracket_f[high] = f_new;
      bracket_g[high] = g_new;
      bracket_gtd[high] = gtd_new;
      low = bracket_f[0] <= bracket_f[1] ? 0 : 1;
      high = 1 - low;
    } else {
      if (std::fabs(gtd_new) <= -c2 * gtd) {
        done = true;
      } else if (gtd_new * (bracket[high] - bracket[low]) >= 0) {
        bracket[high] = bracket[low];
        bracket_f[high] = bracket_f[low];
        bracket_g[high] = bracket_g[low];
        bracket_gtd[high] = bracket_gtd[low];
      }
      bracket[low] = t;
      bracket_f[low] = f_new;
      bracket_g[low] = g_new;
      bracket_gtd[low] = gtd_new;
    }
  }
  return {bracket_f[low], bracket_g[low], bracket[low], evals};
}

double LBFGS::step(const Closure& closure) {
  const int64_t max_eval = *opt_.max_eval;
  const double orig_loss = closure();
  double loss = orig_loss;
  int64_t current_evals = 1;
  ++func_evals_;
  autograd::NoGrad no_grad;  // the closure records its own forward (GradRecorder nests)

  std::vector<double> flat_grad = gather_flat_grad();
  if (max_abs(flat_grad) <= opt_.tolerance_grad) return orig_loss;

  int64_t n_iter = 0;
  while (n_iter < opt_.max_iter) {
    ++n_iter;
    ++n_iter_;
    // The descent direction: steepest descent first, then the two-loop recursion.
    if (n_iter_ == 1) {
      d_ = flat_grad;
      for (double& v : d_) v = -v;
      old_dirs_.clear();
      old_stps_.clear();
      ro_.clear();
      h_diag_ = 1;
    } else {
      std::vector<double> y = flat_grad;
      axpy(y, -1.0, prev_flat_grad_);
      std::vector<double> s = d_;
      for (double& v : s) v *= t_;
      const double ys = dot(y, s);
      if (ys > 1e-10) {
        if (static_cast<int64_t>(old_dirs_.size()) == opt_.history_size) {
          old_dirs_.pop_front();
          old_stps_.pop_front();
          ro_.pop_front();
        }
        h_diag_ = ys / dot(y, y);
        old_dirs_.push_back(std::move(y));
        old_stps_.push_back(std::move(s));
        ro_.push_back(1.0 / ys);
      }
      const size_t num_old = old_dirs_.size();
      std::vector<double> al(num_old);
      std::vector<double> q = flat_grad;
      for (double& v : q) v = -v;
      for (size_t k = num_old; k-- > 0;) {
        al[k] = dot(old_stps_[k], q) * ro_[k];
        axpy(q, -al[k], old_dirs_[k]);
      }
      for (double& v : q) v *= h_diag_;
      for (size_t k = 0; k < num_old; ++k) {
        const double be = dot(old_dirs_[k], q) * ro_[k];
        axpy(q, al[k] - be, old_stps_[k]);
      }
      d_ = std::move(q);
    }
    prev_flat_grad_ = flat_grad;
    prev_loss_ = loss;

    // The step length: the first iteration ever is scaled by the gradient's L1 norm.
    if (n_iter_ == 1) {
      double l1 = 0;
      for (double v : flat_grad) l1 += std::fabs(v);
      t_ = std::min(1.0, 1.0 / l1) * opt_.lr;
    } else {
      t_ = opt_.lr;
    }
    const double gtd = dot(flat_grad, d_);
    if (gtd > -opt_.tolerance_change) break;  // not a descent direction any more

    int64_t ls_evals = 0;
    bool opt_cond = false;
    if (opt_.strong_wolfe) {
      const std::vector<double> x_init = gather_params();
      LineSearch ls = strong_wolfe(closure, x_init, t_, d_, loss, flat_grad, gtd);
      loss = ls.f;
      flat_grad = std::move(ls.g);
      t_ = ls.t;
      ls_evals = ls.evals;
      add_grad(t_, d_);
      opt_cond = max_abs(flat_grad) <= opt_.tolerance_grad;
    } else {
      add_grad(t_, d_);
      if (n_iter != opt_.max_iter) {
        loss = closure();
        flat_grad = gather_flat_grad();
        opt_cond = max_abs(flat_grad) <= opt_.tolerance_grad;
        ls_evals = 1;
      }
    }
    current_evals += ls_evals;
    func_evals_ += ls_evals;

    if (n_iter == opt_.max_iter) break;
    if (current_evals >= max_eval) break;
    if (opt_cond) break;
    if (max_abs(d_) * std::fabs(t_) <= opt_.tolerance_change) break;
    if (std::fabs(loss - prev_loss_) < opt_.tolerance_change) break;
  }
  return orig_loss;
}

}  // namespace dtrain::optim
