"""``smiyc_eval``: the official SegmentMeIfYouCan protocol and the exact pooled metrics of one method.

Two passes over the frames, on threads: the first reduces every frame to its
:class:`~meta_ood.smiyc.summary.FrameSummary`, from which follow its official bins (percentile
and uniform variants) and its counts in a :class:`~meta_ood.pixel_eval.PooledHistogram` (exact
ranking metrics and image-bootstrap intervals); the second computes the component metrics at the
official best-F1 threshold, at the exact best-F1 threshold and at any extra pixel thresholds.
Only per-frame histograms and component lists stay in memory, and a few frames at a time, plus
each frame's highest-scoring ROI pixels with their ground truth within a fixed budget
(``keep_mib``): a second pass whose thresholds lie above what a frame kept builds its predictions
from them without reading the frame again.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.pixel_eval import PooledHistogram, bootstrap
from meta_ood.pixel_eval.ranking import thin_indices
from meta_ood.smiyc.component_counts import ComponentCounts, save_counts
from meta_ood.smiyc.components import (
    TAU,
    FrameComponents,
    FrameTruth,
    PixelTruth,
    component_metrics,
    size_filters,
)
from meta_ood.smiyc.protocol import (
    Curve,
    FrameBins,
    bins_from_edges,
    curve_metrics,
    merge_frames,
    sum_bins,
    summary_percentile_bins,
    tie_range,
    uniform_edges,
)
from meta_ood.smiyc.summary import FrameSummary, comparison_threshold, greater, summarize
from meta_ood.smiyc.scorefiles import paired_frames, read_label, read_scores, score_dtype, unlabelled_ids

__all__ = ["EXACT_ENCODINGS", "FrameInput", "array_frames", "default_jobs", "evaluate_frames", "file_frames", "smiyc_eval"]

#: Score encodings of the exact protocol's histogram ("auto": float16 when every map is stored
#: as float16, else "unit" for scores in [0, 1]).
EXACT_ENCODINGS = ("auto", "unit", "float16")
_EXACT_KEYS = {"auprc": "AP", "fpr95": "FPR95", "auroc": "AUROC", "best_f1": "best_F1"}


@dataclass(frozen=True)
class FrameInput:
    """One frame: its id, the stored score dtype and a loader of (scores, labels)."""

    fid: str
    dtype: np.dtype
    load: Callable[[], tuple[np.ndarray, np.ndarray]]


def file_frames(
    scores_dir: str | os.PathLike, labels_dir: str | os.PathLike, strict: bool = False
) -> list[FrameInput]:
    """Frames of ``<fid>.hdf5`` score files and ``<fid>_labels_semantic.png`` masks (see
    :func:`~meta_ood.smiyc.scorefiles.paired_frames` for the skipped unlabelled frames, ``strict``
    and the missing-score check)."""
    return [
        FrameInput(fid, score_dtype(s), lambda s=s, lab=lab: (read_scores(s), read_label(lab)))
        for fid, s, lab in paired_frames(scores_dir, labels_dir, strict=strict)
    ]


def array_frames(items: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> list[FrameInput]:
    """Frames held in memory as (fid, scores, labels)."""
    frames = [FrameInput(str(fid), np.asarray(s).dtype, lambda s=s, lab=lab: (np.asarray(s), np.asarray(lab)))
              for fid, s, lab in items]
    ids = [f.fid for f in frames]
    if len(set(ids)) != len(ids):
        raise InputError("frame ids are not unique: expected one entry per frame")
    return frames


def _exact_histogram(frames: Sequence[FrameInput], encoding: str, bits: int) -> PooledHistogram:
    if encoding not in EXACT_ENCODINGS:
        raise InputError(f"exact_encoding={encoding!r}: expected one of {list(EXACT_ENCODINGS)}")
    if encoding == "auto":
        encoding = "float16" if all(f.dtype == np.float16 for f in frames) else "unit"
    return PooledHistogram(bits=16 if encoding == "float16" else bits, image_bits=12, encoding=encoding)


def _check_unit(values: np.ndarray, fid: str) -> None:
    lo, hi = (float(values[0]), float(values[-1])) if values.size else (0.0, 1.0)
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"frame {fid!r}: scores in [{lo:g}, {hi:g}]: the exact protocol's 'unit' encoding needs scores in "
            "[0, 1]; use exact_encoding='float16' (--exact-encoding float16) for unbounded scores"
        )


def default_jobs() -> int:
    """The cores this process may use (the default of ``jobs``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _ordered_map(fn: Callable[[Any], Any], items: Sequence[Any], jobs: int) -> Iterator[Any]:
    """``map(fn, items)`` on ``jobs`` threads, in order, with at most ``2 jobs`` items in flight
    (so memory stays that of a few frames, whatever the number of frames)."""
    if jobs <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


#: Default budget, over all frames, for the ROI pixels kept from the first pass (MiB).
KEEP_MIB = 64.0
#: A frame keeps at most this many pixels per anomaly pixel, plus KEEP_ANY: at a best-F1 threshold the
#: predicted pixels are of the order of the anomaly pixels, and every kept pixel is memory touched.
KEEP_PER_ANOMALY, KEEP_ANY = 4, 1 << 14


@dataclass(frozen=True)
class _KeptPixels:
    """A frame's ROI pixels scoring above ``floor``, kept from the first pass with their ground truth
    (``truth``) and their scores (``values``, in the map's dtype)."""

    floor: np.generic
    truth: PixelTruth
    values: np.ndarray

    def covers(self, threshold: np.generic) -> bool:
        """Whether every pixel scoring above ``threshold`` is kept."""
        return bool(threshold >= self.floor)

    def components(self, threshold: np.generic, segsize: int, keep_mask: bool) -> FrameComponents:
        """Components of ``scores > threshold``, as the score map gives it."""
        return self.truth.components(greater(self.values, threshold), segsize, keep_mask)


#: Bytes per kept pixel: flat index (uint32), ground truth (int16; int32 past 32,767 components), score.
_KEPT_BYTES = 4 + 2


def _kept_pixels(scores: np.ndarray, truth: FrameTruth, summary: FrameSummary, limit: int) -> _KeptPixels | None:
    """The at most ``limit`` highest-scoring ROI pixels, cut between two distinct scores (the pixels above
    the highest score that leaves at most ``limit``); None when ``limit`` is 0."""
    if limit <= 0:
        return None
    counts = np.cumsum(summary.pos + summary.neg)
    n = int(counts[-1]) if counts.size else 0
    limit = min(limit, KEEP_PER_ANOMALY * summary.num_pos + KEEP_ANY)
    if n <= limit:
        floor = summary.dtype.type(-np.inf)
    else:  # the lowest distinct score with at most ``limit`` pixels above it
        floor = summary.dtype.type(summary.values[int(np.searchsorted(counts, n - limit, side="left"))])
    crop = scores[truth.rows]
    selected = greater(crop, floor)
    selected &= truth.truth.roi
    flat = np.flatnonzero(selected)
    index = flat.astype(np.uint32) if crop.size < 2**32 else flat
    return _KeptPixels(floor, truth.at(index), crop.reshape(-1)[flat])


@dataclass(frozen=True)
class _FramePixels:
    """What the pixel protocols need of one frame: its percentile and uniform bins and the
    exact histogram's (bins, pos, neg); ``kept``: its highest-scoring ROI pixels."""

    dtype: np.dtype
    pix: FrameBins | None
    uni: FrameBins
    counts: tuple[np.ndarray, np.ndarray, np.ndarray]
    kept: _KeptPixels | None


def _pixels(frame: FrameInput, encoding: str, bits: int, keep: int, instsize: int) -> _FramePixels:
    scores, labels = frame.load()
    summary = summarize(scores, labels, f"frame {frame.fid!r}")
    if encoding == "unit":
        _check_unit(summary.values, frame.fid)
    kept = _kept_pixels(scores, FrameTruth(labels, instsize), summary, keep) if keep > 0 else None
    return _FramePixels(summary.dtype, summary_percentile_bins(summary),
                        bins_from_edges(summary, uniform_edges(summary.dtype)), summary.codes(bits, encoding), kept)


def _component_summary(frames: Sequence[FrameComponents]) -> dict[str, Any]:
    m = component_metrics(frames)
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in m.items()}


