#include "core/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace dtrain::optim {

ConstantLr::ConstantLr(double lr) : lr_(lr) { DT_CHECK(lr >= 0, "ConstantLr: lr must be >= 0, got ", lr); }
double ConstantLr::lr_at(int64_t) const { return lr_; }
std::string ConstantLr::describe() const { return detail::concat("constant(lr=", lr_, ")"); }

StepLr::StepLr(double lr, int64_t step_size, double gamma) : lr_(lr), step_size_(step_size), gamma_(gamma) {
  DT_CHECK(lr >= 0, "StepLr: lr must be >= 0, got ", lr);
  DT_CHECK(step_size > 0, "StepLr: step_size must be positive, got ", step_size);
  DT_CHECK(gamma > 0, "StepLr: gamma must be positive, got ", gamma);
}
double StepLr::lr_at(int64_t step) const {
  return lr_ * std::pow(gamma_, static_cast<double>(std::max<int64_t>(step, 0) / step_size_));
}
std::string StepLr::describe() const {
  return detail::concat("step(lr=", lr_, ", step_size=", step_size_, ", gamma=", gamma_, ")");
}

CosineWarmupLr::CosineWarmupLr(double lr, int64_t warmup, int64_t total, double min_lr)
    : lr_(lr), warmup_(warmup), total_(total), min_lr_(min_lr) {
  DT_CHECK(warmup >= 0 && total > warmup, "CosineWarmupLr: need 0 <= warmup < total, got warmup=", warmup,
           " total=", total);
  DT_CHECK(min_lr >= 0 && min_lr <= lr, "CosineWarmupLr: need 0 <= min_lr <= lr");
}
double CosineWarmupLr::lr_at(int64_t step) const {
  if (step < warmup_) return lr_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  double progress = std::clamp(static_cast<double>(step - warmup_) / static_cast<double>(total_ - warmup_), 0.0, 1.0);
  return min_lr_ + 0.5 * (lr_ - min_lr_) * (1.0 + std::cos(std::numbers::pi * progress));
}
std::string CosineWarmupLr::describe() const {
  return detail::concat("cosine(lr=", lr_, ", warmup=", warmup_, ", total=", total_, ", min_lr=", min_lr_, ")");
}

}  // namespace dtrain::optim
