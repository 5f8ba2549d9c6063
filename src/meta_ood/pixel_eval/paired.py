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

__all__ = ["PAIRED_METRICS", "aligned_weights", "paired_against", "paired_bootstrap", "paired_counts", "paired_summary"]

#: The metrics compared, with the direction that is better.
PAIRED_METRICS = {"auroc": "max", "auprc": "max", "fpr95": "min", "best_f1": "max"}


def aligned_weights(ids_ref: Sequence[str], ids_other: Sequence[str], n_boot: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One set of image draws for two histograms that hold the same images, possibly in another order: the
    draws in the reference's image order, and the same draws in the other's order. InputError naming the
    images only one of them has (the other is "the first" method, the reference "the second")."""
    ids_ref, ids_other = [str(i) for i in ids_ref], [str(i) for i in ids_other]
    if "" in ids_ref or "" in ids_other:
        raise InputError("a paired comparison needs the image ids of both histograms (an image without id)")
    only_ref, only_other = sorted(set(ids_ref) - set(ids_other)), sorted(set(ids_other) - set(ids_ref))
    if only_ref or only_other:
        raise InputError(f"the two methods were evaluated on different images: only in the first {only_other[:5]}"
                         f"{' ...' if len(only_other) > 5 else ''}, only in the second {only_ref[:5]}"
                         f"{' ...' if len(only_ref) > 5 else ''} (compare methods on the same frames)")
    weights = bootstrap_weights(len(ids_ref), n_boot, seed)
    position = {image: k for k, image in enumerate(ids_ref)}
    return weights, weights[:, [position[image] for image in ids_other]]


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


def paired_against(hists: Sequence[PooledHistogram], reference: PooledHistogram, n_boot: int = 1000, seed: int = 0,
                   alpha: float = 0.05, tpr_level: float = 0.95) -> list[dict[str, dict[str, Any]]]:
    """:func:`paired_bootstrap` of each of ``hists`` against ``reference``, with the reference's resamples computed
    once (every comparison uses the same image draws, so the results equal the pairwise calls)."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha={alpha}: expected a value in (0, 1)")
    ref_ids = reference.image_ids
    weights = bootstrap_weights(len(ref_ids), n_boot, seed)
    reps_ref = bootstrap_replicates(reference, weights=weights, tpr_level=tpr_level)
    m_ref = reference.metrics(tpr_level=tpr_level)
    out = []
    for hist in hists:
        _, w_h = aligned_weights(ref_ids, hist.image_ids, n_boot, seed)
        reps = bootstrap_replicates(hist, weights=w_h, tpr_level=tpr_level)
        m = hist.metrics(tpr_level=tpr_level)
        out.append({key: {"a": float(m[key]), "b": float(m_ref[key]),
                          **paired_summary(reps[key] - reps_ref[key], float(m[key]) - float(m_ref[key]), alpha)}
                    for key in PAIRED_METRICS})
    return out


def paired_bootstrap(hist_a: PooledHistogram, hist_b: PooledHistogram, n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05, tpr_level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Per metric of :data:`PAIRED_METRICS`: both methods' values, their difference a - b with its paired
    bootstrap interval, standard error, p-value and resolvable difference (:func:`paired_summary`).

    The histograms must hold the same images (matched by image id, in any order; the draws are made in
    ``hist_b``'s order). Values are those of the full histograms; the resamples use their ``image_bits``
    resolution, as the unpaired intervals do.
    """
    return paired_against([hist_a], hist_b, n_boot=n_boot, seed=seed, alpha=alpha, tpr_level=tpr_level)[0]


def paired_counts(ids_a: Sequence[str], counts_a: Sequence[float], ids_b: Sequence[str], counts_b: Sequence[float],
                  n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Paired bootstrap of the difference of two totals over the same images (e.g. two methods' detection errors,
    counted per image): resample r sums each side's per-image counts with the same draws (those of
    :func:`aligned_weights`, in ``ids_b``'s order, so the pixel comparisons of a dataset use the same ones).
    Both totals (``a``, ``b``) and :func:`paired_summary` of a - b."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha={alpha}: expected a value in (0, 1)")
    a, b = np.asarray(counts_a, dtype=float), np.asarray(counts_b, dtype=float)
    if a.shape != (len(ids_a),) or b.shape != (len(ids_b),):
        raise InputError(f"{a.shape} / {b.shape} counts for {len(ids_a)} / {len(ids_b)} images: expected one per image")
    w_b, w_a = aligned_weights(ids_b, ids_a, n_boot, seed)
    return {"a": float(a.sum()), "b": float(b.sum()), **paired_summary(w_a @ a - w_b @ b, float(a.sum() - b.sum()), alpha)}
