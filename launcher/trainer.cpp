// The training loop: see trainer.h, Note [Trainer step].
#include "launcher/trainer.h"

#include "launcher/trainer_internal.h"

namespace dtrain::launcher {

void Trainer::Impl::setup_classifier(const data::LoaderConfig& lc) {
  int64_t classes = cfg.model.classes > 0 ? cfg.model.classes : train_schema.num_classes();
  DT_CHECK_AS(classes >= train_schema.num_classes(), ConfigError, "model.classes = ", cfg.model.classes, " but ",
              cfg.data.train, " has ", train_schema.num_classes(), " classes");

  if (!cfg.data.test.empty()) {
    data::LoaderConfig tc = lc;
    tc.path = cfg.data.test;
    tc.batch_size = cfg.eval_batch_size > 0 ? cfg.eval_batch_size : cfg.batch_size;
    tc.shuffle = false;
    tc.drop_last = false;
    tc.augment = {};
    test = std::make_unique<data::Loader>(tc);
    DT_CHECK_AS(test->kind() == data::Kind::ImageClassification, ConfigError, "data.test = ", cfg.data.test,
                " is a ", data::kind_name(test->kind()), " file; an image classification file is needed");
    test_schema = test->image_schema();
    DT_CHECK_AS(test_schema.height == train_schema.height && test_schema.width == train_schema.width &&
                    test_schema.channels == train_schema.channels,
                ConfigError, "data.test images are ", test_schema.height, "x", test_schema.width, "x",
                test_schema.channels, " but data.train images are ", train_schema.height, "x", train_schema.width,
                "x", train_schema.channels);
    DT_CHECK_AS(test_schema.num_classes() <= classes, ConfigError, "data.test has ", test_schema.num_classes(),
                " classes, the model ", classes);
  }

  model = build_model(cfg.model, train_schema.channels, train_schema.height, train_schema.width, classes,
                      static_cast<uint64_t>(cfg.seed), world.rank());
}

void Trainer::Impl::setup() {
  threads = static_cast<int>(cfg.threads);
  if (threads == 0) {
    // The node's cores shared among its ranks, and no more than this process may run on
    // (mpirun binds each rank to a core when there are no more ranks than cores).
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / world.local_size());
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) threads = std::max(1, std::min(threads, CPU_COUNT(&set)));
  }
  if (world.device().is_cpu()) ops::cpu::set_num_threads(threads);

  data::LoaderConfig lc;
  lc.path = cfg.data.train;
  lc.batch_size = cfg.batch_size;
  lc.world_size = world.size();
  lc.rank = world.rank();
  lc.seed = static_cast<uint64_t>(cfg.seed);
  lc.threads = static_cast<int>(cfg.data.workers);
  lc.augment.pad_crop = cfg.data.pad_crop;
  lc.augment.hflip = cfg.data.hflip;
  lc.device = world.device();
  gan = cfg.model.name == "dcgan";
  seq = cfg.model.name == "seq2seq";
  tanh_inputs = cfg.data.normalize == "tanh" || (cfg.data.normalize == "auto" && gan);
  lc.images_only = gan;  // a GAN reads classification files too, without their labels
  train = std::make_unique<data::Loader>(lc);
  if (seq) {
    setup_seq2seq(lc);
  } else if (gan) {
    DT_CHECK_AS(train->kind() == data::Kind::ImageOnly, ConfigError, "data.train = ", cfg.data.train, " is a ",
                data::kind_name(train->kind()), " file; model.name = dcgan needs an image file");
  } else {
    DT_CHECK_AS(train->kind() == data::Kind::ImageClassification, ConfigError, "data.train = ", cfg.data.train,
                " is a ", data::kind_name(train->kind()), " file; dtrain train needs an image classification file");
  }
  if (!seq) train_schema = train->image_schema();
  const int64_t train_n = seq ? train_pairs.n : train_schema.n;
  micro_per_epoch = train->batches_per_epoch();
  int64_t global = static_cast<int64_t>(world.size()) * cfg.batch_size;
  DT_CHECK_AS(micro_per_epoch >= cfg.grad_accum, ConfigError, "data.train has ", train_n,
              " samples: too few for an optimizer step of ", world.size(), " ranks x batch_size ", cfg.batch_size,
              " x grad_accum ", cfg.grad_accum, " = ", global * cfg.grad_accum, " samples");
  total_steps = cfg.steps > 0 ? cfg.steps : cfg.epochs * micro_per_epoch / cfg.grad_accum;
  DT_CHECK_AS(cfg.schedule.name != "cosine" || cfg.schedule.warmup < total_steps, ConfigError,
              "schedule.warmup = ", cfg.schedule.warmup, " must be smaller than the number of steps, ", total_steps);

  if (gan) {
    setup_gan();
    return;
  }
  if (!seq) setup_classifier(lc);
  model.module->to(world.device());
  model.module->train();
  params = model.module->named_parameters();
  buffers = model.module->named_buffers();
  optimizer = build_optimizer(cfg.optimizer, params);
  schedule = build_schedule(cfg, total_steps);
  collect_generators(*model.module, "", generators);
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

