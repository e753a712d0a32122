#pragma once
// GanStep: one alternating GAN training step (discriminator, then generator) with two
// optimizers, single-process or data-parallel with one Reducer per network.
//
// One step, as the PyTorch DCGAN example:
//   z ~ N(0, 1) (N, z_dim, 1, 1);  fake = G(z), recorded on the generator's tape.
//   Discriminator step: loss_d = bce(D(real), 1) + bce(D(fake.detach()), 0); backward on
//     a tape of its own (fake is detached, so only D's parameters are leaves on it);
//     reducer_d.finalize(); opt_d.step().
//   Generator step: loss_g = bce(D(fake), 1) with D's parameters frozen (below); backward
//     through D into G; reducer_g.finalize(); opt_g.step().
// Gradients are zeroed (opt.zero_grad()) before each backward, so a step never sees
// gradients of the other half.
//
// Note [GAN generator step freezes D]: the generator step back-propagates through the
// discriminator, but D's parameters must not be all-reduced, accumulated or updated
// there. GanStep marks them requires_grad = false for the duration of the generator
// step (an RAII guard restores them, also when an exception escapes). Then, by the
// tape's rules (core/autograd.h), they are not leaves of that backward: no gradient is
// accumulated into them and their ready-hooks, which are reducer_d's, do not fire, so
// reducer_d issues no collective at all in the generator step. Each rank therefore issues
// exactly reducer_d's buckets (in bucket order) in the discriminator step and exactly
// reducer_g's buckets in the generator step, the same sequence on every rank (Note
// [Same call order] in distributed/process_group.h), and neither reducer ever sees a
// parameter "unused" in the backward it synchronizes: every D parameter is used by the
// discriminator step's backward and every G parameter by the generator step's. The
// alternative (reducer_d.set_sync(false) and zeroing D's gradients after) would let the
// hooks run, copy D's gradients locally for nothing and compute D's weight gradients
// that are thrown away; freezing also skips the weight-gradient kernels of D's layers.
// The two reducers may share one ProcessGroup: their collectives never interleave.
#include <memory>

#include "core/nn/module.h"
#include "core/optim/optimizer.h"
#include "core/rng.h"
#include "distributed/reducer.h"

namespace dtrain::launcher {

struct GanStepResult {
  double loss_d = 0;         // bce(D(real), 1) + bce(D(fake), 0), this rank's batch
  double loss_g = 0;         // bce(D(G(z)), 1) after the discriminator's update (0 when G is not trained)
  double d_real_mean = 0;    // mean sigmoid(D(real)) in the discriminator step
  double d_fake_mean = 0;    // mean sigmoid(D(fake)) in the discriminator step
  double d_fake_after = 0;   // mean sigmoid(D(fake)) in the generator step
};

struct GanStepOptions {
  int z_dim = 100;
  // Which halves run (both in training; tests freeze one network by clearing a flag).
  // Every rank must pass the same flags (Note [Same call order]).
  bool train_discriminator = true;
  bool train_generator = true;
};

class GanStep {
 public:
  // reducer_g / reducer_d: null for a single process; otherwise Reducers over exactly the
  // generator's and the discriminator's parameters. The networks, optimizers, reducers
  // and noise generator must outlive the GanStep.
  GanStep(nn::Module& generator, nn::Module& discriminator, optim::Optimizer& opt_g, optim::Optimizer& opt_d,
          dist::Reducer* reducer_g, dist::Reducer* reducer_d, Generator& noise_rng, GanStepOptions options = {});

  // real (N, C, H, W) images in [-1, 1]; draws z (N, z_dim, 1, 1) from noise_rng on real's
  // device and dtype.
  GanStepResult step(const Tensor& real);
  // The same with the caller's noise z (N, z_dim, 1, 1).
  GanStepResult step(const Tensor& real, const Tensor& z);

  const GanStepOptions& options() const { return options_; }

 private:
  nn::Module& g_;
  nn::Module& d_;
  optim::Optimizer& opt_g_;
  optim::Optimizer& opt_d_;
  dist::Reducer* reducer_g_;
  dist::Reducer* reducer_d_;
  Generator& noise_rng_;
  GanStepOptions options_;
};

}  // namespace dtrain::launcher
