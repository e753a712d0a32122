// The training loop: see loop.h, Note [Trainer step].
#include "launcher/train/loop.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "distributed/agreement.h"
#include "launcher/train/loop_impl.h"
#include "launcher/train/registry.h"
#include "ops/cpu_threads.h"

namespace dtrain::launcher {

void Metrics::set(const std::string& name, double v) {
  for (auto& [n, x] : items) {
    if (n == name) {
      x = v;
      return;
    }
  }
  items.emplace_back(name, v);
}

double Metrics::get(const std::string& name, double fallback) const {
  for (const auto& [n, x] : items) {
    if (n == name) return x;
  }
  return fallback;
}

bool Metrics::has(const std::string& name) const {
  return std::any_of(items.begin(), items.end(), [&](const auto& it) { return it.first == name; });
}

TrainLoop::Impl::Impl(const Config& c, World& w, std::unique_ptr<Recipe> r)
    : cfg(c), world(w), log(w.rank(), w.size()), recipe(std::move(r)), ctx{cfg, w, 1, 0, 0, {}} {
  if (!recipe) recipe = make_recipe(cfg);
  ctx.write_metrics = [this](const std::string& line) { write_metrics(line); };
}

TrainLoop::Impl::~Impl() {
  if (metrics) std::fclose(metrics);
  if (sample_log) std::fclose(sample_log);
}

void TrainLoop::Impl::write_metrics(const std::string& line) {
  std::lock_guard<std::mutex> lock(metrics_mu);
  if (!metrics) return;
  std::fputs(line.c_str(), metrics);
  std::fputc('\n', metrics);
  std::fflush(metrics);
}

void TrainLoop::Impl::setup() {
  int threads = static_cast<int>(cfg.threads);
  if (threads == 0) {
    // The node's cores shared among its ranks, and no more than this process may run on
    // (mpirun binds each rank to a core when there are no more ranks than cores).
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / world.local_size());
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) threads = std::max(1, std::min(threads, CPU_COUNT(&set)));
  }
  if (world.device().is_cpu()) ops::cpu::set_num_threads(threads);
  ctx.threads = threads;

  data::LoaderConfig lc;
  lc.path = cfg.data.train;
  lc.batch_size = cfg.batch_size;
  lc.world_size = world.size();
  lc.rank = world.rank();
  lc.seed = static_cast<uint64_t>(cfg.seed);
  lc.threads = static_cast<int>(cfg.data.workers);
  lc.augment.pad_crop = cfg.data.pad_crop;
  lc.augment.hflip = cfg.data.hflip;
  lc.augment.random_resized_crop = cfg.data.random_resized_crop;
  lc.augment.scale_min = cfg.data.rrc_scale[0];
  lc.augment.scale_max = cfg.data.rrc_scale[1];
  lc.augment.ratio_min = cfg.data.rrc_ratio[0];
  lc.augment.ratio_max = cfg.data.rrc_ratio[1];
  lc.image_size = cfg.data.image_size;
  lc.eval_resize = cfg.data.eval_resize;
  lc.device = world.device();
  recipe->configure_loader(lc);
  train = std::make_unique<data::Loader>(lc);
  recipe->check_train_data(ctx, *train);
  const int64_t train_n = train->num_samples();
  ctx.micro_per_epoch = train->batches_per_epoch();
  const int64_t global = ctx.global_micro_batch();
  DT_CHECK_AS(ctx.micro_per_epoch >= cfg.grad_accum, ConfigError, "data.train has ", train_n,
              " samples: too few for an optimizer step of ", world.size(), " ranks x batch_size ", cfg.batch_size,
              " x grad_accum ", cfg.grad_accum, " = ", global * cfg.grad_accum, " samples");
  ctx.total_steps = cfg.steps > 0 ? cfg.steps : cfg.epochs * ctx.micro_per_epoch / cfg.grad_accum;
  DT_CHECK_AS(cfg.schedule.name != "cosine" || cfg.schedule.warmup < ctx.total_steps, ConfigError,
              "schedule.warmup = ", cfg.schedule.warmup, " must be smaller than the number of steps, ",
              ctx.total_steps);
  recipe->setup(ctx, lc);

  DT_CHECK_AS(cfg.resume.empty() || cfg.resume != "auto" || !cfg.checkpoint_dir.empty(), ConfigError,
              "--resume auto looks for checkpoints in checkpoint.dir, which is not set (--checkpoint-dir DIR or "
              "--set checkpoint.dir=DIR)");
  if (!knobs.log_samples.empty()) {
    std::string p = knobs.log_samples + ".rank" + std::to_string(world.rank());
    sample_log = std::fopen(p.c_str(), "a");
    DT_CHECK_AS(sample_log != nullptr, IoError, "cannot write ", p, ": ", std::strerror(errno));
  }
  if (rank0() && !cfg.log_metrics.empty()) {
    std::filesystem::path p(cfg.log_metrics);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    // A resumed run continues the file.
    metrics = std::fopen(cfg.log_metrics.c_str(), cfg.resume.empty() ? "w" : "a");
    DT_CHECK_AS(metrics != nullptr, IoError, "cannot write log.metrics = ", cfg.log_metrics, ": ",
                std::strerror(errno));
  }
}

