"""Write tests/data/golden/smiyc/parity_cases.npz: small edge cases and what the official SMIYC code gives.

Runs inside bench/official_smiyc/.venv (``setup.sh``): the official ``PixBinaryClass``, ``PixBinaryClass-uniThr``
and ``SegEval-<Track>`` classes on each case's frames, in frame order, as ``driver.py`` calls them (the
best-F1 threshold read back from the saved curve), and ``SegEval`` again at fixed pixel thresholds.

    bench/official_smiyc/.venv/bin/python bench/official_smiyc/make_parity_cases.py

Keys: ``cases`` (names), ``numpy_version``, ``results_json`` (per case: the official numbers, or ``error`` with
the exception the official code raised), per frame ``<case>/<j>/scores`` (float16 or float32, as given to the
official code) and ``<case>/<j>/labels`` (uint8: 0, 1, 255), and per case the merged ``PixBinaryClass`` curve
``<case>/curve_thresholds`` (float64) with its counts ``<case>/curve_tp`` / ``<case>/curve_fp`` (int64).
tests/data/golden/smiyc/README.md (section 5) defines every field.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "golden" / "smiyc" / "parity_cases.npz"
TRACK_METRIC = {"anomaly": "SegEval-AnomalyTrack", "obstacle": "SegEval-ObstacleTrack"}


def _labels(rng: np.random.Generator, h: int, w: int, boxes: int = 2, void_rows: int = 6) -> np.ndarray:
    lab = np.zeros((h, w), np.uint8)
    for _ in range(boxes):
        y, x = int(rng.integers(0, h - 16)), int(rng.integers(0, w - 24))
        lab[y : y + int(rng.integers(10, 16)), x : x + int(rng.integers(12, 24))] = 1
    lab[h - void_rows :] = 255
    return lab


def _smooth(rng: np.random.Generator, h: int, w: int, lab: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    s = 0.3 + 0.15 * np.sin(xx / 7.0 + rng.uniform(0, 6)) * np.cos(yy / 9.0) + rng.normal(0, 0.05, (h, w))
    s[lab == 1] += 0.35
    return s


def cases(rng: np.random.Generator) -> dict[str, dict]:
    """name -> {"track", "frames": [(scores, labels)], "fixed": [pixel thresholds for SegEval]}."""
    out: dict[str, dict] = {}
    h, w = 40, 56
    for dtype in (np.float32, np.float16):
        tag = np.dtype(dtype).name
        frames = []
        for k in range(3):
            lab = _labels(rng, h, w)
            s = np.full((h, w), 0.4, dtype)  # the whole frame at the threshold
            if k == 2:
                s[lab == 1] = dtype(0.9)
            frames.append((s, lab))
        # fixed thresholds: the Python floats 0.4 and 0.3 and the map dtype's rounding of the one it holds
        out[f"constant_0.4_{tag}"] = {"track": "obstacle", "frames": frames, "fixed": [0.4, float(dtype(0.4)), 0.3]}
        frames = []
        t = dtype(0.3)
        near = np.array([np.nextafter(t, dtype(0)), t, np.nextafter(t, dtype(1))], dtype)
        for k in range(3):
            lab = _labels(rng, h, w)
            s = near[rng.integers(0, 3, (h, w))]
            s[lab == 1] = near[1 + (k % 2)]  # anomalies exactly at or just above 0.3
            frames.append((s.astype(dtype), lab))
        out[f"at_0.3_{tag}"] = {"track": "obstacle", "frames": frames, "fixed": [0.3, float(t), 0.4]}
    frames = []
    for k in range(4):  # every frame reaches 1.0: the first point of the merged curve depends on the tie order
        lab = _labels(rng, h, w)
        s = np.clip(_smooth(rng, h, w, lab), 0, 1)
        s[lab == 1] = np.maximum(s[lab == 1], 0.7)
        s[3 + k, : 5 + 7 * k] = 1.0
        lab[3 + k, : 5 + 7 * k] = k % 2
        frames.append((s.astype(np.float16), lab))
    out["tied_maxima"] = {"track": "obstacle", "frames": frames, "fixed": []}
    frames = []
    for k in range(3):
        lab = _labels(rng, h, w)
        frames.append((((_smooth(rng, h, w, lab) - 0.3) * 12.0).astype(np.float32), lab))
    out["unbounded"] = {"track": "obstacle", "frames": frames, "fixed": [0.0, 2.0]}
    for name, value in (("plus_inf", np.inf), ("minus_inf", -np.inf)):
        frames = []
        for k in range(2):
            lab = _labels(rng, h, w)
            s = np.clip(_smooth(rng, h, w, lab), 0, 1).astype(np.float16)
            s[10 + k, 20:30] = value
            frames.append((s, lab))
        out[name] = {"track": "obstacle", "frames": frames, "fixed": []}
    for name, quant in (("quantized_256", True), ("continuous", False)):
        frames = []
        for k in range(3):
            lab = _labels(rng, 48, 64, boxes=3)
            s = np.clip(_smooth(rng, 48, 64, lab), 0, 1)
            if quant:
                s = np.round(s * 255) / 255
            frames.append((s.astype(np.float32), lab))
        out[name] = {"track": "obstacle", "frames": frames, "fixed": []}
    lab_all = np.ones((h, w), np.uint8)
    lab_all[: h // 4] = 255
    s_all = np.clip(_smooth(rng, h, w, lab_all), 0, 1).astype(np.float16)
    lab_none = np.zeros((h, w), np.uint8)
    lab_none[h - 6 :] = 255
    s_none = np.clip(_smooth(rng, h, w, lab_none), 0, 1).astype(np.float16)
    lab1 = _labels(rng, h, w)
    s1 = np.clip(_smooth(rng, h, w, lab1), 0, 1).astype(np.float16)
    out["only_anomaly_frame"] = {"track": "obstacle", "frames": [(s1, lab1), (s_all, lab_all)], "fixed": []}
    out["no_anomaly_frame"] = {"track": "obstacle", "frames": [(s1, lab1), (s_none, lab_none)], "fixed": []}
    out["all_void_frame"] = {"track": "obstacle",
                             "frames": [(s1, lab1), (s_none, np.full((h, w), 255, np.uint8))], "fixed": []}
    big = []
    for k in range(2):  # anomaly-track size filters: components of >= 500 / >= 100 pixels
        lab = np.zeros((96, 128), np.uint8)
        lab[20:50, 30:60] = 1
        lab[60:70, 90:100] = 1 if k else 0
        lab[90:] = 255
        big.append((np.clip(_smooth(rng, 96, 128, lab), 0, 1).astype(np.float16), lab))
    out["anomaly_track_filters"] = {"track": "anomaly", "frames": big, "fixed": [0.5]}
    return out


def plain(value):
    """JSON-able values: arrays and lists as lists, numpy scalars as Python numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def official(case: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """The official numbers of one case (or the exception it raises) and its merged pixel curve as arrays."""
    from road_anomaly_benchmark.metrics import MetricRegistry

    def run(metric, frames):
        per = [metric.process_frame(label_pixel_gt=lab, anomaly_p=s, fid=f"f{j}", dset_name="case",
                                    method_name="m", visualize=False) for j, (s, lab) in enumerate(frames)]
        return per, metric.aggregate(per, method_name="m", dataset_name="case")

    res: dict = {"track": case["track"]}
    curve: dict[str, np.ndarray] = {}
    try:
        pix_metric = MetricRegistry.get("PixBinaryClass")
        _, pix = run(pix_metric, case["frames"])
        pix_metric.save(pix, method_name="m", dataset_name="case")
        n_pos = sum(int(np.count_nonzero(lab == 1)) for _, lab in case["frames"])
        n_neg = sum(int(np.count_nonzero(lab == 0)) for _, lab in case["frames"])
        tp, fp = np.round(pix.curve_tpr * n_pos).astype(np.int64), np.round(pix.curve_fpr * n_neg).astype(np.int64)
        # the curve as its counts: the official rates are exactly these divisions (checked), and counts compress
        assert np.array_equal(tp / n_pos, pix.curve_tpr) and np.array_equal(fp / n_neg, pix.curve_fpr)
        assert np.array_equal(pix.curve_recall, pix.curve_tpr)
        denom = tp + fp
        assert np.array_equal(np.divide(tp, denom, out=np.ones(tp.size), where=denom > 0), pix.curve_precision)
        thresholds = np.asarray(pix.thresholds, dtype=np.float64)
        assert thresholds.shape == tp.shape
        curve = {"curve_thresholds": thresholds, "curve_tp": tp, "curve_fp": fp}
        res["pixel"] = {"AP": pix.area_PRC, "FPR95": pix.tpr95_fpr, "AUROC": pix.area_ROC, "best_F1": pix.best_f1,
                        "best_F1_threshold": pix.best_f1_threshold, "FPR95_threshold": pix.tpr95_threshold,
                        "n_pos": n_pos, "n_neg": n_neg, "n_curve_points": int(tp.size)}
        _, uni = run(MetricRegistry.get("PixBinaryClass-uniThr"), case["frames"])
        res["uniform"] = {"AP": uni.area_PRC, "FPR95": uni.tpr95_fpr, "AUROC": uni.area_ROC}
        seg_metric = MetricRegistry.get(TRACK_METRIC[case["track"]])
        seg_metric.init("m", "case")
        thresholds = [("best_F1", seg_metric.cfg.thresh_p)] + [(f"fixed_{t!r}", t) for t in case["fixed"]]
        for key, thr in thresholds:
            seg_metric.cfg.thresh_p = thr
            per, seg = run(seg_metric, case["frames"])
            res[f"segment_{key}"] = {
                "config": TRACK_METRIC[case["track"]], "thresh_p": thr,
                "thresh_segsize": seg_metric.cfg.thresh_segsize, "thresh_instsize": seg_metric.cfg.thresh_instsize,
                "sIoU_gt": seg.sIoU_gt, "sIoU_pred": seg.sIoU_pred, "PPV": seg.prec_pred, "F1_mean": seg.f1_mean,
                **{k: getattr(seg, k) for k in ("f1_25", "f1_50", "f1_75", "tp_mean", "fn_mean", "fp_mean")},
                "n_gt": [len(r.sIoU_gt) for r in per], "n_pred": [len(r.sIoU_pred) for r in per],
                "frame_sIoU_gt": [r.sIoU_gt for r in per], "frame_sIoU_pred": [r.sIoU_pred for r in per],
                "frame_PPV": [r.prec_pred for r in per]}
    except Exception as exc:  # the official code's own failure is the expected behaviour to record
        res, curve = {"track": case["track"], "error": f"{type(exc).__name__}: {exc}"}, {}
    out = {k: plain(v) if not isinstance(v, dict) else {kk: plain(vv) for kk, vv in v.items()} for k, v in res.items()}
    return out, curve


def main() -> None:
    assert np.__version__.startswith("1.23."), f"run in the official venv (numpy 1.23), not numpy {np.__version__}"
    work = tempfile.TemporaryDirectory(prefix="smiyc_parity_")
    os.environ["DIR_OUTPUTS"] = work.name
    rng = np.random.default_rng(20261205)
    all_cases = cases(rng)
    arrays, results = {}, {}
    sys.stdout = sys.stderr  # the official aggregates print
    for name, case in all_cases.items():
        results[name], curve = official(case)
        for j, (s, lab) in enumerate(case["frames"]):
            arrays[f"{name}/{j}/scores"] = s
            arrays[f"{name}/{j}/labels"] = lab
        arrays.update({f"{name}/{key}": value for key, value in curve.items()})
        print(f"{name}: {results[name].get('error') or 'AP %.6f' % results[name]['pixel']['AP']}")
    arrays["cases"] = np.array(list(all_cases))
    arrays["results_json"] = np.array(json.dumps(results))
    arrays["numpy_version"] = np.array(np.__version__)
    assert all(a.dtype != object for a in arrays.values())
    np.savez_compressed(OUT, **arrays)
    size = OUT.stat().st_size
    print(f"{OUT}: {len(all_cases)} cases, {size} bytes")
    assert size < 300_000, f"{OUT}: {size} bytes, keep it under 300 kB"
    work.cleanup()


if __name__ == "__main__":
    main()
