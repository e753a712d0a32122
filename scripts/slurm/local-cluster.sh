#!/usr/bin/env bash
# A real single-node Slurm for tests (docs/SLURM.md): munged, slurmctld and slurmd run as
# root from a private directory, with their own munge key and socket, configuration,
# state, logs and pid files. Nothing under /etc, /run or /var is touched, and `stop`
# ends exactly the processes `start` started (by recorded pid, checked against the
# directory in their command line).
#
#   eval "$(scripts/slurm/local-cluster.sh start [DIR])"   # exports SLURM_CONF, DTRAIN_SLURM_DIR
#   sbatch --wrap hostname; srun --mpi=pmix -n 2 build/launcher/dtrain info
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
# Settings: DTRAIN_SLURM_CPUS (CPUs the node declares, default 8; may exceed the real
# cores), DTRAIN_SLURM_CRED_EXPIRE (seconds, default 10: a requeued job waits about this
# long before it may run again). Needs root and Debian's slurm-wlm, munge and libpmix-dev
# (scripts/install-deps.sh).
set -euo pipefail

die() { echo "local-cluster: $*" >&2; exit 1; }
say() { echo "local-cluster: $*" >&2; }

cmd="${1:-}"
[ -n "$cmd" ] || die "usage: local-cluster.sh start|stop|status [DIR]"
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

running() { ours "$dir/run/munged.pid" >/dev/null && ours "$dir/run/slurmctld.pid" >/dev/null && ours "$dir/run/slurmd.pid" >/dev/null; }

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
  if ours "$dir/run/slurmctld.pid" >/dev/null; then
    # Cancel every job first: job step processes outlive a stopped slurmd. Cancel again
    # while any is listed: a job may requeue itself on the SIGTERM of a cancel.
    local i left=""
    for i in $(seq 150); do
      left="$(squeue -h -o %i 2>/dev/null || true)"
      [ -z "$left" ] && break
      if [ $((i % 5)) = 1 ]; then scancel --quiet --user=root 2>/dev/null || true; fi
      sleep 0.2
    done
    [ -z "$left" ] || say "jobs still listed after 30 s: $(echo $left)"
  fi
  if ours "$dir/run/slurmd.pid" >/dev/null; then
    # Wait for the job steps (slurmstepd) the node still runs.
    for i in $(seq 100); do
      [ -z "$(ls "$dir/state/slurmd" 2>/dev/null | grep -E '_[0-9]+\.[0-9]+$|_[0-9]+\.4294967' || true)" ] && break
      sleep 0.1
    done
  fi
  stop_pid slurmd
  stop_pid slurmctld
  stop_pid munged
  say "stopped the cluster in $dir"
  if [ "${DTRAIN_SLURM_REMOVE:-0}" = 1 ]; then rm -rf "$dir"; fi
}

do_status() {
  [ -d "$dir" ] || { echo "no cluster in $dir"; return 1; }
  local rc=0 n pid
  for n in munged slurmctld slurmd; do
    if pid="$(ours "$dir/run/$n.pid")"; then echo "$n: running (pid $pid)"; else echo "$n: not running"; rc=1; fi
  done
  if [ $rc = 0 ]; then
    SLURM_CONF="$dir/slurm.conf" sinfo -N -o '%N %T %c' 2>&1 || rc=1
    SLURM_CONF="$dir/slurm.conf" squeue 2>&1 || rc=1
  fi
  return $rc
}

do_start() {
  [ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root)"
  local b
  for b in munged slurmctld slurmd sbatch srun scontrol sinfo; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "'$b' not found: run scripts/install-deps.sh (slurm-wlm, munge)"
  done
  export PATH="$PATH:/usr/sbin"
  if running; then
    say "already running in $dir"
    print_env
    return 0
  fi
  mkdir -p "$dir"/{munge,run,log,state/ctld,state/slurmd}
  chmod 700 "$dir/munge"
  # Leftovers of a partial start: stop them first.
  stop_pid slurmd; stop_pid slurmctld; stop_pid munged

  local host cpus ctld_port d_port expire
  host="$(hostname -s)"
  cpus="${DTRAIN_SLURM_CPUS:-8}"
  expire="${DTRAIN_SLURM_CRED_EXPIRE:-10}"
  ctld_port="$(free_port)"
  d_port="$(free_port)"
  while [ "$d_port" = "$ctld_port" ]; do d_port="$(free_port)"; done

  [ -s "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  : > "$dir/plugstack.conf"
  cat > "$dir/slurm.conf" <<EOF
# Written by scripts/slurm/local-cluster.sh: a one-node test cluster in $dir.
ClusterName=dtrain-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2,cred_expire=$expire
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/slurmd
SlurmctldPidFile=$dir/run/slurmctld.file.pid
SlurmdPidFile=$dir/run/slurmd.file.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
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
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
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

  slurmctld -D -i -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
  echo $! > "$dir/run/slurmctld.pid"
  slurmd -D -f "$dir/slurm.conf" -N "$host" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
  echo $! > "$dir/run/slurmd.pid"

  local timeout="${DTRAIN_SLURM_START_TIMEOUT:-60}" state="" t0=$SECONDS
  while :; do
    running || { do_stop; die "a daemon exited during start; see $dir/log/"; }
    state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
    [ "$state" = idle ] && break
    if [ $((SECONDS - t0)) -ge "$timeout" ]; then
      do_stop
      die "node not idle after ${timeout} s (state '$state'); see $dir/log/"
    fi
    sleep 0.2
  done
  say "cluster up in $dir (node $host idle, $cpus CPUs, ports $ctld_port/$d_port)"
  print_env
}

case "$cmd" in
  start)
    if [ $# -ge 1 ]; then dir="$1"; else dir="$(mktemp -d /tmp/dtrain-slurm.XXXXXX)"; fi
    mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
    do_start ;;
  stop|status)
    dir="${1:-${DTRAIN_SLURM_DIR:-}}"
    [ -n "$dir" ] || die "$cmd: give the cluster's DIR (or set DTRAIN_SLURM_DIR)"
    if [ -d "$dir" ]; then dir="$(cd "$dir" && pwd)"; fi
    if [ "$cmd" = stop ]; then do_stop; else do_status; fi ;;
  -h|--help|help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (start|stop|status)" ;;
esac
