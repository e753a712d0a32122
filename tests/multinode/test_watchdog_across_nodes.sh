#!/usr/bin/env bash
# CTest multinode_watchdog_across_nodes (label multinode; docs/WATCHDOG.md,
# docs/MULTINODE.md): on 2 emulated nodes x 2 ranks, rank 0's control plane advertises its
# host name (node1), which node2 resolves through its hosts file, so every rank reaches
# it: mid-run, `dtrain status` (in node1, where the status endpoint listens on loopback)
# lists ranks 2 and 3 on node2, connected, with fresh heartbeats. Then: the job with
# watchdog.interface = eth0 (node1's address on the nodes' network) runs too; with
# watchdog.advertise = 127.0.0.1 (as a host name that resolves to loopback would give) it
# must stop at set-up on every rank with a message saying why, since node2 could never
# reach it; a missing interface is named with the ones that exist.
#
#   bash tests/multinode/test_watchdog_across_nodes.sh build/launcher/dtrain
#
# Exit 77 (skipped, with the reason) without root, namespaces, mpirun or h5py.
set -euo pipefail

dtrain="$(realpath "${1:?usage: test_watchdog_across_nodes.sh DTRAIN_BINARY}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/multinode/lib.sh
. "$root/tests/multinode/lib.sh"
start_nodes 2
cd "$work"
synth_data
steps=80 write_config cfg.toml "[watchdog]
heartbeat_s = 0.2
heartbeat_timeout_s = 3
progress_timeout_s = 5"
export DTRAIN_TEST_STEP_DELAY_MS=100

# -x: the agent starts node2's daemon with a clean environment, as ssh would.
on_nodes node1:2,node2:2 120 -x DTRAIN_TEST_STEP_DELAY_MS "$dtrain" train cfg.toml --checkpoint-dir "$work/ck" \
  > run.out 2>&1 &
run=$!
bg_pids+=("$run")
wait_for 60 "step 20 of the 2 x 2 run" grep -qs '^step 20/80' run.out
in_node node1 "$dtrain" status "$work/ck" --json > status.json || fail "dtrain status failed in node1"
/usr/bin/python3 - status.json <<'PY' || fail "the status does not show every rank connected from its node"
import json, sys
ranks = {r["rank"]: r for r in json.load(open(sys.argv[1]))["ranks"]}
want = {0: "node1", 1: "node1", 2: "node2", 3: "node2"}
for r, host in want.items():
    x = ranks.get(r)
    if x is None or x["host"] != host or not x["connected"] or not x["heartbeat_age_s"] < 2:
        sys.exit(f"rank {r}: {x} (want host {host}, connected, a heartbeat within 2 s)")
print("ranks 0-1 on node1 and 2-3 on node2, all connected to rank 0, heartbeats fresh")
PY
wait "$run" || fail "the 2 x 2 run with the watchdog failed"
grep -q 'finished 80 steps' run.out || fail "the 2 x 2 run did not finish"
grep -q 'coordinator silent\|cannot resolve\|watchdog (rank' run.out && fail "the watchdog spoke in a healthy run"
echo "healthy 2 x 2 run with the watchdog done after $(elapsed)"

on_nodes node1:2,node2:2 60 "$dtrain" train cfg.toml --set steps=10 --set watchdog.interface=eth0 > iface.out 2>&1 ||
  { cat iface.out; fail "the 2 x 2 run advertising node1's eth0 failed"; }
grep -q 'finished 10 steps' iface.out || fail "the run advertising eth0 did not finish"

t0=$SECONDS
rc=0
on_nodes node1:2,node2:2 60 "$dtrain" train cfg.toml --set watchdog.advertise=127.0.0.1 > wrong.out 2>&1 || rc=$?
took=$((SECONDS - t0))
[ "$rc" != 0 ] || fail "the run whose rank 0 advertised 127.0.0.1 succeeded"
grep -q "rank 0 would advertise '127.0.0.1', which resolves to the loopback address 127.0.0.1" wrong.out ||
  { cat wrong.out; fail "no clear set-up error for a loopback address across nodes"; }
grep -q 'set watchdog.interface' wrong.out || fail "the message does not say what to set"
[ "$took" -le 20 ] || fail "the run with the loopback address took $took s to stop"
echo "the run advertising 127.0.0.1 stopped at set-up in $took s (rc $rc)"

rc=0
on_nodes node1:2,node2:2 60 "$dtrain" train cfg.toml --set watchdog.interface=nosuch0 > noif.out 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "the run with a missing interface succeeded"
grep -q "watchdog.interface = 'nosuch0': no such interface.*eth0 (198.18." noif.out ||
  { cat noif.out; fail "the missing interface is not named with the ones there are"; }
failed=0
echo "PASS after $(elapsed)"
