// `dtrain train`: see train.h.
#include "launcher/cli/commands.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "launcher/cli/args.h"
#include "launcher/control/job_control.h"
#include "launcher/train/config.h"
#include "launcher/train/signals.h"
#include "launcher/slurm/job.h"
#include "launcher/train/loop.h"
#include "launcher/train/world.h"

namespace dtrain::cli {

namespace {

// Stopped at a step boundary by SIGTERM/SIGUSR1 (EX_TEMPFAIL: try again later).
constexpr int kExitStopped = 75;

constexpr const char* kEpilog =
    "Examples:\n"
    "  dtrain train configs/fashion_mnist_cnn.toml\n"
    "  mpirun -np 2 dtrain train configs/fashion_mnist_cnn.toml --set optimizer.lr=0.05 --set epochs=1\n"
    "  srun --mpi=pmix -n 8 dtrain train configs/vgg16_cifar.toml --set device=cuda\n"
    "As root, Open MPI's mpirun needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.\n"
    "  mpirun -np 2 dtrain train cfg.toml --checkpoint-dir ckpt --checkpoint-every 500 --resume auto\n"
    "\n"
    "Checkpoints (docs/CHECKPOINTS.md): rank 0 writes <checkpoint.dir>/step-<N>.h5 every N steps,\n"
    "after the last step and when stopped, atomically (a step-<N>.ok marker with a checksum is\n"
    "written last). --resume auto continues from the newest one that verifies (skipping damaged\n"
    "ones with a warning; none: starts fresh); --resume PATH from that file. The directory must\n"
    "be visible to every rank. SIGTERM or SIGUSR1 to any rank stops every rank after the same\n"
    "step with a checkpoint; in a Slurm job, after SIGUSR1 (the time-limit warning `dtrain submit`\n"
    "asks for) rank 0 then requeues the job (scontrol requeue); after SIGTERM it does not.\n"
    "\n"
    "Exit codes: 0 finished, 1 the run failed (including ranks that disagree before the first\n"
    "step, and a checkpoint that cannot be written or read), 2 bad usage or configuration, 3 a\n"
    "feature this build lacks, 75 stopped by SIGTERM/SIGUSR1 or `dtrain stop` at a step boundary\n"
    "(checkpoint written when checkpoint.dir is set; run again with --resume auto to continue),\n"
    "86 ended by the watchdog: a rank froze, stalled or the ranks desynchronised; the diagnosis\n"
    "names the rank and its phase (docs/WATCHDOG.md); run again with --resume auto.\n"
    "\n"
    "Live status: rank 0 serves GET /status and /metrics on 127.0.0.1 (the line 'status: URL'):\n"
    "  dtrain status CHECKPOINT_DIR     dtrain stop CHECKPOINT_DIR\n";

// --set may repeat, which ArgParser's options do not: take them out first.
std::vector<std::string> take_sets(const std::vector<std::string>& args, std::vector<std::string>& rest) {
  std::vector<std::string> sets;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--set") {
      if (i + 1 >= args.size()) DT_THROW(ConfigError, "dtrain train: option '--set' needs a value (KEY=VALUE)");
      sets.push_back(args[++i]);
    } else if (args[i].rfind("--set=", 0) == 0) {
      sets.push_back(args[i].substr(6));
    } else {
      rest.push_back(args[i]);
    }
  }
  return sets;
}

}  // namespace

