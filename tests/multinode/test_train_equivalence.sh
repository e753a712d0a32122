#!/usr/bin/env bash
# CTest multinode_train_equivalence (label multinode; docs/MULTINODE.md): the same tiny
# job on 2 emulated nodes x 2 ranks (scripts/multinode/emulated-nodes.sh: network
# namespaces, mpirun's ranks talking TCP between them) and on 1 node x 4 ranks must end
# with the same parameters and optimizer state within float rounding, and each run must
# report where its ranks are: 2 hosts with ranks 0-1 and 2-3, or 1 host.
#
#   bash tests/multinode/test_train_equivalence.sh build/launcher/dtrain
#
# Exit 77 (skipped, with the reason) without root, namespaces, mpirun or h5py.
set -euo pipefail

dtrain="$(realpath "${1:?usage: test_train_equivalence.sh DTRAIN_BINARY}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/multinode/lib.sh
. "$root/tests/multinode/lib.sh"
start_nodes 2
cd "$work"
synth_data
write_config cfg.toml

on_nodes node1:2,node2:2 120 "$dtrain" train cfg.toml --checkpoint-dir "$work/two" > two.out 2>&1 ||
  fail "the 2 x 2 run failed"
echo "2 nodes x 2 ranks done after $(elapsed)"
on_nodes node1:4 120 "$dtrain" train cfg.toml --checkpoint-dir "$work/one" > one.out 2>&1 ||
  fail "the 1 x 4 run failed"
echo "1 node x 4 ranks done after $(elapsed)"

grep -q '^placement: 4 ranks on 2 hosts (node1: ranks 0-1; node2: ranks 2-3)$' two.out ||
  fail "the 2 x 2 run does not report its ranks on node1 and node2"
grep -q '^placement: 4 ranks on 1 host (node1: ranks 0-3)$' one.out || fail "the 1 x 4 run does not report one host"
for f in one two; do grep -q 'finished 30 steps' $f.out || fail "the $f-node run did not finish"; done
close_state one/step-30.h5 two/step-30.h5
failed=0
echo "PASS after $(elapsed)"
