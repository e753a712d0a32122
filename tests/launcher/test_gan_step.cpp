// GanStep (launcher/train/recipes/gan_step.h): the losses of a tiny DCGAN move as expected on a tiny
// set; the generator step leaves the discriminator alone and issues no collective on
// its reducer; 2 ranks at batch B match 1 rank at batch 2B.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "core/models/dcgan.h"
#include "launcher/train/recipes/gan_step.h"
#include "tests/distributed/cases.h"
#include "tests/distributed/threads_runner.h"

namespace dtrain::dist {
namespace {

using launcher::GanStep;
using launcher::GanStepOptions;
using launcher::GanStepResult;

using models::DcganConfig;
using testing::run_ranks;

DcganConfig tiny_config(bool batch_norm = true) {
  DcganConfig c;
  c.image_size = 28;
  c.z_dim = 8;
  c.g_channels = 4;
  c.d_channels = 4;
  c.batch_norm = batch_norm;
  return c;
}

// n images 28x28 in [-1, 1] of two patterns: even ones a bright horizontal bar, odd ones
// a bright vertical bar, on a dark background.
Tensor two_patterns(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n * 28 * 28), -1.0f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = 0; y < 28; ++y) {
      for (int64_t x = 0; x < 28; ++x) {
        bool on = (i % 2 == 0) ? (y >= 10 && y < 18) : (x >= 10 && x < 18);
        if (on) v[static_cast<size_t>((i * 28 + y) * 28 + x)] = 1.0f;
      }
    }
  }
  return Tensor::from_vector(v, {n, 1, 28, 28});
}

optim::Adam::Options adam(double lr) {
  optim::Adam::Options o;
  o.lr = lr;
  o.beta1 = 0.5;
  return o;
}

struct Gan {
  std::shared_ptr<models::DcganGenerator> g;
  std::shared_ptr<models::DcganDiscriminator> d;
  std::unique_ptr<optim::Optimizer> opt_g, opt_d;
};

Gan make_gan(const DcganConfig& c, uint64_t seed, bool sgd = false) {
  Gan gan;
  Generator init(seed);
  gan.g = models::make_dcgan_generator(c, init);
  gan.d = models::make_dcgan_discriminator(c, init);
  if (sgd) {
    optim::SGD::Options o;
    o.lr = 0.05;
    o.momentum = 0.9;
    gan.opt_g = std::make_unique<optim::SGD>(gan.g->named_parameters(), o);
    gan.opt_d = std::make_unique<optim::SGD>(gan.d->named_parameters(), o);
  } else {
    gan.opt_g = std::make_unique<optim::Adam>(gan.g->named_parameters(), adam(2e-3));
    gan.opt_d = std::make_unique<optim::Adam>(gan.d->named_parameters(), adam(2e-3));
  }
  return gan;
}