TrainLoop::TrainLoop(const Config& config, World& world, std::unique_ptr<Recipe> recipe) {
  std::exception_ptr error;
  try {
    impl_ = std::make_unique<Impl>(config, world, std::move(recipe));
    impl_->setup();
  } catch (...) {
    error = std::current_exception();
  }
  world.check_all_ok(error, "set-up");
}

TrainLoop::~TrainLoop() = default;

int64_t TrainLoop::total_steps() const { return impl_->ctx.total_steps; }

Recipe& TrainLoop::recipe() { return *impl_->recipe; }

void TrainLoop::set_stop_request(std::function<int()> stop) { impl_->stop = std::move(stop); }
void TrainLoop::set_status_sink(std::function<void(const control::JobStatus&)> sink) {
  impl_->status_sink = std::move(sink);
}
void TrainLoop::write_metrics_record(const std::string& line) { impl_->write_metrics(line); }

void TrainLoop::preflight() {
  Impl& m = *impl_;
  dist::ReducerOptions ro;
  ro.first_bucket_bytes = static_cast<size_t>(m.cfg.first_bucket_mib * (1 << 20));
  ro.bucket_bytes = static_cast<size_t>(m.cfg.bucket_mib * (1 << 20));
  std::exception_ptr error;
  try {
    m.recipe->make_reducers(m.world.group(), ro);
  } catch (...) {
    error = std::current_exception();
  }
  m.world.check_all_ok(error, "reducer set-up");

  const Recipe::Agreement a = m.recipe->agreement();
  std::ostringstream training;
  training << "steps " << m.ctx.total_steps << ", grad_accum " << m.cfg.grad_accum << ", seed " << m.cfg.seed
           << ", eval.interval " << m.cfg.eval_interval << ", eval.batch_size " << m.cfg.eval_batch_size
           << ", device " << m.cfg.device << ", checkpoint.dir '" << m.cfg.checkpoint_dir << "' every "
           << m.cfg.checkpoint_every << " final " << m.cfg.checkpoint_final << ", resume '" << m.cfg.resume << "'"
           << a.training;
  dist::AgreementItems items = {
      {"batch size", std::to_string(m.cfg.batch_size)},
      {"parameters", a.parameters},
      {"bucket layout", a.layout},
      {"training length", training.str()},
      {"optimizer", a.optimizer},
      {"dataset", a.dataset},
      {"build", build_id()},
  };
  dist::check_agreement(m.world.control(), items);
  m.preflight_done = true;
}

