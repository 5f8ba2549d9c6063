"""The official SegmentMeIfYouCan component metrics (``SegEval``) at one pixel threshold.

Per frame: prediction = score > threshold (strict, compared in the map's dtype as the official
code does under its numpy 1.x) outside void; 8-connected
components of the prediction and of the anomaly label; predicted components with fewer than
``segsize`` pixels are deleted, THEN ground-truth components with fewer than ``instsize`` pixels
become void, and everything is counted inside that final region. sIoU uses the adjusted union
(predictions covering other ground-truth components are not held against a component), PPV the
pixel precision of a predicted component; both are pooled over all components of all frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from meta_ood.errors import InputError
from meta_ood.smiyc.summary import VOID, comparison_threshold, greater, roi_rows, summarize

__all__ = [
    "OFFICIAL_DATASET_TRACKS",
    "SIZE_FILTERS",
    "TAU",
    "FrameComponents",
    "FrameTruth",
    "GroundTruth",
    "PixelTruth",
    "component_metrics",
    "filter_track",
    "frame_components",
    "ground_truth",
    "mask_components",
    "prediction_components",
    "size_filters",
    "track_names",
]

#: Official tau grid of the component F1 (float64, note 0.6000000000000001).
TAU = np.linspace(0.25, 0.75, 11)
#: (thresh_segsize, thresh_instsize) by track: SegEval-AnomalyTrack 500 / 100, SegEval-ObstacleTrack
#: 50 / 10 (ObstacleTrack and LostAndFound-testNoKnown).
SIZE_FILTERS: dict[str, tuple[int, int]] = {"anomaly": (500, 100), "obstacle": (50, 10), "lostandfound": (50, 10)}
#: Official SegmentMeIfYouCan dataset names (``anomaly_p/<method>/<dataset>/`` folders) -> the track
#: of :data:`SIZE_FILTERS` whose size filters the benchmark applies to them.
OFFICIAL_DATASET_TRACKS: dict[str, str] = {
    "AnomalyTrack-all": "anomaly",
    "AnomalyTrack-validation": "anomaly",
    "AnomalyTrack-test": "anomaly",
    "FishyLAFAnomaly-val": "anomaly",
    "ObstacleTrack-all": "obstacle",
    "ObstacleTrack-validation": "obstacle",
    "ObstacleTrack-test": "obstacle",
    "LostAndFound-test": "lostandfound",
    "LostAndFound-testNoKnown": "lostandfound",
}
_EIGHT = np.ones((3, 3), dtype=bool)


def track_names() -> list[str]:
    """Every accepted ``track``: the tracks of :data:`SIZE_FILTERS`, then the official dataset names."""
    return sorted(SIZE_FILTERS) + list(OFFICIAL_DATASET_TRACKS)


def filter_track(track: str) -> str:
    """The :data:`SIZE_FILTERS` track of ``track``, a track or an official dataset name (``ObstacleTrack-all``)."""
    name = OFFICIAL_DATASET_TRACKS.get(track, track)
    if name not in SIZE_FILTERS:
        raise InputError(f"track {track!r}: expected one of {track_names()}")
    return name


def size_filters(track: str, segsize: int | None = None, instsize: int | None = None) -> tuple[int, int]:
    """(segsize, instsize) of ``track`` (a track or an official dataset name), each overridable; sizes must be >= 0."""
    default_seg, default_inst = SIZE_FILTERS[filter_track(track)]
    seg = default_seg if segsize is None else int(segsize)
    inst = default_inst if instsize is None else int(instsize)
    if seg < 0 or inst < 0:
        raise InputError(f"segsize={seg}, instsize={inst}: expected sizes >= 0")
    return seg, inst


@dataclass(frozen=True)
class FrameComponents:
    """Component values of one frame, in label order (raster order of each component's first pixel).

    ``sIoU_gt`` / ``size_gt`` per kept ground-truth component, ``PPV`` / ``sIoU_pred`` /
    ``size_pred`` per kept predicted component (sizes inside the final ROI), ``kept_pred_mask``
    the predicted components that passed the size filter (before the small ground truth is
    voided), or None when not requested.
    """

    sIoU_gt: np.ndarray
    size_gt: np.ndarray
    PPV: np.ndarray
    sIoU_pred: np.ndarray
    size_pred: np.ndarray
    kept_pred_mask: np.ndarray | None

    def counts(self, tau: np.ndarray = TAU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(TP, FN, FP) per tau: sIoU >= tau, sIoU < tau, PPV < tau."""
        t = np.asarray(tau, dtype=np.float64)[:, None]
        tp = (self.sIoU_gt[None, :] >= t).sum(axis=1).astype(np.int64)
        fp = (self.PPV[None, :] < t).sum(axis=1).astype(np.int64)
        return tp, self.sIoU_gt.size - tp, fp


def _adjusted_siou(a: np.ndarray, b: np.ndarray, overlap: np.ndarray, size_a: np.ndarray,
                   size_b: np.ndarray) -> np.ndarray:
    """sIoU of every component a against the union of the components b touching it, from the
    overlapping pairs ``(a, b)`` with ``overlap`` = |a ∩ b| (each pair once).

    union = |B(a)| + |a| - |a ∩ B(a)| - |B(a) ∩ other a'|, where the last two terms sum to the
    pixels of B(a) inside any a-component. Sums of pixel counts: exact in float64.
    """
    b_in_any_a = np.bincount(b, weights=overlap, minlength=size_b.size)
    inter = np.bincount(a, weights=overlap, minlength=size_a.size)
    union = (np.bincount(a, weights=size_b[b], minlength=size_a.size) + size_a
             - np.bincount(a, weights=b_in_any_a[b], minlength=size_a.size))
    return np.divide(inter, union, out=np.zeros(size_a.size), where=union > 0)


def _label_pixels(index: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    """The 8-connected component (1, 2, ...: raster order of first pixels) of each of the pixels
    ``index`` (ascending flat indices into an image ``width`` columns wide) and the number of
    components. Only the rows between the first and the last pixel are labelled."""
    if index.size == 0:
        return np.zeros(0, np.int64), 0
    base = int(index[0]) // width * width
    grid = np.zeros((int(index[-1]) // width + 1) * width - base, dtype=bool)
    grid[index - base] = True
    labelled, n = ndimage.label(grid.reshape(-1, width), structure=_EIGHT)
    return labelled.reshape(-1)[index - base].astype(np.int64), int(n)


@dataclass(frozen=True)
class GroundTruth:
    """The threshold-independent part of a frame: ``roi`` (where predictions count before the
    size filters), the ``anomaly`` pixels (ascending flat indices) with their ``component`` (-1 for
    the components smaller than ``instsize``, which become void) and the component sizes
    ``size_gt`` (0 for the voided ones; index 0: the rest of the final ROI)."""

    roi: np.ndarray
    anomaly: np.ndarray
    component: np.ndarray
    n_gt: int
    size_gt: np.ndarray

    def at(self, index: np.ndarray) -> np.ndarray:
        """The ground truth of the ROI pixels ``index`` (ascending flat indices): component, 0 for
        none, -1 in a voided one; int16 when the component ids fit."""
        out = np.zeros(index.size, np.int16 if self.n_gt < 2**15 else np.int32)
        if index.size and self.anomaly.size:
            pos = np.minimum(np.searchsorted(index, self.anomaly), index.size - 1)
            hit = index[pos] == self.anomaly
            out[pos[hit]] = self.component[hit]
        return out


def ground_truth(anomaly: np.ndarray, roi: np.ndarray, instsize: int) -> GroundTruth:
    """8-connected components of the ``anomaly`` mask; those under ``instsize`` pixels become void."""
    idx = np.flatnonzero(anomaly)
    component, n_gt = _label_pixels(idx, anomaly.shape[1])
    size = np.bincount(component, minlength=n_gt + 1).astype(np.float64)
    small = size < instsize
    small[0] = False
    dropped = small[component]
    component[dropped] = -1
    size[small] = 0
    size[0] = np.count_nonzero(roi) - np.count_nonzero(roi.reshape(-1)[idx[dropped]]) - size[1:].sum()
    return GroundTruth(roi, idx, component, n_gt, size)


def _pixel_components(index: np.ndarray, width: int, truth_at: np.ndarray, n_gt: int, size_gt: np.ndarray,
                      segsize: int) -> tuple[FrameComponents, np.ndarray]:
    """sIoU / PPV of the 8-connected components formed by the predicted pixels ``index`` (ascending
    flat indices into an image ``width`` columns wide; those under ``segsize`` pixels dropped)
    against the ground truth ``truth_at`` of each pixel (its component, 0: none, -1: outside the
    final region). Also returns the indices of the pixels in kept components."""
    labels, n_pred = _label_pixels(index, width)
    kept = (np.bincount(labels, minlength=n_pred + 1) >= segsize)[labels]
    idx, labels, truth_at = index[kept], labels[kept], truth_at[kept]
    inside = truth_at >= 0
    p, g = labels[inside], truth_at[inside].astype(np.int64)
    size_p = np.bincount(p, minlength=n_pred + 1).astype(np.float64)
    both = g > 0
    pairs, overlap = np.unique(g[both] * (n_pred + 1) + p[both], return_counts=True)
    pair_g, pair_p, overlap = pairs // (n_pred + 1), pairs % (n_pred + 1), overlap.astype(np.float64)
    gt_ids = np.flatnonzero(size_gt[1:] > 0) + 1
    pred_ids = np.flatnonzero(size_p[1:] > 0) + 1
    siou_gt = _adjusted_siou(pair_g, pair_p, overlap, size_gt, size_p)
    siou_pred = _adjusted_siou(pair_p, pair_g, overlap, size_p, size_gt)
    in_gt = np.bincount(pair_p, weights=overlap, minlength=n_pred + 1).astype(np.float64)
    fc = FrameComponents(
        sIoU_gt=siou_gt[gt_ids],
        size_gt=size_gt[gt_ids].astype(np.int64),
        PPV=in_gt[pred_ids] / size_p[pred_ids],
        sIoU_pred=siou_pred[pred_ids],
        size_pred=size_p[pred_ids].astype(np.int64),
        kept_pred_mask=None,
    )
    return fc, idx


def _kept_mask(shape: tuple[int, int], rows: slice, idx: np.ndarray) -> np.ndarray:
    """(H, W) mask of the pixels ``idx`` (flat indices into the band ``rows``)."""
    full = np.zeros(shape, dtype=bool)
    full[rows].reshape(-1)[idx] = True
    return full


def prediction_components(pred: np.ndarray, truth: GroundTruth, segsize: int, keep_mask: bool = False) -> FrameComponents:
    """sIoU / PPV of the 8-connected components of ``pred`` (restricted to ``truth.roi``; those
    under ``segsize`` pixels dropped, before the small ground truth is voided) against ``truth``."""
    index = np.flatnonzero(pred & truth.roi)
    fc, idx = _pixel_components(index, pred.shape[1], truth.at(index), truth.n_gt, truth.size_gt, segsize)
    if keep_mask:
        fc = dataclasses.replace(fc, kept_pred_mask=_kept_mask(pred.shape, slice(None), idx))
    return fc


def mask_components(pred: np.ndarray, anomaly: np.ndarray, roi: np.ndarray, segsize: int, instsize: int,
                    keep_mask: bool = False) -> FrameComponents:
    """Component values of a binary prediction against an anomaly mask inside ``roi`` (the
    official ``SegEval`` instancer and ``segment_metrics``)."""
    return prediction_components(np.asarray(pred, dtype=bool), ground_truth(anomaly, roi, instsize), segsize,
                                 keep_mask)


class FrameTruth:
    """One frame's labels, cut to the band of rows holding its ROI, with its ground truth
    components, ready for the predictions of any number of thresholds."""

    def __init__(self, labels: np.ndarray, instsize: int):
        labels = np.asarray(labels)
        self.shape = labels.shape
        self.rows = roi_rows(labels)
        crop = labels[self.rows]
        self.truth = ground_truth(crop == 1, crop != VOID, instsize)

    def components(self, scores: np.ndarray, threshold: np.generic | float, segsize: int,
                   keep_mask: bool = False) -> FrameComponents:
        """Components of ``scores > threshold`` (compared in the type of ``threshold``; see
        :func:`~meta_ood.smiyc.summary.comparison_threshold`)."""
        return self.mask_components(greater(np.asarray(scores)[self.rows], threshold), segsize, keep_mask)

    def mask_components(self, pred: np.ndarray, segsize: int, keep_mask: bool = False) -> FrameComponents:
        """Components of a prediction given on the ROI's rows (``pred``, boolean)."""
        return self.at(np.flatnonzero(pred & self.truth.roi)).components(None, segsize, keep_mask)

    def at(self, index: np.ndarray) -> PixelTruth:
        """The ground truth of the ROI pixels ``index`` (ascending flat indices into the ROI's rows),
        for the components of any prediction made of them, without the frame's arrays."""
        return PixelTruth(self.shape, self.rows, index, self.truth.at(index), self.truth.n_gt,
                          self.truth.size_gt)


@dataclass(frozen=True)
class PixelTruth:
    """The ground truth at some ROI pixels of a frame of ``shape`` (``index``: ascending flat indices
    into its band of ROI rows ``rows``; ``truth_at``: each one's ground truth component, 0 none, -1
    outside the final region) and the frame's ground truth component sizes."""

    shape: tuple[int, int]
    rows: slice
    index: np.ndarray
    truth_at: np.ndarray
    n_gt: int
    size_gt: np.ndarray

    def components(self, selected: np.ndarray | None, segsize: int, keep_mask: bool = False) -> FrameComponents:
        """Components of the prediction made of the pixels where ``selected`` (boolean, per pixel of
        ``index``; None: all of them)."""
        index, truth_at = (self.index, self.truth_at) if selected is None else (self.index[selected],
                                                                                 self.truth_at[selected])
        fc, idx = _pixel_components(index, self.shape[1], truth_at, self.n_gt, self.size_gt, segsize)
        if keep_mask:
            fc = dataclasses.replace(fc, kept_pred_mask=_kept_mask(self.shape, self.rows, idx))
        return fc


def frame_components(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    segsize: int,
    instsize: int,
    where: str = "frame",
    keep_mask: bool = True,
) -> FrameComponents:
    """Instancer and sIoU / PPV of one frame (labels 0 / 1 / 255) at a pixel threshold, compared
    in the map's dtype as the official code does (:func:`~meta_ood.smiyc.summary.comparison_threshold`).

    ``keep_mask=False`` drops the (H, W) ``kept_pred_mask`` to save memory.
    """
    summarize(scores, labels, where)
    scores = np.asarray(scores)
    thr = comparison_threshold(threshold, scores.dtype)
    return FrameTruth(labels, instsize).components(scores, thr, segsize, keep_mask)


def component_metrics(frames: Iterable[FrameComponents], tau: np.ndarray = TAU) -> dict[str, object]:
    """Dataset totals and pooled means of per-frame component values (official ``aggregate``).

    ``tp`` / ``fn`` / ``fp`` / ``F1`` per tau (F1 = 2 TP / (2 TP + FN + FP) on the totals, NaN
    where that denominator is 0), ``F1_mean`` and the official ``F1_25`` / ``F1_50`` / ``F1_75``,
    ``tp_mean`` / ``fn_mean`` / ``fp_mean``, and ``sIoU_gt`` / ``PPV`` / ``sIoU_pred`` pooled
    over components (NaN when there is no such component), with ``n_gt`` / ``n_pred``.
    """
    tau = np.asarray(tau, dtype=np.float64)
    frames = list(frames)
    tp = np.zeros(tau.size, np.int64)
    fn = np.zeros(tau.size, np.int64)
    fp = np.zeros(tau.size, np.int64)
    for f in frames:
        counts = f.counts(tau)
        tp, fn, fp = tp + counts[0], fn + counts[1], fp + counts[2]
    denom = 2 * tp + fn + fp
    f1 = np.divide(2.0 * tp, denom, out=np.full(tau.size, np.nan), where=denom > 0)

    def pooled(name: str) -> tuple[float, int]:
        values = np.concatenate([getattr(f, name) for f in frames]) if frames else np.zeros(0)
        return (float(values.mean()) if values.size else float("nan")), int(values.size)

    siou, n_gt = pooled("sIoU_gt")
    ppv, n_pred = pooled("PPV")
    at = {f"F1_{round(100 * t)}": float(f1[np.argmin(np.abs(tau - t))]) for t in (0.25, 0.5, 0.75)}
    return {
        "tau": tau.tolist(),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "F1": f1,
        "F1_mean": float(f1.mean()),
        **at,
        "tp_mean": float(tp.mean()),
        "fn_mean": float(fn.mean()),
        "fp_mean": float(fp.mean()),
        "sIoU_gt": siou,
        "PPV": ppv,
        "sIoU_pred": pooled("sIoU_pred")[0],
        "n_gt": n_gt,
        "n_pred": n_pred,
    }
