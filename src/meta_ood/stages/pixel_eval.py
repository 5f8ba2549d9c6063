"""Pixel evaluation stage: the metrics of one softmax store, written as a JSON result and an npz file."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from meta_ood import pixel_eval as pe
from meta_ood.errors import InputError
from meta_ood.io import atomic_path, write_json
from meta_ood.labels import MIOU_THRESHOLDS
from meta_ood.scores import LOGIT_SCORERS
from meta_ood.smiyc.protocol import curve_metrics, merge_frames, summary_percentile_bins
from meta_ood.smiyc.summary import code_summary
from meta_ood.store import StoreReader, decode_scores

#: Points of the thinned ROC and PR curves in the result JSON.
CURVE_POINTS = 400


def _key(t: float) -> str:
    """JSON / npz key of an mIoU threshold: its shortest form, ``"inf"`` for the plain mIoU."""
    return "inf" if math.isinf(t) else f"{t:g}"


def pixel_eval_stage(
    store_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    out_npz: str | os.PathLike,
    miou_thresholds: Sequence[float] = MIOU_THRESHOLDS,
    n_boot: int = 1000,
    seed: int = 0,
    scorer: str = "entropy",
    progress: bool = True,
) -> dict[str, Any]:
    """Pixel-level evaluation of one softmax store.

    OoD datasets (the store has an in/out convention): AUROC, FPR95, AUPRC and best F1 of the
    ``scorer`` (default: normalized entropy) over all evaluated pixels pooled over the dataset,
    with image-bootstrap intervals, thinned ROC/PR curves and violin histograms; the pooled
    histogram goes to ``out_npz``; ``smiyc_binned``: AUPRC, AUROC and FPR95 of the same scores under
    the SegmentMeIfYouCan per-frame percentile-binned curve (for ``table_definitions``). Scores in [0, 1] use the histogram's "unit" encoding, the
    unbounded logit scorers its exact "float16" encoding (``encoding`` in the JSON; bootstrap at
    14 bits, i.e. 8 of the 10 float16 mantissa bits). Cityscapes (no convention): mIoU with an
    extra OoD class for normalized entropy >= t (paper fig. 5, whatever the scorer); ``out_npz``
    then holds the confusion matrices.

    Only the labelled images are evaluated (``frames`` lists them; a benchmark's unlabelled test
    frames are skipped and counted). Only the score plane (and, for the mIoU, the entropy and
    argmax planes) and the labels are read: the stored codes are the histogram's bins, so the metrics equal those of the score
    maps the dump computed. Stores that lack the plane compute it from their probabilities.
    """
    reader = StoreReader(store_dir)
    encoding = pe.score_encoding(scorer)
    conv = reader.convention
    indices = reader.labelled_or_raise()
    result: dict[str, Any] = {
        "store": str(store_dir), "model": reader.model, "dataset": reader.dataset_kind, "n_images": len(indices),
        "scorer": scorer, "frames": [reader.names[k] for k in indices],
        "n_unlabelled_skipped": len(reader) - len(indices),
    }
    if not reader.can_score(scorer):
        raise InputError(f"{store_dir}: the store has no {scorer!r} score plane and no "
                         f"{'logits' if scorer in LOGIT_SCORERS else 'probabilities'} to compute it from; "
                         "run dump_softmax with this scorer in the configuration")
    wanted = {"scores": ("entropy",), "argmax": True} if conv is None else {"scores": (scorer,)}
    images = reader.iter(indices, probs=False, logits=False, **wanted)
    bar = tqdm(images, total=len(indices), desc="pixel eval", disable=not progress, mininterval=1.0)
    if conv is None:
        acc = pe.MiouAccumulator(num_classes=reader.num_classes, thresholds=tuple(miou_thresholds))
        for img in bar:
            acc.update(img.argmax, decode_scores(img.scores["entropy"], "entropy"), img.label)
        res = acc.result()
        result["kind"] = "miou"
        for field in ("miou", "ood_fraction", "iou"):
            result[field] = {_key(t): r[field] for t, r in res.items()}
        with atomic_path(out_npz) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, thresholds=np.array(sorted(res)),
                                    **{f"confusion_{_key(t)}": acc.confusion(t) for t in res})
    else:
        hist = pe.PooledHistogram(encoding=encoding, image_bits=12 if encoding == "unit" else 14)
        smiyc_bins = []  # the SegmentMeIfYouCan per-frame binned curve of the same scores (table_definitions)
        for img in bar:
            hist.update_codes(img.scores[scorer], img.label, conv.train_id_in, conv.train_id_out, image_id=img.name)
            smiyc_bins.append(summary_percentile_bins(
                code_summary(img.scores[scorer], img.label, conv.train_id_in, conv.train_id_out, encoding)))
        metrics = hist.metrics(curve_points=CURVE_POINTS)
        result["kind"] = "ood"
        result["encoding"] = encoding
        for key in ("auroc", "auprc", "fpr95", "best_f1", "best_f1_threshold", "n_pos", "n_neg"):
            result[key] = metrics[key]
        result["roc"] = {k: metrics["roc"][k] for k in ("fpr", "tpr")}
        result["pr"] = {k: metrics["pr"][k] for k in ("precision", "recall")}
        result["ood_pixel_fraction"] = metrics["n_pos"] / (metrics["n_pos"] + metrics["n_neg"])
        if metrics["n_pos"] and metrics["n_neg"]:
            binned = curve_metrics(merge_frames(smiyc_bins))
            result["smiyc_binned"] = {"auprc": binned["AP"], "auroc": binned["AUROC"], "fpr95": binned["FPR95"]}
        if n_boot > 0:
            ci = pe.bootstrap(hist, n_boot=n_boot, seed=seed)
            result["bootstrap"] = {"n_boot": n_boot, "seed": seed, "alpha": 0.05,
                                   **{k: list(v) for k, v in ci.items()}}
        violin = pe.score_histogram_for_violin(hist, n_bins=100)
        result["violin"] = {
            "edges": violin["edges"],
            "centers": violin["centers"],
            **{side: {"density": violin[side]["density"], "quantiles": violin[side]["quantiles"]} for side in ("in", "out")},
        }
        hist.save(out_npz)
    write_json(out_json, result)
    return result
