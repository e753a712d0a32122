#!/usr/bin/env bash
# A real Slurm for tests (docs/SLURM.md): munged, slurmctld and slurmd run as root from a
# private directory, with their own munge key and socket, configuration, state, logs and
# pid files. Nothing under /etc, /run or /var is touched, and `stop` ends exactly the
# processes `start` started (by recorded pid, checked against the directory in their
# command line). One node (this machine) by default, or one slurmd per emulated node.
#
#   eval "$(scripts/slurm/local-cluster.sh start [DIR])"   # exports SLURM_CONF, DTRAIN_SLURM_DIR
#   sbatch --wrap hostname; srun --mpi=pmix -n 2 build/launcher/dtrain info
#   scripts/slurm/local-cluster.sh start --nodes NODES_DIR [DIR]   # on emulated nodes
#   scripts/slurm/local-cluster.sh status [DIR]
#   scripts/slurm/local-cluster.sh stop [DIR]              # scancel all jobs, then stop the daemons
#
# start: DIR defaults to a new temporary directory (mktemp -d /tmp/dtrain-slurm.XXXXXX);
#   it prints, on stdout, `export` lines for SLURM_CONF and DTRAIN_SLURM_DIR (everything
#   else goes to stderr) and returns when the node is idle (or fails after
#   DTRAIN_SLURM_START_TIMEOUT seconds, default 60, stopping what it started).
#   Starting a cluster that is already running in DIR only prints the lines again.
# stop, status: DIR defaults to $DTRAIN_SLURM_DIR. stop is idempotent: a second call,
#   or one for a cluster that never started, does nothing and succeeds. It leaves DIR
#   (logs included) in place unless DTRAIN_SLURM_REMOVE=1.
#
# start --nodes NODES_DIR: a cluster on the emulated nodes in NODES_DIR
#   (scripts/multinode/emulated-nodes.sh; $DTRAIN_NODES_DIR once that is eval'd). slurmctld
#   runs in node1's network namespace, reachable at node1's address from every node; each
#   node runs its own slurmd in its namespace, with its host name (slurmd -N nodeK,
#   NodeAddr its 198.18.x.K address) and its own spool, pid and log files (slurm.conf's
#   %n). munged runs once, outside the namespaces: its socket is a path, and the file
#   system is shared, so every node reaches it. The controller listens only inside the
#   nodes' network: run srun, sbatch, scontrol and squeue in node1
#   (`emulated-nodes.sh exec NODES_DIR node1 ...`) with SLURM_CONF exported. Stop this
#   cluster before the emulated nodes (stopping those kills the daemons inside them).
# Settings: DTRAIN_SLURM_CPUS (CPUs the node declares, default 8; may exceed the real
# cores), DTRAIN_SLURM_CRED_EXPIRE (seconds, default 10: a requeued job waits about this
# long before it may run again). Needs root and Debian's slurm-wlm, munge and libpmix-dev
# (scripts/install-deps.sh).
set -euo pipefail

die() { echo "local-cluster: $*" >&2; exit 1; }
say() { echo "local-cluster: $*" >&2; }

cmd="${1:-}"
[ -n "$cmd" ] || die "usage: local-cluster.sh start [--nodes NODES_DIR] [DIR] | stop [DIR] | status [DIR]"
shift || true

# The daemons' command lines all name DIR: that is what makes a recorded pid ours.
ours() {  # ours PIDFILE -> prints the pid if it is alive and was started from DIR
  local f="$1" pid
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
  echo "$pid"
}

# The cluster's nodes: $dir/nodes (written by a start with --nodes) names the emulated
# nodes' directory and their count; without it, one node, this machine.
nodes_dir=""; node_count=0
load_nodes() {
  nodes_dir=""; node_count=0
  if [ -s "$dir/nodes" ]; then
    # shellcheck disable=SC1091
    . "$dir/nodes"
  fi
}
slurmd_names() {  # the pid file names of the slurmds: slurmd, or slurmd-node1..slurmd-nodeN
  local i
  if [ -n "$nodes_dir" ]; then for i in $(seq "$node_count"); do echo "slurmd-node$i"; done; else echo slurmd; fi
}
# client CMD...: a Slurm command where the controller is reachable (node1's namespace).
client() {
  if [ -n "$nodes_dir" ]; then bash "$nodes_sh" exec "$nodes_dir" node1 "$@"; else "$@"; fi
}
nodes_sh="$(cd "$(dirname "${BASH_SOURCE[0]}")/../multinode" && pwd)/emulated-nodes.sh"

running() {
  local d
  ours "$dir/run/munged.pid" >/dev/null && ours "$dir/run/slurmctld.pid" >/dev/null || return 1
  for d in $(slurmd_names); do ours "$dir/run/$d.pid" >/dev/null || return 1; done
}

print_env() {
  echo "export SLURM_CONF='$dir/slurm.conf'"
  echo "export DTRAIN_SLURM_DIR='$dir'"
}

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

