#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the executor tests and benchmark.
#
#   scripts/slurm_local.sh up       install slurm + munge (Debian) when missing, start munged, slurmctld, slurmd
#   scripts/slurm_local.sh down     stop the daemons that `up` started (a daemon that was already
#                                   running, e.g. another user's, is left alone)
#   scripts/slurm_local.sh status   sinfo
#
# Needs root (it writes /etc/slurm and /etc/munge and starts the daemons). One partition,
# "atlas", with this machine's cores and memory; no accounting database (sacct is not needed:
# submitit tolerates its absence), ProctrackType=proctrack/linuxproc and TaskPlugin=task/none so
# that it runs in a container without cgroups.
#
# `up` records each daemon it starts as "<pid> <start time>" in $STATE/pids/<daemon>.pid; `down`
# stops a recorded process only while it still is that daemon (same name, same start time: a PID
# can be reused), and never a process by its name. ATLAS_SLURM_STATE moves the state folder.
set -euo pipefail

STATE=${ATLAS_SLURM_STATE:-/var/lib/atlas-slurm}
PIDS=$STATE/pids
CONF=/etc/slurm/slurm.conf

install() {
  if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "installing Debian slurm + munge for the cluster tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
  fi
}

configure() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # MiB, 1 GiB left to the system
  mkdir -p /etc/slurm "$STATE"/{ctld,d} /var/log/slurm /run/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge 2>/dev/null || true
  chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
  cat >"$CONF" <<EOF
ClusterName=atlas
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${STATE}/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
KillWait=5
MinJobAge=600
DefMemPerCPU=$(( mem / cpus ))
NodeName=${host} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=atlas Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

pid_file() {  # the pid file each daemon writes itself (munged's default; slurm.conf above)
  case "$1" in
    munged) echo /run/munge/munged.pid ;;
    slurmctld) echo /run/slurmctld.pid ;;
    slurmd) echo /run/slurmd.pid ;;
  esac
}

start_time() {  # PID -> its start time in clock ticks since boot (field 22 of /proc/PID/stat);
  # nothing when no such process runs (a zombie has exited: there is nothing left to stop)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # field 2, the name in parentheses, may hold spaces: count the fields after its closing ")"
  set -- ${stat##*) }
  [ "${1:-}" != Z ] && echo "${20:-}"
  return 0
}

recorded() {  # NAME -> "PID START" recorded for it, if that process still is the daemon NAME that `up` started
  local pid start
  [ -s "$PIDS/$1.pid" ] || return 1
  read -r pid start <"$PIDS/$1.pid" || true
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -n "${start:-}" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && [ "$(start_time "$pid")" = "$start" ] || return 1
  echo "$pid $start"
}

running() {  # NAME: does a process of that name run (a zombie, an exited daemon not yet reaped, does not)?
  local pid
  for pid in $(pgrep -x "$1"); do
    [ -n "$(start_time "$pid")" ] && return 0
  done
  return 1
}

start() {  # NAME COMMAND...: start the daemon unless one runs already; record it only when started here
  local name=$1 pidfile pid
  shift
  if recorded "$name" >/dev/null; then
    return 0  # started by an earlier `up`
  fi
  rm -f "$PIDS/$name.pid"
  if running "$name"; then
    echo "$name already runs (not started here: down leaves it alone)"
    return 0
  fi
  pidfile=$(pid_file "$name")
  rm -f "$pidfile"  # a stale file from a killed daemon would name another process
  "$@"
  for _ in $(seq 1 50); do  # the daemon forks, then writes its pid file
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
      echo "$pid $(start_time "$pid")" >"$PIDS/$name.pid"
      return 0
    fi
    sleep 0.2
  done
  echo "$name did not write $pidfile; down will not stop it" >&2
}

up() {
  install
  configure
  mkdir -p "$PIDS"
  start munged sh -c 'su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force'
  start slurmctld /usr/sbin/slurmctld
  start slurmd /usr/sbin/slurmd
  for _ in $(seq 1 30); do
    if sinfo -h -o "%T" 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; then
      sinfo
      return 0
    fi
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm did not come up; see /var/log/slurm/" >&2
  return 1
}

down() {
  local name pid start ours
  for name in slurmd slurmctld munged; do
    if ours=$(recorded "$name"); then
      read -r pid start <<<"$ours"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do  # up to 10 s, so that an `up` right after finds it gone
        [ "$(start_time "$pid")" = "$start" ] || break
        sleep 0.2
      done
      echo "stopped $name (pid $pid)"
    elif [ -e "$PIDS/$name.pid" ]; then
      echo "$name: the recorded process has exited or is another process now; nothing stopped"
    fi
    rm -f "$PIDS/$name.pid"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) sinfo ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
