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
from meta_ood.smiyc.summary import VOID, FrameSummary, official_quantiles, summarize
from meta_ood.smiyc.tieorder import introsort_argsort

__all__ = [
    "NUM_QUANTILES",
    "UNIFORM_BINS",
    "VOID",
    "Curve",
    "FrameBins",
    "curve_metrics",
    "merge_frames",
    "bins_from_edges",
    "percentile_bins",
    "percentile_edges",
    "sum_bins",
    "summary_percentile_bins",
    "tie_range",
    "uniform_bins",
    "uniform_edges",
]

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
    """Merged curve points in descending-threshold order (``recall`` = ``tpr``); ``top_ties``:
    the (tp, fp) each frame sharing the top threshold would give the first point (one row per
    frame; the point depends on the order of tied thresholds, see :func:`merge_frames`)."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int
    top_ties: np.ndarray | None = None

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


def bins_from_edges(summary: FrameSummary, edges_asc: np.ndarray) -> FrameBins:
    """The :class:`FrameBins` of a frame over ascending ``edges_asc`` (``np.histogram``'s bins)."""
    tp, fp = summary.histogram(edges_asc)
    return FrameBins(edges_asc[::-1].copy(), tp[::-1].copy(), fp[::-1].copy(), summary.num_pos, summary.num_neg)


def percentile_edges(summary: FrameSummary) -> np.ndarray | None:
    """Ascending official percentile edges of a frame; None for a frame without ROI pixel.

    ``vmin - eps``, ``vmax + eps`` with ``eps = max(0.01 (vmax - vmin), 0.01)`` (the range taken in
    the map's dtype, as the official code does), and the linear quantiles of each class at
    ``linspace(0, 1, min(384, n_class))`` (:func:`~meta_ood.smiyc.summary.official_quantiles`),
    deduplicated.
    """
    if summary.values.size == 0:
        return None
    dtype = summary.dtype
    vmin, vmax = dtype.type(summary.values[0]), dtype.type(summary.values[-1])
    with np.errstate(over="ignore", invalid="ignore"):
        vrange = float(np.subtract(vmax, vmin))
        eps = max(vrange * 1e-2, 1e-2)
        parts = [np.array([float(vmin) - eps, float(vmax) + eps])]
    for counts in (summary.pos, summary.neg):
        n = int(counts.sum())
        if n:
            q = np.linspace(0.0, 1.0, min(NUM_QUANTILES, n))
            parts.append(official_quantiles(summary.values, counts, q, dtype))
    return np.unique(np.concatenate(parts))


def percentile_bins(scores: np.ndarray, labels: np.ndarray, where: str = "frame") -> FrameBins | None:
    """Official per-frame percentile histogram (``PixBinaryClass``) of a score map; None for a
    frame without ROI pixel (see :func:`percentile_edges`)."""
    return summary_percentile_bins(summarize(scores, labels, where))


def summary_percentile_bins(summary: FrameSummary) -> FrameBins | None:
    """:func:`percentile_bins` of a frame's :class:`~meta_ood.smiyc.summary.FrameSummary`."""
    edges = percentile_edges(summary)
    return None if edges is None else bins_from_edges(summary, edges)


def uniform_edges(dtype: np.dtype | type = np.float32) -> np.ndarray:
    """The 4097 edges of ``PixBinaryClass-uniThr``, ``linspace(-0.01, 1.01)`` in the score dtype,
    ascending, as float64."""
    return np.linspace(-0.01, 1.01, UNIFORM_BINS + 1, dtype=dtype).astype(np.float64)


def uniform_bins(scores: np.ndarray, labels: np.ndarray, where: str = "frame") -> FrameBins:
    """Per-frame histogram over the uniform edges of :func:`uniform_edges` (score dtype)."""
    summary = summarize(scores, labels, where)
    return bins_from_edges(summary, uniform_edges(summary.dtype))


def sum_bins(frames: Iterable[FrameBins]) -> list[FrameBins]:
    """Frames with equal edges summed into one (``PixBinaryClass-uniThr`` sums its frames' fixed
    bins); one entry per distinct edge set, in order of first appearance."""
    groups: dict[bytes, FrameBins] = {}
    for f in frames:
        key = f.edges.tobytes()
        g = groups.get(key)
        groups[key] = f if g is None else FrameBins(
            g.edges, g.tp_rel + f.tp_rel, g.fp_rel + f.fp_rel, g.num_pos + f.num_pos, g.num_neg + f.num_neg)
    return list(groups.values())


def merge_frames(frames: Iterable[FrameBins | None]) -> Curve:
    """Official merge: all frames' (threshold, tp, fp) sorted by threshold descending, cumulated.

    Of each run of equal thresholds only the last entry is kept, and entry 0 always (so an
    unrepeated top point appears twice). A (0, 0) point at ``max + 1`` is put in front when the
    first point is not empty, a (P, N) point at ``max - 1`` appended when the last is not complete.

    Only entry 0 depends on the order of equal thresholds: when several frames share the top
    threshold it holds the counts of whichever comes first. The official code sorts with numpy's
    default (unstable) ``argsort``; under its pinned numpy 1.23 that order is reproduced here
    (:func:`~meta_ood.smiyc.tieorder.introsort_argsort`, used when frames tie at the top; newer numpy
    releases order ties differently), and ``Curve.top_ties`` lists every tied frame's candidate.
    A single edge set keeps its own descending order: the official uniform variant sums its frames
    on one set of edges and does not sort (float16 uniform edges repeat).
    """
    used = [f for f in frames if f is not None]
    if not used:
        raise InputError("no frame has a pixel outside void: nothing to evaluate")
    thr = np.concatenate([f.thresholds for f in used])
    n_top = int(np.count_nonzero(thr == thr.max()))
    if len(used) == 1:  # one edge set (a single frame, or the uniform variant's sum): already in order
        order = np.arange(thr.size)
    else:
        tied = n_top > 1 or bool(np.isnan(thr).any())  # NaN sorts last, i.e. first here
        order = (introsort_argsort(thr) if tied else np.argsort(thr, kind="stable"))[::-1]
    thr = thr[order]
    tp_rel = np.concatenate([f.tp_rel for f in used])[order]
    fp_rel = np.concatenate([f.fp_rel for f in used])[order]
    tp, fp = np.cumsum(tp_rel), np.cumsum(fp_rel)
    n_pos = int(sum(f.num_pos for f in used))
    n_neg = int(sum(f.num_neg for f in used))
    keep = np.concatenate(([0], np.flatnonzero(thr[:-1] != thr[1:]), [thr.size - 1]))  # inf == inf, NaN != NaN
    thr, tp, fp = thr[keep], tp[keep], fp[keep]
    top = float(thr.max())
    if tp[0] > 0 or fp[0] > 0:
        thr, tp, fp = np.r_[top + 1.0, thr], np.r_[0, tp], np.r_[0, fp]
    if tp[-1] != n_pos or fp[-1] != n_neg:
        thr, tp, fp = np.r_[thr, top - 1.0], np.r_[tp, n_pos], np.r_[fp, n_neg]
    ties = np.stack([tp_rel[:n_top], fp_rel[:n_top]], axis=1).astype(np.int64) if n_top > 1 else None
    return Curve(thr, tp.astype(np.int64), fp.astype(np.int64), n_pos, n_neg, ties)


def tie_range(curve: Curve) -> tuple[float, float]:
    """(min, max) of the official AP over the orders of frames sharing the top threshold
    (:func:`merge_frames`); both equal the AP when no frames tie there."""
    ap = float(np.sum(np.diff(curve.tpr) * curve.precision[1:]))
    if curve.top_ties is None:
        return ap, ap
    first = 1 if curve.thresholds[0] > curve.thresholds[1] and curve.tp[0] == 0 and curve.fp[0] == 0 else 0
    values = []
    for tp1, fp1 in curve.top_ties:
        tp, fp = curve.tp.copy(), curve.fp.copy()
        tp[first], fp[first] = tp1, fp1
        values.append(float(np.sum(np.diff(tp / curve.n_pos) * Curve(curve.thresholds, tp, fp, curve.n_pos,
                                                                      curve.n_neg).precision[1:])))
    return min(values), max(values)


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

