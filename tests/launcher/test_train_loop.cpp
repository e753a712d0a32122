// The training loop in process (launcher/train/loop.h) with a recipe that exists only in
// this test: a linear probe that regresses an image's label from its pixels. It shows
// that a recipe plugs into TrainLoop through the Recipe interface alone (no registry
// entry, no change to the loop) and that the loop drives it as documented: the step
// schedule, evaluations at eval.interval and at the end, checkpoints of its contents,
// the metrics records with its fields, a resume that calls its restore, and threads as
// ranks agreeing on every statistic.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/io/h5.h"
#include "core/nn/conv.h"
#include "core/nn/layers.h"
#include "core/optim/optimizer.h"
#include "distributed/process_group.h"
#include "launcher/train/common.h"
#include "launcher/train/loop.h"
#include "tests/datasets/data_test_util.h"

namespace dtrain::launcher {
namespace {

// What the loop asked of the recipe, for the assertions.
struct Calls {
  std::vector<int64_t> steps;  // the `step` argument of each step()
  std::vector<int64_t> evals;  // the step of each evaluate()
  int broadcasts = 0, restores = 0, finishes = 0;
};

class LinearProbe final : public Recipe {
 public:
  LinearProbe(const Config& cfg, Calls& calls) : cfg_(cfg), calls_(calls) {}

  void check_train_data(const RunContext&, data::Loader& train) override {
    ASSERT_EQ(train.kind(), data::Kind::ImageClassification);
    schema_ = train.image_schema();
  }
  void setup(const RunContext& ctx, const data::LoaderConfig&) override {
    EXPECT_GT(ctx.total_steps, 0);
    Generator gen = Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "init");
    const int64_t in = schema_.channels * schema_.height * schema_.width;
    model_ = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(in, 1, gen)});
    params_ = model_->named_parameters();
    optim::SGD::Options o;
    o.lr = 0.02;
    opt_ = std::make_unique<optim::SGD>(params_, o);
  }
  void make_reducers(dist::ProcessGroup& group, const dist::ReducerOptions& ro) override {
    reducer_ = std::make_unique<dist::Reducer>(group, params_, ro);
  }
  Agreement agreement() const override {
    return {dist::describe_parameters(params_), reducer_->layout(), "sgd lr 0.02", manifest_line("train", schema_),
            ", probe"};
  }
  void broadcast_initial() override {
    ++calls_.broadcasts;
    reducer_->broadcast_from_rank0({});
  }
  RunHeader header() const override {
    return {"linear probe", model_->num_parameters(), std::to_string(schema_.n) + " images", "optimizer sgd lr 0.02",
            ",\"probe\":true"};
  }
  StepResult step(StepInput& in, int64_t step) override {
    calls_.steps.push_back(step);
    opt_->zero_grad();
    data::Batch b = in.next();
    autograd::Tape tape;
    Tensor loss;
    {
      autograd::GradRecorder rec(tape);
      Tensor target = b.labels.to(DType::F32).reshape({b.size, 1});
      loss = fn::mse_loss(model_->forward(b.images), target);
    }
    tape.backward(loss);
    reducer_->finalize();
    opt_->step();
    const double n = static_cast<double>(b.size);
    return {{loss.item<float>() * n, n}, n, reducer_->last_wait_seconds()};
  }
  std::vector<std::string> stat_names() const override { return {"mse", "samples_again"}; }
  std::string progress(const std::vector<double>& s, double units) const override {
    return format("mse %.4f", s[0] / units);
  }
  std::string progress_fields(const std::vector<double>& s, double units) const override {
    return ",\"mse\":" + json_number(s[0] / units) + ",\"samples_again\":" + json_number(s[1]);
  }
  Metrics step_metrics(const std::vector<double>& s, double units) const override {
    Metrics m;
    m.set("mse", s[0] / units);
    m.set("samples_again", s[1]);
    return m;
  }
  bool evaluates() const override { return true; }
  Metrics evaluate(const RunContext&, const EvalPoint& at) override {
    calls_.evals.push_back(at.step);
    Metrics m;
    m.set("evaluated_at", static_cast<double>(at.step));
    return m;
  }
  void fill_checkpoint(ckpt::Contents& c) const override {
    c.model = params_;
    c.optimizer = opt_->state();
    c.optimizer_steps = opt_->steps_taken();
  }
  void restore(const std::string& path, const ckpt::Contents& c) override {
    ++calls_.restores;
    ckpt::check_model(path, c.model, params_);
    check_checkpoint_seed(path, c.trainer.seed, cfg_, "the data order");
    opt_->load_state(c.optimizer, c.optimizer_steps);
    for (const auto& [name, t] : c.model) {
      for (auto& [pn, p] : params_) {
        if (pn == name) p.copy_(t);
      }
    }
  }
  std::string world_size_note(int64_t) const override { return "probe note"; }
  void finish(const RunContext&, int64_t) override { ++calls_.finishes; }
  std::string final_line(const TrainSummary& s, int) const override {
    return format("probe finished %lld steps", static_cast<long long>(s.steps));
  }

  nn::NamedTensors params() const { return params_; }

 private:
  const Config& cfg_;
  Calls& calls_;
  data::ImageSchema schema_;
  std::shared_ptr<nn::Module> model_;
  nn::NamedTensors params_;
  std::unique_ptr<optim::Optimizer> opt_;
  std::unique_ptr<dist::Reducer> reducer_;
};

