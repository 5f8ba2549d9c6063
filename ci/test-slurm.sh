#!/usr/bin/env bash
# `make test-slurm`: the pipeline's Slurm profile against a real single-node Slurm cluster.
#
#  1. start the test cluster (ci/slurm-cluster.sh start; stopped again on exit, whatever happens)
#  2. at the same time: the smoke config through `--profile profiles/slurm --profile profiles/slurm-ci`;
#     the same config locally (--cores 2 --max-threads 1) in another folder; a deliberately failing
#     rule through the same profiles; a job submitted while the Slurm controller is down
#  3. check that every job of the Slurm run was a Slurm job (submission line in the log, COMPLETED
#     in squeue, a Slurm log file) and got the profile's memory, time limit and GPU request
#  4. check that the tables of both runs are byte-for-byte equal
#  5. the failing rule must fail its run with Slurm's state (FAILED) in the message, the run with
#     the controller down must end with a clear error, not hang
#  6. stop the cluster and check that none of its daemons is left
# Prints the time of each phase and of each of the four runs, also when a check fails or the test is
# interrupted (the phase under way is marked unfinished). Every Snakemake and Slurm call runs under a
# timeout: safety limits against hangs, far above the usual times. Needs root and apt-get (or Slurm installed):
# `ci/slurm-cluster.sh check` says whether this machine can run it.
set -euo pipefail
shopt -s inherit_errexit

usage() {
  cat <<EOF
Usage: bash ci/test-slurm.sh [--keep]

Runs the smoke config of the pipeline through the Slurm profile on a single-node Slurm cluster
started for the test (see ci/slurm-cluster.sh), compares its tables with a local run, checks
that a failing job and an unreachable controller make a run fail with a clear message, and stops
the cluster. Prints the time of each phase. Exit status 0 when every check passed.

  --keep    keep the work folder (runs, logs) instead of deleting it

Environment:
  META_OOD_TEST_SLURM_TIMEOUT   seconds allowed for the Slurm run and for the local run of the config
                                (default 1800: a safety limit against hangs; both take about 3 minutes
                                on 2 idle cores, and much longer on a loaded machine)
  META_OOD_TEST_SLURM_TARGETS   targets of both runs, space-separated (default: the workflow's default target)
  META_OOD_TEST_SLURM_CONFIG    config file of both runs, used as is (default: config/smoke.yaml
                                with one fine-tuning epoch, no per-epoch evaluation, one threshold and
                                LostAndFound as the only OoD test set)
EOF
}

KEEP=0
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --keep) KEEP=1 ;;
    *) echo "test-slurm: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
RUN_TIMEOUT="${META_OOD_TEST_SLURM_TIMEOUT:-1800}"
case "$RUN_TIMEOUT" in
  '' | *[!0-9]* | 0) echo "test-slurm: META_OOD_TEST_SLURM_TIMEOUT must be a positive number of seconds, not '$RUN_TIMEOUT'" >&2; exit 2 ;;
esac
read -r -a TARGETS <<<"${META_OOD_TEST_SLURM_TARGETS:-}"
PROFILES=(--profile profiles/slurm --profile profiles/slurm-ci)

say() { echo "[test-slurm] $*"; }
fail() {
  echo "[test-slurm] FAILED: $*" >&2
  exit 1
}

if [ ! -x "$REPO/.venv/bin/snakemake" ]; then
  fail "no .venv with snakemake in $REPO: create it first (make test installs it)"
fi
# Jobs inherit this environment (sbatch --export=ALL), so they run the venv's python and snakemake.
# shellcheck disable=SC1091
. "$REPO/.venv/bin/activate"

# The test's own output, restored in cleanup: a command with a redirection that fails under `set -e`
# would otherwise leave stdout pointing into its file, and the timings would go there.
exec 3>&1 4>&2
WORK="$(mktemp -d /tmp/meta-ood-test-slurm.XXXXXX)"
CLUSTER_UP=0
declare -a PHASES=()
declare -a BG_PIDS=()
T_START=$SECONDS
PHASE=""    # the phase under way (its time is printed as unfinished when the test stops in it)
PHASE_T0=0