void TrainLoop::Impl::print_header() {
  if (!rank0()) return;
  const RunHeader h = recipe->header();
  const int w = world.size();
  const int64_t accum = cfg.grad_accum;
  std::printf("dtrain train %s: %d rank%s (%s, %s, %d thread%s per rank), %s, %lld parameters\n",
              cfg.source.c_str(), w, w > 1 ? "s" : "", world.group().backend().c_str(), world.device().str().c_str(),
              ctx.threads, ctx.threads > 1 ? "s" : "", h.model.c_str(), static_cast<long long>(h.parameters));
  if (w > 1) {
    std::printf("placement: %d ranks on %d host%s (%s)\n", w, world.hosts(), world.hosts() > 1 ? "s" : "",
                world.placement().c_str());
  }
  std::printf("data %s: %s; global batch %lld (%d x %lld%s); %lld steps (%lld per epoch)\n",
              basename_of(cfg.data.train).c_str(), h.data.c_str(), static_cast<long long>(w * cfg.batch_size * accum),
              w, static_cast<long long>(cfg.batch_size),
              accum > 1 ? (" x " + std::to_string(accum) + " micro-batches").c_str() : "",
              static_cast<long long>(ctx.total_steps), static_cast<long long>(ctx.micro_per_epoch / accum));
  std::printf("%s\n", h.optimizer.c_str());
  std::fflush(stdout);
  write_metrics("{\"kind\":\"header\",\"model\":" + json_string(cfg.model.name) + ",\"world_size\":" +
                std::to_string(w) + ",\"hosts\":" + std::to_string(world.hosts()) +
                ",\"backend\":" + json_string(world.group().backend()) + ",\"device\":" +
                json_string(world.device().str()) + ",\"threads_per_rank\":" + std::to_string(ctx.threads) +
                ",\"steps\":" + std::to_string(ctx.total_steps) + ",\"steps_per_epoch\":" +
                std::to_string(ctx.micro_per_epoch / accum) + ",\"parameters\":" + std::to_string(h.parameters) +
                h.metrics_fields + ",\"build\":" + json_string(build_id().substr(7)) +
                ",\"config\":" + json_string(canonical(cfg)) + "}");
}

namespace {

// The loop's side of Recipe::step: the loader's next batch, the position it leaves, the
// micro-batches consumed (for the epoch shown) and the test sample log.
class LoopInput : public StepInput {
 public:
  LoopInput(data::Loader& train, std::FILE* sample_log, data::Position& position, int64_t& consumed)
      : train_(train), sample_log_(sample_log), position_(position), consumed_(consumed) {}
  int64_t step = 0;

  data::Batch next() override {
    data::Batch b = train_.next();
    position_ = train_.sampler().normalize(b.next);
    if (sample_log_) {
      for (const data::RowRange& rr : train_.sampler().plan(b.at).ranges) {
        for (int64_t row = rr.start; row < rr.start + rr.count; ++row) {
          std::fprintf(sample_log_, "%lld %lld\n", static_cast<long long>(step + 1), static_cast<long long>(row));
        }
      }
      std::fflush(sample_log_);
    }
    ++consumed_;
    return b;
  }

 private:
  data::Loader& train_;
  std::FILE* sample_log_;
  data::Position& position_;
  int64_t& consumed_;
};

}  // namespace

