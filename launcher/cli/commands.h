#pragma once
// The subcommands of the `dtrain` program, one file each in launcher/cli/, all entered the
// same way: `<name>_main(args)` takes the arguments after the subcommand's name and
// returns the process exit code. Errors are exceptions (core/error.h); main.cpp alone
// turns them into exit codes (0 success, 1 a run failed, 2 bad usage, 3 not built).
#include <string>
#include <vector>

namespace dtrain::cli {

// `dtrain data convert|synth|inspect`: public formats to dtrain's HDF5 dataset files,
// seeded synthetic sets, and a file's schema, counts and validation (docs/DATASETS.md).
int data_main(const std::vector<std::string>& args);
// `dtrain demo NAME`: the lecture's first networks, run through the normal library path
// (modules, autograd, optimizers) so they double as end-to-end checks.
int demo_main(const std::vector<std::string>& args);
// `dtrain encode --checkpoint CKPT DATA --out FILE`: an autoencoder's code of every image
// (docs/AUTOENCODER.md).
int encode_main(const std::vector<std::string>& args);
// `dtrain info`: the build's backends and the CUDA devices it sees.
int info_main(const std::vector<std::string>& args);
// `dtrain predict --checkpoint CKPT WORD...`: a text classifier's top classes for each word
// (docs/TEXT_CLASSIFIER.md).
int predict_main(const std::vector<std::string>& args);
// `dtrain score --classifier CKPT FILE...`: sample quality of image files (docs/GAN.md).
int score_main(const std::vector<std::string>& args);
// `dtrain style --content PHOTO --style PAINTING --out OUT.png`: neural style transfer on
// VGG16 features (docs/STYLE_TRANSFER.md).
int style_main(const std::vector<std::string>& args);
// `dtrain status [RUN_DIR|HOST:PORT] [--json]`: a running job's progress and every rank's
// phase, from rank 0's status server (launcher/control/status_server.h).
int status_main(const std::vector<std::string>& args);
// `dtrain stop RUN_DIR`: asks a running job to checkpoint and stop, with the token in its run
// directory.
int stop_main(const std::vector<std::string>& args);
// `dtrain submit [options] CONFIG [train options]`: a Slurm batch job (docs/SLURM.md).
int submit_main(const std::vector<std::string>& args);
// `dtrain train CONFIG [--set KEY=VALUE ...]`: data-parallel training from a TOML config
// (docs/TRAINING.md). Run alone it is a world of one; under `mpirun -np N` or `srun`
// each process is one rank.
int train_main(const std::vector<std::string>& args);

}  // namespace dtrain::cli