stop_pid() {  # stop_pid NAME: SIGTERM the recorded pid, wait, then SIGKILL
  local name="$1" pid i
  pid="$(ours "$dir/run/$name.pid")" || { rm -f "$dir/run/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    [ -e "/proc/$pid" ] || break
    # A zombie (parent not reaping) counts as gone.
    if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = "Z" ]; then break; fi
    sleep 0.1
  done
  if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]; then
    say "$name ($pid) did not stop in 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$dir/run/$name.pid"
}

do_stop() {
  [ -d "$dir" ] || { say "no cluster in $dir"; return 0; }
  export SLURM_CONF="$dir/slurm.conf"
  load_nodes
  if [ -n "$nodes_dir" ] && [ ! -s "$nodes_dir/state" ]; then
    say "the emulated nodes in $nodes_dir are gone (and the daemons inside them with them)"
  fi
  if ours "$dir/run/slurmctld.pid" >/dev/null; then
    # Cancel every job first: job step processes outlive a stopped slurmd. Cancel again
    # while any is listed: a job may requeue itself on the SIGTERM of a cancel.
    local i left=""
    for i in $(seq 150); do
      left="$(client squeue -h -o %i 2>/dev/null || true)"
      [ -z "$left" ] && break
      if [ $((i % 5)) = 1 ]; then client scancel --quiet --user=root 2>/dev/null || true; fi
      sleep 0.2
    done
    [ -z "$left" ] || say "jobs still listed after 30 s: $(echo $left)"
  fi
  local d
  for d in $(slurmd_names); do
    ours "$dir/run/$d.pid" >/dev/null || continue
    # Wait for the job steps (slurmstepd) the node still runs.
    for i in $(seq 100); do
      [ -z "$(ls "$dir/state/$d" 2>/dev/null | grep -E '_[0-9]+\.[0-9]+$|_[0-9]+\.4294967' || true)" ] && break
      sleep 0.1
    done
  done
  for d in $(slurmd_names); do stop_pid "$d"; done
  stop_pid slurmctld
  stop_pid munged
  say "stopped the cluster in $dir"
  if [ "${DTRAIN_SLURM_REMOVE:-0}" = 1 ]; then rm -rf "$dir"; fi
}

do_status() {
  [ -d "$dir" ] || { echo "no cluster in $dir"; return 1; }
  local rc=0 n pid
  load_nodes
  for n in munged slurmctld $(slurmd_names); do
    if pid="$(ours "$dir/run/$n.pid")"; then echo "$n: running (pid $pid)"; else echo "$n: not running"; rc=1; fi
  done
  if [ $rc = 0 ]; then
    export SLURM_CONF="$dir/slurm.conf"
    client sinfo -N -o '%N %T %c' 2>&1 || rc=1
    client squeue 2>&1 || rc=1
  fi
  return $rc
}