# phase_line <name> <seconds> [note]: one line of the timings table.
phase_line() {
  printf '%-30s %5d s%s' "$1" "$2" "${3:+  ($3)}"
}

cleanup() {
  local rc=$?
  local pid t_stop
  exec 1>&3 2>&4
  if [ -n "$PHASE" ]; then
    PHASES+=("$(phase_line "$PHASE" $((SECONDS - PHASE_T0)) "unfinished: the test stopped here")")
  fi
  for pid in "${BG_PIDS[@]}"; do
    # The subshell's child is `timeout`, which passes the signal on to Snakemake.
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  if [ "$CLUSTER_UP" = 1 ]; then
    t_stop=$SECONDS
    timeout -k 10 120 bash "$REPO/ci/slurm-cluster.sh" stop || echo "[test-slurm] warning: stopping the cluster failed" >&2
    PHASES+=("$(phase_line "stop cluster (clean-up)" $((SECONDS - t_stop)))")
  fi
  if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "[test-slurm] work folder kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  PHASES+=("$(phase_line "total" $((SECONDS - T_START)) "exit status $rc")")
  echo "[test-slurm] phase timings:"
  printf '  %s\n' "${PHASES[@]}"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# begin <name>: a phase starts now; record: the phase begun last is done (its time goes to the table).
begin() {
  PHASE="$1"
  PHASE_T0=$SECONDS
  say "phase '$PHASE' ..."
}
record() {
  PHASES+=("$(phase_line "$PHASE" $((SECONDS - PHASE_T0)))")
  say "phase '$PHASE' done after $((SECONDS - PHASE_T0)) s"
  PHASE=""
}

# run_time <NAME> <label> <limit>: the time of one of the parallel runs, printed now and kept for the table.
run_time() {
  local rc_var="$1_RC" s_var="$1_S"
  local note="exit status ${!rc_var}, limit $3 s"
  case "${!rc_var}" in
    124 | 137) note="timed out: killed after $3 s" ;;
    999) note="no exit status recorded" ;;
  esac
  PHASES+=("$(phase_line "  $2" "${!s_var}" "$note")")
  say "$2: ended after ${!s_var} s ($note)"
}

# Runs snakemake under a timeout, output to a log; sets RC (124/137 = timed out).
smk() {
  # smk <log> <timeout> <args...>
  local log="$1" limit="$2"
  shift 2
  RC=0
  timeout -k 10 "$limit" snakemake "$@" >"$log" 2>&1 || RC=$?
}

# read_rc <NAME> <file>: NAME_RC and NAME_S from "<exit status> <seconds>" (999 when missing).
read_rc() {
  local rc=999 secs=0
  if [ -s "$2" ]; then read -r rc secs <"$2"; fi
  printf -v "$1_RC" '%s' "$rc"
  printf -v "$1_S" '%s' "$secs"
}

show_tail() {
  echo "----- last lines of $1" >&2
  tail -n "${2:-40}" "$1" >&2 || true
  echo "-----" >&2
}

# ---------------------------------------------------------------------------------------------
say "work folder $WORK, $(nproc) cores, $(python -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("snakemake", "snakemake-executor-plugin-slurm")))')"

begin "start cluster"
CLUSTER_UP=1
timeout -k 10 300 bash "$REPO/ci/slurm-cluster.sh" start || fail "the test cluster did not start (see above)"
record

# --- the smoke config, identical for both runs -----------------------------------------------
begin "prepare"
mkdir -p "$WORK/slurm" "$WORK/local" "$WORK/failing" "$WORK/down"
if [ -n "${META_OOD_TEST_SLURM_CONFIG:-}" ]; then
  [ -f "$META_OOD_TEST_SLURM_CONFIG" ] || fail "config file $META_OOD_TEST_SLURM_CONFIG not found"
  say "config: $META_OOD_TEST_SLURM_CONFIG (as is)"
  cp "$META_OOD_TEST_SLURM_CONFIG" "$WORK/config.yaml"