def _frame_details(
    details: dict[str, np.ndarray], prefix: str, frames: Sequence[FrameComponents], tau: np.ndarray
) -> None:
    for i, f in enumerate(frames):
        for key in ("sIoU_gt", "size_gt", "PPV", "sIoU_pred", "size_pred", "kept_pred_mask"):
            details[f"{prefix}_frame{i}_{key}"] = getattr(f, key)
        for key, value in zip(("tp", "fn", "fp"), f.counts(tau)):
            details[f"{prefix}_frame{i}_{key}"] = value


def _curve_details(
    details: dict[str, np.ndarray], prefix: str, bins: Sequence[FrameBins | None], curve: Curve
) -> None:
    for i, b in enumerate(bins):
        if b is None:
            continue
        if prefix == "pix":
            details[f"pix_frame{i}_bin_edges"] = b.edges
        for key in ("tp_rel", "fp_rel", "num_pos", "num_neg"):
            details[f"{prefix}_frame{i}_{key}"] = np.asarray(getattr(b, key))
    details[f"{prefix}_frames_used"] = np.array([i for i, b in enumerate(bins) if b is not None], np.int64)
    for key in ("thresholds", "tpr", "fpr", "precision"):
        details[f"{prefix}_curve_{key}"] = getattr(curve, key)
    details[f"{prefix}_curve_recall"] = curve.tpr


