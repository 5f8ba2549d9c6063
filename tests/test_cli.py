"""The meta-ood command line: same functions as the rules, clean errors for bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image

from meta_ood.cli import main


def _golden_coco_tree(golden_dir, tmp_path):
    gold = np.load(golden_dir / "coco_public.npz")
    images = tmp_path / "train2017"
    images.mkdir()
    for i in gold["in_image_ids_on_disk"]:
        Image.new("RGB", (8, 8)).save(images / f"{int(i):012d}.jpg")
    ann = tmp_path / "instances_train2017.json"
    shutil.copy(golden_dir / "coco_public.json", ann)
    return gold, ann, images


def test_coco_filter_cli_matches_golden(golden_dir, tmp_path, capsys):
    gold, ann, images = _golden_coco_tree(golden_dir, tmp_path)
    out = tmp_path / "out"
    rc = main(["-q", "coco-filter", "--annotations", str(ann), "--images", str(images), "--out", str(out)])
    assert rc == 0
    selected = pd.read_csv(out / "selected.csv")
    np.testing.assert_array_equal(selected["image_id"].to_numpy(), gold["pred_mask_ids"])
    for i in gold["pred_mask_ids"]:
        mask = np.asarray(Image.open(out / "masks" / f"{int(i):012d}.png"))
        np.testing.assert_array_equal(mask, gold[f"pred_mask_{int(i):012d}"])
    assert "kept" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(golden_dir, tmp_path):
    _, ann, images = _golden_coco_tree(golden_dir, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "meta_ood.cli", "coco-filter", "--annotations", str(ann), "--images", str(images),
         "--out", str(tmp_path / "o"), "--min-size", "100000"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    errors = [line for line in err if line.startswith("meta-ood: error:")]
    assert errors == [err[-1]] and "100000" in err[-1]
    assert "Traceback" not in proc.stderr


def test_cli_missing_annotation_file(tmp_path, capsys):
    rc = main(["coco-filter", "--annotations", str(tmp_path / "x.json"), "--images", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "x.json" in capsys.readouterr().err
