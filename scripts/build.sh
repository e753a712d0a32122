#!/usr/bin/env bash
# Configures and builds dtrain into build/ (or $DTRAIN_BUILD_DIR).
# The CUDA backend is built when nvcc is found: $CUDACXX, nvcc on PATH, or the usual
# /usr/local/cuda/bin/nvcc. Set DTRAIN_CUDA=OFF to build the CPU-only variant, and
# CUDA_ARCHS to override the default architectures "80;90". EXTRA_CMAKE_ARGS (words) are
# passed to cmake as they are.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DTRAIN_BUILD_DIR:-$root/build}"
args=(-S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}")
if [ "${DTRAIN_CUDA:-ON}" = "OFF" ]; then
  args+=(-DDTRAIN_ENABLE_CUDA=OFF)
else
  nvcc="${CUDACXX:-$(command -v nvcc || true)}"
  [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
  if [ -n "$nvcc" ]; then
    args+=(-DCMAKE_CUDA_COMPILER="$nvcc")
  else
    echo "build: nvcc not found; building without the CUDA backend"
  fi
fi
[ -n "${CUDA_ARCHS:-}" ] && args+=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS")
# shellcheck disable=SC2206
[ -n "${EXTRA_CMAKE_ARGS:-}" ] && args+=(${EXTRA_CMAKE_ARGS})
cmake "${args[@]}"
cmake --build "$build" -j "${JOBS:-$(nproc)}"