class TrainLoopTest : public data::testing::TempDirTest {
 protected:
  // 64 images of 4x4x1 in 4 classes.
  Config config(const std::vector<std::string>& sets = {}) {
    const std::string data = file("train.h5");
    if (!std::filesystem::exists(data)) data::testing::write_test_images(data, 64, 4, 4, 1, 4, 8);
    std::string toml = "data.train = \"" + data + "\"\nbatch_size = 8\nsteps = 6\nthreads = 1\nlog.interval = 2\n" +
                       "eval.interval = 4\ncheckpoint.dir = \"" + file("ckpt") + "\"\nlog.metrics = \"" +
                       file("metrics.jsonl") + "\"\n";
    return parse_config(toml, "test.toml", sets);
  }

  // Runs `body(world, rank)` on `ranks` threads, each a rank of a world of threads.
  void run_world(int ranks, const std::function<void(World&, int)>& body) {
    auto groups = dist::make_thread_groups(ranks, 30.0);
    auto control = dist::make_thread_groups(ranks, 30.0);
    std::vector<std::string> errors(static_cast<size_t>(ranks));
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r] {
        try {
          World world(std::move(groups[static_cast<size_t>(r)]), std::move(control[static_cast<size_t>(r)]));
          body(world, r);
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(r)] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < ranks; ++r) EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
  }
};

