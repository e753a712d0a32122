# Shared by the multi-node tests (tests/multinode/test_*.sh): skipping, failing, emulated
# nodes (scripts/multinode/emulated-nodes.sh) started in a fresh work directory and
# stopped, with every process in them, on every exit, mpirun across them, waiting for a
# line of output, and comparing two final checkpoints within float rounding. Source it
# with $dtrain and $root set; it leaves the shell in the work directory.
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
elapsed() { echo "$((SECONDS - t_start)) s"; }
command -v mpirun >/dev/null || skip "mpirun is not installed"
/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null || skip "python3-h5py is not installed"
nodes_sh="$root/scripts/multinode/emulated-nodes.sh"

# Nothing from an enclosing Slurm job may leak into ours (a stop would requeue it).
for v in $(compgen -e | grep '^SLURM_' || true); do unset "$v"; done

work="$(mktemp -d /tmp/dtrain-multinode-test.XXXXXX)"
t_start=$SECONDS
failed=1
bg_pids=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "$failed" = 1 ]; then
    for p in "$work"/*.out; do [ -f "$p" ] && { echo "---- $(basename "$p") (tail) ----"; tail -n 40 "$p"; }; done
  fi
  bash "$nodes_sh" stop "$work/nodes" || true
  if [ "${DTRAIN_MULTINODE_TEST_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# start_nodes N: N emulated nodes; exit 77 passes through as a skip with the script's reason.
start_nodes() {
  local out rc=0
  out="$(bash "$nodes_sh" start "$work/nodes" "$1")" || rc=$?
  [ "$rc" = 77 ] && skip "emulated nodes are not available here (see the line above)"
  [ "$rc" = 0 ] || fail "the emulated nodes did not start"
  eval "$out"
  echo "$1 emulated nodes up after $(elapsed)"
}
# on_nodes HOSTS SECONDS ARGS...: mpirun in node1 over HOSTS, ended after SECONDS.
on_nodes() {
  local hosts="$1" limit="$2"
  shift 2
  timeout -s KILL "$limit" bash "$nodes_sh" mpirun "$work/nodes" "$hosts" "$@"
}
in_node() { bash "$nodes_sh" exec "$work/nodes" "$@"; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.1 s
  local limit="$1" what="$2" t0=$SECONDS
  shift 2
  until "$@"; do
    [ $((SECONDS - t0)) -lt "$limit" ] || fail "timed out after ${limit} s waiting for: $what"
    sleep 0.1
  done
}
# synth_data; write_config FILE [EXTRA TOML]: the tiny job every test trains.
synth_data() {
  "$dtrain" data synth images --out train.h5 --n 256 --height 8 --width 8 --channels 1 --seed 1 >/dev/null
}
write_config() {
  cat > "$1" <<TOML
batch_size = 8
steps = ${steps:-30}
seed = 3
${2:-}
[model]
name = "mlp"
hidden = 16
[data]
train = "$work/train.h5"
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
[log]
interval = 10
TOML
}
# close_state A B: the model and optimizer datasets of two checkpoints, within float
# rounding (a different reduction order across nodes changes the last bits).
close_state() {
/usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
for g in ("model", "optimizer"):
    a[g].visititems(lambda n, o: names.append(g + "/" + n) if isinstance(o, h5py.Dataset) else None)
if not any(n.startswith("model/") for n in names):
    sys.exit("FAIL: no model datasets in " + sys.argv[1])
bad = [n for n in names if n not in b or a[n].shape != b[n].shape
       or not np.allclose(np.asarray(a[n][()], dtype=np.float64), np.asarray(b[n][()], dtype=np.float64),
                          rtol=1e-5, atol=1e-6)]
if bad:
    sys.exit("FAIL: differ beyond float rounding: " + ", ".join(bad))
print(f"{len(names)} model and optimizer datasets agree within rtol 1e-5 / atol 1e-6")
PY
}
