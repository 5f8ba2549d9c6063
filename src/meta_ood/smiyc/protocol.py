"""The official SegmentMeIfYouCan pixel protocol: per-frame percentile bins, merged curve, metrics.

The leaderboard metric (``PixBinaryClass``) reduces every frame to a histogram over its own bin
edges (quantiles of the frame's anomaly and non-anomaly scores) before the frames are merged, so
its AP / FPR95 / AUROC are a binned approximation of the pooled per-pixel metrics. This module
reproduces that approximation bit for bit; :mod:`meta_ood.smiyc.evaluate` reports the exact
pooled metrics next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from meta_ood.errors import InputError

__all__ = [
    "NUM_QUANTILES",
    "UNIFORM_BINS",
    "VOID",
    "Curve",
    "FrameBins",
    "curve_metrics",
    "merge_frames",
    "percentile_bins",
    "roi_scores",
    "uniform_bins",
    "uniform_edges",
]

#: Label of void pixels (ignored everywhere); 0 = not anomaly, 1 = anomaly.
VOID = 255
#: Quantiles per class and frame of the percentile binning (official ``num_bins`` 768 / 2).
NUM_QUANTILES = 384
#: Number of bins of the uniform variant (``PixBinaryClass-uniThr``).
UNIFORM_BINS = 4096


@dataclass(frozen=True)
class FrameBins:
    """Histogram of one frame: ``edges`` descending (float64), ``tp_rel`` / ``fp_rel`` (int64)
    the anomaly / non-anomaly ROI pixels of bin j, ``edges[j + 1] <= s < edges[j]`` (bin 0 also
    holds ``s == edges[0]``); the frame's thresholds are ``edges[1:]``."""

    edges: np.ndarray
    tp_rel: np.ndarray
    fp_rel: np.ndarray
    num_pos: int
    num_neg: int

    @property
    def thresholds(self) -> np.ndarray:
        """Lower edge of every bin (descending)."""
        return self.edges[1:]


@dataclass(frozen=True)
class Curve:
    """Merged curve points in descending-threshold order (``recall`` = ``tpr``)."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def tpr(self) -> np.ndarray:
        """True positive rate TP / P of every point."""
        return self.tp / self.n_pos

    @property
    def fpr(self) -> np.ndarray:
        """False positive rate FP / N of every point."""
        return self.fp / self.n_neg

    @property
    def precision(self) -> np.ndarray:
        """TP / (TP + FP), 1 where nothing is predicted positive."""
        denom = self.tp + self.fp
        return np.divide(self.tp, denom, out=np.ones(self.tp.shape), where=denom > 0)


def roi_scores(scores: np.ndarray, labels: np.ndarray, where: str = "frame") -> tuple[np.ndarray, np.ndarray]:
    """(anomaly scores, non-anomaly scores) of the ROI of one frame, after checking its inputs.

    ``labels`` must hold only 0, 1 and :data:`VOID`; ``scores`` must be a real (H, W) map of the
    same shape without NaN.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise InputError(f"{where}: scores {scores.shape} and labels {labels.shape}: expected equal (H, W) shapes")
    if scores.dtype.kind != "f":
        raise InputError(f"{where}: scores of dtype {scores.dtype}: expected floating point anomaly scores")
    bad = ~np.isin(labels, (0, 1, VOID))
    if bad.any():
        raise InputError(f"{where}: labels contain {np.unique(labels[bad])[:5].tolist()}: expected 0, 1 or {VOID}")
    if np.isnan(scores).any():
        raise InputError(f"{where}: scores contain NaN: expected real anomaly scores")
    return scores[labels == 1], scores[labels == 0]


def _histograms(pos: np.ndarray, neg: np.ndarray, edges_asc: np.ndarray) -> FrameBins:
    tp, _ = np.histogram(pos, bins=edges_asc)
    fp, _ = np.histogram(neg, bins=edges_asc)
    return FrameBins(edges_asc[::-1].copy(), tp[::-1].astype(np.int64), fp[::-1].astype(np.int64), pos.size, neg.size)


def percentile_bins(scores: np.ndarray, labels: np.ndarray, where: str = "frame") -> FrameBins | None:
    """Official per-frame percentile histogram (``PixBinaryClass``); None for a frame without ROI pixel.

    Edges: ``vmin - eps``, ``vmax + eps`` (``eps = max(0.01 (vmax - vmin), 0.01)``, float64) and
    the linear quantiles of each class at ``linspace(0, 1, min(384, n_class))``, deduplicated.
    """
    pos, neg = roi_scores(scores, labels, where)
    if pos.size + neg.size == 0:
        return None
    vmin = float(min(a.min() for a in (pos, neg) if a.size))
    vmax = float(max(a.max() for a in (pos, neg) if a.size))
    eps = max(0.01 * (vmax - vmin), 0.01)
    parts = [np.array([vmin - eps, vmax + eps])]
    for values in (pos, neg):
        if values.size:
            q = np.linspace(0.0, 1.0, min(NUM_QUANTILES, values.size))
            parts.append(np.quantile(values.astype(np.float64), q))
    return _histograms(pos, neg, np.unique(np.concatenate(parts)))