do_start() {  # do_start NODES_DIR (empty: one node, this machine)
  local want_nodes="$1"
  [ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root)"
  local b
  for b in munged slurmctld slurmd sbatch srun scontrol sinfo; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "'$b' not found: run scripts/install-deps.sh (slurm-wlm, munge)"
  done
  export PATH="$PATH:/usr/sbin"
  load_nodes
  if [ "$nodes_dir" != "$want_nodes" ] && running; then
    die "a cluster on other nodes ('${nodes_dir:-this machine}') is running in $dir; stop it first"
  fi
  if running; then
    say "already running in $dir"
    print_env
    return 0
  fi
  mkdir -p "$dir"/{munge,run,log,state/ctld}
  chmod 700 "$dir/munge"
  # Leftovers of a partial start: stop them first.
  local d
  for d in $(slurmd_names); do stop_pid "$d"; done
  stop_pid slurmctld; stop_pid munged

  # The nodes: this machine at 127.0.0.1, or node1..nodeN of the emulated nodes at their
  # addresses, the controller at node1's. Per-node files carry slurm.conf's %n.
  local host ctld_addr node_lines part_nodes suffix="" cpus tmp_fs=/tmp
  cpus="${DTRAIN_SLURM_CPUS:-8}"
  if [ -n "$want_nodes" ]; then
    [ -s "$want_nodes/state" ] || die "no emulated nodes in $want_nodes (scripts/multinode/emulated-nodes.sh start)"
    local k n i
    k="$(. "$want_nodes/state"; echo "$k")"
    n="$(. "$want_nodes/state"; echo "$n")"
    printf "nodes_dir='%s'\nnode_count=%s\n" "$want_nodes" "$n" > "$dir/nodes"
    host=node1 ctld_addr="198.18.$k.1" suffix="-%n" part_nodes="node[1-$n]" node_lines=""
    # The nodes share /tmp, where each step's PMIx server makes a directory named after the
    # job and step only (spmix_appdir_*): the second node's would collide with the first's.
    # TmpFS, which Slurm expands per node (%n), is where it makes them.
    tmp_fs="$dir/tmp/%n"
    for i in $(seq "$n"); do
      mkdir -p "$dir/tmp/node$i"
      node_lines+="NodeName=node$i NodeAddr=198.18.$k.$i CPUs=$cpus State=UNKNOWN"$'\n'
    done
  else
    rm -f "$dir/nodes"
    host="$(hostname -s)" ctld_addr=127.0.0.1 part_nodes="$host"
    node_lines="NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN"$'\n'
  fi
  load_nodes
  for d in $(slurmd_names); do mkdir -p "$dir/state/$d"; done

  local ctld_port d_port expire
  expire="${DTRAIN_SLURM_CRED_EXPIRE:-10}"
  ctld_port="$(free_port)"
  d_port="$(free_port)"
  while [ "$d_port" = "$ctld_port" ]; do d_port="$(free_port)"; done

  [ -s "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  : > "$dir/plugstack.conf"
  rm -f "$dir/cgroup.conf"
  if [ -n "$nodes_dir" ]; then
    # `ip netns exec` mounts a fresh /sys for the node, without /sys/fs/cgroup: slurmd's
    # autodetection of the cgroup version then fails. Nothing here uses cgroups
    # (proctrack/linuxproc, task/none); name the host's version instead.
    local cg=cgroup/v1
    [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] && cg=cgroup/v2
    echo "CgroupPlugin=$cg" > "$dir/cgroup.conf"
  fi
  cat > "$dir/slurm.conf" <<EOF
# Written by scripts/slurm/local-cluster.sh: a test cluster in $dir.
ClusterName=dtrain-local
SlurmctldHost=$host($ctld_addr)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2,cred_expire=$expire
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/slurmd$suffix
SlurmctldPidFile=$dir/run/slurmctld.file.pid
SlurmdPidFile=$dir/run/slurmd$suffix.file.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd$suffix.log
TmpFS=$tmp_fs
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
${node_lines}PartitionName=debug Nodes=$part_nodes Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  export SLURM_CONF="$dir/slurm.conf"

  # Each daemon runs in the foreground as a background job of this shell: $! is its pid.
  # Its output goes to a log file, never to this script's stdout/stderr (a test harness
  # reading those would otherwise wait for the daemons to exit).
  munged --foreground --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket.2" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
    </dev/null >>"$dir/log/munged.out" 2>&1 &
  echo $! > "$dir/run/munged.pid"
  local i
  for i in $(seq 100); do [ -S "$dir/munge/munge.socket.2" ] && break; sleep 0.05; done
  [ -S "$dir/munge/munge.socket.2" ] || { do_stop; die "munged did not start; see $dir/log/munged.log"; }

  # On emulated nodes each daemon starts through `emulated-nodes.sh exec`, which ends in
  # an exec of the daemon (ip netns exec, unshare and sh all exec): $! is still its pid.
  if [ -n "$nodes_dir" ]; then
    bash "$nodes_sh" exec "$nodes_dir" node1 slurmctld -D -i -f "$dir/slurm.conf" \
      </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
    echo $! > "$dir/run/slurmctld.pid"
    for i in $(seq "$node_count"); do
      bash "$nodes_sh" exec "$nodes_dir" "node$i" slurmd -D -f "$dir/slurm.conf" -N "node$i" \
        </dev/null >>"$dir/log/slurmd-node$i.out" 2>&1 &
      echo $! > "$dir/run/slurmd-node$i.pid"
    done
  else
    slurmctld -D -i -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
    echo $! > "$dir/run/slurmctld.pid"
    slurmd -D -f "$dir/slurm.conf" -N "$host" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
    echo $! > "$dir/run/slurmd.pid"
  fi

  local timeout="${DTRAIN_SLURM_START_TIMEOUT:-60}" states="" want t0=$SECONDS
  want="$(slurmd_names | wc -l)"
  while :; do
    running || { do_stop; die "a daemon exited during start; see $dir/log/"; }
    states="$(client sinfo -h -N -o %T 2>/dev/null || true)"
    [ "$(grep -cx idle <<<"$states" || true)" = "$want" ] && break
    if [ $((SECONDS - t0)) -ge "$timeout" ]; then
      do_stop
      die "not every node idle after ${timeout} s (states: $(echo $states)); see $dir/log/"
    fi
    sleep 0.2
  done
  say "cluster up in $dir ($part_nodes idle, $cpus CPUs each, ports $ctld_port/$d_port)"
  print_env
}

case "$cmd" in
  start)
    on_nodes=""
    if [ "${1:-}" = --nodes ]; then
      [ $# -ge 2 ] || die "start --nodes: give the emulated nodes' directory"
      on_nodes="$(cd "$2" 2>/dev/null && pwd)" || die "no emulated nodes in $2"
      shift 2
    fi
    if [ $# -ge 1 ]; then dir="$1"; else dir="$(mktemp -d /tmp/dtrain-slurm.XXXXXX)"; fi
    mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
    do_start "$on_nodes" ;;
  stop|status)
    dir="${1:-${DTRAIN_SLURM_DIR:-}}"
    [ -n "$dir" ] || die "$cmd: give the cluster's DIR (or set DTRAIN_SLURM_DIR)"
    if [ -d "$dir" ]; then dir="$(cd "$dir" && pwd)"; fi
    if [ "$cmd" = stop ]; then do_stop; else do_status; fi ;;
  -h|--help|help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (start [--nodes NODES_DIR]|stop|status)" ;;
esac
