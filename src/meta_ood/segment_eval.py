"""Segment-wise evaluation: detection errors before / after meta classification and the road miss
rate (paper section 7, table 2, figure 7), plus SegmentMeIfYouCan component metrics.

Per-segment tables (pandas)
---------------------------
Predicted OoD segments, one row per segment (connected component of {entropy >= t} minus void):

=============  ==========================================================================
``image``      image identifier (any hashable value; equal within one image)
``segment``    the segment's label k in its image's component map
``iou0``       1 if the segment has no pixel of OoD ground truth (a false positive), else 0
``prob_fp``    optional: the meta classifier's held-out probability that the segment is FP
``n_gt_in``    optional: number of the segment's pixels whose ground truth is ``train_id_in``
               (LostAndFound: free road); needed for the road miss rate
=============  ==========================================================================

Ground-truth OoD segments (connected components of label == ``train_id_out``): ``image``,
``segment``, ``iou0`` (1 if no pixel of the component is predicted OoD: a missed object).

Overlaps (needed for FN after meta classification): ``image``, ``pred_segment``, ``gt_segment``,
one row per pair of a predicted and a ground-truth segment sharing at least one pixel
(:func:`overlap_table` computes it from component maps).

Meta-classifier decision
------------------------
The meta classifier's target is ``iou0`` (class 1 = false positive). A segment is removed iff
``prob_fp > meta_threshold`` (strict). With the default 0.5 this is scikit-learn's ``predict``
rule for logistic regression: class 1 iff ``decision_function > 0`` iff ``predict_proba > 0.5``
(up to the rounding of the sigmoid at |decision| < 1e-16).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Hashable

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.smiyc.components import mask_components

__all__ = [
    "detection_errors",
    "removed_by_meta",
    "road_miss_rate",
    "overlap_table",
    "ComponentMetrics",
    "SMIYC_THRESHOLDS",
]

SMIYC_THRESHOLDS = np.linspace(0.25, 0.75, 11)


# --------------------------------------------------------------------------------------------
# table checks
# --------------------------------------------------------------------------------------------


def _check_table(df: pd.DataFrame, name: str, required: Sequence[str], key: Sequence[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InputError(
            f"{name}: got {type(df).__name__}, expected a pandas DataFrame with columns {list(required)}"
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{name} table lacks column(s) {missing}: expected at least {list(required)}")
    dup = df.duplicated(list(key))
    if dup.any():
        first = df.loc[dup, list(key)].iloc[0].tolist()
        raise InputError(f"{name} table has duplicate rows for {dict(zip(key, first))}: expected one row per segment")


def _iou0(df: pd.DataFrame, name: str) -> np.ndarray:
    v = df["iou0"].to_numpy()
    ok = np.isin(v, (0, 1)) if v.dtype.kind in "iufb" else np.zeros(v.shape, bool)
    if not ok.all():
        bad = pd.unique(v[~ok])[:5].tolist()
        raise InputError(f"{name}.iou0 contains {bad}: expected 0 or 1")
    return v.astype(bool)


def removed_by_meta(pred: pd.DataFrame, meta_threshold: float = 0.5) -> np.ndarray:
    """Boolean mask of the segments the meta classifier calls FP: ``prob_fp > meta_threshold``."""
    if "prob_fp" not in pred.columns:
        raise InputError("pred table lacks column 'prob_fp': expected the meta classifier's probability of FP")
    p = pred["prob_fp"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise InputError(f"pred.prob_fp contains {p[bad][:5].tolist()}: expected probabilities in [0, 1]")
    return p > float(meta_threshold)


# --------------------------------------------------------------------------------------------
# road miss rate (paper eq. 10)
# --------------------------------------------------------------------------------------------


def road_miss_rate(n_gt_in_flagged: Any, n_gt_in_total: Any) -> float:
    """ε = 1 - |∪ (Ẑ_in ∩ Z_in)| / |∪ Z_in| = (Σ flagged) / (Σ total).

    ``n_gt_in_flagged``: number(s) of ground-truth in-distribution pixels predicted OoD, i.e.
    covered by the OoD segments that are kept; ``n_gt_in_total``: number(s) of ground-truth
    in-distribution pixels. Scalars or per-image arrays (summed over the dataset).
    """
    flagged = float(np.sum(np.asarray(n_gt_in_flagged, dtype=np.float64)))
    total = float(np.sum(np.asarray(n_gt_in_total, dtype=np.float64)))
    if not total > 0:
        raise InputError(f"n_gt_in_total={total:g}: expected a positive number of in-distribution pixels")
    if flagged < 0 or flagged > total:
        raise InputError(
            f"{flagged:g} flagged in-distribution pixels out of {total:g}: expected 0 <= flagged <= total"
        )
    return flagged / total


# --------------------------------------------------------------------------------------------
# detection errors (table 2)
# --------------------------------------------------------------------------------------------


def _gt_found_after(
    pred: pd.DataFrame, removed: np.ndarray, gt: pd.DataFrame, gt_iou0: np.ndarray, overlaps: pd.DataFrame
) -> np.ndarray:
    ov_cols = ("image", "pred_segment", "gt_segment")
    _check_table(overlaps, "overlaps", ov_cols, ov_cols)
    keyed = pd.DataFrame(
        {"image": pred["image"].to_numpy(), "pred_segment": pred["segment"].to_numpy(), "_kept": ~removed}
    )
    ov = overlaps[["image", "pred_segment", "gt_segment"]].merge(keyed, on=["image", "pred_segment"], how="left")
    if ov["_kept"].isna().any():
        row = ov.loc[ov["_kept"].isna()].iloc[0]
        raise InputError(
            f"overlaps refers to predicted segment {row['pred_segment']} of image {row['image']!r} that is not in "
            "the pred table: expected the overlaps of the same segments"
        )
    found_any = ov.groupby(["image", "gt_segment"], sort=False)["_kept"].agg(["size", "any"])
    gt_key = pd.MultiIndex.from_arrays([gt["image"].to_numpy(), gt["segment"].to_numpy()])
    unknown = found_any.index.difference(gt_key)
    if len(unknown):
        raise InputError(
            f"overlaps refers to ground-truth segment {unknown[0][1]} of image {unknown[0][0]!r} that is not in the "
            "gt table: expected the overlaps of the same segments"
        )
    stats = found_any.reindex(gt_key)
    has_overlap = stats["size"].notna().to_numpy()
    inconsistent = has_overlap == gt_iou0  # missed (iou0 = 1) but overlapping, or found but not
    if inconsistent.any():
        k = int(np.flatnonzero(inconsistent)[0])
        raise InputError(
            f"gt segment {gt['segment'].iloc[k]} of image {gt['image'].iloc[k]!r} has iou0={int(gt_iou0[k])} but "
            f"{'some' if has_overlap[k] else 'no'} overlap rows: expected iou0 = 1 exactly for gt segments "
            "without overlapping predicted segment"
        )
    found = stats["any"].to_numpy()
    return np.array([bool(f) if h else False for f, h in zip(found, has_overlap)], dtype=bool)


class _PerImage:
    """Counts of flagged segments per image, in the order of a dataset's image ids."""

    def __init__(self, images: Sequence[Hashable], pred: pd.DataFrame, gt: pd.DataFrame):
        index = pd.Index(list(images))
        if not index.is_unique:
            raise InputError("images: expected unique image ids")
        self.n = len(index)
        self.pos = {}
        for name, df in (("pred", pred), ("gt", gt)):
            pos = index.get_indexer(df["image"].to_numpy())
            if (pos < 0).any():
                raise InputError(f"{name} table holds image {df['image'].to_numpy()[pos < 0][0]!r}, which is not "
                                 "among the dataset's images")
            self.pos[name] = pos

    def _count(self, name: str, flags: np.ndarray) -> list[int]:
        return np.bincount(self.pos[name][flags], minlength=self.n).astype(int).tolist()

    def pred(self, flags: np.ndarray) -> list[int]:
        """Flagged predicted segments per image."""
        return self._count("pred", flags)

    def gt(self, flags: np.ndarray) -> list[int]:
        """Flagged ground-truth segments per image."""
        return self._count("gt", flags)