Tensor Trainer::Impl::normalize(const Tensor& x, Affine& a, const data::ImageSchema& s) const {
  if (!tanh_inputs) return x;
  if (!a.scale.defined() || a.shape != x.shape()) {
    const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
    std::vector<float> scale(static_cast<size_t>(n * c * hw)), shift(scale.size());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const double mean = ch < static_cast<int64_t>(s.mean.size()) ? s.mean[static_cast<size_t>(ch)] : 0.0;
        const double sd = ch < static_cast<int64_t>(s.std.size()) ? s.std[static_cast<size_t>(ch)] : 1.0;
        const size_t at = static_cast<size_t>((i * c + ch) * hw);
        std::fill_n(scale.begin() + static_cast<std::ptrdiff_t>(at), hw, static_cast<float>(2 * sd));
        std::fill_n(shift.begin() + static_cast<std::ptrdiff_t>(at), hw, static_cast<float>(2 * mean - 1));
      }
    }
    a.shape = x.shape();
    a.scale = Tensor::from_vector<float>(scale, x.shape()).to(x.device()).to(x.dtype());
    a.shift = Tensor::from_vector<float>(shift, x.shape()).to(x.device()).to(x.dtype());
  }
  autograd::NoGrad no_grad;
  return fn::add(fn::mul(x, a.scale), a.shift);
}

Trainer::Trainer(const Config& config, World& world) : impl_(std::make_unique<Impl>(config, world)) {
  std::exception_ptr error;
  try {
    impl_->setup();
  } catch (...) {
    error = std::current_exception();
  }
  world.check_all_ok(error, "set-up");
}

Trainer::~Trainer() = default;

int64_t Trainer::total_steps() const { return impl_->total_steps; }

void Trainer::set_stop_request(std::function<int()> stop) { impl_->stop = std::move(stop); }

