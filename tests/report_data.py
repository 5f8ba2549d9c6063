"""Result files for the report tests, written by the real stages from small synthetic softmax stores.

:func:`build_results` writes small softmax stores (a LostAndFound-like and a Fishyscapes-like OoD
set, a Cityscapes-val-like set; a baseline and two fine-tuning epochs whose OoD pixels get more
uncertain) and runs pixel_eval_stage on them, and segment_features_stage, meta_classify_stage and
segment_eval_stage on the OoD sets' baseline and epoch 2; the helpers name the entries of the
tables and figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from meta_ood import stages as pl
from meta_ood.labels import FISHYSCAPES, LOSTANDFOUND
from meta_ood.store import StoreWriter


H, W, C = 48, 96, 19
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
GAINS = {"baseline": 0.0, "epoch1": 0.6, "epoch2": 0.95}  # how uncertain OoD pixels become
MODEL = "tiny"


# -------------------------------------------------------------------------------- fixture data


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def _smooth(rng, shape, sigma):
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma)


def _road_scene(rng, k: int, gain: float, conv):
    """Sky (void) above a road (in) with 1-2 obstacles (out); a few uncertain blobs give false positives."""
    label = np.full((H, W), conv.void_id, np.uint8)
    label[H // 3:, 8:W - 8] = conv.train_id_in
    for _ in range(1 + k % 2):
        r, c = rng.integers(H // 3 + 4, H - 10), rng.integers(12, W - 22)
        label[r:r + rng.integers(4, 8), c:c + rng.integers(5, 10)] = conv.train_id_out
    cls = np.where(np.arange(H)[:, None] < H // 3, 10, 0) * np.ones((1, W), int)
    strength = np.clip(8.0 + 2.0 * gain + 1.5 * _smooth(rng, (H, W), 3) / 0.1, 3.0, 14.0)
    for _ in range(3):
        r, c = rng.integers(0, H - 4), rng.integers(0, W - 4)
        strength[r:r + rng.integers(2, 5), c:c + rng.integers(2, 6)] = rng.uniform(0.0, 2.5)
    out = label == conv.train_id_out
    strength[out] = np.clip(rng.uniform(1.0, 4.0) * (1.0 - gain) + 0.5 * rng.normal(size=out.sum()), 0.0, None)
    logits = 0.3 * rng.normal(size=(C, H, W))
    np.put_along_axis(logits, cls[None], np.take_along_axis(logits, cls[None], 0) + strength[None], 0)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[: H // 3] = (120, 160, 220)
    rgb[H // 3:] = (90, 90, 90)
    rgb[out] = (200, 60, 40)
    return label, _softmax(logits), rgb


def _city_scene(rng, gain: float):
    label = np.repeat(np.repeat(rng.integers(0, C, (4, 8)), H // 4, 0), W // 8, 1).astype(np.uint8)
    label[:2] = 255
    strength = np.clip(6.0 + 3.0 * _smooth(rng, (H, W), 2) / 0.15 - gain, 0.0, 14.0)
    wrong = _smooth(rng, (H, W), 3) > 0.12
    cls = np.where(wrong, (label.astype(int) + 1) % C, label.astype(int) % C)
    cls[label == 255] = 0
    logits = 0.6 * rng.normal(size=(C, H, W))
    np.put_along_axis(logits, cls[None], np.take_along_axis(logits, cls[None], 0) + strength[None], 0)
    lab = label.astype(int)
    rgb = (np.stack([lab * 11, lab * 5, 255 - lab * 7], -1) % 256).astype(np.uint8)
    return label, _softmax(logits), rgb


def _write_store(folder: Path, dataset: str, conv, scenes, image_dir: Path) -> None:
    writer = StoreWriter(folder, C, model=MODEL, dataset=dataset, convention=conv, total=len(scenes))
    for i, (label, probs, rgb) in enumerate(scenes):
        path = image_dir / f"{dataset}_{i:03d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path)
        writer.write(i, f"{dataset}_{i:03d}", str(path), probs, label)
    writer.finalize()


def build_results(root: Path) -> Path:
    """Stores and every result file the report reads, under ``root/results/fix``."""
    run = root / "results" / "fix"
    for variant, gain in GAINS.items():
        for dataset, conv, n in (("lostandfound", LOSTANDFOUND, 10), ("fishyscapes_static", FISHYSCAPES, 6)):
            if dataset == "fishyscapes_static" and variant == "epoch1":
                continue
            rng = np.random.default_rng(1 if dataset == "lostandfound" else 2)
            store = run / "softmax" / MODEL / variant / dataset
            _write_store(store, dataset, conv, [_road_scene(rng, k, gain, conv) for k in range(n)], root / "images")
            out = run / "pixel" / MODEL / variant
            pl.pixel_eval_stage(store, out / f"{dataset}.json", out / f"{dataset}.npz", n_boot=20, progress=False)
            if variant != "epoch1":  # segments of both OoD sets (the report's several segment datasets)
                seg = run / "segments" / MODEL / variant / dataset
                meta = run / "meta" / MODEL / variant / dataset
                pl.segment_features_stage(store, seg, THRESHOLDS, progress=False)
                for t in THRESHOLDS:
                    tag = pl.threshold_tag(t)
                    pl.meta_classify_stage(seg / f"{tag}.parquet", meta / f"{tag}.parquet", meta / f"{tag}.json")
                pl.segment_eval_stage(seg, meta, THRESHOLDS, run / "segment_eval" / MODEL / variant / f"{dataset}.json")
        rng = np.random.default_rng(3)
        store = run / "softmax" / MODEL / variant / "cityscapes_val"
        _write_store(store, "cityscapes_val", None, [_city_scene(rng, gain) for _ in range(4)], root / "images")
        out = run / "pixel" / MODEL / variant
        pl.pixel_eval_stage(store, out / "cityscapes_val.json", out / "cityscapes_val.npz", progress=False)
    return run


def shared_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results of :func:`build_results`, written once per test session (the tests only read them)."""
    root = tmp_path_factory.getbasetemp() / "report_results"
    complete = root / "complete"
    if not complete.exists():
        build_results(root)
        complete.touch()
    return root / "results" / "fix"



