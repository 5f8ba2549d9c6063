"""The data stages of the workflow, run for real through Snakemake on a tiny demo config."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_real_tree, placeholder_checkpoint, planned_jobs, run_snakemake
from meta_ood.stages.layout import threshold_tag

TINY = {
    "run": "tiny",
    "seed": 3,
    "demo": {"enabled": True, "root": "data/demo", "height": 64, "width": 128, "n_train": 4, "n_val": 2,
             "n_coco": 16, "n_lostandfound": 3, "n_fishyscapes": 2},
    "coco_filter": {"min_size": 96},
    "models": {"tiny": {"arch": "tiny"}},
}


def snakemake(workdir, *args, config=None):
    return run_snakemake(workdir, *args, config=config, cores=1)


@pytest.mark.slow
def test_demo_data_and_coco_filter(tmp_path):
    target = "results/tiny/coco/selected.csv"
    proc = snakemake(tmp_path, target, config=TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    selected = pd.read_csv(tmp_path / "results/tiny/coco/selected.csv")
    assert len(selected) > 0
    assert (selected[["height", "width"]] >= 96).all().all()
    masks = sorted((tmp_path / "results/tiny/coco/masks").glob("*.png"))
    assert [int(m.stem) for m in masks] == selected["image_id"].tolist()
    # logs and benchmarks per rule
    assert (tmp_path / "logs/tiny/demo_data.log").stat().st_size > 0
    assert "kept" in (tmp_path / "logs/tiny/coco_filter.log").read_text()
    assert (tmp_path / "benchmarks/tiny/coco_filter.tsv").is_file()
    # nothing left to do on a rerun
    again = snakemake(tmp_path, "-n", target, config=TINY)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-3000:]


def test_real_data_config_plans_without_demo(tmp_path):
    """With demo generation off, coco_filter reads the configured COCO tree and no demo rule exists."""
    roots = make_real_tree(tmp_path / "data")
    cfg = {"run": "real", "coco_filter": {"min_size": 64},
           "datasets": {"cityscapes": {"root": str(roots["cityscapes"])}, "coco": {"root": str(roots["coco"])},
                        "lostandfound": {"root": str(roots["lostandfound"])},
                        "fishyscapes_static": {"root": str(roots["fishyscapes"])}},
           "models": {"m": {"arch": "tiny", "checkpoint": str(placeholder_checkpoint("tiny", tmp_path / "m.pt"))}}}
    proc = snakemake(tmp_path, "-n", "results/real/coco/selected.csv", config=cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "coco_filter" in out and "demo_data" not in out


def test_every_rule_writes_a_benchmark_and_takes_its_threads_from_the_profile():
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        assert "threads:" not in text, f"{smk.name}: threads belong in profiles/*/config.yaml (set-threads)"
        for rule, body in re.findall(r"^\s*rule (\w+):\n(.*?)(?=^\s*rule \w+:|\Z)", text, re.M | re.S):
            assert "benchmark:" in body, f"{smk.name}: rule {rule} has no benchmark"
    local = yaml.safe_load((REPO / "profiles" / "local" / "config.yaml").read_text())
    assert local["set-threads"] == {"train_baseline": 4, "ood_finetune": 4, "dump_softmax": 4, "smiyc_eval": 4}


SEGMENT_DATASET_VALUES = ["lostandfound", "fishyscapes_static", "fishyscapes_lostandfound", "lostandfound_noknown",
                          "smiyc_anomaly", "smiyc_obstacle", "road_anomaly", "cityscapes_void"]


def _dry_run_jobs(proc: subprocess.CompletedProcess) -> list[tuple[str, dict[str, str], set[str]]]:
    """(rule, wildcards, input files) of every job a dry run lists."""
    jobs: list[tuple[str, dict[str, str], set[str]]] = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if m := re.fullmatch(r"(?:local)?rule (\w+):", line.strip()):
            jobs.append((m.group(1), {}, set()))
        elif jobs and (m := re.fullmatch(r"\s+input: (.*)", line)):
            jobs[-1][2].update(m.group(1).split(", "))
        elif jobs and (m := re.fullmatch(r"\s+wildcards: (.*)", line)):
            jobs[-1][1].update(kv.split("=", 1) for kv in m.group(1).split(", "))
    return jobs


def test_every_segment_dataset_gets_segments_meta_errors_and_its_table_rows(tmp_path):
    """Each value of evaluation.segment_datasets, all in one config on the demo data: segment metrics, meta
    classification at every threshold and detection errors of the main model's reported variants, read by
    tables 2, 3, the component table, figure 7 and the summary."""
    schema = yaml.safe_load((REPO / "src" / "meta_ood" / "config.schema.yaml").read_text())
    assert schema["properties"]["evaluation"]["properties"]["segment_datasets"]["items"]["enum"] == SEGMENT_DATASET_VALUES
    thresholds = [0.3, 0.5]
    cfg = {**TINY, "run": "segds",
           "models": {"tiny": {"arch": "tiny", "finetune": {"epochs": 2}}},
           "datasets": {"smiyc_anomaly": {"split": "validation"}, "smiyc_obstacle": {"split": "validation"}},
           "evaluation": {"ood_datasets": ["lostandfound"], "segment_datasets": SEGMENT_DATASET_VALUES,
                          "thresholds": thresholds, "every_epoch": False},
           "report": {"example_threshold": 0.5}}
    proc = snakemake(tmp_path, "-n", config=cfg)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs = _dry_run_jobs(proc)
    counts = planned_jobs(proc)
    n = len(SEGMENT_DATASET_VALUES)
    assert (counts["segment_features"], counts["meta_classify"], counts["segment_eval"]) == (2 * n, 2 * n * 2, 2 * n)
    variants = {"baseline", "epoch2"}  # the reported ones: plain and the last fine-tuning epoch
    tags = {threshold_tag(t) for t in thresholds}
    res = "results/segds"
    inputs = {rule: files for rule, _, files in jobs if rule in ("table2", "table3", "table_components", "figure7", "summary")}
    assert set(inputs) == {"table2", "table3", "table_components", "figure7", "summary"}
    for ds in SEGMENT_DATASET_VALUES:
        of = [(rule, w) for rule, w, _ in jobs if w.get("dataset") == ds and w.get("model") == "tiny"]
        assert {w["variant"] for rule, w in of if rule == "segment_features"} == variants, ds
        assert {(w["variant"], w["tag"]) for rule, w in of if rule == "meta_classify"} == {
            (v, tag) for v in variants for tag in tags}, ds
        assert {w["variant"] for rule, w in of if rule == "segment_eval"} == variants, ds
        for v in variants:
            errors = f"{res}/segment_eval/tiny/{v}/{ds}.json"
            for rule in ("table2", "table_components", "figure7", "summary"):
                assert errors in inputs[rule], (rule, ds, v)
            assert {f"{res}/meta/tiny/{v}/{ds}/{tag}.json" for tag in tags} <= inputs["table3"], (ds, v)