void Trainer::preflight() {
  Impl& m = *impl_;
  dist::ReducerOptions ro;
  ro.first_bucket_bytes = static_cast<size_t>(m.cfg.first_bucket_mib * (1 << 20));
  ro.bucket_bytes = static_cast<size_t>(m.cfg.bucket_mib * (1 << 20));
  std::exception_ptr error;
  try {
    if (m.gan) {
      // One Reducer per network, on the same group: their collectives never interleave
      // (Note [GAN generator step freezes D] in distributed/gan.h).
      m.gan_.reducer_g = std::make_unique<dist::Reducer>(m.world.group(), m.gan_.g_params, ro);
      m.gan_.reducer_d = std::make_unique<dist::Reducer>(m.world.group(), m.gan_.d_params, ro);
    } else {
      m.reducer = std::make_unique<dist::Reducer>(m.world.group(), m.params, ro);
    }
  } catch (...) {
    error = std::current_exception();
  }
  m.world.check_all_ok(error, "reducer set-up");

  std::ostringstream training, optimizer, dataset;
  training << "steps " << m.total_steps << ", grad_accum " << m.cfg.grad_accum << ", seed " << m.cfg.seed
           << ", eval.interval " << m.cfg.eval_interval << ", eval.batch_size " << m.cfg.eval_batch_size
           << ", device " << m.cfg.device << ", checkpoint.dir '" << m.cfg.checkpoint_dir << "' every "
           << m.cfg.checkpoint_every << " final " << m.cfg.checkpoint_final << ", resume '" << m.cfg.resume << "'";
  auto describe_optimizer = [](std::ostringstream& os, const OptimizerConfig& o) {
    os << o.name << " lr " << o.lr << " momentum " << o.momentum << " nesterov " << o.nesterov << " weight_decay "
       << o.weight_decay << " betas " << o.betas[0] << " " << o.betas[1] << " eps " << o.eps;
  };
  std::string parameters, layout;
  if (m.gan) {
    optimizer << "generator: ";
    describe_optimizer(optimizer, m.cfg.optimizer_g);
    optimizer << "\ndiscriminator: ";
    describe_optimizer(optimizer, m.cfg.optimizer_d);
    parameters = "generator:\n" + dist::describe_parameters(m.gan_.g_params) + "\ndiscriminator:\n" +
                 dist::describe_parameters(m.gan_.d_params);
    layout = "generator:\n" + m.gan_.reducer_g->layout() + "\ndiscriminator:\n" + m.gan_.reducer_d->layout();
    training << ", gan.samples_n " << m.cfg.gan.samples_n << ", gan.noise_seed " << m.cfg.gan.noise_seed;
  } else {
    describe_optimizer(optimizer, m.cfg.optimizer);
    optimizer << "; " << m.schedule->describe();
    parameters = dist::describe_parameters(m.params);
    layout = m.reducer->layout();
  }
  if (m.seq) {
    dataset << m.pair_dataset_manifest();
  } else {
    dataset << manifest_line("train", m.train_schema);
    if (m.test) dataset << "\n" << manifest_line("test", m.test_schema);
  }
  dataset << "\naugment pad_crop " << m.cfg.data.pad_crop << " hflip " << m.cfg.data.hflip << "; inputs "
          << (m.tanh_inputs ? "tanh" : "meanstd");
  dist::AgreementItems items = {
      {"batch size", std::to_string(m.cfg.batch_size)},
      {"parameters", parameters},
      {"bucket layout", layout},
      {"training length", training.str()},
      {"optimizer", optimizer.str()},
      {"dataset", dataset.str()},
      {"build", std::string("dtrain ") + DTRAIN_VERSION + " (" + DTRAIN_GIT_HASH + ")"},
  };
  dist::check_agreement(m.world.control(), items);
  m.preflight_done = true;
}

Trainer::Impl::Eval Trainer::Impl::evaluate() {
  if (seq) return evaluate_seq2seq();
  // Batch-norm running statistics differ between ranks (each saw its own batches):
  // evaluate every shard with rank 0's, as one model would.
  for (const auto& [name, t] : buffers) world.group().broadcast(t, 0)->synchronize();
  model.module->eval();
  double correct = 0, loss_sum = 0, samples = 0;
  {
    autograd::NoGrad no_grad;
    int64_t n = test->batches_per_epoch();
    for (int64_t i = 0; i < n; ++i) {
      data::Batch b = test->next();
      if (b.size == 0) continue;
      Tensor logits = model.module->forward(normalize(b.images, test_affine, test_schema));
      Tensor loss = fn::softmax_cross_entropy(logits, b.labels);
      loss_sum += loss.item<float>() * static_cast<double>(b.size);
      std::vector<float> l = logits.to(Device::cpu()).to_vector<float>();
      std::vector<int64_t> y = b.labels.to(Device::cpu()).to_vector<int64_t>();
      int64_t k = logits.size(1);
      for (int64_t r = 0; r < b.size; ++r) {
        const float* row = l.data() + r * k;
        int64_t best = std::max_element(row, row + k) - row;
        if (best == y[r]) correct += 1;
      }
      samples += static_cast<double>(b.size);
    }
  }
  model.module->train();
  Tensor sums = Tensor::from_vector<double>({correct, samples, loss_sum}, {3});
  world.control().all_reduce(sums, dist::ReduceOp::Sum)->wait();
  std::vector<double> s = sums.to_vector<double>();
  Eval e;
  e.samples = static_cast<int64_t>(s[1]);
  e.accuracy = s[1] > 0 ? s[0] / s[1] : 0;
  e.loss = s[1] > 0 ? s[2] / s[1] : 0;
  return e;
}

