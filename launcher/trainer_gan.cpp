// The dcgan recipe of the trainer (trainer.h; docs/GAN.md).
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
  gan_.noise = std::make_unique<Generator>(
      Generator::derive(static_cast<uint64_t>(cfg.seed), static_cast<uint64_t>(world.rank()), "gan_noise"));
  Generator fixed = Generator::derive(static_cast<uint64_t>(cfg.gan.noise_seed), 0, "gan_fixed_noise");
  gan_.fixed_z = Tensor::empty({cfg.gan.samples_n, cfg.model.z_dim, 1, 1}, DType::F32, world.device());
  fixed.normal_(gan_.fixed_z, 0.0, 1.0);
  std::ostringstream desc;
  desc << "dcgan " << h << "x" << w << "x" << train_schema.channels << " (z " << dc.z_dim << ", G width "
       << dc.g_channels << " " << gan_.g->num_parameters() << " parameters, D width " << dc.d_channels << " "
       << gan_.d->num_parameters() << " parameters" << (dc.batch_norm ? ", batch norm" : ", no batch norm") << ")";
  gan_.description = desc.str();

  if (rank0() && !cfg.log_metrics.empty()) {
    std::filesystem::path p(cfg.log_metrics);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    metrics = std::fopen(cfg.log_metrics.c_str(), "w");
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

// The GAN loop (trainer.h; docs/GAN.md): the classifier loop's protocol with a GanStep
// in place of the forward/backward, and rank 0 writing the sample grid where the
// classifier evaluates.
TrainSummary Trainer::Impl::run_gan() {
  const int world_n = world.size();
  // Rank 0's initial values everywhere (only now that the shapes agree).
  gan_.reducer_g->broadcast_from_rank0(gan_.g_buffers);
  gan_.reducer_d->broadcast_from_rank0(gan_.d_buffers);
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
  int64_t step = 0;
  data::Position position = train->sampler().normalize(train->position());
  constexpr int kFields = 8;
  while (step < total_steps) {
    const auto t0 = Clock::now();
    const double wait0 = train->wait_seconds();
    const int64_t epoch_before = position.epoch;
    data::Batch b = train->next();
    position = train->sampler().normalize(b.next);
    const Tensor real = normalize(b.images, train_affine, train_schema);
    const dist::GanStepResult r = gan_step.step(real);
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
        std::printf("stop requested: stopping after step %lld (dcgan: no checkpoint)\n", static_cast<long long>(step));
        std::fflush(stdout);
      }
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
    if (step == knobs.crash_at_step) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    if (knobs.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(knobs.step_delay_ms));
  }
  summary.steps = step;
  summary.seconds = seconds_since(start);
  if (rank0()) {
    if (summary.stopped) {
      std::printf("stopped after step %lld of %lld (%.1f s); no checkpoint (dcgan)\n", static_cast<long long>(step),
                  static_cast<long long>(total_steps), summary.seconds);
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
