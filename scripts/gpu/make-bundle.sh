#!/usr/bin/env bash
# Builds dtrain for a Hopper GPU machine (Release, sm_90) into build-gpu/ and packs the
# program, the benchmarks and the test suite with their shared libraries into
# gpu-bundle/ and gpu-bundle.tar.xz (all git-ignored), for a machine that has CUDA but no
# MPI, HDF5 or Boost. The folder is about 145 MiB (oneDNN and OpenBLAS are 40 and 37 MiB),
# over the 64 MiB a device run can carry; the archive is about 26 MiB: carry that.
#
#   bash scripts/gpu/make-bundle.sh [BUNDLE_TOOL]
#
# BUNDLE_TOOL defaults to ../shared/gpu/bundle.sh beside the checkout. On the GPU machine:
#   bash scripts/gpu/device-check.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tool="${1:-$root/../shared/gpu/bundle.sh}"
[ -x "$tool" ] || [ -f "$tool" ] || { echo "make-bundle: bundle tool $tool not found" >&2; exit 1; }
command -v patchelf >/dev/null || apt-get install -y -q patchelf
# The emulator's tests run on the CPU here (label emu); the GPU machine runs the real thing.
DTRAIN_BUILD_DIR="$root/build-gpu" CUDA_ARCHS=90 BUILD_TYPE=Release \
  EXTRA_CMAKE_ARGS="-DDTRAIN_EMU_DEVICE=OFF -DDTRAIN_EMU_SANITIZE=OFF" bash "$root/scripts/build.sh"
rm -rf "$root/gpu-bundle"
benches=$(find "$root/build-gpu/benchmarks" -maxdepth 1 -type f -executable -name 'bench_*')
bash "$tool" "$root/gpu-bundle" "$root/build-gpu/launcher/dtrain" $benches --tests "$root/build-gpu" --strip
tar -C "$root" -cJf "$root/gpu-bundle.tar.xz" gpu-bundle
du -sh "$root/gpu-bundle" "$root/gpu-bundle.tar.xz"