// Note [Checkpoint protocol]: every rank calls save() at the same steps (the decision
// is a function of the step and the agreed stop flag). The one collective inside is an
// all_gather of every rank's Generator states, so rank 0 can write /rng/rank<r>/ for all
// ranks; rank 0 then writes and prunes alone (Note [Checkpoint commit] in
// core/checkpoint.h) while the others wait in check_all_ok, which doubles as the barrier
// that tells every rank whether the write succeeded. A failed write therefore fails the
// run on every rank with rank 0's message; the older checkpoints are untouched.
void Trainer::Impl::save(int64_t step, data::Position pos) {
  const int w = world.size();
  const int64_t n = static_cast<int64_t>(generators.size());
  std::vector<int64_t> all_states;
  if (n > 0) {
    std::vector<int64_t> mine;
    for (const auto& [name, g] : generators) {
      Generator::State st = g->state();
      mine.push_back(static_cast<int64_t>(st.seed));
      mine.push_back(static_cast<int64_t>(st.offset));
    }
    Tensor in = Tensor::from_vector<int64_t>(mine, {2 * n});
    Tensor out = Tensor::zeros({2 * n * w}, DType::I64);
    world.control().all_gather(in, out)->wait();
    all_states = out.to_vector<int64_t>();
  }
  std::exception_ptr error;
  if (rank0()) {
    try {
      ckpt::Contents c;
      c.model = params;
      c.model.insert(c.model.end(), buffers.begin(), buffers.end());
      c.optimizer = optimizer->state();
      c.optimizer_steps = optimizer->steps_taken();
      for (int r = 0; r < w; ++r) {
        for (int64_t i = 0; i < n; ++i) {
          const size_t at = static_cast<size_t>((r * n + i) * 2);
          c.rng.push_back({r, generators[static_cast<size_t>(i)].first,
                           {static_cast<uint64_t>(all_states[at]), static_cast<uint64_t>(all_states[at + 1])}});
        }
      }
      ckpt::TrainerState& t = c.trainer;
      t.step = step;
      t.epoch = pos.epoch;
      t.cursor = pos.cursor;
      t.seed = cfg.seed;
      t.world_size = w;
      t.global_batch = global_micro_batch() * cfg.grad_accum;
      t.schedule_step = step;
      t.config = canonical(cfg);
      t.build = build_id();
      commit_checkpoint(c);
    } catch (...) {
      error = std::current_exception();
    }
  }
  world.check_all_ok(error, "writing the checkpoint of step " + std::to_string(step));
}

// Note [Resume agreement]: rank 0 alone picks the checkpoint (the newest that verifies,
// for --resume auto) and broadcasts its step, so every rank loads the same one even while
// another job's files change under them; every rank then reads that file itself (the
// checkpoint directory must be on a filesystem all ranks see). Failures on any rank are
// agreed through check_all_ok, so no rank trains on while another stops.
void Trainer::Impl::resume() {
  std::string path;
  const int64_t step = choose_checkpoint(path);
  if (step < 0) return;
  std::exception_ptr error;
  try {
    load(path, step);
  } catch (...) {
    error = std::current_exception();
  }
  world.check_all_ok(error, "loading checkpoint " + path);
}

