"""Every stage through the command line on a tiny demo dataset: the same functions the rules call."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from meta_ood.cli import main
from meta_ood.pixel_eval import dequantize
from meta_ood.store import StoreReader

THRESHOLDS = ["0.3", "0.5", "0.7"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("chain")
    data = root / "data"
    assert main(["-q", "demo-data", "--out", str(data), "--height", "64", "--width", "128", "--n-train", "8",
                 "--n-val", "2", "--n-coco", "10", "--n-lostandfound", "4", "--n-fishyscapes", "2"]) == 0
    assert main(["-q", "coco-filter", "--annotations", str(data / "coco/annotations/instances_train2017.json"),
                 "--images", str(data / "coco/train2017"), "--out", str(root / "coco"), "--min-size", "64"]) == 0
    assert main(["-q", "train-baseline", "--cityscapes", str(data / "cityscapes"), "--out", str(root / "baseline.pt"),
                 "--epochs", "1", "--crop", "64", "--batch-size", "4", "--device", "cpu", "--lr", "0.003"]) == 0
    assert main(["-q", "finetune", "--cityscapes", str(data / "cityscapes"), "--coco", str(data / "coco"),
                 "--coco-masks", str(root / "coco/masks"), "--init", str(root / "baseline.pt"), "--out", str(root / "ood"),
                 "--epochs", "1", "--crop", "64", "--batch-size", "4", "--device", "cpu", "--lam", "0.9",
                 "--ood-ratio", "0.5", "--lr", "0.001"]) == 0
    store = root / "softmax"
    assert main(["-q", "dump-softmax", "--arch", "tiny", "--checkpoint", str(root / "ood/epoch1.pt"),
                 "--dataset", "lostandfound", "--root", str(data / "lostandfound"), "--out", str(store),
                 "--device", "cpu", "--batch-size", "2"]) == 0
    assert main(["-q", "pixel-eval", "--store", str(store), "--out-json", str(root / "pixel.json"),
                 "--out-npz", str(root / "pixel.npz"), "--n-boot", "50"]) == 0
    assert main(["-q", "segments", "--store", str(store), "--out", str(root / "segments"), "--thresholds", *THRESHOLDS]) == 0
    for t in THRESHOLDS:
        assert main(["-q", "meta-classify", "--segments", str(root / f"segments/t{t}.parquet"),
                     "--out-parquet", str(root / f"meta/t{t}.parquet"), "--out-json", str(root / f"meta/t{t}.json")]) == 0
    assert main(["-q", "segment-eval", "--segments", str(root / "segments"), "--meta", str(root / "meta"),
                 "--thresholds", *THRESHOLDS, "--out", str(root / "errors.json")]) == 0
    return root


def test_checkpoints_and_store(chain):
    assert (chain / "baseline.pt").is_file() and (chain / "ood/epoch1.pt").is_file()
    assert (chain / "ood/losses.csv").is_file()
    reader = StoreReader(chain / "softmax")
    assert len(reader) == 4 and reader.convention.train_id_out == 2


def test_pixel_eval_matches_sklearn_on_store(chain):
    reader = StoreReader(chain / "softmax")
    scores, labels = [], []
    for img in reader.iter(scores=("entropy",)):  # the stored entropy planes the evaluation reads
        keep = (img.label == 1) | (img.label == 2)
        scores.append(img.scores["entropy"][keep])
        labels.append(img.label[keep] == 2)
    s = dequantize(np.concatenate(scores))
    y = np.concatenate(labels)
    r = json.loads((chain / "pixel.json").read_text())
    assert r["kind"] == "ood"
    assert r["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert r["auprc"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    lo, hi = r["bootstrap"]["auprc"]
    assert lo <= hi


def test_segment_tables_and_errors_are_consistent(chain):
    errors = json.loads((chain / "errors.json").read_text())
    images = pd.read_parquet(chain / "segments/images.parquet")
    assert errors["n_gt_in_total"] == images["n_gt_in"].sum()
    for t in THRESHOLDS:
        pred = pd.read_parquet(chain / f"segments/t{t}.parquet")
        gt = pd.read_parquet(chain / f"segments/t{t}.gt.parquet")
        meta = pd.read_parquet(chain / f"meta/t{t}.parquet")
        e = errors["thresholds"][f"t{t}"]
        assert e["fp_before"] == int((pred["iou0"] == 1).sum())
        assert e["fn_before"] == int((gt["iou0"] == 1).sum())
        assert len(meta) == len(pred) and (meta["image"].to_numpy() == pred["image"].to_numpy()).all()
        kept = meta["prob_fp"].to_numpy() <= 0.5
        assert e["fp_after"] == int(((pred["iou0"] == 1) & kept).sum())
        assert e["eps_before"] == pytest.approx(pred["n_gt_in"].sum() / errors["n_gt_in_total"])
        # after: a gt object is found when a kept predicted segment overlaps it
        overlaps = pd.read_parquet(chain / f"segments/t{t}.overlaps.parquet")
        kept_keys = set(zip(pred["image"][kept], pred["segment"][kept]))
        found = {(i, g) for i, p, g in zip(overlaps.get("image", []), overlaps.get("pred_segment", []),
                                           overlaps.get("gt_segment", [])) if (i, p) in kept_keys}
        fn_after = sum((i, g) not in found for i, g in zip(gt["image"], gt["segment"]))
        assert e["fn_after"] == fn_after and e["total_after"] == e["fp_after"] + fn_after
        assert e["eps_after"] == pytest.approx(pred["n_gt_in"].to_numpy()[kept].sum() / errors["n_gt_in_total"])
        assert {"E", "S", "cprob0", "ndist18", "n_gt_in", "image", "segment"} <= set(pred.columns)
        # thresholds are nested: a higher threshold never yields more OoD pixels
    sizes = [pd.read_parquet(chain / f"segments/t{t}.parquet")["S"].sum() for t in THRESHOLDS]
    assert sizes == sorted(sizes, reverse=True)


def test_bad_store_path_is_one_clear_error(tmp_path, capsys):
    rc = main(["pixel-eval", "--store", str(tmp_path), "--out-json", str(tmp_path / "a.json"), "--out-npz", str(tmp_path / "a.npz")])
    assert rc == 2
    assert "not a softmax store" in capsys.readouterr().err


def _write_tiny_tables(seg_dir, meta_dir):
    """Two images, five predicted and three ground-truth segments, written by hand:

    image 0: pred 1 TP (prob_fp 0.7), pred 2 FP (0.9), pred 3 TP (0.2); gt 1 overlapped by pred 1 and 3,
             gt 2 missed by every prediction; 1000 in-distribution pixels
    image 1: pred 1 FP (0.4), pred 2 TP (0.8); gt 1 overlapped by pred 2 only; 500 in-distribution pixels
    """
    seg_dir.mkdir(parents=True)
    meta_dir.mkdir(parents=True)
    pd.DataFrame({"image": [0, 1], "name": ["a", "b"], "n_gt_in": [1000, 500], "n_gt_out": [80, 40]}).to_parquet(
        seg_dir / "images.parquet")
    pred = pd.DataFrame({"image": [0, 0, 0, 1, 1], "segment": [1, 2, 3, 1, 2], "iou0": [0, 1, 0, 1, 0],
                         "n_gt_in": [10, 40, 5, 30, 20]})
    pred.to_parquet(seg_dir / "t0.5.parquet")
    pd.DataFrame({"image": [0, 0, 1], "segment": [1, 2, 1], "iou0": [0, 1, 0]}).to_parquet(seg_dir / "t0.5.gt.parquet")
    pd.DataFrame({"image": [0, 0, 1], "pred_segment": [1, 3, 2], "gt_segment": [1, 1, 1], "n_pixels": [12, 3, 9]}).to_parquet(
        seg_dir / "t0.5.overlaps.parquet")
    pd.DataFrame({"image": pred["image"], "segment": pred["segment"], "prob_fp": [0.7, 0.9, 0.2, 0.4, 0.8]}).to_parquet(
        meta_dir / "t0.5.parquet")


def test_segment_eval_cli_on_hand_made_tables(tmp_path):
    seg, meta = tmp_path / "segments", tmp_path / "meta"
    _write_tiny_tables(seg, meta)
    base = ["-q", "segment-eval", "--segments", str(seg), "--meta", str(meta), "--thresholds", "0.5"]
    assert main([*base, "--out", str(tmp_path / "e.json")]) == 0
    e = json.loads((tmp_path / "e.json").read_text())["thresholds"]["t0.5"]
    # before: FP = image 0 pred 2 + image 1 pred 1; FN = image 0 gt 2; ε = all flagged road pixels
    assert (e["fp_before"], e["fn_before"], e["total_before"]) == (2, 1, 3)
    assert e["eps_before"] == pytest.approx((10 + 40 + 5 + 30 + 20) / (1000 + 500))
    # prob_fp > 0.5 removes image 0 pred 1 and 2 and image 1 pred 2; kept: image 0 pred 3 (TP), image 1 pred 1 (FP)
    assert e["n_removed"] == 3
    assert e["fp_after"] == 1                              # image 1 pred 1
    assert e["fn_after"] == 1 + 1                          # image 0 gt 2 (missed before) + image 1 gt 1 (only pred 2)
    assert e["total_after"] == 1 + 2
    assert e["eps_after"] == pytest.approx((5 + 30) / (1000 + 500))

    assert main([*base, "--out", str(tmp_path / "ref.json"), "--reference-fp-after"]) == 0
    r = json.loads((tmp_path / "ref.json").read_text())["thresholds"]["t0.5"]
    assert r["fp_after"] == 2                              # removed TPs: image 0 pred 1 + image 1 pred 2
    assert r["total_after"] == 2 + 2 and r["fn_after"] == e["fn_after"]

    assert main([*base, "--out", str(tmp_path / "t75.json"), "--meta-threshold", "0.75"]) == 0
    s = json.loads((tmp_path / "t75.json").read_text())["thresholds"]["t0.5"]
    # prob_fp > 0.75 removes image 0 pred 2 and image 1 pred 2 only
    assert (s["n_removed"], s["fp_after"], s["fn_after"], s["total_after"]) == (2, 1, 1 + 1, 3)
    assert s["eps_after"] == pytest.approx((10 + 5 + 30) / (1000 + 500))


def test_segment_eval_without_meta_estimate(tmp_path):
    """A meta table without estimate (leave-one-image-out of a single image): 'after' numbers are None."""
    seg, meta = tmp_path / "segments", tmp_path / "meta"
    _write_tiny_tables(seg, meta)
    m = pd.read_parquet(meta / "t0.5.parquet")
    m.assign(prob_fp=np.nan).to_parquet(meta / "t0.5.parquet")
    assert main(["-q", "segment-eval", "--segments", str(seg), "--meta", str(meta), "--thresholds", "0.5",
                 "--out", str(tmp_path / "e.json")]) == 0
    e = json.loads((tmp_path / "e.json").read_text())["thresholds"]["t0.5"]
    assert (e["fp_before"], e["fn_before"]) == (2, 1)
    assert e["fp_after"] is None and e["fn_after"] is None and e["eps_after"] is None
    assert "prob_fp is NaN" in e["meta_unavailable"]
    m.assign(prob_fp=[0.1, np.nan, 0.2, 0.3, 0.4]).to_parquet(meta / "t0.5.parquet")
    assert main(["-q", "segment-eval", "--segments", str(seg), "--meta", str(meta), "--thresholds", "0.5",
                 "--out", str(tmp_path / "e.json")]) == 2
