#!/usr/bin/env bash
# CTest multinode_slurm_across_nodes (label multinode; docs/MULTINODE.md, docs/SLURM.md):
# the requeue/resume of tests/slurm/test_submit_requeue.sh on a real 2-node Slurm on
# emulated nodes (scripts/multinode/emulated-nodes.sh, then scripts/slurm/local-cluster.sh
# start --nodes: slurmctld in node1, a slurmd in each node). `dtrain submit --nodes 2
# --ntasks-per-node 1` a training job, send its batch shell SIGUSR1 as --signal=B:USR1
# would, and check that the ranks on both nodes checkpoint and stop, rank 0 requeues the
# job, the job resumes and finishes with the same parameters and optimizer state, bit for
# bit, as an uninterrupted `srun -N 2 -n 2` run; and that both runs really had one rank
# on each node (the placement line of the run header). Every Slurm command runs in node1,
# where the controller is reachable. The cluster, the nodes, their processes and the
# work directory are removed on every exit.
#
#   bash tests/multinode/test_slurm_across_nodes.sh build/launcher/dtrain
#
# Exit 77 (skipped, with the reason) without root, network namespaces, Slurm or h5py.
# DTRAIN_SLURM_TEST_KEEP=1 keeps the work directory.
set -euo pipefail

dtrain="$(realpath "${1:?usage: test_slurm_across_nodes.sh DTRAIN_BINARY}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster_sh="$root/scripts/slurm/local-cluster.sh"
nodes_sh="$root/scripts/multinode/emulated-nodes.sh"

# shellcheck source=tests/slurm/lib.sh
. "$root/tests/slurm/lib.sh"
slurm() { bash "$nodes_sh" exec "$work/nodes" node1 "$@"; }
after_cluster_stop() { bash "$nodes_sh" stop "$work/nodes"; }
ref_srun_args=(-N 2 -n 2)

nodes_rc=0
nodes_env="$(bash "$nodes_sh" start "$work/nodes" 2)" || nodes_rc=$?
[ "$nodes_rc" = 77 ] && skip "emulated nodes are not available here (see the line above)"
[ "$nodes_rc" = 0 ] || fail "the emulated nodes did not start"
eval "$nodes_env"
echo "2 emulated nodes up after $(elapsed)"
start_cluster --nodes "$work/nodes"

# Open MPI under srun picks its interfaces from the environment (srun and sbatch forward
# it): the nodes' network, not each node's private loopback.
export OMPI_MCA_btl_tcp_if_include=198.18.0.0/15 OMPI_MCA_oob_tcp_if_include=198.18.0.0/15
make_run_and_reference < /dev/null
placement='^placement: 2 ranks on 2 hosts (node1: rank 0; node2: rank 1)$'
grep -q "$placement" ref.out || { cat ref.out; fail "the reference run did not have one rank on each node"; }

# The same training through `dtrain submit`, slowed to 50 ms a step (about 12 s in all) so
# the signal lands mid-run.
export DTRAIN_TEST_STEP_DELAY_MS=50
job="$(slurm "$dtrain" submit --nodes 2 --ntasks-per-node 1 --signal-seconds 10 --time 5 --output job.out \
  cfg.toml --checkpoint-dir job --checkpoint-every 100)"
[[ "$job" =~ ^[0-9]+$ ]] || fail "dtrain submit printed '$job', not a job id"
echo "submitted job $job after $(elapsed)"

wait_for 60 "progress past step 100" grep -qs '^step 120/240' job.out
slurm scancel --batch --signal=USR1 "$job"
echo "sent SIGUSR1 to the batch shell after $(elapsed)"

requeued() { [ "$(job_field Restarts)" = 1 ] && [ "$(job_field JobState)" = PENDING ]; }
wait_for 30 "the job to be requeued (Restarts=1, PENDING)" requeued
slurm scontrol update JobId="$job" StartTime=now || true  # (it may have started already)
echo "requeued; released after $(elapsed)"

wait_for 60 "the resumed job to complete" completed
echo "job completed after $(elapsed)"

[ "$(grep -c "$placement" job.out)" = 2 ] || fail "the job's two runs did not each have one rank on each node"
grep -q 'SIGUSR1 at .*asking the ranks to checkpoint and stop' job.out || fail "the batch shell did not report the signal"
stop_step="$(sed -n 's/^stopped after step \([0-9]*\) of 240.*/\1/p' job.out | head -1)"
[ -n "$stop_step" ] && [ "$stop_step" -gt 100 ] && [ "$stop_step" -lt 240 ] || fail "the run did not stop early at a step boundary"
grep -q "checkpoint step $stop_step: job/step-$stop_step.h5" job.out || fail "no checkpoint at the stop step $stop_step"
grep -q 'the training step exited with code 75' job.out || fail "the stopped step did not exit with code 75"
grep -q "requeued Slurm job $job" job.out || fail "rank 0 did not report the requeue"
grep -q "resumed from job/step-$stop_step.h5: step $stop_step" job.out || fail "the job did not resume from step $stop_step"
grep -q 'finished 240 steps' job.out || fail "the resumed run did not finish"
grep -q 'the training step exited with code 0' job.out || fail "the resumed step did not exit with 0"
[ -f job/step-240.ok ] || fail "no final checkpoint"
echo "stopped at step $stop_step on both nodes, requeued, resumed, finished"

same_state ref/step-240.h5 job/step-240.h5
failed=0
echo "PASS after $(elapsed)"
