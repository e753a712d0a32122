#!/usr/bin/env bash
# Everything GPU-related in one run, on the GPU machine, from the repository root with
# gpu-bundle/ or gpu-bundle.tar.xz (scripts/gpu/make-bundle.sh; carry the archive)
# beside it: the bundle's own check, the CUDA device the build sees, the whole test suite
# (CUDA tests run instead of skipping), the demos on the GPU, short seq2seq and DCGAN
# training runs on the GPU, and the benchmarks. Prints everything; exits non-zero if a step fails.
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
# Both issue-7 recipes on the GPU, on synthetic sets made there (the data/ files are not
# carried): a short seq2seq and a short DCGAN run with their throughput lines.
tmp="$(mktemp -d)"
step "$b/bin/dtrain" data synth pairs --out "$tmp/pairs.h5" --n 4096 --max-len 30 --vocab 80 --seed 1
step "$b/bin/dtrain" data synth pairs --out "$tmp/pairs_test.h5" --n 512 --max-len 30 --vocab 80 --seed 2
step "$b/bin/dtrain" train configs/seq2seq_en_de.toml --set device=cuda --set data.train="$tmp/pairs.h5" \
  --set data.test="$tmp/pairs_test.h5" --set batch_size=64 --set steps=200 --set eval.interval=200 \
  --set log.interval=50 --set log.metrics="$tmp/seq2seq.jsonl"
step "$b/bin/dtrain" data synth images --out "$tmp/images.h5" --n 4096 --height 28 --width 28 --channels 1 --seed 3
step "$b/bin/dtrain" train configs/dcgan_fashion_mnist.toml --set device=cuda --set data.train="$tmp/images.h5" \
  --set steps=200 --set eval.interval=200 --set log.interval=50 --set gan.samples="$tmp/grid.png" \
  --set gan.export="$tmp/samples.h5" --set gan.export_n=1000 --set log.metrics="$tmp/dcgan.jsonl"
for bench in "$b"/bin/bench_*; do
  case "$bench" in
    *bench_allreduce) step mpirun -np 2 "$bench" ;;  # a 2-rank benchmark
    *) step "$bench" ;;
  esac
done
exit $status
