// One network, one optimizer, one Reducer: see single_network.h.
#include "launcher/train/recipes/single_network.h"

#include <map>

#include "core/error.h"
#include "launcher/train/common.h"

namespace dtrain::launcher {

void SingleNetworkRecipe::finish_setup(const RunContext& ctx) {
  world_ = &ctx.world;
  module_->to(ctx.world.device());
  module_->train();
  params_ = module_->named_parameters();
  buffers_ = module_->named_buffers();
  optimizer_ = build_optimizer(cfg_.optimizer, params_);
  schedule_ = build_schedule(cfg_, ctx.total_steps);
  collect_generators(*module_, "", generators_);
}

RunHeader SingleNetworkRecipe::base_header(std::string data) const {
  RunHeader h;
  h.model = description_;
  h.parameters = module_->num_parameters();
  h.data = std::move(data);
  h.optimizer = "optimizer " + cfg_.optimizer.name + "; " + schedule_->describe();
  return h;
}

void SingleNetworkRecipe::make_reducers(dist::ProcessGroup& group, const dist::ReducerOptions& options) {
  reducer_ = std::make_unique<dist::Reducer>(group, params_, options);
}

void SingleNetworkRecipe::open_test(const data::LoaderConfig& lc, data::Kind kind, const std::string& needed) {
  if (cfg_.data.test.empty()) return;
  data::LoaderConfig tc = lc;
  tc.path = cfg_.data.test;
  tc.batch_size = cfg_.eval_batch_size > 0 ? cfg_.eval_batch_size : cfg_.batch_size;
  tc.shuffle = false;
  tc.drop_last = false;
  tc.augment = {};
  test_ = std::make_unique<data::Loader>(tc);
  DT_CHECK_AS(test_->kind() == kind, ConfigError, "data.test = ", cfg_.data.test, " is a ",
              data::kind_name(test_->kind()), " file; ", needed);
}

Recipe::Agreement SingleNetworkRecipe::agreement() const {
  std::string manifest = file_manifest("train", false);
  if (test_) {
    manifest += '\n';
    manifest += file_manifest("test", true);
  }
  Agreement a;
  a.parameters = dist::describe_parameters(params_);
  a.layout = reducer_->layout();
  a.optimizer = optimizer_settings(cfg_.optimizer) + "; " + schedule_->describe();
  a.dataset = manifest + "\n" + augment_line(cfg_, inputs_name());
  return a;
}

void SingleNetworkRecipe::broadcast_initial() { reducer_->broadcast_from_rank0(buffers_); }

StepResult SingleNetworkRecipe::step(StepInput& in, int64_t step) {
  const int64_t accum = cfg_.grad_accum;
  int64_t units_total = 0;  // samples (seq2seq: target tokens)
  losses_.clear();
  optimizer_->zero_grad();
  for (int64_t i = 0; i < accum; ++i) {
    data::Batch b = in.next();
    control::Progress& progress = world_->progress();
    progress.phase(control::Phase::Forward);
    reducer_->set_sync(i == accum - 1);
    autograd::Tape tape;
    Tensor loss, obj;
    int64_t units = b.size;
    {
      autograd::GradRecorder rec(tape);
      obj = objective(b, accum, loss, units);
    }
    progress.phase(control::Phase::Backward);
    tape.backward(obj);
    losses_.emplace_back(loss.detach(), units);
    units_total += units;
  }
  reducer_->finalize();
  world_->progress().phase(control::Phase::Optimizer);
  last_lr_ = schedule_->lr_at(step);
  optimizer_->set_lr(last_lr_);
  optimizer_->step();
  // The host reads the losses once, after the step (no sync per micro-batch).
  double loss_sum = 0;
  for (const auto& [l, n] : losses_) loss_sum += l.item<float>() * static_cast<double>(n);
  StepResult r;
  r.sums = {loss_sum};
  r.units = static_cast<double>(units_total);
  r.comm_wait = reducer_->last_wait_seconds();
  return r;
}

std::string SingleNetworkRecipe::progress(const std::vector<double>& sums, double units) const {
  return format("loss %.4f | lr %.4g", units > 0 ? sums[0] / units : 0, last_lr_);
}

std::string SingleNetworkRecipe::progress_fields(const std::vector<double>& sums, double units) const {
  return ",\"loss\":" + json_number(units > 0 ? sums[0] / units : 0) + ",\"lr\":" + json_number(last_lr_);
}

Metrics SingleNetworkRecipe::step_metrics(const std::vector<double>& sums, double units) const {
  Metrics m;
  m.set("loss", units > 0 ? sums[0] / units : 0);
  return m;
}

void SingleNetworkRecipe::fill_checkpoint(ckpt::Contents& c) const {
  c.model = params_;
  c.model.insert(c.model.end(), buffers_.begin(), buffers_.end());
  c.optimizer = optimizer_->state();
  c.optimizer_steps = optimizer_->steps_taken();
}

void SingleNetworkRecipe::restore(const std::string& path, const ckpt::Contents& c) {
  nn::NamedTensors state = params_;
  state.insert(state.end(), buffers_.begin(), buffers_.end());
  ckpt::check_model(path, c.model, state);
  check_checkpoint_seed(path, c.trainer.seed, cfg_, "the data order");
  // Zero gradients make the first resumed step accumulate into zeroed buffers exactly as
  // an uninterrupted run's steps do.
  for (auto& [name, p] : params_) p.set_grad(Tensor::zeros(p.shape(), p.dtype(), p.device()));
  try {
    optimizer_->load_state(c.optimizer, c.optimizer_steps);
  } catch (const ValueError& e) {
    DT_THROW(ValueError, "checkpoint '", path, "' (optimizer ", cfg_.optimizer.name, "): ", e.what());
  }
  std::map<std::string, const Tensor*> in_file;
  for (const auto& [n, t] : c.model) in_file[n] = &t;
  for (const auto& [n, t] : state) t.copy_(in_file.at(n)->to(t.device()));
}

std::string SingleNetworkRecipe::world_size_note(int64_t written_by) const {
  return format("training continues from the same global sample; per-rank batches and the random streams of ranks "
                ">= %lld are new, and the result is no longer bit-identical to an uninterrupted run "
                "(docs/CHECKPOINTS.md)",
                static_cast<long long>(written_by));
}

std::string SingleNetworkRecipe::final_line(const TrainSummary& s, int world_size) const {
  (void)world_size;
  return format("finished %lld steps in %.1f s; final training loss %.4f", static_cast<long long>(s.steps), s.seconds,
                s.last_step.get("loss"));
}

}  // namespace dtrain::launcher
