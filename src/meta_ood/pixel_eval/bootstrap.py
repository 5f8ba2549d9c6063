"""Percentile bootstrap over images of the ranking metrics of a :class:`PooledHistogram`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from meta_ood.errors import InputError
from meta_ood.pixel_eval.histogram import PooledHistogram
from meta_ood.pixel_eval.ranking import RankState, no_pixels_error

__all__ = ["bootstrap", "bootstrap_replicates", "bootstrap_weights"]


def bootstrap_weights(n_images: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_images) int64: how often each image is drawn in each resample.

    Row r is the count vector of ``n_images`` draws with replacement (a multinomial draw with
    equal probabilities) from ``numpy.random.default_rng(seed)``.
    """
    if n_images < 1:
        raise InputError(f"n_images={n_images}: the bootstrap needs at least one image")
    if n_boot < 1:
        raise InputError(f"n_boot={n_boot}: expected a positive number of resamples")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot).astype(np.int64)


def _iter_blocks(
    mat: sp.csc_matrix, n_cols_half: int, weights: np.ndarray, block: int
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Yield resampled (pos, neg) column blocks in decreasing score order."""
    dense_ok = mat.nnz > 0.1 * mat.shape[0] * mat.shape[1]
    for hi in range(n_cols_half, 0, -block):
        lo = max(0, hi - block)
        cols = np.arange(hi - 1, lo - 1, -1)  # decreasing score
        out = []
        for offset in (n_cols_half, 0):  # positives, negatives
            sub = mat[:, cols + offset]
            if dense_ok:
                out.append(weights @ sub.toarray())
            else:
                out.append(np.asarray((sub.T @ weights.T).T))
        yield out[0], out[1], n_cols_half - hi


def bootstrap_replicates(
    hist: PooledHistogram,
    n_boot: int = 1000,
    seed: int = 0,
    tpr_level: float = 0.95,
    weights: np.ndarray | None = None,
    max_block_bytes: int = 32 << 20,
) -> dict[str, np.ndarray]:
    """Metrics of every bootstrap resample of the images (at ``image_bits`` resolution).

    Resample r pools the per-image histograms with the counts ``weights[r]`` (default
    :func:`bootstrap_weights`), i.e. the images drawn with replacement. All resamples are
    evaluated at once: the weighted sums are one matrix product per block of score bins, and the
    metrics are accumulated block by block from the highest score down.

    Returns ``auroc``, ``auprc``, ``fpr95``, ``best_f1`` (arrays of n_boot; NaN for a resample
    without OoD or without in-distribution pixels) and ``weights``.
    """
    if hist.n_images == 0:
        raise InputError("histogram has no images: the bootstrap resamples images")
    if hist.n_pos == 0 or hist.n_neg == 0:
        raise no_pixels_error(hist.n_pos, hist.n_neg)
    if weights is None:
        weights = bootstrap_weights(hist.n_images, n_boot, seed)
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != hist.n_images:
        raise InputError(f"weights of shape {weights.shape}: expected (n_boot, {hist.n_images})")
    w = weights.astype(np.float64)
    mat = hist.image_matrix()
    half = 1 << hist.image_bits
    # keep only score bins that occur in some image (same order), for both classes
    used = np.flatnonzero(np.asarray(mat.getnnz(axis=0)).reshape(2, half).sum(axis=0) > 0)
    mat = mat[:, np.concatenate((used, used + half))].astype(np.float64).tocsc()
    n_used = used.size
    per_image_pos = np.asarray(mat[:, n_used:].sum(axis=1)).ravel()
    per_image_neg = np.asarray(mat[:, :n_used].sum(axis=1)).ravel()
    state = RankState(w @ per_image_pos, w @ per_image_neg, tpr_level)
    block = max(1, int(max_block_bytes // (8 * max(1, w.shape[0]) * 2)))
    for pos, neg, offset in _iter_blocks(mat, n_used, w, block):
        state.add(pos, neg, offset)
    res = state.result()
    return {
        "auroc": res["auroc"],
        "auprc": res["auprc"],
        "fpr95": res["fpr95"],
        "best_f1": res["best_f1"],
        "weights": weights,
    }


def bootstrap(
    hist: PooledHistogram,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    tpr_level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals over images: metric -> (low, high).

    ``low`` / ``high`` are the ``alpha/2`` and ``1 - alpha/2`` quantiles (numpy's default linear
    interpolation) of the resampled ``auroc``, ``auprc``, ``fpr95`` and ``best_f1``; resamples
    without OoD or without in-distribution pixels are left out. Deterministic for a given seed.
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha={alpha}: expected a value in (0, 1)")
    reps = bootstrap_replicates(hist, n_boot=n_boot, seed=seed, tpr_level=tpr_level)
    out: dict[str, tuple[float, float]] = {}
    for key in ("auroc", "auprc", "fpr95", "best_f1"):
        v = reps[key][np.isfinite(reps[key])]
        if v.size == 0:
            raise InputError(
                "every bootstrap resample lacks OoD or in-distribution pixels: too few images with OoD pixels"
            )
        lo, hi = np.quantile(v, [alpha / 2.0, 1.0 - alpha / 2.0])
        out[key] = (float(lo), float(hi))
    return out
