"""Per-frame component counts of a SMIYC evaluation, and the paired bootstrap of two methods' component metrics.

The leaderboard's component metrics pool over frames: sIoU and PPV are means over all ground-truth /
predicted components, F1 follows from the TP / FN / FP totals per tau. So each frame reduces to a
few sums (:class:`ComponentCounts`), and a resample of frames — drawn with
:func:`~meta_ood.pixel_eval.paired.aligned_weights`, the same draws as the pixel metrics' paired
bootstrap — weights them. ``smiyc_eval`` saves the counts of both protocols beside its JSON
(``<dataset>.components.npz``) for ``table_smiyc``'s marks and ``meta-ood compare``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.io import atomic_path
from meta_ood.pixel_eval.paired import aligned_weights, paired_summary
from meta_ood.smiyc.components import TAU, FrameComponents

__all__ = ["COMPONENT_METRICS", "ComponentCounts", "load_counts", "paired_components", "save_counts"]

#: The component metrics compared, with the direction that is better (keys of the evaluation's JSON).
COMPONENT_METRICS = {"sIoU_gt": "max", "PPV": "max", "F1_mean": "max"}
_FIELDS = ("siou_sum", "n_gt", "ppv_sum", "n_pred", "tp", "fn", "fp")


@dataclass(frozen=True)
class ComponentCounts:
    """Per frame (``frame_ids``): the sums of sIoU over its ground-truth components and of PPV over its predicted
    ones with their numbers, and its TP / FN / FP at each tau of the F1 (rows frames, columns tau)."""

    frame_ids: list[str]
    siou_sum: np.ndarray
    n_gt: np.ndarray
    ppv_sum: np.ndarray
    n_pred: np.ndarray
    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray

    @classmethod
    def of(cls, frame_ids: Sequence[str], frames: Sequence[FrameComponents], tau: np.ndarray = TAU) -> ComponentCounts:
        """The counts of the frames' component values."""
        counts = [f.counts(tau) for f in frames]

        def stack(k: int) -> np.ndarray:
            return np.array([c[k] for c in counts], np.int64).reshape(len(frames), len(tau))

        return cls([str(f) for f in frame_ids], np.array([f.sIoU_gt.sum() for f in frames], np.float64),
                   np.array([f.sIoU_gt.size for f in frames], np.int64),
                   np.array([f.PPV.sum() for f in frames], np.float64), np.array([f.PPV.size for f in frames], np.int64),
                   stack(0), stack(1), stack(2))

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """sIoU_gt, PPV and F1_mean (mean over tau of 2 TP / (2 TP + FN + FP)) of each row of frame ``weights``
        (resamples x frames); NaN where a resample has no such component, as the official mean of nothing."""
        w = np.asarray(weights, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            siou = (w @ self.siou_sum) / (w @ self.n_gt)
            ppv = (w @ self.ppv_sum) / (w @ self.n_pred)
            tp, fn, fp = w @ self.tp, w @ self.fn, w @ self.fp
            denom = 2.0 * tp + fn + fp
            f1 = np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), np.nan)
        return {"sIoU_gt": siou, "PPV": ppv, "F1_mean": f1.mean(axis=1)}


def save_counts(path: str | os.PathLike, counts: Mapping[str, ComponentCounts]) -> None:
    """Write the counts of each protocol (``{"official": ..., "exact": ...}``) to one ``.npz``, atomically."""
    arrays: dict[str, np.ndarray] = {"protocols": np.array(list(counts), dtype=np.str_)}
    for name, c in counts.items():
        arrays[f"{name}_frame_ids"] = np.array(c.frame_ids, dtype=np.str_)
        arrays.update({f"{name}_{field}": getattr(c, field) for field in _FIELDS})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_counts(path: str | os.PathLike) -> dict[str, ComponentCounts]:
    """Read what :func:`save_counts` wrote."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {str(name): ComponentCounts(z[f"{name}_frame_ids"].tolist(), *(z[f"{name}_{f}"] for f in _FIELDS))
                    for name in z["protocols"]}
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: cannot read component counts ({exc})") from None


def paired_components(a: ComponentCounts, b: ComponentCounts, n_boot: int = 1000, seed: int = 0,
                      alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Per metric of :data:`COMPONENT_METRICS`: both methods' values, a - b with its paired interval, standard
    error, p-value and resolvable difference (:func:`~meta_ood.pixel_eval.paired.paired_summary`; resamples
    without such components left out). The frames must be the same (matched by id)."""
    w_b, w_a = aligned_weights(b.frame_ids, a.frame_ids, n_boot, seed)
    point_a = a.metrics(np.ones((1, len(a.frame_ids))))
    point_b = b.metrics(np.ones((1, len(b.frame_ids))))
    reps_a, reps_b = a.metrics(w_a), b.metrics(w_b)
    out = {}
    for key in COMPONENT_METRICS:
        va, vb = float(point_a[key][0]), float(point_b[key][0])
        out[key] = {"a": va, "b": vb, **paired_summary(reps_a[key] - reps_b[key], va - vb, alpha)}
    return out
