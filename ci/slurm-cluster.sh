#!/usr/bin/env bash
# A real single-node Slurm cluster (slurmctld + slurmd + munge) on localhost, for testing the
# Slurm profile of the pipeline (`make test-slurm`). Debian/Ubuntu, run as root.
#
#   ci/slurm-cluster.sh start    install the packages if missing, configure, start, wait until the node is idle
#   ci/slurm-cluster.sh stop     cancel leftover jobs, stop the daemons this script started (by pid
#                                file), remove the configuration it wrote
#   ci/slurm-cluster.sh status   print the state of munge, slurmctld, slurmd and the node
#   ci/slurm-cluster.sh check    can this machine run it (root, apt-get or Slurm installed)?
#
# See usage() below for the environment variables. Both start and stop are idempotent.
set -euo pipefail
shopt -s inherit_errexit

PROG="ci/slurm-cluster.sh"
RUN_DIR="${META_OOD_SLURM_DIR:-/tmp/meta-ood-slurm}"
WAIT_S="${META_OOD_SLURM_WAIT:-60}"
PARTITION="${META_OOD_SLURM_PARTITION:-debug}"
# Stand-in GPUs declared on the node (0 = none). The test node has no GPU; the declaration lets
# jobs that ask for `--gres=gpu:1` be scheduled, so the GPU rules of the profile go through the
# same submission path as on a GPU cluster (see README, "Running on a Slurm cluster").
FAKE_GPUS="${META_OOD_SLURM_GPUS:-2}"
# Memory the node declares, in MB: at least this much, even when the machine has less (a test
# node oversubscribes memory so that the profile's paper-size requests, up to 32 GB per job for
# two jobs at a time, can be scheduled; Slurm enforces no memory limit here, task/none).
DECLARED_MB="${META_OOD_SLURM_MEMORY_MB:-65536}"
for _pair in FAKE_GPUS:META_OOD_SLURM_GPUS DECLARED_MB:META_OOD_SLURM_MEMORY_MB WAIT_S:META_OOD_SLURM_WAIT; do
  _var="${_pair%%:*}"
  case "${!_var}" in
    '' | *[!0-9]*)
      echo "[slurm-cluster] ERROR: ${_pair#*:} must be a whole number, got '${!_var}'" >&2
      exit 2
      ;;
  esac
done
CONF_DIR="/etc/slurm"
CONF="$CONF_DIR/slurm.conf"
GRES_CONF="$CONF_DIR/gres.conf"
MARKER="# meta-ood test cluster: written by ci/slurm-cluster.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)
MUNGE_KEY="/etc/munge/munge.key"
MUNGE_RUN="/run/munge"
# Every call to a Slurm client is bounded, so a dead controller gives an error, never a hang.
CLIENT_TIMEOUT=20

usage() {
  cat <<EOF
Usage: $PROG start|stop|status|check

A single-node Slurm cluster with munge on localhost, for testing the pipeline's Slurm profile.

  start    Install slurmctld, slurmd, slurm-client and munge with apt-get if they are missing,
           write $CONF (and $GRES_CONF), start munged, slurmctld and slurmd,
           and wait until the node is idle. Does nothing more when the cluster already runs.
  stop [--keep-config]
           Cancel the jobs left in the queue, stop the daemons started by 'start' (by their pid
           files) and remove the configuration files written by 'start' (with a slurm.conf
           whose controller is down every Slurm command, and every Snakemake start, waits about
           9 s; --keep-config keeps them). Does nothing more when nothing runs.
  status   Print the state of munge, slurmctld, slurmd and the node. Exit status 0 when the node
           accepts jobs, 3 when the cluster is not (fully) running.
  check    Whether this machine can run the test cluster (root; Slurm installed or apt-get
           available). Prints the reason and exits 1 when it cannot.

start and stop need root and a Debian-like system with apt-get (for the install); status does not.

Environment:
  META_OOD_SLURM_DIR        run folder for state, spool, logs and pid files (default /tmp/meta-ood-slurm)
  META_OOD_SLURM_WAIT       seconds to wait for the node to become idle (default 60)
  META_OOD_SLURM_PARTITION  name of the single partition (default debug)
  META_OOD_SLURM_GPUS       stand-in GPUs declared on the node (default 2; 0 = none)
  META_OOD_SLURM_MEMORY_MB  memory the node declares at least, in MB (default 65536)

The node declares stand-in GPUs (gres 'gpu', device files linked to /dev/null) and at least
META_OOD_SLURM_MEMORY_MB of memory, so that the GPU and memory requests of profiles/slurm can be
scheduled on a small machine without GPUs. It is a test node: nothing enforces these limits.
EOF
}

