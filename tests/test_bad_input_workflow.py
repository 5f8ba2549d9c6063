"""Bad input through Snakemake, one thing wrong at a time: the run stops before any job with one line naming the key
or file, no traceback, and neither the dataset tree nor earlier results of the run change."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import checksums, make_real_tree, placeholder_checkpoint, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A real-layout tree, a checkpoint, a config that plans a full run, and earlier results of that run."""
    base = tmp_path_factory.mktemp("bad")
    make_real_tree(base / "data")
    data = base / "data"
    ckpt = placeholder_checkpoint("tiny", base / "net.pt")
    config = {"run": "mine",
              "datasets": {"cityscapes": {"root": str(data / "cityscapes")}, "coco": {"root": str(data / "coco")},
                           "lostandfound": {"root": str(data / "lostandfound")},
                           "fishyscapes_static": {"root": str(data / "fishyscapes")}},
              "coco_filter": {"min_size": 64},
              "models": {"mynet": {"arch": "tiny", "checkpoint": str(ckpt)}}}
    return base, data, config


def _damage(case: str, data: Path, config: dict, tmp: Path) -> tuple[dict, str]:
    """The config (and tree) with one thing wrong; the text the message must hold."""
    cfg = copy.deepcopy(config)
    if case == "listed twice":
        cfg["evaluation"] = {"ood_datasets": ["lostandfound", "fishyscapes_static", "lostandfound"]}
        return cfg, "evaluation.ood_datasets: 'lostandfound' is listed 2 times (list each value once)"
    if case == "missing roi":
        cfg["datasets"]["lostandfound"]["roi"] = str(tmp / "roi.png")
        return cfg, f"datasets.lostandfound.roi: {tmp / 'roi.png'}: ROI mask file not found"
    if case == "roi not binary":
        label = next((data / "lostandfound" / "gtCoarse").rglob("*_labelIds.png"))
        Image.fromarray(np.full(Image.open(label).size[::-1], 7, np.uint8)).save(tmp / "roi.png")
        cfg["datasets"]["lostandfound"]["roi"] = str(tmp / "roi.png")
        return cfg, "datasets.lostandfound.roi: "
    if case == "class count":
        cfg["models"]["mynet"]["num_classes"] = 7
        return cfg, "models.mynet.num_classes=7"
    if case == "truncated coco json":
        annotations = data / "coco" / "annotations" / "instances_train2017.json"
        annotations.write_bytes(annotations.read_bytes()[:-40])
        return cfg, f"datasets.coco: {annotations}: not a valid JSON file"
    if case == "run name":
        cfg["run"] = ".."
        return cfg, "run: '..' is not a valid run name"
    raise AssertionError(case)


CASES = ["listed twice", "missing roi", "roi not binary", "class count", "truncated coco json", "run name"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_before_any_job_and_changes_nothing(setup, tmp_path, case):
    base, data, config = setup
    tree = Path(shutil.copytree(data, tmp_path / "data"))
    cfg = copy.deepcopy(config)
    for block in cfg["datasets"].values():
        block["root"] = block["root"].replace(str(data), str(tree))
    work = tmp_path / "work"
    earlier = work / "results" / "mine" / "tables" / "table1.md"  # results of an earlier run of the same config
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier results\n")
    cfg, expected = _damage(case, tree, cfg, tmp_path)
    before_tree, before_work = checksums(tree), checksums(work)
    proc = run_snakemake(work, config=cfg, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out and expected in out, out[-3000:]
    assert checksums(tree) == before_tree
    # the config file the test wrote and Snakemake's own (empty) log of the invocation aside
    after = {k: v for k, v in checksums(work).items() if k != "my.yaml" and not k.startswith(".snakemake")}
    assert after == before_work  # no job ran: no log, no result, the earlier ones untouched
