#!/usr/bin/env bash
# The control plane's cost on step time, side by side in one run (docs/WATCHDOG.md): the
# same 2-rank training with the watchdog and status server on and off, alternating, R
# rounds; prints each run's training time and the medians.
#
#   bash benchmarks/watchdog_overhead.sh [DTRAIN] [ROUNDS] [STEPS]
#
# Data: a synthetic 28x28 set made here (the README's small CNN, batch 64 per rank).
set -euo pipefail
dtrain="${1:-build/launcher/dtrain}"
rounds="${2:-5}"
steps="${3:-300}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$dtrain" data synth images --out "$work/train.h5" --n 8192 --height 28 --width 28 --channels 1 --classes 10 \
  --seed 1 > /dev/null
cat > "$work/cfg.toml" <<TOML
batch_size = 64
steps = $steps
threads = 1
[model]
name = "small_cnn"
[data]
train = "$work/train.h5"
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
[log]
interval = $steps
metrics = "$work/m.jsonl"
[eval]
interval = 0
TOML
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
run() {  # run on|off: the training seconds of one run
  local flags=""
  [ "$1" = off ] && flags="--set watchdog.enabled=false --set watchdog.status=false"
  # shellcheck disable=SC2086
  mpirun -np 2 "$dtrain" train "$work/cfg.toml" $flags > "$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }
  sed -n 's/.*"time_s":\([0-9.e+-]*\).*/\1/p' "$work/m.jsonl" | tail -1
}
on=() off=()
for ((r = 1; r <= rounds; ++r)); do
  # Alternate the order so that drift in the machine's speed falls on both.
  if ((r % 2)); then a=$(run on); b=$(run off); else b=$(run off); a=$(run on); fi
  on+=("$a"); off+=("$b")
  printf "round %d: watchdog on %.2f s, off %.2f s\n" "$r" "$a" "$b"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
m_on=$(median "${on[@]}"); m_off=$(median "${off[@]}")
awk -v a="$m_on" -v b="$m_off" -v s="$steps" 'BEGIN {
  printf "median of %d-step runs: on %.2f s, off %.2f s: on/off = %.4f (%+.2f%%), %.2f ms a step\n", s, a, b, a / b,
         100 * (a / b - 1), 1000 * b / s }'
