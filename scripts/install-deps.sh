#!/usr/bin/env bash
# Installs every Debian 12 package that dtrain's build, tests and fixture scripts need.
# Idempotent: packages already present are skipped, and apt-get runs only when one is missing.
# The CUDA toolkit is not a Debian package here; it is expected under /usr/local/cuda
# (or wherever CUDA_HOME points) and is optional: without nvcc the CUDA backend is
# replaced by stubs that throw "built without CUDA".
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libboost-dev libboost-system-dev
  # The CUDA grid emulator's fibers (tests/emu/), and llvm-symbolizer for the line
  # numbers in its sanitizer build's reports.
  libboost-context-dev llvm
  libgtest-dev libgmock-dev
  # The status server's tests (tests/launcher/test_status_server.cpp): curl as the HTTP
  # client, and promtool (the prometheus package; it also installs the Prometheus server
  # and its service, which the tests do not use) to check the /metrics format.
  curl prometheus
  libopenblas-dev libopenblas0-openmp libdnnl-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev libtomlplusplus-dev
  dataset-fashion-mnist dict-freedict-eng-deu
  # the language-identification word set (scripts/prepare-data.sh, docs/DATASETS.md)
  dict-freedict-deu-eng dict-freedict-fra-eng dict-freedict-ita-eng dict-freedict-nld-eng
  dict-freedict-pol-eng dict-freedict-por-eng dict-freedict-spa-eng dict-freedict-swe-eng
  python3-torch python3-torchvision python3-h5py python3-numpy
  # Slurm for `dtrain submit` and the slurm test (scripts/slurm/local-cluster.sh): the
  # daemons, the client commands, munge, and the unversioned libpmix.so that Slurm's
  # mpi/pmix plugin loads for `srun --mpi=pmix`.
  slurm-wlm slurm-client munge libpmix-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
