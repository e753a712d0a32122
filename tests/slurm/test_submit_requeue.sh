#!/usr/bin/env bash
# CTest slurm_submit_requeue (label slurm; docs/SLURM.md): on a real one-node Slurm
# (scripts/slurm/local-cluster.sh), `dtrain submit` a 2-rank training job, send its batch
# shell SIGUSR1 as --signal=B:USR1 would, and check that the ranks checkpoint and stop
# (exit 75), rank 0 requeues the job, the job resumes from the checkpoint, finishes, and
# ends with the same parameters and optimizer state, bit for bit, as an uninterrupted
# run. The cluster, its jobs and the work directory are removed on every exit.
#
#   bash tests/slurm/test_submit_requeue.sh build/launcher/dtrain
#
# Exit 77 (skipped, with the reason) where Slurm cannot run: not root, or slurm-wlm/munge
# not installed (scripts/install-deps.sh installs them). DTRAIN_SLURM_TEST_KEEP=1 keeps
# the work directory.
set -euo pipefail

dtrain="$(realpath "${1:?usage: test_submit_requeue.sh DTRAIN_BINARY}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster_sh="$root/scripts/slurm/local-cluster.sh"

# shellcheck source=tests/slurm/lib.sh
. "$root/tests/slurm/lib.sh"
start_cluster
make_run_and_reference < /dev/null

# The same training through `dtrain submit`, slowed to 50 ms a step (about 12 s in all) so
# the signal lands mid-run. sbatch passes this environment on to the job.
export DTRAIN_TEST_STEP_DELAY_MS=50
"$dtrain" submit --dry-run --ntasks-per-node 2 --signal-seconds 10 --time 5 --output job.out -- \
  cfg.toml --checkpoint-dir job --checkpoint-every 100 > job.sh
grep -q -- '--signal=B:USR1@10' job.sh && grep -q -- '--requeue' job.sh && grep -q -- '--open-mode=append' job.sh &&
  grep -q -- "srun --mpi=pmix .*$dtrain train cfg.toml .*--resume auto" job.sh || { cat job.sh; fail "unexpected batch script"; }
# (The script above was written with '--' before the config, the job is submitted without.)
job="$("$dtrain" submit --ntasks-per-node 2 --signal-seconds 10 --time 5 --output job.out \
  cfg.toml --checkpoint-dir job --checkpoint-every 100)"
[[ "$job" =~ ^[0-9]+$ ]] || fail "dtrain submit printed '$job', not a job id"
echo "submitted job $job after $(elapsed)"

# Signal after the periodic checkpoint at step 100, so that --resume auto must pick the
# newer one the stop writes; as --signal=B:USR1 does, to the batch shell, which forwards
# it to the srun step.
wait_for 60 "progress past step 100" grep -qs '^step 120/240' job.out
scancel --batch --signal=USR1 "$job"
echo "sent SIGUSR1 to the batch shell after $(elapsed)"

requeued() { [ "$(job_field Restarts)" = 1 ] && [ "$(job_field JobState)" = PENDING ]; }
wait_for 30 "the job to be requeued (Restarts=1, PENDING)" requeued
# A requeued job waits about cred_expire (10 s) before it may start again; start it now.
scontrol update JobId="$job" StartTime=now || true  # (it may have started already)
echo "requeued; released after $(elapsed)"

wait_for 60 "the resumed job to complete" completed
echo "job completed after $(elapsed)"

# What the job said it did, in order: stop at a step boundary with a checkpoint, exit 75,
# requeue by rank 0, resume from that checkpoint, finish.
grep -q 'SIGUSR1 at .*asking the ranks to checkpoint and stop' job.out || fail "the batch shell did not report the signal"
stop_step="$(sed -n 's/^stopped after step \([0-9]*\) of 240.*/\1/p' job.out | head -1)"
[ -n "$stop_step" ] && [ "$stop_step" -gt 100 ] && [ "$stop_step" -lt 240 ] || fail "the run did not stop early at a step boundary"
grep -q "checkpoint step $stop_step: job/step-$stop_step.h5" job.out || fail "no checkpoint at the stop step $stop_step"
grep -q 'the training step exited with code 75' job.out || fail "the stopped step did not exit with code 75"
grep -q "requeued Slurm job $job" job.out || fail "rank 0 did not report the requeue"
grep -q "(restart 1) starts" job.out || fail "the job did not start again"
grep -q "resumed from job/step-$stop_step.h5: step $stop_step" job.out || fail "the job did not resume from step $stop_step"
grep -q 'finished 240 steps' job.out || fail "the resumed run did not finish"
grep -q 'the training step exited with code 0' job.out || fail "the resumed step did not exit with 0"
[ -f job/step-240.ok ] || fail "no final checkpoint"
echo "stopped at step $stop_step, requeued, resumed, finished"

same_state ref/step-240.h5 job/step-240.h5
failed=0
echo "PASS after $(elapsed)"