else
  [ -f "$REPO/config/smoke.yaml" ] || fail "config/smoke.yaml not found"
  # The smoke config with a smaller DAG: every level of the DAG costs a round of status checks
  # (about 12 s) and every job two Snakemake starts, so one fine-tuning epoch, no per-epoch
  # evaluation, one threshold and one OoD test set (plus Cityscapes val for the mIoU) keep the
  # test within its time budget while every stage and every table still runs.
  python - "$REPO/config/smoke.yaml" "$WORK/config.yaml" <<'PY' || fail "could not derive the test config from config/smoke.yaml"
import sys

import yaml

sys.path.insert(0, "src")
from meta_ood.config import read_config_file  # as the workflow reads it: 1e-3 is a number

config = read_config_file(sys.argv[1]).data
evaluation = config.setdefault("evaluation", {})
evaluation["every_epoch"] = False
evaluation["ood_epoch"] = None
thresholds = sorted(evaluation.get("thresholds") or [0.5])
evaluation["thresholds"] = [0.5 if 0.5 in thresholds else thresholds[len(thresholds) // 2]]
evaluation["ood_datasets"] = ["lostandfound"]
evaluation["segment_datasets"] = ["lostandfound"]
evaluation["miou"] = False
for model in (config.get("models") or {}).values():
    model.setdefault("finetune", {})["epochs"] = 1
with open(sys.argv[2], "w") as f:
    f.write("# config/smoke.yaml, cut to a shallower DAG by ci/test-slurm.sh\n")
    yaml.safe_dump(config, f, sort_keys=False)
PY
  say "config: config/smoke.yaml with one fine-tuning epoch, no per-epoch evaluation, one threshold, LostAndFound only, no mIoU"
fi
# The run name as the workflow resolves it (the schema's default when the file has none); a config the
# workflow would refuse stops the test here, with the workflow's messages.
RUN_NAME="$(
  python - "$WORK/config.yaml" <<'PY'
import sys

sys.path.insert(0, "src")
from meta_ood.config import load_config
from meta_ood.errors import InputError

try:
    print(load_config(sys.argv[1])["run"])
except InputError as exc:
    sys.exit(str(exc))
PY
)" || fail "the config of the runs is not valid (see above)"
# Each run reads its own copy of the config (--configfile). The local run processes every store in
# one job; the Slurm run splits softmax dumps and segment metrics into 2 image shards each, so equal
# tables also show that sharding changes nothing.
cp "$WORK/config.yaml" "$WORK/local/config.yaml"
python - "$WORK/config.yaml" "$WORK/slurm/config.yaml" <<'PY' || fail "could not write the sharded Slurm config"
import sys

import yaml

sys.path.insert(0, "src")
from meta_ood.config import read_config_file  # as the workflow reads it: 1e-3 is a number

config = read_config_file(sys.argv[1]).data
config.setdefault("inference", {})["shards"] = 2
config.setdefault("segments", {})["shards"] = 2
with open(sys.argv[2], "w") as f:
    f.write("# the test config with softmax dumps and segment metrics split into 2 image shards\n")
    yaml.safe_dump(config, f, sort_keys=False)
PY
say "Slurm run: 2 image shards per softmax dump and per segment computation; local run: 1"
record

# --- Slurm run, local reference run, failing job and cluster-down run, at the same time ------
# The Slurm run spends much of its time waiting between status checks, so the local run, the
# failing job (one more Slurm job) and the cluster-down run fit into its gaps.
say "Slurm run of the smoke config (timeout ${RUN_TIMEOUT}s), local run, failing job and cluster-down run in parallel"
begin "runs (wall, together)"
(
  t0=$SECONDS
  smk "$WORK/slurm.log" "$RUN_TIMEOUT" "${TARGETS[@]}" "${PROFILES[@]}" \
    --snakefile "$REPO/Snakefile" --directory "$WORK/slurm" --configfile "$WORK/slurm/config.yaml"
  echo "$RC $((SECONDS - t0))" >"$WORK/slurm.rc"
) &
BG_PIDS+=($!)
SLURM_PID=$!
(
  t0=$SECONDS
  smk "$WORK/local.log" "$RUN_TIMEOUT" "${TARGETS[@]}" --cores 2 --max-threads 1 \
    --snakefile "$REPO/Snakefile" --directory "$WORK/local" --configfile "$WORK/local/config.yaml"
  echo "$RC $((SECONDS - t0))" >"$WORK/local.rc"
) &
BG_PIDS+=($!)
LOCAL_PID=$!
FAILING_LIMIT=120
cat >"$WORK/failing/Snakefile" <<'EOF'
# One rule that always fails: the Slurm run must end non-zero with Slurm's state in the message.
rule deliberately_failing:
    output:
        "never.txt",
    shell:
        "echo 'this job fails on purpose' >&2; exit 1"
EOF
(
  t0=$SECONDS
  smk "$WORK/failing.log" "$FAILING_LIMIT" "${PROFILES[@]}" --snakefile "$WORK/failing/Snakefile" --directory "$WORK/failing"
  echo "$RC $((SECONDS - t0))" >"$WORK/failing.rc"
) &
BG_PIDS+=($!)
FAILING_PID=$!

# Cluster down: Slurm's clients configured for a controller that does not run (this cluster's
# slurm.conf with the controller on a port where nothing listens), so the check runs alongside.
cat >"$WORK/down/Snakefile" <<'EOF'
# A trivial job, submitted while the Slurm controller cannot be reached.
rule while_cluster_down:
    output:
        "done.txt",
    shell:
        "touch {output}"
EOF
DEAD_PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
[ -r /etc/slurm/slurm.conf ] || fail "/etc/slurm/slurm.conf of the test cluster is missing (did ci/slurm-cluster.sh start write it?)"
{ cat /etc/slurm/slurm.conf; echo "SlurmctldPort=$DEAD_PORT"; } >"$WORK/down/slurm.conf"
DOWN_LIMIT=90
(
  t0=$SECONDS
  export SLURM_CONF="$WORK/down/slurm.conf"
  smk "$WORK/down.log" "$DOWN_LIMIT" "${PROFILES[@]}" --snakefile "$WORK/down/Snakefile" --directory "$WORK/down"
  echo "$RC $((SECONDS - t0))" >"$WORK/down.rc"
) &
BG_PIDS+=($!)
DOWN_PID=$!

wait "$DOWN_PID" || true
read_rc DOWN "$WORK/down.rc"
run_time DOWN "cluster-down run" "$DOWN_LIMIT"
wait "$FAILING_PID" || true
read_rc FAILING "$WORK/failing.rc"
run_time FAILING "failing job" "$FAILING_LIMIT"
wait "$LOCAL_PID" || true
read_rc LOCAL "$WORK/local.rc"
run_time LOCAL "local run" "$RUN_TIMEOUT"
wait "$SLURM_PID" || true
read_rc SLURM "$WORK/slurm.rc"
run_time SLURM "Slurm run" "$RUN_TIMEOUT"
BG_PIDS=()
record

# --- checks of the four runs -----------------------------------------------------------------
begin "checks"
case "$SLURM_RC" in
  0) ;;
  124 | 137) show_tail "$WORK/slurm.log"; fail "the Slurm run of the smoke config did not finish within ${RUN_TIMEOUT}s" ;;
  *) show_tail "$WORK/slurm.log"; fail "the Slurm run of the smoke config failed (exit status $SLURM_RC)" ;;
