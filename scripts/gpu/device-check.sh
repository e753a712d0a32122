#!/usr/bin/env bash
# Everything GPU-related in one run, on the GPU machine, from the repository root with
# gpu-bundle/ or gpu-bundle.tar.xz (scripts/gpu/make-bundle.sh; carry the archive)
# beside it: the bundle's own check, the CUDA device the build sees, the whole test suite (CUDA tests run instead of skipping), the
# demos on the GPU, and the benchmarks. Prints everything; exits non-zero if a step fails.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
b="$root/gpu-bundle"
if [ ! -d "$b" ] && [ -f "$root/gpu-bundle.tar.xz" ]; then
  tar -C "$root" -xJf "$root/gpu-bundle.tar.xz"
fi
. "$b/env.sh"
status=0
step() { echo; echo "=== $* ==="; "$@" || { echo "FAILED ($?): $*"; status=1; }; }
step "$b/check.sh"
step nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
step "$b/bin/dtrain" info
export DTRAIN_FIXTURE_DIR="$root/tests/fixtures" DTRAIN_BIN="$b/bin/dtrain"
cd "$b/tests"
step ctest --output-on-failure -j 8 --timeout 300
cd "$root"
for demo in and xor line; do step "$b/bin/dtrain" demo "$demo" --device cuda; done
for bench in "$b"/bin/bench_*; do
  case "$bench" in
    *bench_allreduce) step mpirun -np 2 "$bench" ;;  # a 2-rank benchmark
    *) step "$bench" ;;
  esac
done
exit $status
