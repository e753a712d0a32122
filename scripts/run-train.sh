#!/usr/bin/env bash
# dtrain's main job: on a fresh Debian 12 machine, install the packages, build, convert
# Fashion-MNIST to HDF5 (scripts/prepare-data.sh), and train the small CNN
# data-parallel on 2 ranks with mpirun (configs/fashion_mnist_cnn.toml: >= 90% test
# accuracy in a few minutes on 2 CPU cores; docs/TRAINING.md).
#
#   scripts/run-train.sh [dtrain train options, e.g. --set epochs=1 --set optimizer.lr=0.1]
#
# Environment: NP (ranks, default 2), CONFIG (default configs/fashion_mnist_cnn.toml),
# DTRAIN_BUILD_DIR (default build/), DTRAIN_CUDA=OFF (a CPU-only build).
# Metrics go to runs/fashion_mnist_cnn.jsonl (the config's log.metrics).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
np="${NP:-2}"
config="${CONFIG:-configs/fashion_mnist_cnn.toml}"
build="${DTRAIN_BUILD_DIR:-$root/build}"

bash scripts/install-deps.sh
bash scripts/build.sh
DTRAIN="$build/launcher/dtrain" bash scripts/prepare-data.sh

# Open MPI refuses to start as root unless told it is intended; more ranks than cores
# needs oversubscription (otherwise each rank is bound to a core of its own).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$np" -gt "$(nproc)" ]; then export OMPI_MCA_rmaps_base_oversubscribe=1; fi
echo
echo "=== mpirun -np $np dtrain train $config $* ==="
start=$(date +%s)
mpirun -np "$np" "$build/launcher/dtrain" train "$config" "$@"
echo "(training took $(( $(date +%s) - start )) s)"
