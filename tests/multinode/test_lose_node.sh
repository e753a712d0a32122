#!/usr/bin/env bash
# CTest multinode_lose_node (label multinode; docs/WATCHDOG.md, docs/MULTINODE.md): a
# 2 x 2 run on emulated nodes loses node2's network (its link to the bridge cut) after a
# checkpoint. The ranks of node1 must end with the watchdog's exit code 86 within the
# heartbeat timeout plus a few seconds, rank 0 naming ranks 2 and 3 as silent; then, with
# everything of the lost run killed, `--resume auto` on node1 alone with 2 ranks (another
# world size) must continue from the last checkpoint and finish.
#
#   bash tests/multinode/test_lose_node.sh build/launcher/dtrain
#
# Exit 77 (skipped, with the reason) without root, namespaces, mpirun or h5py.
set -euo pipefail

dtrain="$(realpath "${1:?usage: test_lose_node.sh DTRAIN_BINARY}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/multinode/lib.sh
. "$root/tests/multinode/lib.sh"
start_nodes 2
cd "$work"
synth_data
steps=200 write_config cfg.toml "[watchdog]
heartbeat_s = 0.2
heartbeat_timeout_s = 3
progress_timeout_s = 5"
export DTRAIN_TEST_STEP_DELAY_MS=50

on_nodes node1:2,node2:2 120 -x DTRAIN_TEST_STEP_DELAY_MS "$dtrain" train cfg.toml --checkpoint-dir "$work/ck" \
  --checkpoint-every 20 > run.out 2>&1 &
run=$!
bg_pids+=("$run")
wait_for 60 "the checkpoint of step 40" grep -qs '^checkpoint step 40:' run.out
. "$work/nodes/state"
ip -n "$hub" link set v2 down
t0=$SECONDS
echo "cut node2's link after $(elapsed)"

# node1's ranks: gone once both printed the watchdog's end (mpirun itself may wait on
# node2's daemon, which it can no longer reach).
node1_ranks() { ip netns pids "${nodes[0]}" | while read -r p; do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = dtrain ] && echo "$p"; done; true; }
ended() { [ "$(grep -c 'ending this rank with exit code 86' run.out)" -ge 2 ] && [ -z "$(node1_ranks)" ]; }
wait_for 20 "node1's ranks to end with exit code 86" ended
took=$((SECONDS - t0))
[ "$took" -le 11 ] || fail "node1's ranks ended $took s after the cut (heartbeat timeout 3 s)"
grep -q 'watchdog (rank 0 on node1): silent: rank 2 (.*rank 3 (' run.out ||
  fail "rank 0 does not name ranks 2 and 3 as silent"
grep -q 'watchdog (rank 1 on node1)' run.out || fail "rank 1 (node1) did not print the diagnosis"
echo "node1's ranks ended with code 86 $took s after the cut, naming ranks 2 and 3"

# The lost run's remains: mpirun, and node2's daemon and ranks.
kill -9 "$run" 2>/dev/null || true
wait "$run" 2>/dev/null || true
for ns in "${nodes[@]}"; do
  pids="$(ip netns pids "$ns")"
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
done
last="$(ls ck/step-*.ok | sed 's/.*step-\([0-9]*\)\.ok/\1/' | sort -n | tail -1)"
[ "$last" -ge 40 ] || fail "no checkpoint at or after step 40 (last: $last)"

unset DTRAIN_TEST_STEP_DELAY_MS
on_nodes node1:2 120 "$dtrain" train cfg.toml --checkpoint-dir "$work/ck" --resume auto > resume.out 2>&1 ||
  fail "the resumed 2-rank run on node1 failed"
grep -q "^resumed from .*step-$last.h5: step $last," resume.out || fail "the run did not resume from step $last"
grep -q '^note: the checkpoint was written by 4 ranks, this run has 2' resume.out ||
  fail "the resume does not note the change of world size"
grep -q 'finished 200 steps\|final training loss' resume.out || fail "the resumed run did not finish"
[ -f ck/step-200.ok ] || fail "no final checkpoint after the resume"
echo "resumed on node1 alone from step $last and finished after $(elapsed)"
failed=0
echo "PASS after $(elapsed)"
