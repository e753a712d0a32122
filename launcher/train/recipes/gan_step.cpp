// One GAN step: see gan_step.h.
#include "launcher/train/recipes/gan_step.h"

#include <vector>

#include "core/autograd.h"
#include "core/functional.h"

namespace dtrain::launcher {

namespace {

// Note [GAN generator step freezes D]: marks parameters requires_grad = false while alive.
class FreezeParams {
 public:
  explicit FreezeParams(std::vector<Tensor> params) : params_(std::move(params)) {
    for (Tensor& p : params_) {
      was_.push_back(p.requires_grad());
      p.set_requires_grad(false);
    }
  }
  ~FreezeParams() {
    for (size_t i = 0; i < params_.size(); ++i) params_[i].set_requires_grad(was_[i]);
  }
  FreezeParams(const FreezeParams&) = delete;
  FreezeParams& operator=(const FreezeParams&) = delete;

 private:
  std::vector<Tensor> params_;
  std::vector<bool> was_;
};

double mean_probability(const Tensor& logits) {
  autograd::NoGrad no_grad;
  return fn::mean(fn::sigmoid(logits)).to(DType::F64).item<double>();
}

double value(const Tensor& t) { return t.detach().to(DType::F64).item<double>(); }

}  // namespace

GanStep::GanStep(nn::Module& generator, nn::Module& discriminator, optim::Optimizer& opt_g,
                 optim::Optimizer& opt_d, dist::Reducer* reducer_g, dist::Reducer* reducer_d, Generator& noise_rng,
                 GanStepOptions options)
    : g_(generator),
      d_(discriminator),
      opt_g_(opt_g),
      opt_d_(opt_d),
      reducer_g_(reducer_g),
      reducer_d_(reducer_d),
      noise_rng_(noise_rng),
      options_(options) {
  DT_CHECK(options_.z_dim > 0, "GanStep: z_dim must be positive, got ", options_.z_dim);
  DT_CHECK(&generator != &discriminator, "GanStep: the generator and the discriminator must be different modules");
  DT_CHECK(reducer_g == nullptr || reducer_g != reducer_d, "GanStep: give each network its own Reducer");
}

GanStepResult GanStep::step(const Tensor& real) {
  DT_CHECK(real.defined() && real.ndim() == 4, "GanStep: expected real images (N, C, H, W), got ",
           real.defined() ? real.str() : "undefined");
  Tensor z = Tensor::empty({real.size(0), options_.z_dim, 1, 1}, real.dtype(), real.device());
  noise_rng_.normal_(z, 0.0, 1.0);
  return step(real, z);
}

GanStepResult GanStep::step(const Tensor& real, const Tensor& z) {
  DT_CHECK(real.defined() && real.ndim() == 4, "GanStep: expected real images (N, C, H, W), got ",
           real.defined() ? real.str() : "undefined");
  DT_CHECK(z.defined() && z.ndim() == 4 && z.size(0) == real.size(0) && z.size(1) == options_.z_dim,
           "GanStep: expected noise (", real.size(0), ", ", options_.z_dim, ", 1, 1), got ",
           z.defined() ? z.str() : "undefined");
  const int64_t n = real.size(0);
  const Tensor ones = Tensor::full({n}, 1.0, real.dtype(), real.device());
  const Tensor zeros = Tensor::zeros({n}, real.dtype(), real.device());
  GanStepResult result;

  // fake = G(z): on the generator's tape when G trains, unrecorded otherwise.
  autograd::Tape g_tape;
  Tensor fake;  // (N, C, H, W)
  if (options_.train_generator) {
    autograd::GradRecorder rec(g_tape);
    fake = g_(z);
  } else {
    autograd::NoGrad no_grad;
    fake = g_(z);
  }

  // Discriminator step. fake is detached: G's parameters are not on this tape, so
  // reducer_g sees nothing here.
  {
    autograd::Tape d_tape;
    Tensor loss_d, real_logits, fake_logits;
    if (options_.train_discriminator) {
      autograd::GradRecorder rec(d_tape);
      real_logits = d_(real);
      fake_logits = d_(fake.detach());
      loss_d = fn::bce_with_logits(real_logits, ones) + fn::bce_with_logits(fake_logits, zeros);
    } else {
      autograd::NoGrad no_grad;
      real_logits = d_(real);
      fake_logits = d_(fake.detach());
      loss_d = fn::bce_with_logits(real_logits, ones) + fn::bce_with_logits(fake_logits, zeros);
    }
    result.loss_d = value(loss_d);
    result.d_real_mean = mean_probability(real_logits);
    result.d_fake_mean = mean_probability(fake_logits);
    if (options_.train_discriminator) {
      opt_d_.zero_grad();
      d_tape.backward(loss_d);
      if (reducer_d_) reducer_d_->finalize();
      opt_d_.step();
    }
  }

  // Generator step through the frozen discriminator (Note [GAN generator step freezes D]).
  if (options_.train_generator) {
    FreezeParams freeze(d_.parameters());
    Tensor loss_g, logits;
    {
      autograd::GradRecorder rec(g_tape);
      logits = d_(fake);
      loss_g = fn::bce_with_logits(logits, ones);
    }
    result.loss_g = value(loss_g);
    result.d_fake_after = mean_probability(logits);
    opt_g_.zero_grad();
    g_tape.backward(loss_g);
    if (reducer_g_) reducer_g_->finalize();
    opt_g_.step();
  }
  return result;
}

}  // namespace dtrain::launcher