esac
case "$LOCAL_RC" in
  0) ;;
  124 | 137) show_tail "$WORK/local.log"; fail "the local run of the smoke config did not finish within ${RUN_TIMEOUT}s" ;;
  *) show_tail "$WORK/local.log"; fail "the local run of the smoke config failed (exit status $LOCAL_RC)" ;;
esac
say "Slurm run: finished in ${SLURM_S}s; local run: ${LOCAL_S}s"

# Every job through Slurm, with the resources of the profile.
python - "$WORK/slurm.log" "$WORK/slurm" profiles/slurm/config.yaml <<'PY' || fail "the jobs of the Slurm run do not match the profile (see above)"
import re
import subprocess
import sys
from pathlib import Path

import yaml

log_path, workdir, profile_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
log = Path(log_path).read_text()
profile = yaml.safe_load(open(profile_path))
defaults = profile.get("default-resources") or {}
per_rule = profile.get("set-resources") or {}
problems = []

run_id = re.search(r"SLURM run ID: (\S+)", log)
if not run_id:
    sys.exit("no 'SLURM run ID' in the Snakemake log: was the slurm executor used?")
run_id = run_id.group(1)

# Job blocks: "rule <name>:" (or "localrule <name>:") followed by indented fields.
jobs = {}
for m in re.finditer(r"^(local)?rule (\w+):\n((?:[ \t]+.*\n)+)", log, re.M):
    fields = dict(re.findall(r"^\s+(\w+): (.*)$", m.group(3), re.M))
    if "jobid" not in fields:
        continue
    resources = {}
    for item in fields.get("resources", "").split(", "):
        key, _, value = item.partition("=")
        resources[key.strip()] = value.strip()
    jobs[fields["jobid"]] = {"rule": m.group(2), "local": bool(m.group(1)), "resources": resources}

submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
finished = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", log)
if not finished:
    sys.exit("the Slurm run finished no job (nothing to do?)")
remote = [(jid, rule) for jid, rule in finished if not jobs.get(jid, {}).get("local")]
for jid, rule in remote:
    if jid not in submitted:
        problems.append(f"job {jid} (rule {rule}) finished without a Slurm submission")
local = sorted({rule for jid, rule in finished if jobs.get(jid, {}).get("local")})

# What Slurm itself recorded for these jobs (squeue keeps finished jobs for MinJobAge seconds).
out = subprocess.run(
    ["squeue", "--states=all", "--noheader", "--name", run_id, "--format=%i|%k|%T|%m|%b|%l"],
    capture_output=True, text=True, timeout=30,
)
if out.returncode != 0:
    sys.exit(f"squeue failed: {out.stderr.strip()}")
slurm = {}
for line in out.stdout.splitlines():
    jobid, comment, state, mem, tres, limit = line.strip().split("|")
    slurm[jobid] = {"comment": comment, "state": state, "mem": mem, "tres": tres, "limit": limit}


def mem_mb(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text)
    if not m:
        return None
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return round(float(m.group(1)) * factor)


def minutes(text):
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return days * 1440 + h * 60 + m + (1 if s else 0)


def expected(rule, key):
    value = (per_rule.get(rule) or {}).get(key, defaults.get(key))
    return None if value is None else str(value)


n_gpu = 0
for jid, rule in remote:
    sid = submitted.get(jid)
    if sid is None:
        continue
    info = slurm.get(sid)
    if info is None:
        problems.append(f"rule {rule}: Slurm job {sid} unknown to squeue")
        continue
    if info["state"] != "COMPLETED":
        problems.append(f"rule {rule}: Slurm job {sid} is {info['state']}, not COMPLETED")
    if not info["comment"].startswith(f"rule_{rule}"):
        problems.append(f"Slurm job {sid}: comment {info['comment']!r} does not name rule {rule}")
    logs = list((workdir / ".snakemake" / "slurm_logs").glob(f"rule_{rule}/**/{sid}.log"))
    if not logs:
        problems.append(f"rule {rule}: no Slurm log {sid}.log under .snakemake/slurm_logs/rule_{rule}/")
    smk = jobs.get(jid, {}).get("resources", {})
    for key in ("mem_mb", "runtime", "gres"):
        want = expected(rule, key)
        if want is not None and smk.get(key) != want:
            problems.append(f"rule {rule}: Snakemake resolved {key}={smk.get(key)}, profile says {want}")
    if smk.get("mem_mb") and mem_mb(info["mem"]) != int(smk["mem_mb"]):
        problems.append(f"rule {rule}: Slurm job {sid} has memory {info['mem']}, the job asked for {smk['mem_mb']} MB")
    if smk.get("runtime") and minutes(info["limit"]) != int(smk["runtime"]):
        problems.append(f"rule {rule}: Slurm job {sid} has time limit {info['limit']}, the job asked for {smk['runtime']} min")
    gres = smk.get("gres")
    if gres:
        n_gpu += 1
        if info["tres"] != f"gres:{gres}":
            problems.append(f"rule {rule}: Slurm job {sid} has generic resources {info['tres']}, expected gres:{gres}")
    elif info["tres"] not in ("N/A", ""):
        problems.append(f"rule {rule}: Slurm job {sid} has generic resources {info['tres']} but the rule asks for none")

