// `dtrain train`: see train.h.
#include "launcher/train.h"

#include <cstdio>

#include "core/error.h"
#include "launcher/args.h"
#include "launcher/config.h"
#include "launcher/trainer.h"
#include "launcher/world.h"

namespace dtrain::train_cli {

namespace {

constexpr const char* kEpilog =
    "Examples:\n"
    "  dtrain train configs/fashion_mnist_cnn.toml\n"
    "  mpirun -np 2 dtrain train configs/fashion_mnist_cnn.toml --set optimizer.lr=0.05 --set epochs=1\n"
    "  srun --mpi=pmix -n 8 dtrain train configs/vgg16_cifar.toml --set device=cuda\n"
    "As root, Open MPI's mpirun needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.\n"
    "\n"
    "Exit codes: 0 success, 1 the run failed (including ranks that disagree before the first\n"
    "step), 2 bad usage or configuration, 3 a feature this build lacks.\n";

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

int run(const std::vector<std::string>& args) {
  cli::ArgParser p("dtrain train",
                   "Trains a model data-parallel: every rank (process) holds the model, reads its shard of the "
                   "training file and averages gradients with the others before each step.");
  p.add_positional("CONFIG", "the TOML config file (keys below; examples in configs/)");
  p.add_option("set", "KEY=VALUE", "override a config key, e.g. --set optimizer.lr=0.05 (repeatable)");
  p.add_flag("print-config", "print the resolved configuration (every key) and exit");
  p.set_epilog(std::string("config keys (KEY = default):\n") + launcher::keys_help() + "\n" + kEpilog);
  std::vector<std::string> rest;
  std::vector<std::string> sets = take_sets(args, rest);
  p.parse(rest);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  // Configuration errors end every rank here, before MPI starts.
  launcher::Config config = launcher::load_config(p.get("CONFIG"), sets);
  if (p.flag("print-config")) {
    std::printf("%s", launcher::canonical(config).c_str());
    return 0;
  }

  launcher::World world(config.device);
  launcher::Trainer trainer(config, world);  // collective set-up: a failure stops every rank
  trainer.preflight();                       // collective agreement: a mismatch stops every rank
  try {
    trainer.run();
  } catch (const std::exception& e) {
    if (world.size() > 1) {
      // Other ranks may be waiting in a collective this rank will never join.
      std::fprintf(stderr, "error: rank %d (%s): %s\n", world.rank(), world.host().c_str(), e.what());
      world.abort(1);
    }
    throw;
  }
  return 0;
}

}  // namespace dtrain::train_cli