def detection_errors(
    pred: pd.DataFrame,
    gt: pd.DataFrame,
    meta_threshold: float = 0.5,
    overlaps: pd.DataFrame | None = None,
    n_gt_in_total: Any = None,
    reference_fp_after: bool = False,
    images: Sequence[Hashable] | None = None,
) -> dict[str, Any]:
    """FP, FN, their sum and the road miss rate before and after meta classification.

    Before: ``fp_before`` = #predicted segments with iou0 = 1, ``fn_before`` = #gt segments with
    iou0 = 1. After (when ``pred`` has ``prob_fp``): the segments with ``prob_fp > meta_threshold``
    are removed (``n_removed``); ``fp_after`` = #remaining segments with iou0 = 1; ``fn_after`` =
    #gt segments that no remaining predicted segment overlaps (the ones missed before plus those
    whose every overlapping segment was removed), which needs ``overlaps``.

    ``reference_fp_after=True`` reproduces the released reference code, whose "FP after meta
    classification" is the number of REMOVED true positives, #(removed & iou0 = 0). Off by
    default; the paper's definition is the number of remaining false positives.

    With ``n_gt_in_total`` (the number of ground-truth in-distribution pixels of the dataset, e.g.
    ``PooledHistogram.n_neg``) and the ``n_gt_in`` column: ``eps_before`` = Σ n_gt_in / total over
    all segments, ``eps_after`` = the same over the remaining segments (paper eq. 10).

    With ``images`` (every image id of the dataset, segments or not): ``per_image`` holds the lists
    ``fp_before``, ``fn_before`` (and ``fp_after``, ``fn_after``) per image in that order, for paired
    comparisons over images (:func:`meta_ood.pixel_eval.paired.paired_counts`).
    """
    _check_table(pred, "pred", ("image", "segment", "iou0"), ("image", "segment"))
    _check_table(gt, "gt", ("image", "segment", "iou0"), ("image", "segment"))
    pred_fp = _iou0(pred, "pred")
    gt_missed = _iou0(gt, "gt")
    out: dict[str, Any] = {
        "n_pred": int(len(pred)),
        "n_gt": int(len(gt)),
        "fp_before": int(pred_fp.sum()),
        "fn_before": int(gt_missed.sum()),
    }
    out["total_before"] = out["fp_before"] + out["fn_before"]
    per_image = None if images is None else _PerImage(images, pred, gt)
    if per_image is not None:
        out["per_image"] = {"fp_before": per_image.pred(pred_fp), "fn_before": per_image.gt(gt_missed)}

    n_gt_in = None
    if n_gt_in_total is not None:
        if "n_gt_in" not in pred.columns:
            raise InputError("pred table lacks column 'n_gt_in': needed for the road miss rate")
        n_gt_in = pred["n_gt_in"].to_numpy()
        if n_gt_in.dtype.kind not in "iuf" or (n_gt_in < 0).any() or not np.isfinite(n_gt_in.astype(float)).all():
            raise InputError("pred.n_gt_in: expected non-negative pixel counts")
        out["eps_before"] = road_miss_rate(n_gt_in, n_gt_in_total)

    if "prob_fp" in pred.columns:
        removed = removed_by_meta(pred, meta_threshold)
        out["meta_threshold"] = float(meta_threshold)
        out["n_removed"] = int(removed.sum())
        if reference_fp_after:
            out["fp_after"] = int((removed & ~pred_fp).sum())
        else:
            out["fp_after"] = int((~removed & pred_fp).sum())
        if overlaps is None:
            raise InputError(
                "FN after meta classification needs the overlaps table (image, pred_segment, gt_segment): "
                "see meta_ood.segment_eval.overlap_table"
            )
        found_after = _gt_found_after(pred, removed, gt, gt_missed, overlaps)
        out["fn_after"] = int((~found_after).sum())
        out["total_after"] = out["fp_after"] + out["fn_after"]
        if per_image is not None:
            fp_after = (removed & ~pred_fp) if reference_fp_after else (~removed & pred_fp)
            out["per_image"].update({"fp_after": per_image.pred(fp_after), "fn_after": per_image.gt(~found_after)})
        if n_gt_in is not None:
            out["eps_after"] = road_miss_rate(n_gt_in[~removed], n_gt_in_total)
    return out


