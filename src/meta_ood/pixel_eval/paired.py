"""Paired bootstrap of the difference of two methods' ranking metrics on the same images.

Two methods evaluated on the same frames are strongly correlated frame by frame, so the interval
that decides whether one beats the other is that of the *difference*, resampled with the same
image draws for both: resample r pools each method's per-image histograms with the same counts
``weights[r]`` (:func:`~meta_ood.pixel_eval.bootstrap.bootstrap_weights`, one seeded set per
dataset) and records ``metric_a - metric_b``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.pixel_eval.bootstrap import bootstrap_replicates, bootstrap_weights
from meta_ood.pixel_eval.histogram import PooledHistogram

__all__ = ["PAIRED_METRICS", "aligned_weights", "paired_bootstrap", "paired_summary"]

#: The metrics compared, with the direction that is better.
PAIRED_METRICS = {"auroc": "max", "auprc": "max", "fpr95": "min", "best_f1": "max"}


def aligned_weights(ids_a: Sequence[str], ids_b: Sequence[str], n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One set of image draws for two histograms that hold the same images, possibly in another order:
    (weights of a, the same draws in b's image order). InputError naming the images only one of them has."""
    ids_a, ids_b = [str(i) for i in ids_a], [str(i) for i in ids_b]
    if "" in ids_a or "" in ids_b:
        raise InputError("a paired comparison needs the image ids of both histograms (an image without id)")
    only_a, only_b = sorted(set(ids_a) - set(ids_b)), sorted(set(ids_b) - set(ids_a))
    if only_a or only_b:
        raise InputError(f"the two methods were evaluated on different images: only in the first {only_a[:5]}"
                         f"{' ...' if len(only_a) > 5 else ''}, only in the second {only_b[:5]}"
                         f"{' ...' if len(only_b) > 5 else ''} (compare methods on the same frames)")
    weights = bootstrap_weights(len(ids_a), n_boot, seed)
    position = {image: k for k, image in enumerate(ids_a)}
    return weights, weights[:, [position[image] for image in ids_b]]


def paired_summary(diffs: np.ndarray, point: float, alpha: float = 0.05) -> dict[str, float]:
    """The difference ``point``, its percentile interval over the resampled differences ``diffs`` (NaN ones
    left out), their standard error, the two-sided bootstrap p-value ``min(1, 2 min(P(d <= 0), P(d >= 0)))``
    and the smallest difference the data resolve at level ``alpha`` (normal approximation, ``z se``)."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise InputError("every paired resample lacks OoD or in-distribution pixels: too few images with OoD pixels")
    lo, hi = np.quantile(d, [alpha / 2.0, 1.0 - alpha / 2.0])
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    se = float(d.std(ddof=1)) if d.size > 1 else 0.0
    from scipy.stats import norm

    return {"diff": float(point), "lo": float(lo), "hi": float(hi), "p": p, "se": se,
            "resolvable": float(norm.ppf(1.0 - alpha / 2.0) * se), "n_boot": int(d.size)}


def paired_bootstrap(hist_a: PooledHistogram, hist_b: PooledHistogram, n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05, tpr_level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Per metric of :data:`PAIRED_METRICS`: both methods' values, their difference a - b with its paired
    bootstrap interval, standard error, p-value and resolvable difference (:func:`paired_summary`).

    The histograms must hold the same images (matched by image id, in any order). Values are those of the
    full histograms; the resamples use their ``image_bits`` resolution, as the unpaired intervals do.
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha={alpha}: expected a value in (0, 1)")
    w_a, w_b = aligned_weights(hist_a.image_ids, hist_b.image_ids, n_boot, seed)
    reps_a = bootstrap_replicates(hist_a, weights=w_a, tpr_level=tpr_level)
    reps_b = bootstrap_replicates(hist_b, weights=w_b, tpr_level=tpr_level)
    m_a, m_b = hist_a.metrics(tpr_level=tpr_level), hist_b.metrics(tpr_level=tpr_level)
    out: dict[str, dict[str, Any]] = {}
    for key in PAIRED_METRICS:
        a, b = float(m_a[key]), float(m_b[key])
        out[key] = {"a": a, "b": b, **paired_summary(reps_a[key] - reps_b[key], a - b, alpha)}
    return out