LABELS = (("Plain", "baseline"), ("OoD training", "epoch2"))
SEG_LABELS = (("Baseline", "baseline"), ("OoD training", "epoch2"))


def _pixel(run: Path, variant: str, dataset: str) -> Path:
    return run / "pixel" / MODEL / variant / f"{dataset}.json"


def _pixel_entries(run: Path) -> list[dict]:
    return [{"model": MODEL, "label": label, "dataset": ds, "path": str(_pixel(run, v, ds))}
            for label, v in LABELS for ds in ("lostandfound", "fishyscapes_static")]


def _miou_entries(run: Path) -> list[dict]:
    return [{"model": MODEL, "label": label, "path": str(_pixel(run, v, "cityscapes_val"))} for label, v in LABELS]


def _seg_entries(run: Path) -> list[dict]:
    return [{"label": label, "path": str(run / "segment_eval" / MODEL / v / "lostandfound.json")} for label, v in SEG_LABELS]


def _meta_entries(run: Path) -> list[dict]:
    return [{"label": label, "tag": pl.threshold_tag(t), "path": str(run / "meta" / MODEL / v / "lostandfound" / f"{pl.threshold_tag(t)}.json")}
            for label, v in SEG_LABELS for t in THRESHOLDS]


SEGMENT_DATASETS = ("lostandfound", "fishyscapes_static")  # the OoD sets with segments, meta tables and segment_eval


def _seg_entries_of(run: Path, datasets=SEGMENT_DATASETS) -> list[dict]:
    """Segment_eval entries of several datasets, as the workflow names them (dataset-major, config order)."""
    return [{"label": label, "model": MODEL, "dataset": ds, "path": str(run / "segment_eval" / MODEL / v / f"{ds}.json")}
            for ds in datasets for label, v in SEG_LABELS]


def _meta_entries_of(run: Path, datasets=SEGMENT_DATASETS) -> list[dict]:
    """Meta-classification entries of several datasets at every threshold, as the workflow names them."""
    return [{"label": label, "model": MODEL, "dataset": ds, "tag": pl.threshold_tag(t),
             "path": str(run / "meta" / MODEL / v / ds / f"{pl.threshold_tag(t)}.json")}
            for ds in datasets for label, v in SEG_LABELS for t in THRESHOLDS]


def _outs(folder: Path, name: str) -> dict[str, Path]:
    return {f"out_{ext}": folder / f"{name}.{ext}" for ext in ("csv", "md", "tex")}


def _load(path) -> dict:
    return json.loads(Path(path).read_text())

