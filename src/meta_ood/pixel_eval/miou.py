"""mIoU of a semantic segmentation with an extra OoD class for pixels of high entropy.

Paper section 6.3 and figure 5: Cityscapes val mIoU when pixels with entropy >= t are predicted
as OoD.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.labels import NUM_CLASSES, VOID_ID

__all__ = ["DEFAULT_MIOU_THRESHOLDS", "MiouAccumulator"]

#: Entropy thresholds of the mIoU curve: 0.1, 0.2, ..., 1.0.
DEFAULT_MIOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 11))


class MiouAccumulator:
    """Confusion counts of a semantic segmentation with pixels of entropy >= t predicted "OoD".

    Per image: ``pred`` (H, W) argmax class in 0..K-1, ``entropy`` (H, W) normalized entropy, and
    ``gt`` (H, W) train ids in 0..K-1 or ``void_id``. For every threshold t, pixels with
    ``entropy >= t`` get the extra prediction "OoD" (index K). Ground-truth void pixels are
    ignored. Cityscapes val has no OoD ground truth, so for every class c

        IoU_c = TP_c / (TP_c + FP_c + FN_c),

    where a gt-c pixel predicted OoD is a false negative of c, and mIoU is the mean over the K
    classes. A class that occurs neither in the ground truth nor in the (non-OoD) prediction has
    an undefined IoU (NaN) and is left out of the mean, as in cityscapesScripts. The key
    ``math.inf`` of :meth:`result` is the plain mIoU without the OoD class.

    Accumulation is one ``np.bincount`` per image over (gt, pred, threshold bucket), the bucket
    being the number of thresholds <= entropy; memory is K * K * (T + 1) counts.
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        thresholds: Iterable[float] = DEFAULT_MIOU_THRESHOLDS,
        void_id: int = VOID_ID,
    ):
        if int(num_classes) < 1:
            raise InputError(f"num_classes={num_classes}: expected a positive number of classes")
        self.num_classes = int(num_classes)
        thr = np.asarray(sorted({float(t) for t in thresholds}), dtype=np.float64)
        if thr.size and not np.isfinite(thr).all():
            raise InputError(f"thresholds {thresholds!r}: expected finite values")
        self.thresholds = thr
        self.void_id = int(void_id)
        k, t = self.num_classes, thr.size
        self.counts = np.zeros((k, k, t + 1), dtype=np.int64)
        self.n_images = 0

    def update(self, pred: np.ndarray, entropy: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: argmax ``pred``, normalized ``entropy`` and train-id ``gt``, all (H, W)."""
        pred, entropy, gt = np.asarray(pred), np.asarray(entropy), np.asarray(gt)
        where = f"image #{self.n_images}"
        if not (pred.shape == entropy.shape == gt.shape):
            raise InputError(
                f"{where}: pred {pred.shape}, entropy {entropy.shape}, gt {gt.shape}: expected equal shapes"
            )
        if pred.dtype.kind not in "iu" or gt.dtype.kind not in "iu":
            raise InputError(f"{where}: pred/gt of dtype {pred.dtype}/{gt.dtype}: expected integer class ids")
        k = self.num_classes
        g = gt.reshape(-1).astype(np.int64)
        valid = g != self.void_id
        bad = valid & ((g < 0) | (g >= k))
        if bad.any():
            raise InputError(
                f"{where}: ground truth contains id(s) {np.unique(g[bad])[:10].tolist()}: expected train ids "
                f"0..{k - 1} or void {self.void_id}"
            )
        p = pred.reshape(-1).astype(np.int64)[valid]
        if p.size and (p.min() < 0 or p.max() >= k):
            raise InputError(f"{where}: prediction contains ids outside 0..{k - 1}")
        e = entropy.reshape(-1)[valid]
        if np.isnan(e).any():
            raise InputError(f"{where}: entropy contains NaN: expected values in [0, 1]")
        bucket = np.searchsorted(self.thresholds, e.astype(np.float64), side="right")
        tb = self.thresholds.size + 1
        code = (g[valid] * k + p) * tb + bucket
        self.counts += np.bincount(code, minlength=k * k * tb).reshape(k, k, tb)
        self.n_images += 1

    def merge(self, other: "MiouAccumulator") -> "MiouAccumulator":
        """Add the counts of ``other`` (same classes, void id and thresholds); returns ``self``."""
        if (other.num_classes, other.void_id) != (self.num_classes, self.void_id) or not np.array_equal(
            other.thresholds, self.thresholds
        ):
            raise InputError("cannot merge mIoU accumulators with different classes, void id or thresholds")
        self.counts += other.counts
        self.n_images += other.n_images
        return self

    def confusion(self, threshold: float = math.inf) -> np.ndarray:
        """(K, K + 1) counts: rows gt class, columns predicted class, last column "OoD"."""
        k = self.num_classes
        if math.isinf(threshold) and threshold > 0:
            j = self.thresholds.size  # nothing is OoD
        else:
            hits = np.flatnonzero(self.thresholds == float(threshold))
            if hits.size == 0:
                raise InputError(f"threshold {threshold}: expected one of {self.thresholds.tolist()} or inf")
            j = int(hits[0])
        conf = np.zeros((k, k + 1), dtype=np.int64)
        conf[:, :k] = self.counts[:, :, : j + 1].sum(axis=2)
        conf[:, k] = self.counts[:, :, j + 1 :].sum(axis=(1, 2))
        return conf

    @staticmethod
    def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
        """Per-class IoU (NaN where the class is absent from gt and prediction)."""
        k = conf.shape[0]
        tp = np.diag(conf[:, :k]).astype(np.float64)
        gt_total = conf.sum(axis=1).astype(np.float64)  # includes gt-c pixels predicted OoD
        pred_total = conf[:, :k].sum(axis=0).astype(np.float64)
        denom = gt_total + pred_total - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denom > 0, tp / denom, np.nan)

    def result(self) -> dict[float, dict[str, Any]]:
        """threshold -> ``miou``, ``iou`` (K,), ``ood_fraction``; key ``math.inf`` = without OoD class."""
        if self.counts.sum() == 0:
            raise InputError("no non-void ground-truth pixel was accumulated: cannot compute mIoU")
        out: dict[float, dict[str, Any]] = {}
        for t in [*self.thresholds.tolist(), math.inf]:
            conf = self.confusion(t)
            iou = self.iou_from_confusion(conf)
            out[t] = {
                "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
                "iou": iou,
                "ood_fraction": float(conf[:, -1].sum() / conf.sum()),
            }
        return out