def uniform_edges(dtype: np.dtype | type = np.float32) -> np.ndarray:
    """The 4097 edges of ``PixBinaryClass-uniThr``, ``linspace(-0.01, 1.01)`` in the score dtype,
    ascending, as float64."""
    return np.linspace(-0.01, 1.01, UNIFORM_BINS + 1, dtype=dtype).astype(np.float64)


def uniform_bins(scores: np.ndarray, labels: np.ndarray, where: str = "frame") -> FrameBins:
    """Per-frame histogram over the uniform edges of :func:`uniform_edges` (score dtype)."""
    pos, neg = roi_scores(scores, labels, where)
    return _histograms(pos, neg, uniform_edges(np.asarray(scores).dtype))


def merge_frames(frames: Iterable[FrameBins | None]) -> Curve:
    """Official merge: all frames' (threshold, tp, fp) sorted by threshold descending, cumulated.

    Of each run of equal thresholds only the last entry is kept, and entry 0 always (so an
    unrepeated top point appears twice). A (0, 0) point at ``max + 1`` is put in front when the
    first point is not empty, a (P, N) point at ``max - 1`` appended when the last is not complete.
    """
    used = [f for f in frames if f is not None]
    if not used:
        raise InputError("no frame has a pixel outside void: nothing to evaluate")
    thr = np.concatenate([f.thresholds for f in used])
    order = np.argsort(thr)[::-1]
    thr = thr[order]
    tp = np.cumsum(np.concatenate([f.tp_rel for f in used])[order])
    fp = np.cumsum(np.concatenate([f.fp_rel for f in used])[order])
    n_pos = int(sum(f.num_pos for f in used))
    n_neg = int(sum(f.num_neg for f in used))
    keep = np.concatenate(([0], np.flatnonzero(np.diff(thr)), [thr.size - 1]))
    thr, tp, fp = thr[keep], tp[keep], fp[keep]
    top = float(thr.max())
    if tp[0] > 0 or fp[0] > 0:
        thr, tp, fp = np.r_[top + 1.0, thr], np.r_[0, tp], np.r_[0, fp]
    if tp[-1] != n_pos or fp[-1] != n_neg:
        thr, tp, fp = np.r_[thr, top - 1.0], np.r_[tp, n_pos], np.r_[fp, n_neg]
    return Curve(thr, tp.astype(np.int64), fp.astype(np.int64), n_pos, n_neg)


def curve_metrics(curve: Curve, tpr_level: float = 0.95) -> dict[str, float]:
    """AP (step sum), AUROC (trapezoid), FPR at the first point with TPR >= ``tpr_level``, best F1.

    Keys ``AP``, ``AUROC``, ``FPR95``, ``FPR95_threshold`` (1.0 and 0.0 when the level is never
    reached), ``best_F1``, ``best_F1_threshold`` (first maximum), ``recall50_threshold``.
    Raises :class:`InputError` without anomaly or without non-anomaly pixels.
    """
    if curve.n_pos == 0 or curve.n_neg == 0:
        raise InputError(
            f"{curve.n_pos} anomaly and {curve.n_neg} non-anomaly pixels: the pixel metrics need both"
        )
    tpr, fpr, prec = curve.tpr, curve.fpr, curve.precision
    ap = float(np.sum(np.diff(tpr) * prec[1:]))
    auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    k = int(np.searchsorted(tpr, tpr_level, side="left"))
    fpr95, fpr95_thr = (float(fpr[k]), float(curve.thresholds[k])) if k < tpr.size else (1.0, 0.0)
    f1 = 2.0 * curve.tp / (2.0 * curve.tp + curve.fp + (curve.n_pos - curve.tp))
    best = int(np.nanargmax(f1))
    r50 = int(np.searchsorted(tpr, 0.5, side="left"))
    return {
        "AP": ap,
        "AUROC": auroc,
        "FPR95": fpr95,
        "FPR95_threshold": fpr95_thr,
        "best_F1": float(f1[best]),
        "best_F1_threshold": float(curve.thresholds[best]),
        "recall50_threshold": float(curve.thresholds[min(r50, tpr.size - 1)]),
    }

