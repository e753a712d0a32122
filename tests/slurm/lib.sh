# Shared by the Slurm tests (tests/slurm/test_*.sh, tests/multinode/test_slurm_*.sh):
# skipping, failing, a fresh work directory, the local cluster (start_cluster) stopped on
# every exit, job polling, and the bit-for-bit comparison of two final checkpoints.
# Source it with $dtrain, $root and $cluster_sh set, then call start_cluster.
#
# A test on emulated nodes replaces two hooks after sourcing: slurm CMD... (how a Slurm
# client command runs: as is here, in node1 there) and after_cluster_stop (what the
# exit removes after the cluster: the emulated nodes); and sets ref_srun_args (the
# reference run's srun options, default -n 2).
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
elapsed() { echo "$((SECONDS - t_start)) s"; }
[ "$(id -u)" = 0 ] || skip "the local Slurm cluster runs its daemons as root (SlurmUser=root)"
for b in munged slurmctld slurmd; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || skip "'$b' is not installed (scripts/install-deps.sh)"
done
for b in sbatch srun scontrol scancel; do command -v "$b" >/dev/null || skip "'$b' is not installed"; done
/usr/bin/python3 -c 'import h5py' 2>/dev/null || skip "python3-h5py is not installed"

# Nothing from an enclosing Slurm job may leak into ours.
for v in $(compgen -e | grep '^SLURM_' || true); do unset "$v"; done

work="$(mktemp -d /tmp/dtrain-slurm-test.XXXXXX)"
t_start=$SECONDS
failed=1
slurm() { "$@"; }
after_cluster_stop() { :; }
ref_srun_args=(-n 2)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$failed" = 1 ]; then
    echo "---- job output ----"; cat "$work/job.out" 2>/dev/null || true
    echo "---- slurmctld.log (tail) ----"; tail -n 30 "$work/cluster/log/slurmctld.log" 2>/dev/null || true
    local f
    for f in "$work"/cluster/log/slurmd*.log; do
      [ -f "$f" ] && { echo "---- $(basename "$f") (tail) ----"; tail -n 30 "$f"; }
    done
  fi
  bash "$cluster_sh" stop "$work/cluster" || true
  after_cluster_stop || true
  if [ "${DTRAIN_SLURM_TEST_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# start_cluster [--nodes NODES_DIR]: the local cluster in $work/cluster, SLURM_CONF
# exported; leaves the shell in the work directory.
start_cluster() {
  local cluster_env
  cluster_env="$(bash "$cluster_sh" start "$@" "$work/cluster")" || fail "the local Slurm cluster did not start"
  eval "$cluster_env"
  echo "cluster up after $(elapsed)"
  cd "$work"
}

job_field() { slurm scontrol show job "$job" 2>/dev/null | grep -oE "(^|[[:space:]])$1=[^[:space:]]*" | head -1 | sed 's/.*=//'; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s
  local limit="$1" what="$2" t0=$SECONDS
  shift 2
  until "$@"; do
    [ $((SECONDS - t0)) -lt "$limit" ] || fail "timed out after ${limit} s waiting for: $what (job state $(job_field JobState))"
    sleep 0.2
  done
}

completed() {
  local s
  s="$(job_field JobState)"
  case "$s" in
    COMPLETED) return 0 ;;
    FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) fail "job ended $s" ;;
    *) return 1 ;;
  esac
}
# same_state REF JOB: the model and optimizer datasets of two checkpoints, bit for bit.
same_state() {
/usr/bin/python3 - "$1" "$2" <<'EOF'
import sys, h5py
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
for g in ("model", "optimizer"):
    a[g].visititems(lambda n, o: names.append(g + "/" + n) if isinstance(o, h5py.Dataset) else None)
bad = [n for n in names if n not in b or a[n].shape != b[n].shape or a[n].dtype != b[n].dtype
       or a[n][()].tobytes() != b[n][()].tobytes()]
if not any(n.startswith("model/") for n in names) or not any(n.startswith("optimizer/") for n in names):
    sys.exit("FAIL: no model or optimizer datasets in the reference checkpoint")
if bad:
    sys.exit("FAIL: differ from the uninterrupted run: " + ", ".join(bad))
print(f"{len(names)} model and optimizer datasets identical bit for bit to the uninterrupted run")
EOF

}

# The training both tests run: 240 steps of a tiny MLP, 15 epochs of 16 steps at a global
# batch of 32 (2 ranks x 16), as cfg.toml over train.h5, with the TOML on stdin appended;
# then its uninterrupted reference directly under srun (the final checkpoint in ref/).
make_run_and_reference() {
  "$dtrain" data synth images --out train.h5 --n 512 --height 8 --width 8 --channels 1 --seed 1 >/dev/null
  { cat <<'EOF'
batch_size = 16
steps = 240
seed = 3
[model]
name = "mlp"
hidden = 32
[data]
train = "train.h5"
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
[log]
interval = 20
EOF
    cat; } > cfg.toml
  slurm timeout 60 srun --mpi=pmix "${ref_srun_args[@]}" "$dtrain" train cfg.toml --checkpoint-dir ref > ref.out 2>&1 ||
    { cat ref.out; fail "the reference run failed"; }
  [ -f ref/step-240.h5 ] && [ -f ref/step-240.ok ] || { cat ref.out; ls -la ref || true; fail "no final reference checkpoint"; }
  echo "reference run done after $(elapsed)"
}