log() { echo "[slurm-cluster] $*"; }
die() {
  echo "[slurm-cluster] ERROR: $*" >&2
  exit 1
}

require_root() {
  if [ "$(id -u)" != "0" ]; then
    die "'$PROG $1' must run as root (it installs packages, writes $CONF_DIR and starts system daemons); current uid is $(id -u). Run it with sudo or as root."
  fi
}

# Alive = the pid exists, is not a zombie and runs the expected program (pid files can be stale).
pid_alive() {
  local pid="$1" comm="$2" state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [ "$state" != "Z" ] && [ "$state" != "X" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

pid_from() {
  [ -s "$1" ] && tr -dc '0-9' <"$1" || true
}

daemon_alive() {
  # daemon_alive <pidfile> <program>
  pid_alive "$(pid_from "$1")" "$2"
}

node_name() {
  hostname -s 2>/dev/null || hostname
}

missing_commands() {
  local c missing=()
  for c in slurmctld slurmd sinfo sbatch squeue scancel scontrol munged munge unmunge; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("$c")
  done
  echo "${missing[*]}"
}

ensure_packages() {
  local missing
  missing="$(missing_commands)"
  [ -z "$missing" ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    die "Slurm/munge programs missing ($missing) and apt-get not found: this script installs the Debian packages ${PACKAGES[*]} and needs a Debian-like system. Install them by hand, or run the Slurm test on Debian/Ubuntu."
  fi
  log "installing ${PACKAGES[*]} with apt-get (missing: $missing)"
  local apt_log="$RUN_DIR/apt.log"
  mkdir -p "$RUN_DIR"
  # policy-rc.d-less containers start nothing; on a systemd host the packaged units fail
  # harmlessly for lack of a configuration and are left alone by this script.
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}"; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2 || true
    die "apt-get could not install ${PACKAGES[*]} (full output in $apt_log)."
  fi
  missing="$(missing_commands)"
  [ -z "$missing" ] || die "still missing after the install: $missing"
}

detected_line() {
  slurmd -C | head -n 1
}

# Memory for slurm.conf: 5% (at least 256 MB) below what slurmd detects, because a node that
# reports less than its configured memory is marked invalid; raised to DECLARED_MB when that is
# more (then slurm.conf gets SlurmdParameters=config_overrides).
node_memory() {
  local mem lower
  mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$(detected_line)")"
  [ -n "$mem" ] || die "could not read RealMemory from 'slurmd -C': $(detected_line)"
  lower=$((mem * 95 / 100))
  [ $((mem - lower)) -ge 256 ] || lower=$((mem - 256))
  [ "$lower" -gt 0 ] || lower=1
  if [ "$DECLARED_MB" -gt "$lower" ]; then echo "$DECLARED_MB"; else echo "$lower"; fi
}

# The node's hardware as slurmd detects it (sockets, cores, threads), with our RealMemory.
hardware_line() {
  sed -e 's/^NodeName=[^ ]* *//' -e "s/RealMemory=[0-9]*/RealMemory=$1/" <<<"$(detected_line)"
}

render_config() {
  local node="$1" gres_types="" node_gres="" overrides="" memory
  memory="$(node_memory)"
  if [ "$FAKE_GPUS" -gt 0 ]; then
    gres_types="GresTypes=gpu"
    node_gres="Gres=gpu:$FAKE_GPUS"
  fi
  if [ "$memory" = "$DECLARED_MB" ]; then
    # Trust slurm.conf over what slurmd measures (memory declared above the machine's).
    overrides="SlurmdParameters=config_overrides"
  fi
  cat <<EOF
$MARKER
# Single node on localhost; state, spool, logs and pid files under $RUN_DIR.
ClusterName=metaood
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Finished jobs stay visible to squeue this long; the Slurm profile reads job states with squeue.
MinJobAge=300
# Jobs without --mem get 1 GB per CPU, not the whole node.
DefMemPerCPU=1024
MailProg=/bin/true
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
StateSaveLocation=$RUN_DIR/state
SlurmdSpoolDir=$RUN_DIR/spool
SlurmctldLogFile=$RUN_DIR/log/slurmctld.log
SlurmdLogFile=$RUN_DIR/log/slurmd.log
$gres_types
$overrides
NodeName=$node NodeAddr=127.0.0.1 $(hardware_line "$memory") $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# Slurm drops GPUs without device files, so each stand-in GPU is a link to /dev/null: the
# node has no GPU; the declaration only makes GPU requests schedulable.
fake_gpu_files() {
  local dir="$RUN_DIR/fake-gpu" i
  mkdir -p "$dir"
  rm -f "$dir"/gpu*
  for ((i = 0; i < FAKE_GPUS; i++)); do
    ln -s /dev/null "$dir/gpu$i"
  done
}

render_gres() {
  local node="$1"
  cat <<EOF
$MARKER
# Stand-in GPUs (links to /dev/null) for a node without GPUs, see $PROG.
NodeName=$node Name=gpu File=$RUN_DIR/fake-gpu/gpu[0-$((FAKE_GPUS - 1))]
EOF
}

# Installs $2 as $1 when different; refuses to replace a file this script did not write.
# Prints "changed" when the file was (re)written.
install_file() {
  local target="$1" content="$2"
  if [ -e "$target" ] && ! grep -qxF "$MARKER" "$target"; then
    die "$target exists and was not written by $PROG; refusing to replace it (this machine may belong to a real cluster). Move it away to use the test cluster."
  fi
  if [ -e "$target" ] && [ "$(cat "$target")" = "$content" ]; then
    return 0
  fi
  printf '%s\n' "$content" >"$target.tmp.$$"
  chmod 644 "$target.tmp.$$"
  mv -f "$target.tmp.$$" "$target"
  echo changed
}

configure() {
  local node changed=""
  node="$(node_name)"
  mkdir -p "$CONF_DIR" "$RUN_DIR/state" "$RUN_DIR/spool" "$RUN_DIR/log"
  chown slurm:slurm "$RUN_DIR/state" "$RUN_DIR/log"
  chmod 755 "$RUN_DIR" "$RUN_DIR/state" "$RUN_DIR/spool" "$RUN_DIR/log"
  changed+="$(install_file "$CONF" "$(render_config "$node")")"
  if [ "$FAKE_GPUS" -gt 0 ]; then
    fake_gpu_files
    changed+="$(install_file "$GRES_CONF" "$(render_gres "$node")")"
  elif [ -e "$GRES_CONF" ] && grep -qxF "$MARKER" "$GRES_CONF"; then
    rm -f "$GRES_CONF"
    changed+="changed"
  fi
  [ -z "$changed" ] || echo changed
}

munge_works() {
  timeout 10 munge -n 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1
}

start_munge() {
  if munge_works; then
    log "munge: running"
    return 0
  fi
  if [ ! -s "$MUNGE_KEY" ]; then
    log "munge: creating $MUNGE_KEY"
    mkdir -p "$(dirname "$MUNGE_KEY")"
    if command -v mungekey >/dev/null 2>&1 || [ -x /usr/sbin/mungekey ]; then
      PATH="$PATH:/usr/sbin" mungekey --create --keyfile="$MUNGE_KEY" --force
    else
      dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
  fi
  chown munge:munge "$MUNGE_KEY" "$(dirname "$MUNGE_KEY")"
  chmod 400 "$MUNGE_KEY"
  chmod 700 "$(dirname "$MUNGE_KEY")"
  mkdir -p "$MUNGE_RUN" /var/log/munge /var/lib/munge
  chown munge:munge "$MUNGE_RUN" /var/log/munge /var/lib/munge
  chmod 755 "$MUNGE_RUN"
  # A stale socket or pid file from an earlier, killed munged blocks a new one.
  if ! daemon_alive "$MUNGE_RUN/munged.pid" munged; then
    rm -f "$MUNGE_RUN/munged.pid" "$MUNGE_RUN"/munge.socket.2*
  fi
  log "munge: starting munged"
  runuser -u munge -- "$(command -v munged || echo /usr/sbin/munged)" \
    || die "munged did not start (see /var/log/munge/munged.log)"
  local i
  for i in $(seq 1 50); do
    munge_works && break
    sleep 0.2
  done
  munge_works || die "munged started but 'munge -n | unmunge' fails (see /var/log/munge/munged.log)"
  # Remember that this script started it, so that stop stops it (and only then).
  pid_from "$MUNGE_RUN/munged.pid" >"$RUN_DIR/munged.pid"
}

start_daemon() {
  # start_daemon <name> <pidfile> <command...>
  local name="$1" pidfile="$2"
  shift 2
  if daemon_alive "$pidfile" "$name"; then
    log "$name: running (pid $(pid_from "$pidfile"))"
    return 0
  fi
  rm -f "$pidfile"
  log "$name: starting"
  if ! "$@" >>"$RUN_DIR/log/$name.start.log" 2>&1; then
    tail -n 20 "$RUN_DIR/log/$name.log" >&2 2>/dev/null || true
    die "$name did not start (see $RUN_DIR/log/$name.log and $RUN_DIR/log/$name.start.log)"
  fi
  local i
  for i in $(seq 1 50); do
    daemon_alive "$pidfile" "$name" && return 0
    sleep 0.2
  done
  tail -n 20 "$RUN_DIR/log/$name.log" >&2 2>/dev/null || true
  die "$name exited right after its start (see $RUN_DIR/log/$name.log)"
}

node_state() {
  timeout "$CLIENT_TIMEOUT" sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n 1 || true
}

wait_for_node() {
  local deadline=$((SECONDS + WAIT_S)) state=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(node_state)"
    case "$state" in
      idle | mixed | allocated | completing)
        log "node $(node_name): $state"
        return 0
        ;;
      inval* | drain*)
        # Terminal: the node's configuration does not match what slurmd reports.
        break
        ;;
    esac
    sleep 1
  done
  echo "--- sinfo -R" >&2
  timeout "$CLIENT_TIMEOUT" sinfo -R >&2 2>&1 || true
  echo "--- $RUN_DIR/log/slurmctld.log (tail)" >&2
  tail -n 15 "$RUN_DIR/log/slurmctld.log" >&2 2>/dev/null || true
  echo "--- $RUN_DIR/log/slurmd.log (tail)" >&2
  tail -n 15 "$RUN_DIR/log/slurmd.log" >&2 2>/dev/null || true
  die "node $(node_name) not idle after ${WAIT_S}s (last state: '${state:-no answer from slurmctld}')"
}

cmd_start() {
  require_root start
  ensure_packages
  id slurm >/dev/null 2>&1 || die "user 'slurm' missing: the slurm packages did not install correctly"
  id munge >/dev/null 2>&1 || die "user 'munge' missing: the munge package did not install correctly"
  local changed
  changed="$(configure)"
  if [ -n "$changed" ] && { daemon_alive "$RUN_DIR/slurmctld.pid" slurmctld || daemon_alive "$RUN_DIR/slurmd.pid" slurmd; }; then
    log "configuration changed: restarting the daemons"
    stop_daemons
  fi
  start_munge
  # -c: a clean start, without jobs left from an earlier run of the test cluster.
  start_daemon slurmctld "$RUN_DIR/slurmctld.pid" slurmctld -c
  start_daemon slurmd "$RUN_DIR/slurmd.pid" slurmd -N "$(node_name)"
  wait_for_node
  log "ready: partition '$PARTITION', node $(node_name), config $CONF, logs $RUN_DIR/log"
}

stop_pid() {
  # stop_pid <name> <pidfile>: TERM, wait, KILL; a zombie counts as stopped.
  local name="$1" pidfile="$2" pid i
  pid="$(pid_from "$pidfile")"
  if ! pid_alive "$pid" "$name"; then
    rm -f "$pidfile"
    return 0
  fi
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 75); do
    pid_alive "$pid" "$name" || break
    sleep 0.2
  done
  if pid_alive "$pid" "$name"; then
    log "$name: still running after 15 s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  pid_alive "$pid" "$name" && die "$name (pid $pid) does not stop"
  rm -f "$pidfile"
}