void Trainer::Impl::load(const std::string& path, int64_t step) {
  // Rank 0 verified the file (marker, checksum, version); the others trust that and
  // check that they read the same step.
  ckpt::Contents c = ckpt::read(path, /*verified=*/true);
  DT_CHECK_AS(c.trainer.step == step, IoError, "checkpoint '", path, "' holds step ", c.trainer.step, ", rank 0 chose ",
              step, ": do all ranks see the same checkpoint directory?");
  nn::NamedTensors state = params;
  state.insert(state.end(), buffers.begin(), buffers.end());
  ckpt::check_model(path, c.model, state);
  DT_CHECK_AS(c.trainer.seed == cfg.seed, ConfigError, "checkpoint '", path, "' was written with seed ", c.trainer.seed,
              ", this run has seed ", cfg.seed, ": resume with --set seed=", c.trainer.seed,
              " (the seed fixes the data order)");

  // Zero gradients make the first resumed step accumulate into zeroed buffers exactly as
  // an uninterrupted run's steps do.
  for (auto& [name, p] : params) p.set_grad(Tensor::zeros(p.shape(), p.dtype(), p.device()));
  try {
    optimizer->load_state(c.optimizer, c.optimizer_steps);
  } catch (const ValueError& e) {
    DT_THROW(ValueError, "checkpoint '", path, "' (optimizer ", cfg.optimizer.name, "): ", e.what());
  }
  std::map<std::string, const Tensor*> model_in_file;
  for (const auto& [n, t] : c.model) model_in_file[n] = &t;
  for (const auto& [n, t] : state) t.copy_(model_in_file.at(n)->to(t.device()));

  // Random streams: this rank's, when the writing run had this rank.
  const int r = world.rank();
  int64_t restored = 0;
  for (auto& [name, g] : generators) {
    for (const ckpt::RngStream& s : c.rng) {
      if (s.rank == r && s.name == name) {
        g->set_state(s.state);
        ++restored;
      }
    }
  }
  if (restored < static_cast<int64_t>(generators.size()) && r < c.trainer.world_size) {
    log.warn("checkpoint '", path, "' lacks ", static_cast<int64_t>(generators.size()) - restored,
             " of this rank's random streams; they start fresh");
  }

  const data::Position pos{c.trainer.epoch, c.trainer.cursor};
  train->seek(pos);
  start_step = step;
  resumed = true;
  resumed_step = step;
  if (rank0()) {
    std::printf("resumed from %s: step %lld, epoch %lld, sample %lld of the epoch\n", path.c_str(),
                static_cast<long long>(step), static_cast<long long>(pos.epoch + 1),
                static_cast<long long>(pos.cursor));
    if (c.trainer.world_size != world.size()) {
      std::printf("note: the checkpoint was written by %lld rank%s, this run has %d: training continues from the "
                  "same global sample; per-rank batches and the random streams of ranks >= %lld are new, and the "
                  "result is no longer bit-identical to an uninterrupted run (docs/CHECKPOINTS.md)\n",
                  static_cast<long long>(c.trainer.world_size), c.trainer.world_size > 1 ? "s" : "", world.size(),
                  static_cast<long long>(c.trainer.world_size));
    }
    if (std::string changes = config_changes(c.trainer.config, canonical(cfg)); !changes.empty()) {
      std::printf("note: configuration changed since the checkpoint: %s\n", changes.c_str());
    }
    if (c.trainer.build != build_id()) {
      std::printf("note: the checkpoint was written by %s, this is %s\n", c.trainer.build.c_str(), build_id().c_str());
    }
    std::fflush(stdout);
  }
}

