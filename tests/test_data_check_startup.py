"""The automatic whole-dataset check before the first training or dump job: parallel, cached, every bad file named."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_real_tree, run_snakemake
from meta_ood.check_data import check_data
from meta_ood.check_data_cache import check_data_cached
from meta_ood.datasets import open_dataset


@pytest.fixture(scope="module")
def base_tree(tmp_path_factory) -> dict[str, Path]:
    return make_real_tree(tmp_path_factory.mktemp("tree") / "data", n_lostandfound=6, n_val=4)


@pytest.fixture
def tree(base_tree, tmp_path) -> dict[str, Path]:
    """A private copy of the tree, free to damage."""
    root = Path(shutil.copytree(base_tree["cityscapes"].parent, tmp_path / "data"))
    return {name: root / path.name for name, path in base_tree.items()}


def _specs(tree: dict[str, Path]) -> dict[str, dict]:
    return {"cityscapes_train": {"kind": "cityscapes", "root": str(tree["cityscapes"]), "split": "train"},
            "cityscapes_val": {"kind": "cityscapes", "root": str(tree["cityscapes"]), "split": "val"},
            "lostandfound": {"kind": "lostandfound", "root": str(tree["lostandfound"]), "split": "test"},
            "fishyscapes_static": {"kind": "fishyscapes_static", "root": str(tree["fishyscapes"]), "split": "Static"}}


def _damage_labels(tree: dict[str, Path], n: int) -> list[Path]:
    """Undefined label ids (250) in the last ``n`` LostAndFound labels; returns those files."""
    samples = open_dataset("lostandfound", str(tree["lostandfound"])).samples[-n:]
    paths = []
    for s in samples:
        path = s.label_ids or s.train_ids
        label = np.asarray(Image.open(path)).copy()
        label[:2, :2] = 250
        Image.fromarray(label).save(path)
        paths.append(path)
    return paths


def test_parallel_check_gives_the_report_of_one_process(tree):
    bad = _damage_labels(tree, 2)
    truncated = open_dataset("cityscapes", str(tree["cityscapes"]), "val").samples[1].image
    truncated.write_bytes(truncated.read_bytes()[:200])
    specs = _specs(tree)
    one = check_data(specs, progress=False, workers=1)
    two = check_data(specs, progress=False, workers=2)
    assert one.problems == two.problems and one.images == two.images and one.labels == two.labels
    assert sorted({p.file for p in one.problems}) == sorted(map(str, [*bad, truncated]))  # every bad file, not the first


def test_cache_reads_each_dataset_once_until_its_files_change(tree, tmp_path):
    specs = _specs(tree)
    cache = tmp_path / "checks"
    report, done = check_data_cached(specs, cache, workers=2, progress=False)
    assert report.ok and [c.cached for c in done] == [False] * 4 and [c.name for c in done] == list(specs)
    n_val = len(open_dataset("cityscapes", str(tree["cityscapes"]), "val"))
    assert {c.name: c.images for c in done}["cityscapes_val"] == n_val
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{name}.json" for name in specs)

    report, done = check_data_cached(specs, cache, workers=2, progress=False)
    assert report.ok and [c.cached for c in done] == [True] * 4 and report.images == {}

    # a changed label file (size and mtime) makes its dataset, and only it, be read again: and found bad
    (bad,) = _damage_labels(tree, 1)
    os.utime(bad, ns=(bad.stat().st_atime_ns, bad.stat().st_mtime_ns + 10**9))
    report, done = check_data_cached(specs, cache, workers=2, progress=False)
    assert {c.name: c.cached for c in done} == {"cityscapes_train": True, "cityscapes_val": True,
                                                "lostandfound": False, "fishyscapes_static": True}
    assert [p.file for p in report.problems] == [str(bad)] and "250" in report.problems[0].problem
    # a dataset with problems is not remembered as good: the next run reads it again
    report, done = check_data_cached(specs, cache, workers=1, progress=False)
    assert not report.ok and {c.name for c in done if not c.cached} == {"lostandfound"}
    # a new file counts as a change too
    label = next((tree["fishyscapes"] / "Static").glob("*.png"))
    shutil.copy(label, label.with_name("zz_extra.png"))
    shutil.copy(label.with_suffix(".jpg"), label.with_name("zz_extra.jpg"))
    _, done = check_data_cached(specs, cache, workers=1, progress=False)
    assert {c.name for c in done if not c.cached} == {"lostandfound", "fishyscapes_static"}


@pytest.mark.slow
def test_a_bad_file_deep_in_a_dataset_stops_the_run_before_any_job(tree, tmp_path):
    """The dump would reach the bad label only at its last image; the check stops the run before the first job,
    naming every bad file; skip_data_check lets the jobs start (and the dump then fails on the file)."""
    from meta_ood.stages.training import train_baseline_stage

    torch.set_num_threads(1)
    ckpt = train_baseline_stage(str(tree["cityscapes"]), "train", tmp_path / "net.pt",
                                {"model": "tiny", "epochs": 1, "lr": 0.003, "batch_size": 4, "crop": [64, 128],
                                 "workers": 0, "seed": 0}, progress=False)
    bad = _damage_labels(tree, 2)
    config = {"run": "mine", "datasets": {"cityscapes": {"root": str(tree["cityscapes"])},
                                          "coco": {"root": str(tree["coco"])},
                                          "lostandfound": {"root": str(tree["lostandfound"])},
                                          "fishyscapes_static": {"root": str(tree["fishyscapes"])}},
              "coco_filter": {"min_size": 64}, "models": {"mynet": {"arch": "tiny", "checkpoint": str(ckpt)}},
              "inference": {"workers": 0}}
    work = tmp_path / "work"
    work.mkdir()
    target = "results/mine/softmax/mynet/baseline/lostandfound/index.json"
    proc = run_snakemake(work, target, config=config, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out[-3000:]
    assert "the data check found 2 problem(s) in 2 file(s); no job was started" in out
    for path in bad:
        assert f"{path}: " in out
    assert not (work / "results" / "mine" / "softmax").exists() and not (work / "logs" / "mine").exists()
    assert sorted(p.name for p in (work / "results" / "mine" / "checks").iterdir()) == \
        ["cityscapes_train.json", "cityscapes_val.json", "fishyscapes_static.json"]  # the good ones, remembered

    proc = run_snakemake(work, target, "--config", "skip_data_check=true", config=config, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "data check skipped (skip_data_check: true)" in out
    assert (work / "logs" / "mine" / "dump_softmax").exists()  # the job started, and met the bad label


@pytest.mark.slow
def test_demo_check_data_target_reads_every_dataset_of_the_run(tmp_path):
    """`snakemake results/<run>/check_data.md` on the demo layouts (the smoke config, which also evaluates
    cityscapes_void-free sets): every dataset of the run is listed with its files, and no problem is found."""
    from conftest import REPO

    import yaml

    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["evaluation"]["ood_datasets"] = config["evaluation"]["ood_datasets"] + ["cityscapes_void"]
    proc = run_snakemake(tmp_path, f"results/{config['run']}/check_data.md", config=config, timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = (tmp_path / "results" / config["run"] / "check_data.md").read_text()
    assert "No problems found." in report
    for name in ("cityscapes_train", "cityscapes_val", "coco", "lostandfound", "fishyscapes_static",
                 "fishyscapes_lostandfound", "cityscapes_void"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
        assert int(row.split("|")[5]) > 0, row  # images read