TrainSummary TrainLoop::run() {
  Impl& m = *impl_;
  DT_CHECK(m.preflight_done, "TrainLoop::run before preflight()");
  const Config& cfg = m.cfg;
  Recipe& recipe = *m.recipe;
  if (!m.knobs.pid_dir.empty()) {
    std::ofstream(m.knobs.pid_dir + "/rank" + std::to_string(m.world.rank()) + ".pid") << ::getpid() << "\n";
  }
  // A resumed run loads the same file on every rank; a fresh one takes rank 0's initial
  // values everywhere (only now that the shapes agree).
  if (!cfg.resume.empty()) m.resume();
  if (!m.resumed) recipe.broadcast_initial();
  const int world = m.world.size();
  const int64_t total_steps = m.ctx.total_steps, micro_per_epoch = m.ctx.micro_per_epoch;
  const int64_t epochs_total = (total_steps * cfg.grad_accum + micro_per_epoch - 1) / micro_per_epoch;
  m.print_header();

  TrainSummary summary;
  // Interval accumulators (rank 0 reports them).
  const size_t k = recipe.stat_names().size();
  struct Interval {
    int64_t steps = 0;
    std::vector<double> sums;
    double units = 0, wall = 0, data_wait = 0, comm_wait = 0, skew = 0;
  } iv;
  iv.sums.assign(k, 0.0);
  const auto start = Clock::now();
  // Micro-batches consumed by this rank (for the epoch shown; on a resume, as this world
  // size would have consumed them to reach the loader's position).
  int64_t consumed = 0;
  int64_t step = m.start_step;
  data::Position position = m.train->sampler().normalize(m.train->position());
  if (m.resumed) consumed = position.epoch * micro_per_epoch + position.cursor / m.ctx.global_micro_batch();
  LoopInput input(*m.train, m.sample_log, position, consumed);
  const bool checkpoints = !cfg.checkpoint_dir.empty();
  const int64_t fields = static_cast<int64_t>(k) + 3;  // statistics..., units, busy seconds, stop
  control::Progress& progress = m.world.progress();
  while (step < total_steps) {
    const auto t0 = Clock::now();
    const double wait0 = m.train->wait_seconds();
    const int64_t epoch_before = position.epoch;
    input.step = step;
    progress.begin_step(step + 1);
    if (m.knobs.hold_rank == m.world.rank() && m.knobs.hold_step == step + 1) {
      progress.phase(control::Phase::Forward);  // alive, making no progress (a test of the watchdog)
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    StepResult r = recipe.step(input, step);
    DT_CHECK(r.sums.size() == k, "recipe step returned ", r.sums.size(), " statistics, expected ", k);
    ++step;

    const double data_wait = m.train->wait_seconds() - wait0;
    const double busy = seconds_since(t0) - data_wait - r.comm_wait;
    const int stop_here = m.stop ? m.stop() : 0;
    // The step boundary: one all_gather of [statistics..., units, busy s, stop] per rank.
    std::vector<double> mine = r.sums;
    mine.push_back(r.units);
    mine.push_back(busy);
    mine.push_back(static_cast<double>(stop_here));
    Tensor all = Tensor::zeros({fields * static_cast<int64_t>(world)}, DType::F64);
    progress.phase(control::Phase::Boundary);
    m.world.control().all_gather(Tensor::from_vector<double>(mine, {fields}), all)->wait();
    std::vector<double> g = all.to_vector<double>();
    std::vector<double> sums(k, 0.0);
    double units = 0, busy_max = 0, busy_min = 1e300;
    bool stop_all = false;
    int stop_kind = 0;
    for (int rank = 0; rank < world; ++rank) {
      const double* row = g.data() + fields * rank;
      for (size_t i = 0; i < k; ++i) sums[i] += row[i];
      units += row[k];
      busy_max = std::max(busy_max, row[k + 1]);
      busy_min = std::min(busy_min, row[k + 1]);
      stop_all = stop_all || row[k + 2] != 0;
      stop_kind = std::max(stop_kind, static_cast<int>(row[k + 2]));
    }
    summary.last_step = recipe.step_metrics(sums, units);

    iv.steps += 1;
    for (size_t i = 0; i < k; ++i) iv.sums[i] += sums[i];
    iv.units += units;
    iv.wall += seconds_since(t0);
    iv.data_wait += data_wait;
    iv.comm_wait += r.comm_wait;
    iv.skew += busy_max - busy_min;
    const double epoch_f = static_cast<double>(consumed) / static_cast<double>(micro_per_epoch);
    const bool last = step == total_steps || stop_all;
    if (m.rank0() && (step % cfg.log_interval == 0 || last)) {
      const double n = static_cast<double>(iv.steps);
      const double rate = iv.wall > 0 ? iv.units / iv.wall : 0;
      const double eta = static_cast<double>(total_steps - step) * iv.wall / n;
      const int64_t epoch_now = (consumed - 1) / micro_per_epoch + 1;
      const Recipe::RateUnit unit = recipe.rate_unit();
      std::printf("step %lld/%lld | epoch %lld/%lld | %s | %.0f %s | data %.1f ms | allreduce %.1f ms | skew %.1f ms | "
                  "ETA %s\n",
                  static_cast<long long>(step), static_cast<long long>(total_steps), static_cast<long long>(epoch_now),
                  static_cast<long long>(epochs_total), recipe.progress(iv.sums, iv.units).c_str(), rate,
                  unit.shown, 1e3 * iv.data_wait / n, 1e3 * iv.comm_wait / n, 1e3 * iv.skew / n,
                  duration_text(eta).c_str());
      std::fflush(stdout);
      if (m.status_sink) {
        m.status.step = step;
        m.status.total_steps = total_steps;
        m.status.epoch = epoch_f;
        m.status.rate = rate;
        m.status.rate_unit = unit.shown;
        m.status.eta_s = eta;
        m.status.elapsed_s = seconds_since(start);
        m.status_sink(m.status);
      }
      m.write_metrics("{\"kind\":\"train\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch_f) +
                      recipe.progress_fields(iv.sums, iv.units) +
                      ",\"" + std::string(unit.metrics_key) + "\":" + json_number(rate) +
                      ",\"data_wait_s\":" + json_number(iv.data_wait / n) +
                      ",\"allreduce_wait_s\":" + json_number(iv.comm_wait / n) +
                      ",\"step_time_skew_s\":" + json_number(iv.skew / n) + ",\"steps_logged\":" +
                      std::to_string(iv.steps) + ",\"time_s\":" + json_number(seconds_since(start)) + "}");
      iv = Interval{};
      iv.sums.assign(k, 0.0);
    }
    if (stop_all && step < total_steps) {
      summary.stopped = true;
      summary.stop_kind = stop_kind;
      if (m.rank0()) {
        std::printf("stop requested: stopping after step %lld\n", static_cast<long long>(step));
        std::fflush(stdout);
      }
      if (checkpoints) {
        progress.phase(control::Phase::Checkpoint);
        m.save(step, position);
      }
      if (!m.knobs.pid_dir.empty()) {
        std::ofstream(m.knobs.pid_dir + "/rank" + std::to_string(m.world.rank()) + ".stopped") << step << "\n";
      }
      break;
    }
    if (recipe.evaluates()) {
      const bool epoch_end = position.epoch > epoch_before;
      const bool due = cfg.eval_interval > 0 ? step % cfg.eval_interval == 0 : epoch_end;
      if (due || step == total_steps) {
        progress.phase(control::Phase::Evaluate);
        summary.eval = recipe.evaluate(m.ctx, EvalPoint{step, epoch_f, seconds_since(start)});
        summary.evaluated = true;
      }
    }
    if (checkpoints && ((cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) ||
                        (step == total_steps && cfg.checkpoint_final))) {
      progress.phase(control::Phase::Checkpoint);
      m.save(step, position);
      if (m.status_sink) {
        m.status.last_checkpoint = m.last_checkpoint;
        m.status_sink(m.status);
      }
    }
    if (step == m.knobs.crash_at_step) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    if (m.knobs.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(m.knobs.step_delay_ms));
  }
  progress.phase(control::Phase::Finished);
  if (m.status_sink) {
    m.status.step = step;
    m.status.total_steps = total_steps;
    m.status.last_checkpoint = m.last_checkpoint;
    m.status.elapsed_s = seconds_since(start);
    m.status.eta_s = 0;
    m.status.finished = true;
    m.status_sink(m.status);
  }
  summary.steps = step;
  summary.seconds = seconds_since(start);
  summary.resumed_from = m.resumed_step;
  summary.checkpoint = m.last_checkpoint;
  if (!summary.stopped && step == total_steps) recipe.finish(m.ctx, step);
  if (m.rank0()) {
    if (summary.stopped) {
      std::printf("stopped after step %lld of %lld (%.1f s)%s\n", static_cast<long long>(step),
                  static_cast<long long>(total_steps), summary.seconds,
                  checkpoints ? "" : "; no checkpoint: checkpoint.dir is not set");
    } else if (m.resumed && step == m.start_step) {
      std::printf("nothing to train: the checkpoint is at step %lld of %lld\n", static_cast<long long>(step),
                  static_cast<long long>(total_steps));
    } else {
      std::printf("%s\n", recipe.final_line(summary, world).c_str());
    }
    std::fflush(stdout);
  }
  return summary;
}

}  // namespace dtrain::launcher