TrainSummary Trainer::run() {
  Impl& m = *impl_;
  DT_CHECK(m.preflight_done, "Trainer::run before preflight()");
  const Config& cfg = m.cfg;
  if (!m.knobs.pid_dir.empty()) {
    std::ofstream(m.knobs.pid_dir + "/rank" + std::to_string(m.world.rank()) + ".pid") << ::getpid() << "\n";
  }
  if (m.gan) return m.run_gan();
  // A resumed run loads the same file on every rank; a fresh one takes rank 0's initial
  // values everywhere (only now that the shapes agree).
  if (!cfg.resume.empty()) m.resume();
  if (!m.resumed) m.reducer->broadcast_from_rank0(m.buffers);
  const int world = m.world.size();
  const int64_t accum = cfg.grad_accum;
  const int64_t epochs_total = (m.total_steps * accum + m.micro_per_epoch - 1) / m.micro_per_epoch;

  if (m.rank0()) {
    std::printf("dtrain train %s: %d rank%s (%s, %s, %d thread%s per rank), %s, %lld parameters\n",
                cfg.source.c_str(), world, world > 1 ? "s" : "", m.world.group().backend().c_str(),
                m.world.device().str().c_str(), m.threads, m.threads > 1 ? "s" : "", m.model.description.c_str(),
                static_cast<long long>(m.model.module->num_parameters()));
    std::string what;
    if (m.seq) {
      what = std::to_string(m.train_pairs.n) + " pairs, " + m.train_pairs.tokens + ", vocabularies " +
             std::to_string(m.train_pairs.src_vocab.size()) + " / " + std::to_string(m.train_pairs.tgt_vocab.size());
    } else {
      what = std::to_string(m.train_schema.n) + " samples " + std::to_string(m.train_schema.height) + "x" +
             std::to_string(m.train_schema.width) + "x" + std::to_string(m.train_schema.channels);
    }
    std::printf("data %s: %s; global batch %lld (%d x %lld%s); %lld steps (%lld per epoch)\n",
                basename_of(cfg.data.train).c_str(), what.c_str(),
                static_cast<long long>(world * cfg.batch_size * accum), world, static_cast<long long>(cfg.batch_size),
                accum > 1 ? (" x " + std::to_string(accum) + " micro-batches").c_str() : "",
                static_cast<long long>(m.total_steps), static_cast<long long>(m.micro_per_epoch / accum));
    std::printf("optimizer %s; %s\n", cfg.optimizer.name.c_str(), m.schedule->describe().c_str());
    std::fflush(stdout);
    m.write_metrics("{\"kind\":\"header\",\"world_size\":" + std::to_string(world) + ",\"backend\":" +
                    json_string(m.world.group().backend()) + ",\"device\":" + json_string(m.world.device().str()) +
                    ",\"threads_per_rank\":" + std::to_string(m.threads) + ",\"steps\":" +
                    std::to_string(m.total_steps) + ",\"steps_per_epoch\":" +
                    std::to_string(m.micro_per_epoch / accum) + ",\"parameters\":" +
                    std::to_string(m.model.module->num_parameters()) + ",\"build\":" +
                    json_string(std::string(DTRAIN_VERSION) + " (" + DTRAIN_GIT_HASH + ")") +
                    ",\"config\":" + json_string(canonical(cfg)) + "}");
  }

  TrainSummary summary;
  auto record_eval = [&](int64_t step, double epoch, double elapsed) {
    Impl::Eval e = m.evaluate();
    summary.evaluated = true;
    summary.test_accuracy = e.accuracy;
    summary.test_loss = e.loss;
    summary.test_samples = e.samples;
    summary.test_bleu = e.bleu;
    if (m.rank0() && m.seq) {
      for (const std::string& t : e.translations) std::printf("  %s\n", t.c_str());
      std::printf("eval  step %lld/%lld | epoch %.2f | held-out loss %.4f (%lld tokens of %lld pairs) | token accuracy "
                  "%.2f%% | BLEU %.2f (precisions %.1f/%.1f/%.1f/%.1f)\n",
                  static_cast<long long>(step), static_cast<long long>(m.total_steps), epoch, e.loss,
                  static_cast<long long>(e.tokens), static_cast<long long>(e.samples), 100 * e.accuracy,
                  100 * e.bleu, 100 * e.bleu_precisions[0], 100 * e.bleu_precisions[1], 100 * e.bleu_precisions[2],
                  100 * e.bleu_precisions[3]);
      std::fflush(stdout);
      std::string shown = "[";
      for (size_t i = 0; i < e.translations.size(); ++i) {
        if (i > 0) shown += ',';
        shown += json_string(e.translations[i]);
      }
      m.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch) +
                      ",\"test_loss\":" + json_number(e.loss) + ",\"token_accuracy\":" + json_number(e.accuracy) +
                      ",\"bleu\":" + json_number(100 * e.bleu) + ",\"test_tokens\":" + std::to_string(e.tokens) +
                      ",\"test_samples\":" + std::to_string(e.samples) + ",\"translations\":" + shown +
                      "],\"time_s\":" + json_number(elapsed) + "}");
    } else if (m.rank0()) {
      std::printf("eval  step %lld/%lld | epoch %.2f | test accuracy %.2f%% (%lld samples) | test loss %.4f\n",
                  static_cast<long long>(step), static_cast<long long>(m.total_steps), epoch, 100 * e.accuracy,
                  static_cast<long long>(e.samples), e.loss);
      std::fflush(stdout);
      m.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch) +
                      ",\"test_accuracy\":" + json_number(e.accuracy) + ",\"test_loss\":" + json_number(e.loss) +
                      ",\"test_samples\":" + std::to_string(e.samples) + ",\"time_s\":" + json_number(elapsed) + "}");
    }
  };

  // Interval accumulators (rank 0 reports them).
  struct Interval {
    int64_t steps = 0;
    double loss_sum = 0, samples = 0, wall = 0, data_wait = 0, allreduce_wait = 0, skew = 0;
  } iv;
  const auto start = Clock::now();
  // Micro-batches consumed by this rank (for the epoch shown; on a resume, as this world
  // size would have consumed them to reach the loader's position).
  int64_t consumed = 0;
  int64_t step = m.start_step;
  data::Position position = m.train->sampler().normalize(m.train->position());
  if (m.resumed) {
    consumed = position.epoch * m.micro_per_epoch + position.cursor / m.global_micro_batch();
  }
  const bool checkpoints = !cfg.checkpoint_dir.empty();
  std::vector<std::pair<Tensor, int64_t>> losses;  // each micro-batch's mean loss, size
  losses.reserve(static_cast<size_t>(accum));
  while (step < m.total_steps) {
    const auto t0 = Clock::now();
    const double wait0 = m.train->wait_seconds();
    const int64_t epoch_before = position.epoch;
    int64_t samples = 0;  // seq2seq: target tokens
    losses.clear();
    m.optimizer->zero_grad();
    for (int64_t i = 0; i < accum; ++i) {
      data::Batch b = m.train->next();
      position = m.train->sampler().normalize(b.next);
      if (m.sample_log) {
        for (const data::RowRange& rr : m.train->sampler().plan(b.at).ranges) {
          for (int64_t row = rr.start; row < rr.start + rr.count; ++row) {
            std::fprintf(m.sample_log, "%lld %lld\n", static_cast<long long>(step + 1), static_cast<long long>(row));
          }
        }
        std::fflush(m.sample_log);
      }
      m.reducer->set_sync(i == accum - 1);
      autograd::Tape tape;
      Tensor loss, objective;
      int64_t units = b.size;  // seq2seq: target tokens
      {
        autograd::GradRecorder rec(tape);
        if (m.seq) {
          objective = m.seq2seq_objective(b, accum, loss, units);
        } else {
          Tensor logits = m.model.module->forward(m.normalize(b.images, m.train_affine, m.train_schema));
          loss = fn::softmax_cross_entropy(logits, b.labels);
          // Each micro-batch's mean loss weighs 1/accum: the step's gradient is the mean
          // over all its samples, as one batch of accum x batch_size would give.
          objective = accum > 1 ? fn::scale(loss, 1.0 / static_cast<double>(accum)) : loss;
        }
      }
      tape.backward(objective);
      losses.emplace_back(loss.detach(), units);
      samples += units;
      ++consumed;
    }
    m.reducer->finalize();
    const double lr = m.schedule->lr_at(step);
    m.optimizer->set_lr(lr);
    m.optimizer->step();
    double loss_sum = 0;
    for (const auto& [l, n] : losses) loss_sum += l.item<float>() * static_cast<double>(n);
    ++step;

    const double data_wait = m.train->wait_seconds() - wait0;
    const double allreduce_wait = m.reducer->last_wait_seconds();
    const double busy = seconds_since(t0) - data_wait - allreduce_wait;
    const int stop_here = m.stop ? m.stop() : 0;
    // The step boundary: one all_gather of [loss sum, samples, busy s, stop] per rank.
    Tensor mine =
        Tensor::from_vector<double>({loss_sum, static_cast<double>(samples), busy, static_cast<double>(stop_here)}, {4});
    Tensor all = Tensor::zeros({4 * static_cast<int64_t>(world)}, DType::F64);
    m.world.control().all_gather(mine, all)->wait();
    std::vector<double> g = all.to_vector<double>();
    double g_loss = 0, g_samples = 0, busy_max = 0, busy_min = 1e300;
    bool stop_all = false;
    int stop_kind = 0;
    for (int r = 0; r < world; ++r) {
      g_loss += g[4 * r];
      g_samples += g[4 * r + 1];
      busy_max = std::max(busy_max, g[4 * r + 2]);
      busy_min = std::min(busy_min, g[4 * r + 2]);
      stop_all = stop_all || g[4 * r + 3] != 0;
      stop_kind = std::max(stop_kind, static_cast<int>(g[4 * r + 3]));
    }
    summary.final_loss = g_samples > 0 ? g_loss / g_samples : 0;

    iv.steps += 1;
    iv.loss_sum += g_loss;
    iv.samples += g_samples;
    iv.wall += seconds_since(t0);
    iv.data_wait += data_wait;
    iv.allreduce_wait += allreduce_wait;
    iv.skew += busy_max - busy_min;
    const double epoch_f = static_cast<double>(consumed) / static_cast<double>(m.micro_per_epoch);
    const bool last = step == m.total_steps || stop_all;
    if (m.rank0() && (step % cfg.log_interval == 0 || last)) {
      const double n = static_cast<double>(iv.steps);
      const double loss = iv.samples > 0 ? iv.loss_sum / iv.samples : 0;
      const double ips = iv.wall > 0 ? iv.samples / iv.wall : 0;
      const double eta = static_cast<double>(m.total_steps - step) * iv.wall / n;
      const int64_t epoch_now = (consumed - 1) / m.micro_per_epoch + 1;
      std::printf("step %lld/%lld | epoch %lld/%lld | loss %.4f | lr %.4g | %.0f %s | data %.1f ms | "
                  "allreduce %.1f ms | skew %.1f ms | ETA %s\n",
                  static_cast<long long>(step), static_cast<long long>(m.total_steps),
                  static_cast<long long>(epoch_now), static_cast<long long>(epochs_total), loss, lr, ips,
                  m.seq ? "tok/s" : "img/s", 1e3 * iv.data_wait / n, 1e3 * iv.allreduce_wait / n, 1e3 * iv.skew / n, duration_text(eta).c_str());
      std::fflush(stdout);
      m.write_metrics("{\"kind\":\"train\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch_f) +
                      ",\"loss\":" + json_number(loss) + ",\"lr\":" + json_number(lr) +
                      (m.seq ? ",\"tokens_per_s\":" : ",\"images_per_s\":") + json_number(ips) + ",\"data_wait_s\":" + json_number(iv.data_wait / n) +
                      ",\"allreduce_wait_s\":" + json_number(iv.allreduce_wait / n) +
                      ",\"step_time_skew_s\":" + json_number(iv.skew / n) + ",\"steps_logged\":" +
                      std::to_string(iv.steps) + ",\"time_s\":" + json_number(seconds_since(start)) + "}");
      iv = Interval{};
    }
    if (stop_all && step < m.total_steps) {
      summary.stopped = true;
      summary.stop_kind = stop_kind;
      if (m.rank0()) {
        std::printf("stop requested: stopping after step %lld\n", static_cast<long long>(step));
        std::fflush(stdout);
      }
      if (checkpoints) m.save(step, position);
      if (!m.knobs.pid_dir.empty()) {
        std::ofstream(m.knobs.pid_dir + "/rank" + std::to_string(m.world.rank()) + ".stopped") << step << "\n";
      }
      break;
    }
    if (m.test) {
      const bool epoch_end = position.epoch > epoch_before;
      const bool due = cfg.eval_interval > 0 ? step % cfg.eval_interval == 0 : epoch_end;
      if (due || step == m.total_steps) record_eval(step, epoch_f, seconds_since(start));
    }
    if (checkpoints && ((cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) ||
                        (step == m.total_steps && cfg.checkpoint_final))) {
      m.save(step, position);
    }
    if (step == m.knobs.crash_at_step) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    if (m.knobs.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(m.knobs.step_delay_ms));
  }
  summary.steps = step;
  summary.seconds = seconds_since(start);
  summary.resumed_from = m.resumed_step;
  summary.checkpoint = m.last_checkpoint;
  if (m.rank0()) {
    if (summary.stopped) {
      std::printf("stopped after step %lld of %lld (%.1f s)%s\n", static_cast<long long>(step),
                  static_cast<long long>(m.total_steps), summary.seconds,
                  checkpoints ? "" : "; no checkpoint: checkpoint.dir is not set");
    } else if (m.resumed && step == m.start_step) {
      std::printf("nothing to train: the checkpoint is at step %lld of %lld\n", static_cast<long long>(step),
                  static_cast<long long>(m.total_steps));
    } else if (summary.evaluated && m.seq) {
      std::printf("final held-out loss %.4f, token accuracy %.2f%%, BLEU %.2f (%lld steps, %d rank%s, %.1f s)\n",
                  summary.test_loss, 100 * summary.test_accuracy, 100 * summary.test_bleu, static_cast<long long>(step),
                  world, world > 1 ? "s" : "", summary.seconds);
    } else if (summary.evaluated) {
      std::printf("final test accuracy %.2f%% (test loss %.4f, %lld steps, %d rank%s, %.1f s)\n",
                  100 * summary.test_accuracy, summary.test_loss, static_cast<long long>(step), world,
                  world > 1 ? "s" : "", summary.seconds);
    } else {
      std::printf("finished %lld steps in %.1f s; final training loss %.4f\n", static_cast<long long>(step),
                  summary.seconds, summary.final_loss);
    }
    std::fflush(stdout);
  }
  return summary;
}

}  // namespace dtrain::launcher
