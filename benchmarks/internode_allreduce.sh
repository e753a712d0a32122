#!/usr/bin/env bash
# The all-reduce between nodes, measured on one machine (docs/MULTINODE.md): bench_allreduce
# (dtrain's process group beside raw MPI, and the Reducer's exposed communication per step)
# on 2 ranks within one emulated node (shared memory) and on 2 ranks on two emulated nodes
# (TCP over a veth link between network namespaces), in the same run. Needs root.
#
#   sudo bash benchmarks/internode_allreduce.sh [BUILD_DIR] [bench_allreduce options...]
#
# The emulated link is memory-speed TCP through the kernel, not a network: the figures
# give the inter-node point of the scaling model its protocol costs (TCP, no shared
# memory), not a cluster's bandwidth.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
bench="$(realpath "$build/benchmarks/bench_allreduce")"
nodes="$root/scripts/multinode/emulated-nodes.sh"
work="$(mktemp -d)"
cleanup() { bash "$nodes" stop "$work/nodes" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
eval "$(bash "$nodes" start "$work/nodes" 2)"
for hosts in node1:2 node1:1,node2:1; do
  echo "=== 2 ranks on $hosts ==="
  bash "$nodes" mpirun "$work/nodes" "$hosts" -x OMP_NUM_THREADS=1 "$bench" "$@"
done