std::vector<float> flat(const nn::Module& m) {
  std::vector<float> out;
  for (const Tensor& p : m.parameters()) {
    std::vector<float> v = p.to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<double>(to - from);
}

TEST(GanStep, DiscriminatorLearnsAgainstAFrozenGenerator) {
  Gan gan = make_gan(tiny_config(), 11);
  Generator noise(5);
  GanStepOptions o;
  o.z_dim = 8;
  o.train_generator = false;
  GanStep step(*gan.g, *gan.d, *gan.opt_g, *gan.opt_d, nullptr, nullptr, noise, o);
  const std::vector<float> g_before = flat(*gan.g);
  Tensor real = two_patterns(32);
  std::vector<double> loss_d;
  GanStepResult last;
  for (int s = 0; s < 30; ++s) {
    last = step.step(real);
    ASSERT_TRUE(std::isfinite(last.loss_d)) << "step " << s;
    loss_d.push_back(last.loss_d);
  }
  // Starts near 2 ln 2 (D guesses 1/2 everywhere); fixed fakes are easy to tell apart.
  EXPECT_NEAR(loss_d[0], 2 * std::log(2.0), 0.3);
  EXPECT_LT(mean_of(loss_d, 25, 30), 0.5 * loss_d[0]) << "D's loss must drop against a frozen G";
  EXPECT_GT(last.d_real_mean, last.d_fake_mean + 0.3);
  EXPECT_EQ(last.loss_g, 0.0) << "no generator step ran";
  EXPECT_EQ(flat(*gan.g), g_before) << "G must not change when it is not trained";
}

TEST(GanStep, GeneratorLearnsToFoolAFrozenDiscriminatorWhichItLeavesAlone) {
  Gan gan = make_gan(tiny_config(), 12);
  Generator noise(6);
  Tensor real = two_patterns(16);
  // First D learns to reject G's current samples (G frozen) ...
  GanStepOptions od;
  od.z_dim = 8;
  od.train_generator = false;
  GanStep d_only(*gan.g, *gan.d, *gan.opt_g, *gan.opt_d, nullptr, nullptr, noise, od);
  for (int s = 0; s < 15; ++s) d_only.step(real);
  // ... then D is fixed and only G trains.
  GanStepOptions o;
  o.z_dim = 8;
  o.train_discriminator = false;
  GanStep step(*gan.g, *gan.d, *gan.opt_g, *gan.opt_d, nullptr, nullptr, noise, o);
  // D stays in training mode, as in a GAN step: its batch norm's running statistics (buffers)
  // move, its parameters must not.
  gan.opt_d->zero_grad();
  const std::vector<float> d_before = flat(*gan.d);
  const std::vector<float> g_before = flat(*gan.g);
  std::vector<double> loss_g;
  for (int s = 0; s < 30; ++s) {
    GanStepResult r = step.step(real);
    ASSERT_TRUE(std::isfinite(r.loss_g)) << "step " << s;
    loss_g.push_back(r.loss_g);
  }
  EXPECT_GT(loss_g[0], 1.0) << "the trained D rejects G's samples at first";
  EXPECT_LT(mean_of(loss_g, 25, 30), 0.5 * mean_of(loss_g, 0, 3)) << "G's loss must drop against a fixed D";
  EXPECT_EQ(flat(*gan.d), d_before) << "the generator step must not update D";
  for (const Tensor& p : gan.d->parameters()) {
    EXPECT_TRUE(p.requires_grad()) << "D's parameters are unfrozen after the step";
    const std::vector<float> grad = p.grad().to_vector<float>();
    for (float v : grad) ASSERT_EQ(v, 0.0f) << "no gradient may reach D's parameters in the generator step";
  }
  EXPECT_NE(flat(*gan.g), g_before);
}

TEST(GanStep, BothTrainingLossesStayFiniteAndMove) {
  Gan gan = make_gan(tiny_config(), 13);
  Generator noise(7);
  GanStepOptions o;
  o.z_dim = 8;
  GanStep step(*gan.g, *gan.d, *gan.opt_g, *gan.opt_d, nullptr, nullptr, noise, o);
  Tensor real = two_patterns(32);
  std::vector<double> loss_d, loss_g;
  for (int s = 0; s < 25; ++s) {
    GanStepResult r = step.step(real);
    ASSERT_TRUE(std::isfinite(r.loss_d) && std::isfinite(r.loss_g)) << "step " << s;
    ASSERT_TRUE(r.d_real_mean > 0 && r.d_real_mean < 1 && r.d_fake_mean > 0 && r.d_fake_mean < 1);
    loss_d.push_back(r.loss_d);
    loss_g.push_back(r.loss_g);
  }
  EXPECT_NEAR(loss_d[0], 2 * std::log(2.0), 0.3);
  EXPECT_NEAR(loss_g[0], std::log(2.0), 0.3);
  // D wins early on this easy set: its loss drops and G's rises above ln 2.
  EXPECT_LT(mean_of(loss_d, 20, 25), loss_d[0]);
  EXPECT_GT(mean_of(loss_g, 20, 25), loss_g[0]);
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += s;
  return out;
}

// Wraps a group and logs every all_reduce under a tag, in call order.
class TaggedGroup : public ProcessGroup {
 public:
  TaggedGroup(ProcessGroup& inner, std::string tag, std::vector<std::string>& log)
      : inner_(inner), tag_(std::move(tag)), log_(log) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return "tagged " + inner_.backend(); }
  WorkPtr all_reduce(const Tensor& t, ReduceOp op) override {
    log_.push_back(tag_);
    return inner_.all_reduce(t, op);
  }
  WorkPtr broadcast(const Tensor& t, int root) override { return inner_.broadcast(t, root); }
  WorkPtr all_gather(const Tensor& in, const Tensor& out) override { return inner_.all_gather(in, out); }
  WorkPtr barrier() override { return inner_.barrier(); }

 private:
  ProcessGroup& inner_;
  std::string tag_;
  std::vector<std::string>& log_;
};

