#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: installs the packages, builds
# (with the CUDA backend when nvcc is present), converts the real datasets and runs every
# CTest test. Tests that need a GPU are reported as skipped, with the reason, where none
# is usable.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
build="${DTRAIN_BUILD_DIR:-$root/build}"
# The real-data conversions (Fashion-MNIST, the FreeDict phrase pairs) must work on a
# fresh machine too; tests that read their output skip visibly when it is absent.
DTRAIN="$build/launcher/dtrain" bash "$root/scripts/prepare-data.sh"
cd "$build"
ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 600
