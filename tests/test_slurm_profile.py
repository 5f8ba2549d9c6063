"""Static checks of the Slurm profile and of the test-cluster scripts (fast; nothing is installed or started).

The profile itself is exercised against a real Slurm by `make test-slurm` (ci/test-slurm.sh).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
CI_PROFILE = REPO / "profiles" / "slurm-ci" / "config.yaml"
CLUSTER = REPO / "ci" / "slurm-cluster.sh"
TEST_SLURM = REPO / "ci" / "test-slurm.sh"
BASH = shutil.which("bash") or "/bin/bash"
# Slurm's default MinJobAge; squeue only sees finished jobs for this long.
DEFAULT_MIN_JOB_AGE = 300
# The GPU stages of the pipeline (DESIGN.md): each must get a GPU on the cluster.
GPU_RULES = {"train_baseline", "ood_finetune", "dump_softmax"}
KEY_LINE = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(\s|$)")


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def uncommented_keys(path: Path) -> list[str]:
    """Keys neither preceded by a comment line (at any indentation) nor followed by an inline comment."""
    missing = []
    previous = ""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        match = KEY_LINE.match(line)
        if match and not stripped.startswith("#"):
            inline = "#" in line.split(":", 1)[1]
            if not inline and not previous.startswith("#"):
                missing.append(f"{path.name}:{number}: {stripped}")
        if stripped:
            previous = stripped
    return missing


def gpu_rules_of_workflow() -> set[str]:
    """Rules whose definition in workflow/rules/*.smk declares a gpu resource."""
    found = set()
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = [(m.start(), m.group(1)) for m in re.finditer(r"^\s*(?:local)?rule\s+(\w+)\s*:", text, re.M)]
        for i, (start, name) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
            if re.search(r"\bgpu\s*=\s*[1-9]", text[start:end]):
                found.add(name)
    return found


# --- the profile -------------------------------------------------------------------------------


def test_profiles_are_valid_yaml_mappings():
    assert load(PROFILE)
    assert load(CI_PROFILE)


@pytest.mark.parametrize("path", [PROFILE, CI_PROFILE], ids=["slurm", "slurm-ci"])
def test_every_key_is_commented(path):
    assert uncommented_keys(path) == []


def test_executor_is_the_pinned_slurm_plugin():
    assert load(PROFILE)["executor"] == "slurm"
    pins = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert any(re.fullmatch(r"snakemake-executor-plugin-slurm==[0-9][0-9.]*", p) for p in pins), pins


def test_status_command_works_without_accounting():
    """sacct needs slurmdbd; squeue does not. squeue stays in charge only while MinJobAge >= 3 x the first check delay."""
    profile = load(PROFILE)
    assert profile["slurm-status-command"] == "squeue"
    for p in (profile, {**profile, **load(CI_PROFILE)}):
        init = p["slurm-init-seconds-before-status-checks"]
        assert isinstance(init, int) and init >= 1
        assert 3 * init <= DEFAULT_MIN_JOB_AGE
    # The test cluster keeps finished jobs visible to squeue at least as long as Slurm's default.
    ages = [int(a) for a in re.findall(r"^MinJobAge=(\d+)", CLUSTER.read_text(), re.M)]
    assert ages and all(a >= DEFAULT_MIN_JOB_AGE for a in ages)


def test_successful_job_logs_are_kept():
    assert load(PROFILE)["slurm-keep-successful-logs"] is True


def test_default_resources_give_memory_and_time():
    defaults = load(PROFILE)["default-resources"]
    assert isinstance(defaults["mem_mb"], int) and defaults["mem_mb"] > 0
    assert isinstance(defaults["runtime"], int) and defaults["runtime"] > 0
    # Account and partition are cluster-specific; without accounting an account breaks submission.
    assert "slurm_account" not in defaults


def test_gpu_rules_request_a_gpu_as_generic_resource():
    resources = load(PROFILE)["set-resources"]
    declared = gpu_rules_of_workflow()
    for rule in GPU_RULES | declared:
        assert rule in resources, f"GPU rule {rule} has no set-resources entry in profiles/slurm"
        res = resources[rule]
        assert re.fullmatch(r"gpu(:[A-Za-z0-9_.]+)?:[1-9][0-9]*", str(res.get("gres", ""))), (rule, res)
        # Only --gres: the rule's own gpu=1 would add --gpus, which select/cons_res clusters reject.
        assert res.get("gpu") == 0, (rule, res)


def test_gpu_rules_are_sized_for_the_paper_datasets():
    resources = load(PROFILE)["set-resources"]
    threads = load(PROFILE)["set-threads"]
    for rule in GPU_RULES:
        assert resources[rule]["runtime"] >= 60, rule  # minutes: hours of training / an hour of inference
        assert resources[rule]["mem_mb"] >= 16000, rule
        assert threads[rule] >= 2, rule  # DataLoader workers + main process
    # One fine-tuning epoch (about 3,300 images at 480x480 on WRN38) takes hours.
    assert resources["ood_finetune"]["runtime"] >= 120
    # Softmax of 1,203 LostAndFound images at 2048x1024: about an hour and ~32 GB of host memory.
    assert resources["dump_softmax"]["runtime"] >= 60
    assert resources["dump_softmax"]["mem_mb"] >= 32000


def test_cpu_rules_ask_for_no_gpu_and_have_sizes():
    resources = load(PROFILE)["set-resources"]
    gpu_rules = GPU_RULES | gpu_rules_of_workflow()
    for rule, res in resources.items():
        assert isinstance(res, dict) and res, rule
        for key in ("mem_mb", "runtime"):
            assert isinstance(res.get(key), int) and res[key] > 0, (rule, key)
        if rule not in gpu_rules:
            assert "gres" not in res and not res.get("gpu"), rule
    for rule in ("coco_filter", "pixel_eval", "segment_features", "meta_classify", "segment_eval"):
        assert rule in resources, rule


def test_plugin_turns_the_gpu_request_into_gres_only():
    """The installed plugin's own translation of a GPU rule's resources: --gres=gpu:1, no --gpus."""
    # Load the plugin's utils module alone: importing the package runs Slurm commands (scontrol),
    # which wait for a controller where Slurm is installed but not running.
    spec = importlib.util.find_spec("snakemake_executor_plugin_slurm")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("snakemake-executor-plugin-slurm not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "utils.py"
    utils_spec = importlib.util.spec_from_file_location("slurm_plugin_utils_under_test", path)
    utils = importlib.util.module_from_spec(utils_spec)
    utils_spec.loader.exec_module(utils)

    class Resources(dict):
        __getattr__ = dict.__getitem__

    class Job:
        def __init__(self, resources):
            self.resources = Resources(resources)

    resources = load(PROFILE)["set-resources"]
    for rule in GPU_RULES:
        merged = {"gpu": 1, **resources[rule]}  # the rule declares gpu=1; set-resources overrides it
        flags = utils.set_gres_string(Job(merged))
        assert flags.strip() == f"--gres={resources[rule]['gres']}", (rule, flags)


def test_ci_override_keeps_the_real_requests():
    """The test cluster runs profiles/slurm's own executor, status command and per-rule requests."""
    ci = load(CI_PROFILE)
    for key in ("executor", "slurm-status-command", "set-resources", "default-resources", "set-threads"):
        assert key not in ci, key
    # One thread per job in the Slurm run and its local reference run: comparable numbers.
    assert ci["max-threads"] == 1
    assert "--max-threads 1" in TEST_SLURM.read_text()


# --- the scripts -------------------------------------------------------------------------------


def run_script(*args, path_dirs=None, **env):
    environment = dict(os.environ, **env)
    if path_dirs is not None:
        environment["PATH"] = os.pathsep.join(str(p) for p in path_dirs)
    return subprocess.run([BASH, str(CLUSTER), *args], capture_output=True, text=True, env=environment, timeout=60)


def fake_program(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_cluster_script_usage():
    proc = run_script("--help")
    assert proc.returncode == 0
    assert "start|stop|status" in proc.stdout
    for word in ("start", "stop", "status", "root", "apt-get", "META_OOD_SLURM_DIR"):
        assert word in proc.stdout
    proc = run_script()
    assert proc.returncode == 2 and "Usage" in proc.stderr
    proc = run_script("restart-everything")
    assert proc.returncode == 2 and "unknown command" in proc.stderr


@pytest.mark.parametrize("command", ["start", "stop"])
def test_cluster_script_refuses_without_root(tmp_path, command):
    fake_program(tmp_path / "bin", "id", "echo 1000")
    proc = run_script(command, path_dirs=[tmp_path / "bin", *os.environ["PATH"].split(os.pathsep)])
    assert proc.returncode == 1
    assert "must run as root" in proc.stderr and "uid is 1000" in proc.stderr
    proc = run_script("check", path_dirs=[tmp_path / "bin", *os.environ["PATH"].split(os.pathsep)])
    assert proc.returncode == 1 and "not root" in proc.stdout


def test_cluster_script_refuses_without_apt(tmp_path):
    # A root shell whose PATH has neither Slurm's client programs nor apt-get.
    fake_program(tmp_path / "bin", "id", "echo 0")
    proc = run_script("start", path_dirs=[tmp_path / "bin"])
    assert proc.returncode == 1
    assert "apt-get not found" in proc.stderr
    assert "slurmctld slurmd slurm-client munge" in proc.stderr
    proc = run_script("check", path_dirs=[tmp_path / "bin"])
    assert proc.returncode == 1 and "no apt-get" in proc.stdout


def test_cluster_script_rejects_bad_numbers():
    proc = run_script("status", META_OOD_SLURM_GPUS="two")
    assert proc.returncode == 2
    assert "META_OOD_SLURM_GPUS must be a whole number, got 'two'" in proc.stderr


def test_test_slurm_usage():
    proc = subprocess.run([BASH, str(TEST_SLURM), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "Usage: bash ci/test-slurm.sh" in proc.stdout
    proc = subprocess.run([BASH, str(TEST_SLURM), "--bogus"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2


@pytest.mark.parametrize("script", [CLUSTER, TEST_SLURM], ids=["slurm-cluster.sh", "test-slurm.sh"])
def test_scripts_parse(script):
    assert subprocess.run([BASH, "-n", str(script)], capture_output=True, timeout=30).returncode == 0
