"""Scores of FP detection (paper table 3): AUROC, AUPRC and accuracy, and the MSP baseline."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from meta_ood.errors import InputError
from meta_ood.meta.inputs import DegenerateInputWarning, as_binary01
from meta_ood.pixel_eval import PooledHistogram

__all__ = ["evaluate", "msp_baseline", "msp_scores", "segment_histogram"]


def evaluate(y_true: Any, proba: Any) -> dict[str, float | int | None]:
    """AUROC, AUPRC (average precision) and accuracy at 0.5 of detecting FP segments (label 1).

    ``accuracy`` counts ``proba > 0.5`` as FP (scikit-learn's ``predict`` rule). AUROC and AUPRC
    are undefined with one class in ``y_true``: they are then None and a
    :class:`DegenerateInputWarning` is issued. Also returns ``n`` and ``n_positive``.
    """
    s = np.asarray(proba, dtype=np.float64)
    if s.ndim != 1:
        raise InputError(f"scores: expected a 1-D array, got shape {s.shape}")
    t = as_binary01(y_true, s.shape[0])
    if not np.isfinite(s).all():
        raise InputError(f"scores: {int((~np.isfinite(s)).sum())} of {s.shape[0]} values are NaN or inf")
    out: dict[str, float | int | None] = {
        "auroc": None,
        "auprc": None,
        "accuracy": None,
        "n": int(s.shape[0]),
        "n_positive": int(t.sum()),
    }
    if s.shape[0] == 0:
        warnings.warn("evaluate: no segments; every score is None", DegenerateInputWarning, stacklevel=2)
        return out
    out["accuracy"] = float(accuracy_score(t, (s > 0.5).astype(np.float64)))
    if t.min() == t.max():
        warnings.warn(
            f"evaluate: all {s.shape[0]} labels are {int(t[0])}; AUROC and AUPRC are undefined (None)",
            DegenerateInputWarning,
            stacklevel=2,
        )
        return out
    out["auroc"] = float(roc_auc_score(t, s))
    out["auprc"] = float(average_precision_score(t, s))
    return out


def msp_scores(mean_variation_ratio: Any) -> np.ndarray:
    """Per-segment mean maximum softmax probability from the mean variation ratio ``V``: ``1 - V``."""
    v = np.asarray(mean_variation_ratio, dtype=np.float64)
    if v.ndim != 1:
        raise InputError(f"mean variation ratio: expected a 1-D array, got shape {v.shape}")
    return 1.0 - v


def msp_baseline(mean_msp: Any, y: Any) -> dict[str, float | int | None]:
    """The paper's MSP baseline (table 3): the segment's mean max-softmax probability as FP score.

    A segment predicted OoD by high entropy is more likely a false positive the more confident
    the network is on it, so the score for "FP" (``y = iou0 = 1``) is the mean MSP itself (as in
    the paper, the direction is fixed, so AUROC can fall below 0.5). ``accuracy`` counts
    ``MSP > 0.5`` as FP. Returns :func:`evaluate`'s dict.
    """
    return evaluate(y, mean_msp)


def segment_histogram(scores: Any, y_true: Any, images: Any, image_ids: Any) -> PooledHistogram:
    """The FP-detection scores of segments as a ranking histogram with one image per id of ``image_ids``
    (images without segments included), so that :mod:`meta_ood.pixel_eval.paired` compares two detectors on the
    same images: FP segments (label 1) are the positive class, and the bins are the ranks of the distinct scores,
    so its AUROC and AUPRC are those of :func:`evaluate` (up to 65,536 distinct scores; more are merged into
    65,536 rank groups)."""
    s = np.asarray(scores, dtype=np.float64)
    t = as_binary01(y_true, s.shape[0]).astype(bool)
    img = np.asarray(images)
    if img.shape != s.shape:
        raise InputError(f"images {img.shape} for {s.shape[0]} scores: expected one image id per segment")
    values, rank = np.unique(s, return_inverse=True)
    if values.size > 1 << 16:
        rank = rank * (1 << 16) // values.size
    hist = PooledHistogram(bits=16, image_bits=16, encoding="unit")
    for image in image_ids:
        sel = img == image
        r = rank[sel]
        bins, inverse = np.unique(r, return_inverse=True)
        pos = np.bincount(inverse, weights=t[sel], minlength=bins.size).astype(np.int64)
        neg = np.bincount(inverse, minlength=bins.size).astype(np.int64) - pos
        hist.update_counts(bins, pos, neg, image_id=str(image))
    return hist
