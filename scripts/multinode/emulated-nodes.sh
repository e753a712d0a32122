#!/usr/bin/env bash
# Emulated nodes for testing dtrain across "machines" on one (docs/MULTINODE.md): N Linux
# network namespaces, each with its own network stack, addresses and host name, joined by
# veth pairs to a bridge in a hub namespace. mpirun started in node1 reaches the others
# through an ssh stand-in (emulated-node-agent.sh), and the ranks talk over TCP between
# the namespaces exactly as between machines. Nothing is added to the host's own network
# namespace; `stop` removes exactly what `start` recorded.
#
#   eval "$(scripts/multinode/emulated-nodes.sh start DIR 2)"   # exports DTRAIN_NODES_DIR
#   scripts/multinode/emulated-nodes.sh exec DIR node2 hostname -I
#   scripts/multinode/emulated-nodes.sh mpirun DIR node1:2,node2:2 build/launcher/dtrain train cfg.toml
#   scripts/multinode/emulated-nodes.sh status DIR
#   scripts/multinode/emulated-nodes.sh stop DIR           # idempotent
#
# start DIR N: N = 2..4 nodes named node1..nodeN. Namespaces dt<id>n1..dt<id>nN and
#   dt<id>hub (bridge br0), <id> a random 4-hex-digit id, so that parallel clusters never
#   collide; node i has 198.18.<k>.<i>/24 (RFC 2544's benchmarking range, <k> from the id)
#   on its eth0 and loopback up. Host names come from /etc/netns/<ns>/hosts, which
#   `ip netns exec` bind-mounts over /etc/hosts: every node's name and address, and
#   localhost. The state file DIR/state lists what was made. stdout: the export line only.
# exec DIR NODE CMD...: CMD in NODE's namespace, with its own UTS name (hostname = NODE).
# mpirun DIR HOSTS ARGS...: mpirun, started in node1, over HOSTS (mpirun's --host syntax,
#   e.g. node1:2,node2:2), with the options below; ARGS are mpirun's and the program's.
# stop DIR: kills (SIGKILL) every process still in the namespaces, deletes them and their
#   /etc/netns folders. A second call, or one for a cluster never started, does nothing.
#
# What mpirun (Open MPI 4.1) needs across the namespaces, and why:
#   --mca plm_rsh_agent emulated-node-agent.sh   ssh's stand-in: runs orted in the node's
#       namespace; it finds the cluster through DTRAIN_NODES_DIR (mpirun's environment).
#   --mca plm_rsh_no_tree_spawn 1   every orted is started by mpirun itself, from node1.
#   --mca oob_tcp_if_include 198.18.0.0/15   orted -> mpirun (and PMIx's wire-up through
#       the orteds) over the nodes' addresses, not loopback, which is private to each node.
#   --mca btl tcp,vader,self --mca btl_tcp_if_include 198.18.0.0/15   rank-to-rank TCP
#       across nodes; vader (shared memory) only between the ranks of one node, which
#       Open MPI decides by node name.
#   --bind-to none --oversubscribe   every node sees the same cores.
#   The UTS namespace matters too: each orted's session directory (/tmp/ompi.<host>.*),
#   its PMIx server's rendezvous files and vader's /dev/shm segments carry the host name,
#   so two nodes with one host name would share them. PMIx itself needs nothing else:
#   each node's ranks talk to their own orted over its Unix socket.
# Root (OMPI_ALLOW_RUN_AS_ROOT*) is set, since creating namespaces needs root anyway.
#
# Without root, `ip` or namespace support: exit 77 with the reason (tests skip visibly).
set -euo pipefail

