#!/usr/bin/env bash
# CTest multinode_device_mapping (label multinode; docs/MULTINODE.md): the device of each
# rank on 2 emulated nodes x 2 ranks with device = cuda, on the emulated CUDA device
# (dtrain-emu, docs/EMULATOR.md; no GPU needed): each node's local ranks 0 and 1 take
# cuda:0 and cuda:1, and with one device per node (DTRAIN_EMU_DEVICES=1) the ranks fail
# at set-up with the World's message naming the host (both nodes'). The NCCL emulation meets through
# POSIX shared memory, which the namespaces share (one kernel, one /dev/shm): the
# gradients crossing "nodes" here do not cross the emulated network; the CPU runs of
# multinode_train_equivalence are the cross-node TCP test.
#
#   bash tests/multinode/test_device_mapping.sh build/tests/emu/dtrain-emu
#
# Exit 77 (skipped, with the reason) without root, namespaces, mpirun or h5py.
set -euo pipefail

dtrain="$(realpath "${1:?usage: test_device_mapping.sh DTRAIN_EMU_BINARY}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/multinode/lib.sh
. "$root/tests/multinode/lib.sh"
start_nodes 2
cd "$work"
synth_data
steps=4 write_config cfg.toml 'device = "cuda"'

export DTRAIN_EMU_DEVICES=4
on_nodes node1:2,node2:2 120 -x DTRAIN_EMU_DEVICES "$dtrain" train cfg.toml > cuda.out 2>&1 ||
  fail "the 2 x 2 run on emulated CUDA devices failed"
grep -q '^placement: 4 ranks on 2 hosts (node1: ranks 0-1 on cuda:0, cuda:1; node2: ranks 2-3 on cuda:0, cuda:1)$' \
  cuda.out || fail "the ranks of each node are not on cuda:0 and cuda:1"
grep -q 'finished 4 steps' cuda.out || fail "the 2 x 2 CUDA run did not finish"
echo "2 x 2 on emulated CUDA devices done after $(elapsed)"

export DTRAIN_EMU_DEVICES=1
rc=0
on_nodes node1:2,node2:2 120 -x DTRAIN_EMU_DEVICES "$dtrain" train cfg.toml > one.out 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "2 ranks per node with 1 device per node succeeded"
for node in node1 node2; do
  grep -q "device = cuda with 2 ranks on host $node, but it has only 1 CUDA device(s)" one.out ||
    fail "no rank on $node says it has only 1 CUDA device"
done
# Every rank fails at set-up, but mpirun ends the others as soon as the first exits: not
# every rank's message need come out, only one from each node's (checked above).
echo "1 device per node refused on both nodes after $(elapsed)"
failed=0
echo "PASS after $(elapsed)"