# --------------------------------------------------------------------------------------------
# component maps
# --------------------------------------------------------------------------------------------


def _labels(components: np.ndarray, name: str) -> np.ndarray:
    c = np.asarray(components)
    if c.dtype.kind not in "iu":
        raise InputError(f"{name} of dtype {c.dtype}: expected an integer component map")
    return np.abs(c.astype(np.int64))


def overlap_table(pred_components: np.ndarray, gt_components: np.ndarray, image: Hashable = None) -> pd.DataFrame:
    """Pairs of overlapping predicted / ground-truth segments of one image, with pixel counts.

    Component maps hold the segment label k at its pixels and 0 elsewhere; negative labels (the
    reference convention -k for boundary pixels) count as k. Columns ``image``, ``pred_segment``,
    ``gt_segment``, ``n_pixels``.
    """
    p = _labels(pred_components, "pred_components")
    g = _labels(gt_components, "gt_components")
    if p.shape != g.shape:
        raise InputError(f"pred_components {p.shape} and gt_components {g.shape}: expected equal shapes")
    both = (p > 0) & (g > 0)
    base = int(g.max()) + 1 if g.size else 1
    codes, counts = np.unique(p[both] * base + g[both], return_counts=True)
    return pd.DataFrame(
        {
            "image": [image] * codes.size,
            "pred_segment": codes // base,
            "gt_segment": codes % base,
            "n_pixels": counts,
        }
    )