for p in problems:
    print(f"  - {p}", file=sys.stderr)
print(
    f"[test-slurm] {len(remote)} jobs ran as Slurm jobs (COMPLETED, logs in .snakemake/slurm_logs), "
    f"{n_gpu} of them with a GPU request; local-only: {', '.join(local) or 'none'}"
)
sys.exit(1 if problems else 0)
PY

# Same tables as the local run, byte for byte.
COMPARE="results/$RUN_NAME/tables"
if [ ! -d "$WORK/local/$COMPARE" ]; then
  COMPARE="results/$RUN_NAME/coco"
  say "results/$RUN_NAME/tables not built by this workflow/targets; comparing $COMPARE instead"
fi
[ -d "$WORK/local/$COMPARE" ] || fail "the local run wrote no $COMPARE"
[ -d "$WORK/slurm/$COMPARE" ] || fail "the Slurm run wrote no $COMPARE"
N_FILES="$(find "$WORK/local/$COMPARE" -type f | wc -l)"
[ "$N_FILES" -gt 0 ] || fail "$COMPARE of the local run is empty"
if ! diff -r "$WORK/local/$COMPARE" "$WORK/slurm/$COMPARE" >"$WORK/compare.diff" 2>&1; then
  head -n 40 "$WORK/compare.diff" >&2
  fail "$COMPARE differs between the Slurm run and the local run"
fi
say "$COMPARE: all $N_FILES files identical in the Slurm and the local run"

# The failing job: non-zero exit, Slurm's state in the message, no hang.
case "$FAILING_RC" in
  0) show_tail "$WORK/failing.log"; fail "a rule that exits 1 did not fail the Slurm run" ;;
  124 | 137) show_tail "$WORK/failing.log"; fail "the run with a failing job hung (killed after ${FAILING_LIMIT} s)" ;;
esac
if ! grep -q "SLURM status is: 'FAILED'" "$WORK/failing.log"; then
  show_tail "$WORK/failing.log"
  fail "the failing job's error message does not carry Slurm's state FAILED"
fi
say "failing job: run ended with exit status $FAILING_RC and: $(grep -o "SLURM-job '[0-9]*' failed, SLURM status is: 'FAILED'" "$WORK/failing.log" | head -n 1)"

# The cluster down: a clear error, not a hang.
case "$DOWN_RC" in
  0) show_tail "$WORK/down.log"; fail "a run with the Slurm controller down succeeded" ;;
  124 | 137) show_tail "$WORK/down.log"; fail "with the Slurm controller down, Snakemake did not give up within ${DOWN_LIMIT}s (hang)" ;;
esac
if ! grep -q "Unable to contact slurm controller" "$WORK/down.log"; then
  show_tail "$WORK/down.log"
  fail "with the Slurm controller down, the error message does not say that the controller is unreachable"
fi
say "cluster down: run ended after ${DOWN_S}s with exit status $DOWN_RC: $(grep -o "Job submission failed.*" "$WORK/down.log" | head -n 1)"
record

# --- stop: the daemons go, nothing is left running --------------------------------------------
begin "stop cluster"
timeout -k 10 120 bash "$REPO/ci/slurm-cluster.sh" stop || fail "stopping the cluster failed"
CLUSTER_UP=0
STATUS_RC=0
timeout -k 10 60 bash "$REPO/ci/slurm-cluster.sh" status >"$WORK/status.log" 2>&1 || STATUS_RC=$?
if [ "$STATUS_RC" != 3 ] || grep -Eq "(slurmctld|slurmd): *running" "$WORK/status.log"; then
  cat "$WORK/status.log" >&2
  fail "after stop, ci/slurm-cluster.sh status does not report the cluster as stopped (exit status $STATUS_RC)"
fi
record
say "all checks passed"