def evaluate_frames(
    frames: Sequence[FrameInput],
    track: str,
    *,
    segsize: int | None = None,
    instsize: int | None = None,
    pixel_thresholds: Sequence[float] = (),
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    exact_encoding: str = "auto",
    exact_bits: int = 24,
    jobs: int | None = None,
    curve_points: int = 400,
    keep_mib: float = KEEP_MIB,
    details: dict[str, np.ndarray] | None = None,
    histogram_out: str | os.PathLike | None = None,
    components_out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Both protocols on a list of frames (labels 0 / 1 / 255); see :func:`smiyc_eval` for the result.

    Two passes over the frames: the first reads and checks each frame once and reduces it to a
    :class:`~meta_ood.smiyc.summary.FrameSummary` (all pixel metrics follow from it), the second
    computes its components at the thresholds the first pass chose, in the band of rows holding
    its ROI, from the pixels kept in the first pass or, where they do not reach down to a
    threshold, from the frame read again. ``jobs`` threads (default: every core) work on frames in parallel; results
    are identical for any ``jobs``. ``curve_points``: points of the thinned official ROC / PR
    curve of the result's ``curve``. ``keep_mib``: memory for the highest-scoring ROI pixels kept
    from the first pass, shared by all frames, a frame keeping at most :data:`KEEP_PER_ANOMALY`
    times its anomaly pixels plus :data:`KEEP_ANY` (0: none; the second pass then reads every
    score file again); results do not depend on it. ``histogram_out``: also save the exact pooled
    histogram (one image per frame, id = fid) there, for paired comparisons of methods;
    ``components_out``: the per-frame component counts of both protocols
    (:func:`~meta_ood.smiyc.component_counts.save_counts`, "official" and "exact"), likewise.

    ``details``: a dict to fill with per-frame bins, merged curves and per-frame component values
    under the keys of the golden reference files (``pix_*``, ``pixuni_*``, ``inst_*`` at the
    best-F1 threshold, ``inst<100 t:03d>_*`` at each of ``pixel_thresholds``), frames indexed
    in the order of ``frames``.
    """
    if not frames:
        raise InputError("no frames to evaluate")
    seg, inst = size_filters(track, segsize, instsize)
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise InputError(f"jobs={jobs}: expected at least 1 thread")
    hist = _exact_histogram(frames, exact_encoding, exact_bits)
    pix: list[FrameBins | None] = []
    uni: list[FrameBins] = []  # per frame, for ``details`` only
    uni_sum: list[FrameBins] = []
    kept: list[_KeptPixels | None] = []
    # each frame's share of the budget, in pixels of (index, score)
    per_frame = int(keep_mib * 2**20 / len(frames) / (_KEPT_BYTES + max(np.dtype(f.dtype).itemsize for f in frames)))
    for f, res in zip(frames, _ordered_map(lambda f: _pixels(f, hist.encoding, hist.bits, per_frame, inst), frames,
                                           jobs)):
        pix.append(res.pix)
        kept.append(res.kept)
        uni_sum = sum_bins(uni_sum + [res.uni])
        if details is not None:
            uni.append(res.uni)
        hist.update_counts(*res.counts, image_id=f.fid)
    curve = merge_frames(pix)
    official = curve_metrics(curve)
    official["AP_tie_range"] = list(tie_range(curve))
    keep = thin_indices(curve.thresholds.size, curve_points)
    official["curve"] = {"fpr": curve.fpr[keep].tolist(), "tpr": curve.tpr[keep].tolist(),
                         "recall": curve.tpr[keep].tolist(), "precision": curve.precision[keep].tolist()}
    if histogram_out is not None:
        hist.save(histogram_out)
    exact_m = hist.metrics()
    exact = {name: float(exact_m[key]) for key, name in _EXACT_KEYS.items()}
    exact["best_F1_threshold"] = float(exact_m["best_f1_threshold"])

    thresholds = {"inst": official["best_F1_threshold"], "exact": exact["best_F1_threshold"]}
    thresholds.update({f"inst{round(100 * float(t)):03d}": float(t) for t in pixel_thresholds})

    def components(item: tuple[FrameInput, _KeptPixels | None]) -> dict[str, FrameComponents]:
        f, top = item
        # the official code compares in the map's dtype; the exact protocol in float64
        cmps = {key: np.float64(thr) if key == "exact" else comparison_threshold(thr, f.dtype)
                for key, thr in thresholds.items()}
        if top is not None and all(top.covers(c) for c in cmps.values()):
            truth, scores = None, None  # every threshold's prediction is among the kept pixels
        else:
            scores, labels = f.load()
            truth = FrameTruth(labels, inst)
        keep_mask = details is not None
        done: dict[float, FrameComponents] = {}
        out = {}
        for key, cmp in cmps.items():
            if float(cmp) not in done:
                done[float(cmp)] = (truth.components(scores, cmp, seg, keep_mask) if truth is not None
                                    else top.components(cmp, seg, keep_mask))
            out[key] = done[float(cmp)]
        return out

    comps: dict[str, list[FrameComponents]] = {k: [] for k in thresholds}
    for per_frame in _ordered_map(components, list(zip(frames, kept)), jobs):
        for key, fc in per_frame.items():
            comps[key].append(fc)

    if components_out is not None:
        ids = [f.fid for f in frames]
        save_counts(components_out, {"official": ComponentCounts.of(ids, comps["inst"]),
                                     "exact": ComponentCounts.of(ids, comps["exact"])})
    result: dict[str, Any] = {
        "track": track,
        "segsize": seg,
        "instsize": inst,
        "n_frames": len(frames),
        "frame_ids": [f.fid for f in frames],
        "n_pos": hist.n_pos,
        "n_neg": hist.n_neg,
        **official,
        **_component_summary(comps["inst"]),
        "uniform": curve_metrics(uni_curve := merge_frames(uni_sum)),
        "exact": {**exact, **_component_summary(comps["exact"]), "encoding": hist.encoding, "bits": hist.bits},
        "at_threshold": {f"{thresholds[k]:g}": _component_summary(comps[k]) for k in thresholds
                         if k not in ("inst", "exact")},
    }
    if n_boot > 0:
        ci = bootstrap(hist, n_boot=n_boot, seed=seed, alpha=alpha)
        result["exact"]["ci"] = {name: list(ci[key]) for key, name in _EXACT_KEYS.items()}
        result["exact"].update({"n_boot": int(n_boot), "seed": int(seed), "alpha": float(alpha)})
    if details is not None:
        details["frame_ids"] = np.array(result["frame_ids"])
        _curve_details(details, "pix", pix, curve)
        _curve_details(details, "pixuni", uni, uni_curve)
        details["pixuni_bin_edges"] = uni[0].edges
        for key in thresholds:
            if key != "exact":
                _frame_details(details, key, comps[key], TAU)
    return result


def smiyc_eval(
    scores_dir: str | os.PathLike, labels_dir: str | os.PathLike, track: str, *, strict: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate the ``<fid>.hdf5`` score maps of ``scores_dir`` against the label masks of ``labels_dir``.

    ``track``: "anomaly", "obstacle" or "lostandfound" (size filters 500 / 100, 50 / 10, 50 / 10,
    overridable with ``segsize`` / ``instsize``), or an official dataset name of
    :data:`~meta_ood.smiyc.components.OFFICIAL_DATASET_TRACKS` (``ObstacleTrack-all``, ...).
    Score files without a label (the benchmark's unlabelled test frames) are skipped, or refused
    with ``strict``. Other keyword arguments: see :func:`evaluate_frames`.

    Result: the official protocol's ``AP``, ``FPR95`` (+ ``FPR95_threshold``), ``AUROC``,
    ``best_F1``, ``best_F1_threshold``, ``recall50_threshold``, ``AP_tie_range`` (the official AP's
    range over the orders of frames tied at the top threshold: ``AP`` takes the order of the
    official code under its numpy 1.23, other numpy releases or frame orders give any value in the
    range; see :func:`~meta_ood.smiyc.protocol.merge_frames`), ``curve`` (its ROC
    and PR curve, thinned: ``fpr``, ``tpr``, ``recall``, ``precision``) and its component metrics at the
    best-F1 threshold (``sIoU_gt``, ``PPV``, ``F1_mean``, ``F1`` per tau, ``tp`` / ``fn`` / ``fp``,
    ...); ``uniform``: the 4096-uniform-bin variant; ``exact``: the same metrics from the exact
    pooled histogram (equal to scikit-learn on the histogram's score grid), component metrics at
    its best-F1 threshold, ``ci`` bootstrap intervals; ``at_threshold``: component metrics at
    each extra pixel threshold; ``n_frames`` / ``frame_ids`` / ``frames`` (sorted): the frames
    evaluated; ``skipped_unlabelled``: the sorted ids of the skipped score files without a label.
    """
    frames = file_frames(scores_dir, labels_dir, strict=strict)
    skipped = [] if strict else unlabelled_ids(scores_dir, labels_dir)
    result = evaluate_frames(frames, track, **kwargs)
    result["frames"] = sorted(result["frame_ids"])
    result["skipped_unlabelled"] = skipped
    return result