# slurmstepd processes of this cluster (they keep $RUN_DIR/log/slurmd.log open) and everything
# they started: left behind when jobs could not be cancelled (controller already gone).
leftover_steps() {
  local d pid steps=()
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = "slurmstepd" ] || continue
    ls -l "$d/fd" 2>/dev/null | grep -qF -- "$RUN_DIR/" || continue
    pid="${d#/proc/}"
    pid_alive "$pid" slurmstepd && steps+=("$pid")
  done
  [ "${#steps[@]}" -gt 0 ] || return 0
  # The steps and their descendants, from the parent links of all processes.
  ps -eo pid=,ppid= | awk -v roots="${steps[*]}" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2 }
    END {
      for (p in parent) {
        q = p
        while (q in parent && !(q in keep) && q > 1) q = parent[q]
        if (q in keep) print p
      }
    }'
}

kill_leftover_steps() {
  local pids pid i
  pids="$(leftover_steps)"
  [ -n "$pids" ] || return 0
  log "killing leftover job processes: $(tr '\n' ' ' <<<"$pids")"
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 1 25); do
    pids="$(for pid in $pids; do [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] && echo "$pid"; done || true)"
    [ -n "$pids" ] || return 0
    sleep 0.2
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
}

stop_daemons() {
  if daemon_alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    local jobs
    jobs="$(timeout "$CLIENT_TIMEOUT" squeue -h -o '%i' 2>/dev/null | tr '\n' ' ' || true)"
    if [ -n "${jobs// /}" ]; then
      log "cancelling leftover jobs: $jobs"
      # shellcheck disable=SC2086
      timeout "$CLIENT_TIMEOUT" scancel $jobs 2>/dev/null || true
      # Let slurmd end the job steps before it goes.
      local i
      for i in $(seq 1 20); do
        [ -z "$(timeout "$CLIENT_TIMEOUT" squeue -h -t running,completing -o '%i' 2>/dev/null || true)" ] && break
        sleep 0.5
      done
    fi
  fi
  stop_pid slurmd "$RUN_DIR/slurmd.pid"
  kill_leftover_steps
  stop_pid slurmctld "$RUN_DIR/slurmctld.pid"
}