TEST_F(TrainLoopTest, ATestOnlyRecipePlugsInAndTheLoopDrivesItsSchedule) {
  Calls calls;
  TrainSummary summary;
  Config cfg = config();
  run_world(1, [&](World& world, int) {
    TrainLoop loop(cfg, world, std::make_unique<LinearProbe>(cfg, calls));
    loop.preflight();
    summary = loop.run();
  });
  EXPECT_EQ(calls.steps, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(calls.evals, (std::vector<int64_t>{4, 6}));  // eval.interval and the last step
  EXPECT_EQ(calls.broadcasts, 1);
  EXPECT_EQ(calls.restores, 0);
  EXPECT_EQ(calls.finishes, 1);
  EXPECT_EQ(summary.steps, 6);
  EXPECT_FALSE(summary.stopped);
  ASSERT_TRUE(summary.evaluated);
  EXPECT_EQ(summary.eval.get("evaluated_at"), 6);
  // The statistics are the recipe's, summed by the loop: 8 samples in the last step.
  EXPECT_EQ(summary.last_step.get("samples_again"), 8);
  EXPECT_TRUE(std::isfinite(summary.last_step.get("mse")));
  // The final checkpoint holds the recipe's contents.
  ASSERT_EQ(summary.checkpoint, file("ckpt") + "/step-6.h5");
  ckpt::Contents c = ckpt::read(summary.checkpoint);
  EXPECT_EQ(c.trainer.step, 6);
  EXPECT_EQ(c.optimizer_steps, 6);
  ASSERT_EQ(c.model.size(), 2u);
  EXPECT_TRUE(c.model[0].first == "1.weight" || c.model[1].first == "1.weight");
  // The metrics file: the header with the recipe's field, train records with its fields.
  std::ifstream in(file("metrics.jsonl"));
  std::string line, all;
  int train_records = 0;
  while (std::getline(in, line)) {
    all += line + "\n";
    if (line.find("\"kind\":\"train\"") != std::string::npos) {
      ++train_records;
      EXPECT_NE(line.find("\"mse\":"), std::string::npos) << line;
      EXPECT_NE(line.find("\"samples_again\":16"), std::string::npos) << line;  // two steps of 8 per record
    }
  }
  EXPECT_EQ(train_records, 3) << all;
  EXPECT_NE(all.find("\"probe\":true"), std::string::npos) << all;
  EXPECT_NE(all.find("\"kind\":\"checkpoint\""), std::string::npos) << all;
}

TEST_F(TrainLoopTest, AResumeCallsTheRecipesRestoreAndContinuesFromTheCheckpoint) {
  Calls first, second;
  Config cfg = config({"steps=4"});
  run_world(1, [&](World& world, int) {
    TrainLoop loop(cfg, world, std::make_unique<LinearProbe>(cfg, first));
    loop.preflight();
    loop.run();
  });
  Config more = config({"steps=6"});
  more.resume = "auto";
  TrainSummary s;
  std::vector<float> resumed, straight;
  auto weights = [](TrainLoop& loop) {
    return dynamic_cast<LinearProbe&>(loop.recipe()).params()[0].second.to_vector<float>();
  };
  run_world(1, [&](World& world, int) {
    TrainLoop loop(more, world, std::make_unique<LinearProbe>(more, second));
    loop.preflight();
    s = loop.run();
    resumed = weights(loop);
  });
  // The same 6 steps without a stop, elsewhere: bit for bit the resumed run's weights.
  Calls third;
  Config uninterrupted = config({"steps=6", "checkpoint.dir=" + file("other")});
  run_world(1, [&](World& world, int) {
    TrainLoop loop(uninterrupted, world, std::make_unique<LinearProbe>(uninterrupted, third));
    loop.preflight();
    loop.run();
    straight = weights(loop);
  });
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed, straight);
  EXPECT_EQ(second.restores, 1);
  EXPECT_EQ(second.broadcasts, 0);  // resumed: no broadcast of initial values
  EXPECT_EQ(second.steps, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(s.resumed_from, 4);
  EXPECT_EQ(s.steps, 6);
}

TEST_F(TrainLoopTest, ThreadsAsRanksAgreeOnTheStepStatistics) {
  constexpr int kRanks = 2;
  std::vector<Calls> calls(kRanks);
  std::vector<TrainSummary> summaries(kRanks);
  Config cfg = config({"checkpoint.dir=", "log.metrics="});
  run_world(kRanks, [&](World& world, int r) {
    TrainLoop loop(cfg, world, std::make_unique<LinearProbe>(cfg, calls[static_cast<size_t>(r)]));
    loop.preflight();
    summaries[static_cast<size_t>(r)] = loop.run();
  });
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(calls[static_cast<size_t>(r)].steps.size(), 6u) << "rank " << r;
    EXPECT_EQ(summaries[static_cast<size_t>(r)].steps, 6) << "rank " << r;
    // Two ranks of 8 samples each: the loop summed both ranks' statistics.
    EXPECT_EQ(summaries[static_cast<size_t>(r)].last_step.get("samples_again"), 16) << "rank " << r;
  }
  EXPECT_EQ(summaries[0].last_step.get("mse"), summaries[1].last_step.get("mse"));
}

TEST_F(TrainLoopTest, ASetUpFailureOnOneRankStopsEveryRankWithItsName) {
  Config cfg = config();
  std::vector<std::string> errors(2);
  auto groups = dist::make_thread_groups(2, 30.0);
  auto control = dist::make_thread_groups(2, 30.0);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      Calls calls;
      Config mine = cfg;
      if (r == 1) mine.data.train = file("missing.h5");
      try {
        World world(std::move(groups[static_cast<size_t>(r)]), std::move(control[static_cast<size_t>(r)]));
        TrainLoop loop(mine, world, std::make_unique<LinearProbe>(mine, calls));
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_NE(errors[0].find("set-up failed on rank 1"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("missing.h5"), std::string::npos) << errors[1];
}

}  // namespace
}  // namespace dtrain::launcher
