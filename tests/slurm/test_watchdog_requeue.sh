#!/usr/bin/env bash
# CTest slurm_watchdog_requeue (label slurm; docs/WATCHDOG.md): on a real one-node Slurm
# (scripts/slurm/local-cluster.sh), `dtrain submit` a 2-rank training job and freeze rank 1
# with SIGSTOP mid-run. The watchdog must end the step (exit code 86, a diagnosis naming
# rank 1), the batch shell must requeue the job, and the job must resume from its last
# checkpoint and finish with the same parameters and optimizer state, bit for bit, as an
# uninterrupted run. The cluster, its jobs and the work directory are removed on every exit.
#
#   bash tests/slurm/test_watchdog_requeue.sh build/launcher/dtrain
#
# Exit 77 (skipped, with the reason) where Slurm cannot run (tests/slurm/lib.sh).
set -euo pipefail

dtrain="$(realpath "${1:?usage: test_watchdog_requeue.sh DTRAIN_BINARY}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster_sh="$root/scripts/slurm/local-cluster.sh"

# shellcheck source=tests/slurm/lib.sh
. "$root/tests/slurm/lib.sh"
start_cluster
make_run_and_reference <<'EOF'
[watchdog]
heartbeat_s = 0.2
heartbeat_timeout_s = 3
progress_timeout_s = 5
EOF

export DTRAIN_TEST_STEP_DELAY_MS=50 DTRAIN_TEST_PID_DIR="$work/pids"
mkdir -p pids
job="$("$dtrain" submit --ntasks-per-node 2 --time 5 --output job.out --max-restarts 2 \
  cfg.toml --checkpoint-dir job --checkpoint-every 100)"
[[ "$job" =~ ^[0-9]+$ ]] || fail "dtrain submit printed '$job', not a job id"
echo "submitted job $job after $(elapsed)"

wait_for 60 "progress past step 100" grep -qs '^step 120/240' job.out
frozen="$(cat pids/rank1.pid)"
kill -STOP "$frozen"
echo "froze rank 1 (pid $frozen) after $(elapsed)"

requeued() { [ "$(job_field Restarts)" = 1 ] && [ "$(job_field JobState)" = PENDING ]; }
wait_for 30 "the job to be requeued by the watchdog's exit (Restarts=1, PENDING)" requeued
kill -0 "$frozen" 2>/dev/null && { kill -CONT "$frozen" || true; fail "the frozen rank outlived the step"; }
# The step was killed a moment ago, which revokes the job's credential for cred_expire
# (10 s): a start before that fails the job. Wait it out, then start it at once.
sleep 11
scontrol update JobId="$job" StartTime=now || true
echo "requeued; released after $(elapsed)"
wait_for 60 "the resumed job to complete" completed
echo "job completed after $(elapsed)"

grep -q 'watchdog (rank 0' job.out || fail "rank 0 did not print a diagnosis"
grep -q 'rank 1' job.out || fail "the diagnosis does not name rank 1"
grep -q 'ending this rank with exit code 86' job.out || fail "no rank ended with the watchdog's code 86"
grep -q 'requeueing to resume from the last checkpoint (restart 1 of 2)' job.out || fail "the shell did not requeue"
grep -q "(restart 1) starts" job.out || fail "the job did not start again"
grep -q "resumed from job/step-" job.out || fail "the job did not resume from a checkpoint"
grep -q 'finished 240 steps' job.out || fail "the resumed run did not finish"
same_state ref/step-240.h5 job/step-240.h5
failed=0
echo "PASS after $(elapsed)"