# --------------------------------------------------------------------------------------------
# SegmentMeIfYouCan component metrics
# --------------------------------------------------------------------------------------------


class ComponentMetrics:
    """Component-level metrics of SegmentMeIfYouCan, pooled over a dataset.

    Per image (:meth:`update`), with ``pred_mask`` the binary OoD prediction and ``gt_label`` the
    train ids:

    1. Region of interest: pixels labelled ``in_id`` or ``out_id``; every other label is void.
       Predicted pixels on void are dropped.
    2. Predicted components = 8-connected components of the remaining prediction; those with
       fewer than ``min_pred_size`` pixels are dropped. Ground-truth components = 8-connected
       components of ``gt_label == out_id``; those with fewer than ``min_gt_size`` pixels become
       void (removed from the region of interest, together with any prediction on them).
    3. For a gt component k, with K̂(k) the union of predicted components intersecting k and
       A(k) the pixels of the OTHER gt components:
       ``sIoU(k) = |k ∩ K̂(k)| / |(k ∪ K̂(k)) \\ A(k)|`` (0 when nothing intersects k).
    4. For a predicted component p: ``PPV(p) = |p ∩ G| / |p|``, G = all gt components.

    :meth:`result` pools all components of all images; for every τ in ``thresholds``
    (default ``linspace(0.25, 0.75, 11)``): TP = #gt with sIoU >= τ, FN = #gt with sIoU < τ,
    FP = #predicted with PPV < τ, F1 = 2 TP / (2 TP + FN + FP); ``f1_mean`` averages over τ.
    """

    def __init__(self, thresholds: Sequence[float] = SMIYC_THRESHOLDS, min_pred_size: int = 0, min_gt_size: int = 0):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        if self.thresholds.ndim != 1 or self.thresholds.size == 0:
            raise InputError(f"thresholds {thresholds!r}: expected a non-empty 1-d sequence")
        if int(min_pred_size) < 0 or int(min_gt_size) < 0:
            raise InputError(f"min_pred_size={min_pred_size}, min_gt_size={min_gt_size}: expected sizes >= 0")
        self.min_pred_size = int(min_pred_size)
        self.min_gt_size = int(min_gt_size)
        self._siou: list[np.ndarray] = []
        self._ppv: list[np.ndarray] = []

    @property
    def n_images(self) -> int:
        return len(self._siou)

    def update(
        self, pred_mask: np.ndarray, gt_label: np.ndarray, in_id: int, out_id: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add one image; returns its (sIoU per gt component, PPV per predicted component)."""
        pred_mask, gt_label = np.asarray(pred_mask), np.asarray(gt_label)
        where = f"image #{self.n_images}"
        if pred_mask.shape != gt_label.shape or pred_mask.ndim != 2:
            raise InputError(
                f"{where}: pred_mask {pred_mask.shape} and gt_label {gt_label.shape}: expected equal (H, W) shapes"
            )
        if pred_mask.dtype != bool and not np.isin(pred_mask, (0, 1)).all():
            raise InputError(f"{where}: pred_mask has values other than 0/1: expected a binary mask")
        if int(in_id) == int(out_id):
            raise InputError(f"in_id = out_id = {in_id}: expected different ids")
        roi = (gt_label == in_id) | (gt_label == out_id)
        fc = mask_components(pred_mask.astype(bool), gt_label == out_id, roi, self.min_pred_size, self.min_gt_size)
        siou, ppv = fc.sIoU_gt, fc.PPV
        self._siou.append(siou)
        self._ppv.append(ppv)
        return siou, ppv

    @classmethod
    def from_values(cls, siou: Any, ppv: Any, **kwargs: Any) -> "ComponentMetrics":
        """An accumulator holding already computed component values (e.g. pooled from image shards)."""
        cm = cls(**kwargs)
        cm._siou.append(np.asarray(siou, dtype=np.float64).ravel())
        cm._ppv.append(np.asarray(ppv, dtype=np.float64).ravel())
        return cm

    def result(self) -> dict[str, Any]:
        """Pooled metrics: ``siou_gt`` (mean sIoU), ``ppv`` (mean PPV, NaN without predictions),
        per-τ arrays ``tp``, ``fn``, ``fp``, ``f1``, ``f1_mean``, ``n_gt``, ``n_pred``, and the
        component values ``siou`` / ``ppv_values``."""
        siou = np.concatenate(self._siou) if self._siou else np.zeros(0)
        ppv = np.concatenate(self._ppv) if self._ppv else np.zeros(0)
        if siou.size == 0:
            raise InputError(
                "dataset has no OoD ground-truth component (label == out_id, after the min_gt_size filter): "
                "component metrics need at least one"
            )
        t = self.thresholds[:, None]
        tp = (siou[None, :] >= t).sum(axis=1)
        fn = siou.size - tp
        fp = (ppv[None, :] < t).sum(axis=1)
        f1 = 2.0 * tp / (2.0 * tp + fn + fp)
        return {
            "thresholds": self.thresholds.copy(),
            "tp": tp,
            "fn": fn,
            "fp": fp,
            "f1": f1,
            "f1_mean": float(f1.mean()),
            "siou_gt": float(siou.mean()),
            "ppv": float(ppv.mean()) if ppv.size else float("nan"),
            "n_gt": int(siou.size),
            "n_pred": int(ppv.size),
            "n_images": self.n_images,
            "siou": siou,
            "ppv_values": ppv,
        }
