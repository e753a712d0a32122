#!/usr/bin/env bash
# ssh's stand-in for Open MPI on emulated nodes (scripts/multinode/emulated-nodes.sh):
#   mpirun --mca plm_rsh_agent scripts/multinode/emulated-node-agent.sh ...
# Open MPI calls it as it would ssh, `AGENT [ssh options] [user@]HOST COMMAND...`, and
# the command (orted's start, a shell command line) runs in HOST's namespace of the
# cluster in $DTRAIN_NODES_DIR. ssh's options are accepted and ignored. Like ssh, the
# command starts with a clean environment (PATH, HOME and the cluster's directory only),
# so that what a rank on another node sees is what mpirun forwards (-x), as on real nodes.
set -euo pipefail

dir="${DTRAIN_NODES_DIR:-}"
[ -n "$dir" ] || { echo "emulated-node-agent: DTRAIN_NODES_DIR is not set" >&2; exit 255; }
while [ $# -gt 0 ]; do
  case "$1" in
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;   # ssh options that take a value
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "emulated-node-agent: usage: AGENT [options] HOST COMMAND..." >&2; exit 255; }
host="${1#*@}"
shift
exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C DTRAIN_NODES_DIR="$dir" \
  "$(dirname "${BASH_SOURCE[0]}")/emulated-nodes.sh" exec "$dir" "$host" sh -c "$*"
