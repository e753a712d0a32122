#pragma once
// Learning-rate schedules as pure functions of the step: lr_at(s) is the rate for the
// optimizer step with 0-based index s. Having no state besides the step count, they
// resume exactly from a checkpointed step.
#include <cstdint>
#include <memory>
#include <string>

namespace dtrain::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr_at(int64_t step) const = 0;
  virtual std::string describe() const = 0;
};

class ConstantLr : public LrSchedule {
 public:
  explicit ConstantLr(double lr);
  double lr_at(int64_t step) const override;
  std::string describe() const override;

 private:
  double lr_;
};

// lr * gamma^(floor(step / step_size)), as torch.optim.lr_scheduler.StepLR.
class StepLr : public LrSchedule {
 public:
  StepLr(double lr, int64_t step_size, double gamma);
  double lr_at(int64_t step) const override;
  std::string describe() const override;

 private:
  double lr_;
  int64_t step_size_;
  double gamma_;
};

// Linear warm-up from lr/warmup to lr over the first `warmup` steps (step s uses
// lr * (s + 1) / warmup), then a half cosine from lr down to min_lr at step `total`,
// and min_lr after that.
class CosineWarmupLr : public LrSchedule {
 public:
  CosineWarmupLr(double lr, int64_t warmup, int64_t total, double min_lr = 0.0);
  double lr_at(int64_t step) const override;
  std::string describe() const override;

 private:
  double lr_;
  int64_t warmup_, total_;
  double min_lr_;
};

}  // namespace dtrain::optim
