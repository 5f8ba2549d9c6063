"""Every stage through the command line on a tiny demo dataset: the same functions the rules call."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from meta_ood.cli import main
from meta_ood.pixel_eval import dequantize, quantize
from meta_ood.scores import normalized_entropy
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
    for img in reader:
        keep = (img.label == 1) | (img.label == 2)
        scores.append(normalized_entropy(img.probs)[keep])
        labels.append(img.label[keep] == 2)
    s = dequantize(quantize(np.concatenate(scores)))
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
        kept = meta["prob_fp"] <= 0.5
        assert e["fp_after"] == int(((pred["iou0"] == 1) & kept).sum())
        assert e["eps_before"] == pytest.approx(pred["n_gt_in"].sum() / errors["n_gt_in_total"])
        assert {"E", "S", "cprob0", "ndist18", "n_gt_in", "image", "segment"} <= set(pred.columns)
        # thresholds are nested: a higher threshold never yields more OoD pixels
    sizes = [pd.read_parquet(chain / f"segments/t{t}.parquet")["S"].sum() for t in THRESHOLDS]
    assert sizes == sorted(sizes, reverse=True)


def test_bad_store_path_is_one_clear_error(tmp_path, capsys):
    rc = main(["pixel-eval", "--store", str(tmp_path), "--out-json", str(tmp_path / "a.json"), "--out-npz", str(tmp_path / "a.npz")])
    assert rc == 2
    assert "not a softmax store" in capsys.readouterr().err