int train_main(const std::vector<std::string>& args) {
  cli::ArgParser p("dtrain train",
                   "Trains a model data-parallel: every rank (process) holds the model, reads its shard of the "
                   "training file and averages gradients with the others before each step.");
  p.add_positional("CONFIG", "the TOML config file (keys below; examples in configs/)");
  p.add_option("set", "KEY=VALUE", "override a config key, e.g. --set optimizer.lr=0.05 (repeatable)");
  p.add_flag("print-config", "print the resolved configuration (every key) and exit");
  p.add_option("checkpoint-dir", "DIR", "checkpoint directory (sets checkpoint.dir)");
  p.add_option("checkpoint-every", "N", "checkpoint every N steps (sets checkpoint.every; 0 = final only)");
  p.add_option("keep-last", "K", "keep the K newest complete checkpoints (sets checkpoint.keep_last; 0 = all)");
  p.add_option("resume", "auto|PATH",
               "continue from the newest good checkpoint in checkpoint.dir (auto), or from PATH");
  p.set_epilog(std::string("config keys (KEY = default), first those of every recipe:\n") + launcher::keys_help() + "\n" + kEpilog);
  std::vector<std::string> rest;
  std::vector<std::string> sets = take_sets(args, rest);
  p.parse(rest);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  // The checkpoint flags are --set overrides under another name (applied after the --sets).
  if (p.has("checkpoint-dir")) sets.push_back("checkpoint.dir=" + p.get("checkpoint-dir"));
  if (p.has("checkpoint-every")) sets.push_back("checkpoint.every=" + p.get("checkpoint-every"));
  if (p.has("keep-last")) sets.push_back("checkpoint.keep_last=" + p.get("keep-last"));
  // Configuration errors end every rank here, before MPI starts.
  launcher::Config config = launcher::load_config(p.get("CONFIG"), sets);
  if (p.has("resume")) {
    config.resume = p.get("resume");
    if (config.resume.empty()) DT_THROW(ConfigError, "dtrain train: --resume needs 'auto' or a checkpoint path");
    if (config.resume == "auto" && config.checkpoint_dir.empty()) {
      DT_THROW(ConfigError, "dtrain train: --resume auto looks in checkpoint.dir, which is not set "
                            "(--checkpoint-dir DIR or --set checkpoint.dir=DIR)");
    }
  }
  if (p.flag("print-config")) {
    std::printf("%s", launcher::canonical(config).c_str());
    return 0;
  }

  // From here on SIGTERM/SIGUSR1 only request a stop at the next step boundary.
  signals::install_stop_handlers();
  launcher::World world(config.device);
  // The watchdog and the live status (docs/WATCHDOG.md), from before the set-up on; an
  // authorised `dtrain stop` takes the SIGTERM path.
  control::JobControl job(world, config, p.get("CONFIG"), [] { signals::request_stop(SIGTERM); });
  launcher::TrainLoop loop(config, world);  // collective set-up: a failure stops every rank
  if (world.rank() == 0) {
    job.set_record_writer([&loop](const std::string& line) { loop.write_metrics_record(line); });
    loop.set_status_sink([&job](const control::JobStatus& s) { job.publish(s); });
    if (const std::string url = job.status_url(); !url.empty()) {
      const std::string where = config.checkpoint_dir.empty() ? url.substr(url.find("//") + 2) : config.checkpoint_dir;
      std::printf("status: %s (dtrain status %s)\n", url.c_str(), where.c_str());
      std::fflush(stdout);
    }
  }
  // SIGUSR1 is what `dtrain submit` asks Slurm to send before the time limit: stop and
  // requeue. SIGTERM (scancel, shutdown, preemption, which requeues by itself where the
  // cluster is set up so) stops with a checkpoint but does not requeue.
  loop.set_stop_request([] {
    if (!signals::stop_requested()) return static_cast<int>(launcher::TrainLoop::kNoStop);
    return static_cast<int>(signals::stop_signal() == SIGUSR1 ? launcher::TrainLoop::kStopAndRequeue
                                                               : launcher::TrainLoop::kStop);
  });
  loop.preflight();  // collective agreement: a mismatch stops every rank
  launcher::TrainSummary summary;
  try {
    summary = loop.run();
  } catch (const std::exception& e) {
    if (world.size() > 1) {
      // Other ranks may be waiting in a collective this rank will never join.
      std::fprintf(stderr, "error: rank %d (%s): %s\n", world.rank(), world.host().c_str(), e.what());
      world.abort(1);
    }
    throw;
  }
  if (!summary.stopped) return 0;
  if (world.rank() == 0) {
    Logger log(world.rank(), world.size());
    if (!summary.checkpoint.empty() && std::getenv("SLURM_JOB_ID") != nullptr &&
        summary.stop_kind == launcher::TrainLoop::kStopAndRequeue) {
      slurm::requeue_current_job(log);
    } else if (!summary.checkpoint.empty() && std::getenv("SLURM_JOB_ID") != nullptr) {
      std::printf("stopped by SIGTERM in Slurm job %s; checkpoint %s; not requeued (only SIGUSR1, the time-limit "
                  "warning, requeues); submit again or requeue to continue with --resume auto\n",
                  std::getenv("SLURM_JOB_ID"), summary.checkpoint.c_str());
    } else if (!summary.checkpoint.empty()) {
      std::printf("stopped at a step boundary on request (SIGTERM/SIGUSR1); checkpoint %s; continue with "
                  "--resume auto\n", summary.checkpoint.c_str());
    } else {
      std::printf("stopped by a signal without a checkpoint (checkpoint.dir is not set)\n");
    }
    std::fflush(stdout);
  }
  return kExitStopped;
}

}  // namespace dtrain::cli