say() { echo "emulated-nodes: $*" >&2; }
die() { say "$*"; exit 1; }
unsupported() { say "cannot emulate nodes here: $*"; exit 77; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage="usage: emulated-nodes.sh start DIR N | exec DIR NODE CMD... | mpirun DIR HOSTS ARGS... | status DIR | stop DIR"
cmd="${1:-}"
[ -n "$cmd" ] || die "$usage"
shift

load() {  # load DIR: reads the state file into id, k, n, hub, nodes[]
  dir="$(cd "$1" 2>/dev/null && pwd)" || die "no cluster in $1"
  [ -s "$dir/state" ] || die "no cluster in $dir (no state file)"
  # shellcheck disable=SC1091
  . "$dir/state"
}

ns_of() {  # ns_of NODE -> the node's namespace name
  local node="$1" i
  [[ "$node" =~ ^node([0-9]+)$ ]] || die "unknown node '$node' (node1..node$n)"
  i="${BASH_REMATCH[1]}"
  [ "$i" -ge 1 ] && [ "$i" -le "$n" ] || die "unknown node '$node' (node1..node$n)"
  echo "dt${id}n$i"
}

remove_ns() {  # remove_ns NS: its processes, the namespace and its /etc/netns folder
  local ns="$1" pids
  if ip netns list 2>/dev/null | grep -qw "^$ns"; then
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -9 $pids 2>/dev/null || true
      local i
      for i in $(seq 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
    fi
    ip netns del "$ns" 2>/dev/null || say "could not delete namespace $ns"
  fi
  rm -rf "/etc/netns/$ns"
}

do_stop() {
  [ -s "$dir/state" ] || { say "no cluster in $dir"; return 0; }
  # shellcheck disable=SC1091
  . "$dir/state"
  local ns
  for ns in "${nodes[@]}" "$hub"; do remove_ns "$ns"; done
  # /etc/netns itself, when no other cluster (or anything else) uses it any more.
  rmdir /etc/netns 2>/dev/null || true
  rm -f "$dir/state"
  say "stopped the emulated nodes dt${id}*"
}

do_start() {
  local want="$1"
  [[ "$want" =~ ^[2-4]$ ]] || die "start: N must be 2, 3 or 4 (got '$want')"
  [ "$(id -u)" = 0 ] || unsupported "network namespaces need root"
  command -v ip >/dev/null || unsupported "'ip' (iproute2) is not installed"
  command -v unshare >/dev/null || unsupported "'unshare' (util-linux) is not installed"
  [ -s "$dir/state" ] && die "a cluster is already recorded in $dir (stop it first)"

  id="$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')"
  k=$((16#$id % 256))
  n="$want"
  hub="dt${id}hub"
  nodes=()
  local i
  for i in $(seq "$n"); do nodes+=("dt${id}n$i"); done
  # The state first, then each object: a start that fails half way is stopped from it.
  {
    echo "id=$id"; echo "k=$k"; echo "n=$n"; echo "hub=$hub"; echo "nodes=(${nodes[*]})"
  } > "$dir/state"
  trap 'say "start failed; removing what it made"; do_stop; exit 1' ERR

  ip netns add "$hub" 2>/dev/null || { rm -f "$dir/state"; unsupported "'ip netns add' failed (no namespace support?)"; }
  unshare --uts true 2>/dev/null || { do_stop; unsupported "'unshare --uts' failed"; }
  ip -n "$hub" link set lo up
  ip -n "$hub" link add br0 type bridge
  ip -n "$hub" link set br0 up
  local hosts="127.0.0.1 localhost"$'\n'
  for i in $(seq "$n"); do hosts+="198.18.$k.$i node$i"$'\n'; done
  for i in $(seq "$n"); do
    local ns="${nodes[$((i - 1))]}"
    ip netns add "$ns"
    # Twice: another cluster's stop may remove an empty /etc/netns between the two mkdirs.
    mkdir -p "/etc/netns/$ns" 2>/dev/null || mkdir -p "/etc/netns/$ns"
    printf '%s' "$hosts" > "/etc/netns/$ns/hosts"
    # Made inside the hub, so no interface ever appears in the host's namespace.
    ip -n "$hub" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$hub" link set "v$i" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "198.18.$k.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  trap - ERR
  # The bridge forwards once its ports are up; wait until node1 reaches the last node.
  for i in $(seq 50); do
    ip netns exec "${nodes[0]}" ping -c1 -W1 "198.18.$k.$n" >/dev/null 2>&1 && break
    command -v ping >/dev/null || { sleep 0.5; break; }
    sleep 0.1
  done
  say "$n nodes up (namespaces dt${id}n1..n$n, hub $hub, 198.18.$k.1-$n)"
  echo "export DTRAIN_NODES_DIR='$dir'"
}

do_exec() {
  local node="$1" ns
  shift
  ns="$(ns_of "$node")"
  [ $# -ge 1 ] || die "exec: no command"
  export DTRAIN_NODES_DIR="$dir"
  exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$node" "$@"
}

do_mpirun() {
  local hosts="$1"
  shift
  export DTRAIN_NODES_DIR="$dir"
  # A sanitized build's runtime options and preload (scripts/sanitize.sh) reach the ranks
  # of every node, as anything does on real nodes: named with -x.
  local forward=() v
  for v in ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS LD_PRELOAD; do
    if [ -n "${!v:-}" ]; then forward+=(-x "$v"); fi
  done
  do_exec node1 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun --host "$hosts" --oversubscribe --bind-to none "${forward[@]}" \
    --mca plm_rsh_agent "$here/emulated-node-agent.sh" --mca plm_rsh_no_tree_spawn 1 \
    --mca oob_tcp_if_include 198.18.0.0/15 \
    --mca btl tcp,vader,self --mca btl_tcp_if_include 198.18.0.0/15 "$@"
}

do_status() {
  local i ns rc=0
  echo "emulated nodes dt${id}*: hub $hub"
  for i in $(seq "$n"); do
    ns="${nodes[$((i - 1))]}"
    if ip netns list | grep -qw "^$ns"; then
      echo "node$i: $ns 198.18.$k.$i, $(ip netns pids "$ns" | wc -l) process(es)"
    else
      echo "node$i: $ns missing"; rc=1
    fi
  done
  return $rc
}

case "$cmd" in
  start)
    [ $# -eq 2 ] || die "$usage"
    mkdir -p "$1"; dir="$(cd "$1" && pwd)"
    do_start "$2" ;;
  stop)
    [ $# -eq 1 ] || die "$usage"
    [ -d "$1" ] || { say "no cluster in $1"; exit 0; }
    dir="$(cd "$1" && pwd)"
    do_stop ;;
  exec) [ $# -ge 3 ] || die "$usage"; load "$1"; shift; do_exec "$@" ;;
  mpirun) [ $# -ge 3 ] || die "$usage"; load "$1"; shift; do_mpirun "$@" ;;
  status) [ $# -eq 1 ] || die "$usage"; load "$1"; do_status ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd'; $usage" ;;
esac
