"""The official SegmentMeIfYouCan evaluation of one method on one folder of score files, timed.

Runs inside bench/official_smiyc/.venv (``setup.sh``), where the official package ``road_anomaly_benchmark``
and its pinned numpy 1.23 are installed. It does what the official pipeline's sequential mode does for
the leaderboard metrics (``Evaluation.run_metric_single``): for each metric, a pass over the frames in
fid order that reads each score file with the official hdf5 loader and each label with its ``imread``
and calls ``process_frame``, then ``aggregate``; the ``PixBinaryClass`` curve is saved and
``SegEval-<Track>`` reads its best-F1 threshold back (``init``), as the official code does. Dataset
loading is bypassed (the frames are given as folders); the images, which no metric reads, are not loaded.

    python driver.py --scores DIR --labels DIR --track anomaly|obstacle --out result.json [--uniform]

``DIR/<fid>.hdf5`` (dataset ``value``) and ``LABELS/<fid>_labels_semantic.png`` (0, 1, 255). The JSON has
``timing`` (seconds per step and ``total``, the leaderboard metrics PixBinaryClass + SegEval with their
reads), ``peak_rss_mib``, ``pixel`` and ``segment`` (the official aggregates) and ``uniform`` with
``--uniform`` (``PixBinaryClass-uniThr``, timed apart, not in ``total``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

SCORE_SUFFIX = ".hdf5"
LABEL_SUFFIX = "_labels_semantic.png"
SEG_METRICS = {"anomaly": "SegEval-AnomalyTrack", "obstacle": "SegEval-ObstacleTrack"}
METHOD, DATASET = "bench", "bench-frames"


def frames(scores: Path, labels: Path) -> list[tuple[str, Path, Path]]:
    """(fid, score file, label) of every score file with a label, sorted by fid as the official datasets are."""
    out = []
    for path in sorted(scores.glob(f"*{SCORE_SUFFIX}")):
        fid = path.name[: -len(SCORE_SUFFIX)]
        label = labels / f"{fid}{LABEL_SUFFIX}"
        if label.is_file():
            out.append((fid, path, label))
    if not out:
        sys.exit(f"driver.py: no score file in {scores} has a label in {labels}")
    return out


def run_pass(metric, items, timing: dict, step: str):
    """One official metric pass: read, process_frame per frame, aggregate; read time kept apart."""
    import numpy as np
    from road_anomaly_benchmark.datasets.dataset_io import ChannelLoaderHDF5
    from road_anomaly_benchmark.jupyter_show_image import imread

    loader = ChannelLoaderHDF5(var_name="value")
    results, read = [], 0.0
    start = time.perf_counter()
    for fid, score_path, label_path in items:
        t = time.perf_counter()
        anomaly_p = np.squeeze(loader.read_file(score_path))
        label = imread(label_path)
        read += time.perf_counter() - t
        results.append(metric.process_frame(label_pixel_gt=label, anomaly_p=anomaly_p, fid=fid, dset_name=DATASET,
                                            method_name=METHOD, visualize=False))
    aggregated = metric.aggregate(results, method_name=METHOD, dataset_name=DATASET)
    timing[f"{step} read"] = read
    timing[step] = time.perf_counter() - start
    return aggregated


def plain(value):
    """JSON-able scalars of the official results (numpy scalars to float / int)."""
    try:
        return value.item()
    except AttributeError:
        return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scores", required=True, type=Path)
    ap.add_argument("--labels", required=True, type=Path)
    ap.add_argument("--track", required=True, choices=sorted(SEG_METRICS))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--uniform", action="store_true", help="also PixBinaryClass-uniThr (timed apart)")
    args = ap.parse_args()

    work = tempfile.TemporaryDirectory(prefix="official_smiyc_")
    os.environ["DIR_OUTPUTS"] = work.name  # where the official code saves its curve (read at import)
    import numpy as np
    from road_anomaly_benchmark.metrics import MetricRegistry

    items = frames(args.scores, args.labels)
    timing: dict[str, float] = {}
    sys.stdout = sys.stderr  # the official aggregates print their numbers; the JSON goes to --out
    pix_metric = MetricRegistry.get("PixBinaryClass")
    pix = run_pass(pix_metric, items, timing, "PixBinaryClass")
    t = time.perf_counter()
    pix_metric.save(pix, method_name=METHOD, dataset_name=DATASET)
    timing["PixBinaryClass save"] = time.perf_counter() - t
    seg_metric = MetricRegistry.get(SEG_METRICS[args.track])
    seg_metric.init(METHOD, DATASET)  # the best-F1 threshold, read back from the saved curve
    seg = run_pass(seg_metric, items, timing, "SegEval")
    timing["total"] = timing["PixBinaryClass"] + timing["PixBinaryClass save"] + timing["SegEval"]
    result = {
        "n_frames": len(items),
        "numpy": np.__version__,
        "pixel": {"AP": plain(pix.area_PRC), "FPR95": plain(pix.tpr95_fpr), "AUROC": plain(pix.area_ROC),
                  "best_F1": plain(pix.best_f1), "best_F1_threshold": plain(pix.best_f1_threshold),
                  "n_curve_points": int(len(pix.thresholds))},
        "segment": {"thresh_p": plain(seg_metric.cfg.thresh_p), "sIoU_gt": plain(seg.sIoU_gt),
                    "sIoU_pred": plain(seg.sIoU_pred), "PPV": plain(seg.prec_pred), "F1_mean": plain(seg.f1_mean),
                    **{k: plain(getattr(seg, k)) for k in ("f1_25", "f1_50", "f1_75", "tp_mean", "fn_mean", "fp_mean")}},
    }
    if args.uniform:
        uni = run_pass(MetricRegistry.get("PixBinaryClass-uniThr"), items, timing, "PixBinaryClass-uniThr")
        result["uniform"] = {"AP": plain(uni.area_PRC), "FPR95": plain(uni.tpr95_fpr), "AUROC": plain(uni.area_ROC)}
    result["timing"] = timing
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.write_text(json.dumps(result, indent=1))
    work.cleanup()


if __name__ == "__main__":
    main()