TEST(GanStep, GeneratorStepIssuesNoAllReduceOnTheDiscriminatorsReducer) {
  run_ranks(2, [](ProcessGroup& inner) {
    std::vector<std::string> log;
    TaggedGroup gd(inner, "d", log), gg(inner, "g", log);
    Gan gan = make_gan(tiny_config(), 21);
    // Small caps: several buckets per network.
    Reducer reducer_d(gd, gan.d->named_parameters(), {256, 1024});
    Reducer reducer_g(gg, gan.g->named_parameters(), {256, 1024});
    const size_t nd = reducer_d.buckets().size(), ng = reducer_g.buckets().size();
    DT_CASE_CHECK(nd >= 2 && ng >= 2, "expected several buckets: ", reducer_d.layout(), reducer_g.layout());
    Generator noise = Generator::derive(3, inner.rank(), "gan noise");
    GanStepOptions o;
    o.z_dim = 8;
    GanStep step(*gan.g, *gan.d, *gan.opt_g, *gan.opt_d, &reducer_g, &reducer_d, noise, o);
    Tensor real = two_patterns(4);
    for (int s = 0; s < 2; ++s) {
      log.clear();
      step.step(real);
      std::vector<std::string> want(nd, "d");
      want.insert(want.end(), ng, "g");
      DT_CASE_CHECK(log == want, "step ", s, ": expected ", nd, " all-reduces on D's reducer then ", ng,
                    " on G's, got ", joined(log));
    }
  });
}

// K steps of 2 ranks at per-rank batch B (each with its slice of the data and noise) give
// the parameters of 1 rank at batch 2B. Without batch norm: per-rank batch statistics
// differ from the full batch's, so batch-normed networks are not equivalent (the same
// holds for PyTorch's DDP without SyncBatchNorm).
TEST(GanStep, TwoRanksAtBatchBMatchOneRankAtBatch2B) {
  constexpr int B = 3, K = 3;
  const DcganConfig c = tiny_config(/*batch_norm=*/false);
  const Tensor real = two_patterns(2 * B);
  std::vector<Tensor> zs;
  Generator noise(17);
  for (int k = 0; k < K; ++k) {
    Tensor z = Tensor::empty({2 * B, c.z_dim, 1, 1});
    noise.normal_(z);
    zs.push_back(z);
  }

  Gan ref = make_gan(c, 31, /*sgd=*/true);
  GanStepOptions o;
  o.z_dim = c.z_dim;
  Generator unused(0);
  GanStep ref_step(*ref.g, *ref.d, *ref.opt_g, *ref.opt_d, nullptr, nullptr, unused, o);
  std::vector<double> ref_loss_d;
  for (int k = 0; k < K; ++k) ref_loss_d.push_back(ref_step.step(real, zs[k]).loss_d);
  const std::vector<float> want_g = flat(*ref.g), want_d = flat(*ref.d);

  std::vector<std::vector<float>> got_g(2), got_d(2);
  std::vector<std::vector<double>> loss_d(2);
  run_ranks(2, [&](ProcessGroup& g) {
    const int r = g.rank();
    Gan gan = make_gan(c, 31 + 100 * r, /*sgd=*/true);  // different seeds: the broadcast must fix it
    Reducer reducer_d(g, gan.d->named_parameters());
    Reducer reducer_g(g, gan.g->named_parameters());
    reducer_d.broadcast_from_rank0();
    reducer_g.broadcast_from_rank0();
    Generator rank_noise(0);
    GanStep step(*gan.g, *gan.d, *gan.opt_g, *gan.opt_d, &reducer_g, &reducer_d, rank_noise, o);
    for (int k = 0; k < K; ++k) {
      loss_d[r].push_back(step.step(real.rows(r * B, B).clone(), zs[k].rows(r * B, B).clone()).loss_d);
    }
    got_g[r] = flat(*gan.g);
    got_d[r] = flat(*gan.d);
  });
  auto expect_close = [](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      double err = std::abs(double(got[i]) - want[i]) / std::max(1.0, std::abs(double(want[i])));
      if (err > worst) worst = err, at = i;
    }
    EXPECT_LT(worst, 2e-5) << what << ": worst relative error at " << at << ": " << got[at] << " vs " << want[at];
  };
  for (int r = 0; r < 2; ++r) {
    expect_close(got_g[r], want_g, ("G of rank " + std::to_string(r)).c_str());
    expect_close(got_d[r], want_d, ("D of rank " + std::to_string(r)).c_str());
  }
  EXPECT_EQ(got_g[0], got_g[1]) << "ranks must agree exactly";
  EXPECT_EQ(got_d[0], got_d[1]);
  EXPECT_NE(want_g, flat(*make_gan(c, 31).g)) << "the steps must have changed G";
  for (int k = 0; k < K; ++k) {
    // The full batch's mean loss is the mean of the two halves' losses.
    EXPECT_NEAR(0.5 * (loss_d[0][k] + loss_d[1][k]), ref_loss_d[k], 1e-5) << "step " << k;
  }
}

}  // namespace
}  // namespace dtrain::dist
