// The dcgan recipe of the trainer (trainer.h; docs/GAN.md).
#include <fcntl.h>

#include "datasets/convert.h"
#include "launcher/trainer_internal.h"

namespace dtrain::launcher {

void Trainer::Impl::setup_gan() {
  const int64_t h = train_schema.height, w = train_schema.width;
  DT_CHECK_AS(h == w && (h == 28 || h == 32), ConfigError, "model.name = dcgan needs 28x28 or 32x32 images; ",
              cfg.data.train, " has ", h, "x", w);
  total_steps = cfg.steps > 0 ? cfg.steps : cfg.epochs * micro_per_epoch;
  models::DcganConfig dc;
  dc.image_size = static_cast<int>(h);
  dc.channels = static_cast<int>(train_schema.channels);
  dc.z_dim = static_cast<int>(cfg.model.z_dim);
  dc.g_channels = static_cast<int>(cfg.model.g_channels);
  dc.d_channels = static_cast<int>(cfg.model.d_channels);
  dc.batch_norm = cfg.model.batch_norm;
  // One initialization stream for every rank (rank 0's values are broadcast anyway).
  Generator gen = Generator::derive(static_cast<uint64_t>(cfg.seed), 0, "init");
  gan_.g = models::make_dcgan_generator(dc, gen);
  gan_.d = models::make_dcgan_discriminator(dc, gen);
  for (nn::Module* net : {static_cast<nn::Module*>(gan_.g.get()), static_cast<nn::Module*>(gan_.d.get())}) {
    net->to(world.device());
    net->train();
  }
  gan_.g_params = gan_.g->named_parameters();
  gan_.d_params = gan_.d->named_parameters();
  gan_.g_buffers = gan_.g->named_buffers();
  gan_.d_buffers = gan_.d->named_buffers();
  gan_.opt_g = build_optimizer(cfg.optimizer_g, gan_.g_params);
  gan_.opt_d = build_optimizer(cfg.optimizer_d, gan_.d_params);
  schedule = build_schedule(cfg, total_steps);  // unused (constant rates), described nowhere
  // Note [Global GAN noise]: one stream for every rank, derived from the seed alone.
  gan_.noise = std::make_unique<Generator>(Generator::derive(static_cast<uint64_t>(cfg.seed), 0, "gan_noise"));
  Generator fixed = Generator::derive(static_cast<uint64_t>(cfg.gan.noise_seed), 0, "gan_fixed_noise");
  gan_.fixed_z = Tensor::empty({cfg.gan.samples_n, cfg.model.z_dim, 1, 1}, DType::F32, world.device());
  fixed.normal_(gan_.fixed_z, 0.0, 1.0);
  std::ostringstream desc;
  desc << "dcgan " << h << "x" << w << "x" << train_schema.channels << " (z " << dc.z_dim << ", G width "
       << dc.g_channels << " " << gan_.g->num_parameters() << " parameters, D width " << dc.d_channels << " "
       << gan_.d->num_parameters() << " parameters" << (dc.batch_norm ? ", batch norm" : ", no batch norm") << ")";
  gan_.description = desc.str();

  DT_CHECK_AS(cfg.resume.empty() || cfg.resume != "auto" || !cfg.checkpoint_dir.empty(), ConfigError,
              "--resume auto looks for checkpoints in checkpoint.dir, which is not set (--checkpoint-dir DIR or "
              "--set checkpoint.dir=DIR)");

  if (rank0() && !cfg.log_metrics.empty()) {
    std::filesystem::path p(cfg.log_metrics);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    // A resumed run continues the file.
    metrics = std::fopen(cfg.log_metrics.c_str(), cfg.resume.empty() ? "w" : "a");
    DT_CHECK_AS(metrics != nullptr, IoError, "cannot write log.metrics = ", cfg.log_metrics, ": ",
                std::strerror(errno));
  }
}

std::string Trainer::Impl::write_samples(int64_t step) {
  std::string path = cfg.gan.samples;
  for (auto at = path.find("{step}"); at != std::string::npos; at = path.find("{step}")) {
    path.replace(at, 6, std::to_string(step));
  }
  std::filesystem::path fp(path);
  if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
  Tensor images;
  gan_.g->eval();  // batch norm with the running statistics
  try {
    autograd::NoGrad no_grad;
    images = (*gan_.g)(gan_.fixed_z);
  } catch (...) {
    gan_.g->train();
    throw;
  }
  gan_.g->train();
  io::write_image_grid(path, images);
  return path;
}

// Note [GAN export quantization]: a sample x of G (tanh, in [-1, 1]) becomes the byte
// clamp(round_half_even((x + 1) * 127.5), 0, 255), the product computed in float32, as
// PyTorch's ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8) on a float32 tensor
// (torch.round rounds half to even; so does std::nearbyint in the default rounding
// mode). docs/GAN.md states the same formula for reference scripts.
std::string Trainer::Impl::export_samples() {
  const std::string path = cfg.gan.export_path;
  const int64_t n = cfg.gan.export_n, c = train_schema.channels, h = train_schema.height, w = train_schema.width;
  std::filesystem::path fp(path);
  if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
  // A stream of its own: neither the training noise nor the grid's fixed batch.
  Generator gen = Generator::derive(static_cast<uint64_t>(cfg.gan.noise_seed), 0, "gan_export_noise");
  Tensor z = Tensor::empty({n, cfg.model.z_dim, 1, 1}, DType::F32, world.device());
  gen.normal_(z, 0.0, 1.0);  // all at once: the samples do not depend on the batch size below
  const std::string tmp = path + ".tmp";
  constexpr int64_t kBatch = 256;
  gan_.g->eval();  // batch norm with the running statistics (rank 0's)
  try {
    data::WriteOptions wo;
    wo.chunk_rows = std::min<int64_t>(64, n);
    data::ImageWriter out(tmp, n, h, w, c, {}, wo, /*with_labels=*/false);
    std::vector<uint8_t> bytes;
    for (int64_t at = 0; at < n; at += kBatch) {
      const int64_t k = std::min(kBatch, n - at);
      std::vector<float> x;
      {
        autograd::NoGrad no_grad;
        x = (*gan_.g)(z.rows(at, k)).to(Device::cpu()).to(DType::F32).to_vector<float>();  // (k, C, H, W)
      }
      bytes.assign(static_cast<size_t>(k * h * w * c), 0);
      for (int64_t i = 0; i < k; ++i) {
        for (int64_t ch = 0; ch < c; ++ch) {
          for (int64_t p = 0; p < h * w; ++p) {
            const float v = (x[static_cast<size_t>((i * c + ch) * h * w + p)] + 1.0f) * 127.5f;
            const float q = std::min(255.0f, std::max(0.0f, std::nearbyint(v)));
            bytes[static_cast<size_t>((i * h * w + p) * c + ch)] = static_cast<uint8_t>(q);
          }
        }
      }
      out.append(Tensor::from_vector<uint8_t>(bytes, {k, h, w, c}), Tensor());
    }
    out.finish();
    // Durable before it takes the final name: a crash leaves the old file or the new one.
    const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    DT_CHECK_AS(fd >= 0, IoError, "gan.export: cannot open '", tmp, "' to fsync it: ", std::strerror(errno));
    const bool synced = ::fsync(fd) == 0;
    const int fsync_errno = errno;
    ::close(fd);
    DT_CHECK_AS(synced, IoError, "gan.export: fsync of '", tmp, "' failed: ", std::strerror(fsync_errno));
    DT_CHECK_AS(std::rename(tmp.c_str(), path.c_str()) == 0, IoError, "gan.export: cannot rename '", tmp, "' to '",
                path, "': ", std::strerror(errno));
  } catch (...) {
    gan_.g->train();
    std::remove(tmp.c_str());  // best effort; an existing file at `path` is untouched
    throw;
  }
  gan_.g->train();
  return path;
}

namespace {

void add_prefixed(nn::NamedTensors& out, const std::string& prefix, const nn::NamedTensors& in) {
  for (const auto& [name, t] : in) out.emplace_back(prefix + name, t);
}

}  // namespace

// A dcgan checkpoint (docs/CHECKPOINTS.md, "dcgan"): the classifier's format and protocol
// (Note [Checkpoint protocol] in trainer.cpp) with both networks and both optimizers under
// the name prefixes "generator." and "discriminator." (/model/generator.main.0.weight,
// /optimizer/discriminator.main.0.weight.exp_avg), so the file format (version 1) and its
// reader are unchanged. The one optimizer_steps attribute serves both optimizers: each
// steps once per GAN step, so both counts equal the step (checked here). The noise stream
// is the same on every rank (Note [Global GAN noise]) and is stored once, as
// /rng/rank0/gan_noise; no other rank has a stream of its own, so, unlike save(), no
// all_gather is needed: check_all_ok alone agrees on the outcome.
void Trainer::Impl::save_gan(int64_t step, data::Position pos) {
  std::exception_ptr error;
  if (rank0()) {
    try {
      DT_CHECK(gan_.opt_g->steps_taken() == gan_.opt_d->steps_taken(), "dcgan checkpoint: the optimizers took ",
               gan_.opt_g->steps_taken(), " (G) and ", gan_.opt_d->steps_taken(), " (D) steps; expected equal counts");
      ckpt::Contents c;
      add_prefixed(c.model, "generator.", gan_.g_params);
      add_prefixed(c.model, "discriminator.", gan_.d_params);
      add_prefixed(c.model, "generator.", gan_.g_buffers);
      add_prefixed(c.model, "discriminator.", gan_.d_buffers);
      add_prefixed(c.optimizer, "generator.", gan_.opt_g->state());
      add_prefixed(c.optimizer, "discriminator.", gan_.opt_d->state());
      c.optimizer_steps = gan_.opt_g->steps_taken();
      c.rng.push_back({0, "gan_noise", gan_.noise->state()});
      ckpt::TrainerState& t = c.trainer;
      t.step = step;
      t.epoch = pos.epoch;
      t.cursor = pos.cursor;
      t.seed = cfg.seed;
      t.world_size = world.size();
      t.global_batch = global_micro_batch();
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

void Trainer::Impl::load_gan(const std::string& path, int64_t step) {
  // Rank 0 verified the file (choose_checkpoint); the others check they read that step.
  ckpt::Contents c = ckpt::read(path, /*verified=*/true);
  DT_CHECK_AS(c.trainer.step == step, IoError, "checkpoint '", path, "' holds step ", c.trainer.step, ", rank 0 chose ",
              step, ": do all ranks see the same checkpoint directory?");
  nn::NamedTensors state;
  add_prefixed(state, "generator.", gan_.g_params);
  add_prefixed(state, "discriminator.", gan_.d_params);
  add_prefixed(state, "generator.", gan_.g_buffers);
  add_prefixed(state, "discriminator.", gan_.d_buffers);
  ckpt::check_model(path, c.model, state);
  DT_CHECK_AS(c.trainer.seed == cfg.seed, ConfigError, "checkpoint '", path, "' was written with seed ", c.trainer.seed,
              ", this run has seed ", cfg.seed, ": resume with --set seed=", c.trainer.seed,
              " (the seed fixes the data order and the noise)");
  const ckpt::RngStream* noise = nullptr;
  for (const ckpt::RngStream& s : c.rng) {
    if (s.name == "gan_noise") noise = &s;
  }
  DT_CHECK_AS(noise != nullptr, IoError, "checkpoint '", path,
              "' has no /rng/rank0/gan_noise (the dcgan noise stream): it was not written by the dcgan recipe");

  nn::NamedTensors opt_g, opt_d;
  for (const auto& [name, t] : c.optimizer) {
    if (name.rfind("generator.", 0) == 0) {
      opt_g.emplace_back(name.substr(10), t);
    } else if (name.rfind("discriminator.", 0) == 0) {
      opt_d.emplace_back(name.substr(14), t);
    } else {
      DT_THROW(ValueError, "checkpoint '", path, "' has optimizer state '", name,
               "' of neither network (expected the prefix generator. or discriminator.): not a dcgan checkpoint");
    }
  }
  // Zero gradients, as load() does for the classifier.
  for (nn::NamedTensors* ps : {&gan_.g_params, &gan_.d_params}) {
    for (auto& [name, p] : *ps) p.set_grad(Tensor::zeros(p.shape(), p.dtype(), p.device()));
  }
  try {
    gan_.opt_g->load_state(opt_g, c.optimizer_steps);
  } catch (const ValueError& e) {
    DT_THROW(ValueError, "checkpoint '", path, "' (generator optimizer ", cfg.optimizer_g.name, "): ", e.what());
  }
  try {
    gan_.opt_d->load_state(opt_d, c.optimizer_steps);
  } catch (const ValueError& e) {
    DT_THROW(ValueError, "checkpoint '", path, "' (discriminator optimizer ", cfg.optimizer_d.name, "): ", e.what());
  }
  std::map<std::string, const Tensor*> in_file;
  for (const auto& [n, t] : c.model) in_file[n] = &t;
  for (const auto& [n, t] : state) t.copy_(in_file.at(n)->to(t.device()));
  gan_.noise->set_state(noise->state);

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
                  "same global sample and noise; with another global batch or with batch norm the result is no "
                  "longer identical to an uninterrupted run (docs/CHECKPOINTS.md)\n",
                  static_cast<long long>(c.trainer.world_size), c.trainer.world_size > 1 ? "s" : "", world.size());
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

// Note [Global GAN noise]: every step draws the noise of the GLOBAL batch,
// (world_size x batch_size, z_dim, 1, 1), from one stream derived from the seed alone
// ((seed, 0, "gan_noise"), the same state on every rank), and rank r uses rows
// [r B, (r + 1) B) through GanStep::step(real, z). So the noise of sample i of a step does
// not depend on how the global batch is split: W ranks at batch B draw exactly what one
// process at batch W B draws, and with batch norm off (batch norm normalizes with each
// rank's own batch statistics, as PyTorch DDP without SyncBatchNorm) the runs agree up to
// the rounding of the all-reduce. The stream's state is one pair of integers, saved once
// in a checkpoint and valid for any world size. The cost: each rank fills W times the
// normals it uses, W B z_dim numbers per step (8 ranks x 128 x 100 = 102,400, under a
// millisecond, on the device that holds them), against G's and D's forward and backward
// passes of W-fold fewer samples but millions of multiply-adds each; no communication.
//
// The GAN loop (trainer.h; docs/GAN.md): the classifier loop's protocol with a GanStep
// in place of the forward/backward, and rank 0 writing the sample grid where the
// classifier evaluates. Checkpoints and stops follow the classifier loop (Note
// [Checkpoint protocol]); save_gan() and load_gan() hold what differs.
TrainSummary Trainer::Impl::run_gan() {
  const int world_n = world.size();
  // A resumed run loads the same file on every rank (Note [Resume agreement]); a fresh one
  // takes rank 0's initial values everywhere (only now that the shapes agree).
  if (!cfg.resume.empty()) {
    std::string path;
    const int64_t chosen = choose_checkpoint(path);
    if (chosen >= 0) {
      std::exception_ptr error;
      try {
        load_gan(path, chosen);
      } catch (...) {
        error = std::current_exception();
      }
      world.check_all_ok(error, "loading checkpoint " + path);
    }
  }
  if (!resumed) {
    gan_.reducer_g->broadcast_from_rank0(gan_.g_buffers);
    gan_.reducer_d->broadcast_from_rank0(gan_.d_buffers);
  }
  dist::GanStepOptions so;
  so.z_dim = static_cast<int>(cfg.model.z_dim);
  dist::GanStep gan_step(*gan_.g, *gan_.d, *gan_.opt_g, *gan_.opt_d, gan_.reducer_g.get(), gan_.reducer_d.get(),
                         *gan_.noise, so);
  const int64_t epochs_total = (total_steps + micro_per_epoch - 1) / micro_per_epoch;
  const int64_t params_total = gan_.g->num_parameters() + gan_.d->num_parameters();
  auto opt_text = [](const OptimizerConfig& o) {
    std::ostringstream os;
    os << o.name << " lr " << o.lr;
    if (o.name == "sgd") {
      os << " momentum " << o.momentum;
    } else {
      os << " betas (" << o.betas[0] << ", " << o.betas[1] << ")";
    }
    if (o.weight_decay > 0) os << " weight_decay " << o.weight_decay;
    return os.str();
  };
  if (rank0()) {
    std::printf("dtrain train %s: %d rank%s (%s, %s, %d thread%s per rank), %s, %lld parameters\n",
                cfg.source.c_str(), world_n, world_n > 1 ? "s" : "", world.group().backend().c_str(),
                world.device().str().c_str(), threads, threads > 1 ? "s" : "", gan_.description.c_str(),
                static_cast<long long>(params_total));
    std::printf("data %s: %lld samples %lldx%lldx%lld, inputs in [-1, 1] (%s); global batch %lld (%d x %lld); "
                "%lld steps (%lld per epoch)\n",
                basename_of(cfg.data.train).c_str(), static_cast<long long>(train_schema.n),
                static_cast<long long>(train_schema.height), static_cast<long long>(train_schema.width),
                static_cast<long long>(train_schema.channels), tanh_inputs ? "tanh" : "meanstd: NOT [-1, 1]",
                static_cast<long long>(world_n * cfg.batch_size), world_n, static_cast<long long>(cfg.batch_size),
                static_cast<long long>(total_steps), static_cast<long long>(micro_per_epoch));
    std::printf("optimizer_g %s; optimizer_d %s\n", opt_text(cfg.optimizer_g).c_str(),
                opt_text(cfg.optimizer_d).c_str());
    std::fflush(stdout);
    write_metrics("{\"kind\":\"header\",\"model\":\"dcgan\",\"world_size\":" + std::to_string(world_n) +
                  ",\"backend\":" + json_string(world.group().backend()) + ",\"device\":" +
                  json_string(world.device().str()) + ",\"threads_per_rank\":" + std::to_string(threads) +
                  ",\"steps\":" + std::to_string(total_steps) + ",\"steps_per_epoch\":" +
                  std::to_string(micro_per_epoch) + ",\"parameters\":" + std::to_string(params_total) +
                  ",\"generator_parameters\":" + std::to_string(gan_.g->num_parameters()) +
                  ",\"discriminator_parameters\":" + std::to_string(gan_.d->num_parameters()) + ",\"build\":" +
                  json_string(std::string(DTRAIN_VERSION) + " (" + DTRAIN_GIT_HASH + ")") +
                  ",\"config\":" + json_string(canonical(cfg)) + "}");
  }

  TrainSummary summary;
  struct Interval {
    int64_t steps = 0;
    double loss_d = 0, loss_g = 0, d_real = 0, d_fake = 0, d_fake_g = 0;  // sums weighted by samples
    double samples = 0, wall = 0, data_wait = 0, allreduce_wait = 0, skew = 0;
  } iv;
  const auto start = Clock::now();
  int64_t consumed = 0;
  int64_t step = start_step;
  data::Position position = train->sampler().normalize(train->position());
  if (resumed) consumed = position.epoch * micro_per_epoch + position.cursor / global_micro_batch();
  const bool checkpoints = !cfg.checkpoint_dir.empty();
  const int64_t batch = cfg.batch_size;
  const Shape global_noise{world_n * batch, cfg.model.z_dim, 1, 1};
  constexpr int kFields = 8;
  while (step < total_steps) {
    const auto t0 = Clock::now();
    const double wait0 = train->wait_seconds();
    const int64_t epoch_before = position.epoch;
    data::Batch b = train->next();
    position = train->sampler().normalize(b.next);
    const Tensor real = normalize(b.images, train_affine, train_schema);
    DT_CHECK(b.size == batch, "dcgan: a training batch of ", b.size, " samples, expected batch_size ", batch);
    // Note [Global GAN noise]: the global batch's noise, this rank's rows.
    Tensor z_all = Tensor::empty(global_noise, real.dtype(), real.device());
    gan_.noise->normal_(z_all, 0.0, 1.0);
    const dist::GanStepResult r = gan_step.step(real, z_all.rows(world.rank() * batch, batch));
    ++consumed;
    ++step;

    const double data_wait = train->wait_seconds() - wait0;
    const double allreduce_wait = gan_.reducer_g->last_wait_seconds() + gan_.reducer_d->last_wait_seconds();
    const double busy = seconds_since(t0) - data_wait - allreduce_wait;
    const int stop_here = stop ? stop() : 0;
    const double n = static_cast<double>(b.size);
    // The step boundary: one all_gather of this rank's statistics (Note [Trainer step]).
    Tensor mine = Tensor::from_vector<double>({r.loss_d * n, r.loss_g * n, r.d_real_mean * n, r.d_fake_mean * n,
                                               r.d_fake_after * n, n, busy, static_cast<double>(stop_here)},
                                              {kFields});
    Tensor all = Tensor::zeros({kFields * static_cast<int64_t>(world_n)}, DType::F64);
    world.control().all_gather(mine, all)->wait();
    std::vector<double> g = all.to_vector<double>();
    double sums[6] = {0, 0, 0, 0, 0, 0};
    double busy_max = 0, busy_min = 1e300;
    bool stop_all = false;
    int stop_kind = 0;
    for (int k = 0; k < world_n; ++k) {
      const double* row = g.data() + kFields * k;
      for (int i = 0; i < 6; ++i) sums[i] += row[i];
      busy_max = std::max(busy_max, row[6]);
      busy_min = std::min(busy_min, row[6]);
      stop_all = stop_all || row[7] != 0;
      stop_kind = std::max(stop_kind, static_cast<int>(row[7]));
    }
    const double total_n = sums[5];
    summary.final_loss_d = total_n > 0 ? sums[0] / total_n : 0;
    summary.final_loss_g = total_n > 0 ? sums[1] / total_n : 0;
    summary.final_loss = summary.final_loss_d;

    iv.steps += 1;
    iv.loss_d += sums[0];
    iv.loss_g += sums[1];
    iv.d_real += sums[2];
    iv.d_fake += sums[3];
    iv.d_fake_g += sums[4];
    iv.samples += total_n;
    iv.wall += seconds_since(t0);
    iv.data_wait += data_wait;
    iv.allreduce_wait += allreduce_wait;
    iv.skew += busy_max - busy_min;
    const double epoch_f = static_cast<double>(consumed) / static_cast<double>(micro_per_epoch);
    const bool last = step == total_steps || stop_all;
    if (rank0() && (step % cfg.log_interval == 0 || last)) {
      const double k = static_cast<double>(iv.steps);
      const double ns = iv.samples > 0 ? iv.samples : 1;
      const double ips = iv.wall > 0 ? iv.samples / iv.wall : 0;
      const double eta = static_cast<double>(total_steps - step) * iv.wall / k;
      const int64_t epoch_now = (consumed - 1) / micro_per_epoch + 1;
      std::printf("step %lld/%lld | epoch %lld/%lld | loss_d %.4f | loss_g %.4f | D(x) %.3f | D(G(z)) %.3f / %.3f | "
                  "%.0f img/s | data %.1f ms | allreduce %.1f ms | skew %.1f ms | ETA %s\n",
                  static_cast<long long>(step), static_cast<long long>(total_steps),
                  static_cast<long long>(epoch_now), static_cast<long long>(epochs_total), iv.loss_d / ns,
                  iv.loss_g / ns, iv.d_real / ns, iv.d_fake / ns, iv.d_fake_g / ns, ips, 1e3 * iv.data_wait / k,
                  1e3 * iv.allreduce_wait / k, 1e3 * iv.skew / k, duration_text(eta).c_str());
      std::fflush(stdout);
      write_metrics("{\"kind\":\"train\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch_f) +
                    ",\"loss_d\":" + json_number(iv.loss_d / ns) + ",\"loss_g\":" + json_number(iv.loss_g / ns) +
                    ",\"d_real\":" + json_number(iv.d_real / ns) + ",\"d_fake\":" + json_number(iv.d_fake / ns) +
                    ",\"d_fake_g_step\":" + json_number(iv.d_fake_g / ns) + ",\"images_per_s\":" + json_number(ips) +
                    ",\"data_wait_s\":" + json_number(iv.data_wait / k) +
                    ",\"allreduce_wait_s\":" + json_number(iv.allreduce_wait / k) +
                    ",\"step_time_skew_s\":" + json_number(iv.skew / k) + ",\"steps_logged\":" +
                    std::to_string(iv.steps) + ",\"time_s\":" + json_number(seconds_since(start)) + "}");
      iv = Interval{};
    }
    if (stop_all && step < total_steps) {
      summary.stopped = true;
      summary.stop_kind = stop_kind;
      if (rank0()) {
        std::printf("stop requested: stopping after step %lld\n", static_cast<long long>(step));
        std::fflush(stdout);
      }
      if (checkpoints) save_gan(step, position);
      if (!knobs.pid_dir.empty()) {
        std::ofstream(knobs.pid_dir + "/rank" + std::to_string(world.rank()) + ".stopped") << step << "\n";
      }
      break;
    }
    // "Evaluation": the sample grid, rank 0 alone (no collective).
    const bool epoch_end = position.epoch > epoch_before;
    const bool due = cfg.eval_interval > 0 ? step % cfg.eval_interval == 0 : epoch_end;
    if (!cfg.gan.samples.empty() && (due || step == total_steps) && rank0()) {
      summary.samples = write_samples(step);
      summary.evaluated = true;
      std::printf("samples step %lld/%lld: %s (%lld images of G(fixed noise), G in eval mode)\n",
                  static_cast<long long>(step), static_cast<long long>(total_steps), summary.samples.c_str(),
                  static_cast<long long>(cfg.gan.samples_n));
      std::fflush(stdout);
      write_metrics("{\"kind\":\"samples\",\"step\":" + std::to_string(step) + ",\"epoch\":" + json_number(epoch_f) +
                    ",\"path\":" + json_string(summary.samples) + ",\"images\":" + std::to_string(cfg.gan.samples_n) +
                    ",\"time_s\":" + json_number(seconds_since(start)) + "}");
    }
    if (checkpoints && ((cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) ||
                        (step == total_steps && cfg.checkpoint_final))) {
      save_gan(step, position);
    }
    if (step == knobs.crash_at_step) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    if (knobs.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(knobs.step_delay_ms));
  }
  summary.steps = step;
  summary.seconds = seconds_since(start);
  summary.resumed_from = resumed_step;
  summary.checkpoint = last_checkpoint;
  // gan.export after the last step (not on a stop): rank 0 writes, every rank agrees on
  // the outcome, so a failed write fails the run everywhere.
  if (!summary.stopped && step == total_steps && !cfg.gan.export_path.empty()) {
    std::exception_ptr error;
    if (rank0()) {
      try {
        const auto t0 = Clock::now();
        const std::string path = export_samples();
        std::printf("export: %lld samples of G (eval mode, noise seed %lld) -> %s (%.1f s)\n",
                    static_cast<long long>(cfg.gan.export_n), static_cast<long long>(cfg.gan.noise_seed),
                    path.c_str(), seconds_since(t0));
        std::fflush(stdout);
        write_metrics("{\"kind\":\"export\",\"step\":" + std::to_string(step) + ",\"path\":" + json_string(path) +
                      ",\"samples\":" + std::to_string(cfg.gan.export_n) + ",\"time_s\":" +
                      json_number(seconds_since(t0)) + "}");
      } catch (...) {
        error = std::current_exception();
      }
    }
    world.check_all_ok(error, "writing gan.export = " + cfg.gan.export_path);
  }
  if (rank0()) {
    if (summary.stopped) {
      std::printf("stopped after step %lld of %lld (%.1f s)%s\n", static_cast<long long>(step),
                  static_cast<long long>(total_steps), summary.seconds,
                  checkpoints ? "" : "; no checkpoint: checkpoint.dir is not set");
    } else if (resumed && step == start_step) {
      std::printf("nothing to train: the checkpoint is at step %lld of %lld\n", static_cast<long long>(step),
                  static_cast<long long>(total_steps));
    } else {
      std::printf("finished %lld steps in %.1f s; loss_d %.4f, loss_g %.4f%s%s\n", static_cast<long long>(step),
                  summary.seconds, summary.final_loss_d, summary.final_loss_g,
                  summary.samples.empty() ? "" : "; samples ", summary.samples.c_str());
    }
    std::fflush(stdout);
  }
  return summary;
}

}  // namespace dtrain::launcher