# Removes the configuration files this script wrote; prints their names.
remove_config() {
  local f
  for f in "$CONF" "$GRES_CONF"; do
    if [ -e "$f" ] && grep -qxF "$MARKER" "$f"; then
      rm -f "$f"
      echo "$f"
    fi
  done
}

cmd_stop() {
  local keep_config=0
  case "${1:-}" in
    --keep-config) keep_config=1 ;;
    "") ;;
    *) die "unknown option for stop: '$1' (only --keep-config)" ;;
  esac
  require_root stop
  stop_daemons
  # munged only when this script started it (a system munge serves other users too).
  if [ -s "$RUN_DIR/munged.pid" ]; then
    stop_pid munged "$RUN_DIR/munged.pid"
  fi
  # With a slurm.conf whose controller is gone, every Slurm client command retries for about
  # 9 s, and so does every start of Snakemake (the Slurm plugin runs scontrol when imported).
  # start writes the files again.
  local removed=""
  if [ "$keep_config" = 0 ]; then
    removed="$(remove_config | tr '\n' ' ')"
  fi
  log "stopped${removed:+; removed $removed}"
}

# Whether this machine can run the test cluster; prints the reason when it cannot.
cmd_check() {
  if [ "$(id -u)" != "0" ]; then
    echo "not root (uid $(id -u)): the test cluster installs packages and starts system daemons"
    return 1
  fi
  local missing
  missing="$(missing_commands)"
  if [ -n "$missing" ] && ! command -v apt-get >/dev/null 2>&1; then
    echo "Slurm/munge not installed (missing: $missing) and no apt-get to install them"
    return 1
  fi
  if [ -n "$missing" ]; then
    echo "ok: root; ${PACKAGES[*]} will be installed with apt-get"
  else
    echo "ok: root; Slurm and munge installed"
  fi
}

cmd_status() {
  local rc=0 pid
  if munge_works; then log "munge:     running"; else log "munge:     not running"; rc=3; fi
  for name in slurmctld slurmd; do
    pid="$(pid_from "$RUN_DIR/$name.pid")"
    if pid_alive "$pid" "$name"; then
      log "$(printf '%-10s running (pid %s)' "$name:" "$pid")"
    else
      log "$(printf '%-10s not running' "$name:")"
      rc=3
    fi
  done
  if [ "$rc" -eq 0 ]; then
    local state
    state="$(node_state)"
    log "node:      $(node_name) ${state:-no answer from slurmctld}"
    case "$state" in
      idle | mixed | allocated | completing) ;;
      *) rc=3 ;;
    esac
  fi
  return "$rc"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop "${2:-}" ;;
  status) cmd_status ;;
  check) cmd_check ;;
  -h | --help | help) usage ;;
  "")
    usage >&2
    exit 2
    ;;
  *)
    echo "$PROG: unknown command '$1'" >&2
    usage >&2
    exit 2
    ;;
esac
