"""The data stages of the workflow, run for real through Snakemake on a tiny demo config."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_real_tree, placeholder_checkpoint, run_snakemake

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
    assert local["set-threads"] == {"train_baseline": 4, "ood_finetune": 4, "dump_softmax": 4}
