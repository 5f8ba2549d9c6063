"""The official SegmentMeIfYouCan evaluation of one method on one folder of score files, timed.

Runs inside bench/official_smiyc/.venv (``setup.sh``), where the official package ``road_anomaly_benchmark``
and its pinned numpy 1.23 are installed. It does what the official pipeline's sequential mode does for
one method on one dataset (``Evaluation.run_metric_single``, i.e. ``calculate_metric_from_saved_outputs``
with ``parallel=False``): for each metric, a pass over the frames in fid order that reads each score file
with the official hdf5 loader and each label with its ``imread`` and calls ``process_frame``, then
``aggregate``; the ``PixBinaryClass`` curve is saved and ``SegEval-<Track>`` reads its best-F1 threshold
back (``init``), as the official code does. Dataset loading is bypassed (the frames are given as folders);
the images, which no metric reads, are not loaded, and no curve is plotted. One process, no
multiprocessing: the official default (``parallel=True``, ``run_metric_parallel``) spreads the frames over
a ``multiprocessing.Pool`` and merges them in the order they finish.

    python driver.py --scores DIR --labels DIR --track anomaly|obstacle --out result.json [--no-uniform]

``DIR/<fid>.hdf5`` (dataset ``value``) and ``LABELS/<fid>_labels_semantic.png`` (0, 1, 255). The JSON has

* ``timing``: seconds per step: ``PixBinaryClass`` / ``SegEval`` (each pass, its reads included),
  ``PixBinaryClass read`` / ``SegEval read`` (the reads of that pass), ``read`` (both), ``PixBinaryClass
  save``, ``total`` (the leaderboard metrics: PixBinaryClass + save + SegEval, reads included) and
  ``PixBinaryClass-uniThr`` (its own pass, not in ``total``);
* ``peak_rss_mib`` (the driver process's maximum resident set, at the end) and ``peak_rss_mib_leaderboard``
  (the same, taken before the uniThr pass);
* ``pixel``: the ``PixBinaryClass`` aggregate (``AP`` = ``area_PRC``, ``FPR95`` = ``tpr95_fpr``, ``AUROC`` =
  ``area_ROC``, ``best_F1`` = ``best_f1``, ``best_F1_threshold`` = ``best_f1_threshold``, ``FPR95_threshold`` =
  ``tpr95_threshold``, under both names) and ``uniThr_AP`` / ``uniThr_FPR95`` / ``uniThr_AUROC`` of
  ``PixBinaryClass-uniThr`` (also as ``uniform``); ``--no-uniform`` skips that pass;
* ``segment``: the ``SegEval-<Track>`` aggregate: ``sIoU_gt``, ``sIoU_pred``, ``PPV`` (= ``prec_pred``),
  ``F1_mean`` (= ``f1_mean``), ``f1_25`` / ``f1_50`` / ``f1_75``, ``tp_mean`` / ``fn_mean`` / ``fp_mean``, with
  the pixel threshold ``thresh_p`` and the size filters ``thresh_segsize`` / ``thresh_instsize``.
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
    ap.add_argument("--uniform", dest="uniform", action="store_true", default=True,
                    help="also PixBinaryClass-uniThr, timed apart (the default)")
    ap.add_argument("--no-uniform", dest="uniform", action="store_false", help="skip PixBinaryClass-uniThr")
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
    seg_name = SEG_METRICS[args.track]
    seg_metric = MetricRegistry.get(seg_name)
    seg_metric.init(METHOD, DATASET)  # the best-F1 threshold, read back from the saved curve
    seg = run_pass(seg_metric, items, timing, "SegEval")
    timing["read"] = timing["PixBinaryClass read"] + timing["SegEval read"]
    timing["total"] = timing["PixBinaryClass"] + timing["PixBinaryClass save"] + timing["SegEval"]
    peak_leaderboard = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    official_pix = {"area_PRC": "AP", "tpr95_fpr": "FPR95", "area_ROC": "AUROC", "best_f1": "best_F1",
                    "best_f1_threshold": "best_F1_threshold", "tpr95_threshold": "FPR95_threshold"}
    pixel = {ours: plain(getattr(pix, name)) for name, ours in official_pix.items()}
    pixel.update({name: pixel[ours] for name, ours in official_pix.items()})
    pixel["n_curve_points"] = int(len(pix.thresholds))
    official_seg = ("sIoU_gt", "sIoU_pred", "prec_pred", "f1_mean", "f1_25", "f1_50", "f1_75",
                    "tp_mean", "fn_mean", "fp_mean")
    segment = {name: plain(getattr(seg, name)) for name in official_seg}
    segment.update({"PPV": segment["prec_pred"], "F1_mean": segment["f1_mean"], "config": seg_name,
                    "thresh_p": plain(seg_metric.cfg.thresh_p), "thresh_segsize": int(seg_metric.cfg.thresh_segsize),
                    "thresh_instsize": int(seg_metric.cfg.thresh_instsize)})
    result = {"n_frames": len(items), "numpy": np.__version__, "mode": "sequential (run_metric_single), fid order",
              "pixel": pixel, "segment": segment}
    if args.uniform:
        uni = run_pass(MetricRegistry.get("PixBinaryClass-uniThr"), items, timing, "PixBinaryClass-uniThr")
        result["uniform"] = {"AP": plain(uni.area_PRC), "FPR95": plain(uni.tpr95_fpr), "AUROC": plain(uni.area_ROC)}
        pixel.update({f"uniThr_{k}": v for k, v in result["uniform"].items()})
    result["timing"] = timing
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_mib_leaderboard"] = peak_leaderboard
    args.out.write_text(json.dumps(result, indent=1))
    work.cleanup()


if __name__ == "__main__":
    main()
