"""Segment tables of one image: predicted OoD segments, ground-truth OoD segments, all thresholds."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from meta_ood.labels import VOID_ID
from meta_ood.segments.image import ImageSegments

__all__ = ["gt_segment_metrics", "segment_metrics", "segment_metrics_multi"]


def segment_metrics(probs: np.ndarray, gt_train: np.ndarray, threshold: float, ood_id: int,
                    void_id: int = VOID_ID) -> tuple[pd.DataFrame, np.ndarray]:
    """Predicted OoD segments of one image at entropy threshold ``threshold``.

    ``probs`` is the softmax (C, H, W) (any float dtype), ``gt_train`` the (H, W) ground truth in
    train ids with OoD label ``ood_id`` and void label ``void_id``. Returns a DataFrame with one
    row per segment (row i = segment i + 1) and the columns :data:`PRED_KEYS`, and the component
    map (+k interior, -k boundary, 0 elsewhere).
    """
    img = ImageSegments(probs, gt_train, (threshold,), ood_id, void_id, None)
    pred_df, pred_comp, _, _ = img.run(want_gt=False)[float(threshold)]
    return pred_df, pred_comp


def gt_segment_metrics(probs: np.ndarray, gt_train: np.ndarray, threshold: float, ood_id: int,
                       void_id: int = VOID_ID, gt_label: np.ndarray | None = None
                       ) -> tuple[pd.DataFrame, np.ndarray]:
    """Ground-truth OoD segments of one image and how the entropy mask covers them.

    One row per 8-connected component of ``gt_train == ood_id`` with the columns
    :data:`GT_KEYS`; ``label_class`` is ``gt_label`` (default ``gt_train``) at the segment's first
    pixel in row-major order, ``train_class`` is 255 as in the reference. Returns the DataFrame
    and the component map.
    """
    img = ImageSegments(probs, gt_train, (threshold,), ood_id, void_id, gt_label)
    _, _, gt_df, gt_comp = img.run(want_pred=False)[float(threshold)]
    return gt_df, gt_comp


def segment_metrics_multi(probs: np.ndarray, gt_train: np.ndarray, thresholds: Iterable[float],
                          ood_id: int, void_id: int = VOID_ID, gt_label: np.ndarray | None = None
                          ) -> dict[float, tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]]:
    """All thresholds of one image in one pass.

    The per-pixel maps (entropy, E, D, V, argmax, class probabilities) and everything about the
    ground-truth segments are computed once, and per-segment sums are accumulated once over
    the nested masks; only the labelling, boundaries and neighbourhoods are redone per
    threshold. Returns ``{float(t): (pred_df, pred_components, gt_df, gt_components)}`` in the
    order of ``thresholds`` (duplicates dropped), equal to what :func:`segment_metrics` and
    :func:`gt_segment_metrics` return for each ``t`` up to floating-point summation order.
    """
    img = ImageSegments(probs, gt_train, tuple(thresholds), ood_id, void_id, gt_label)
    return img.run()
