"""Segment evaluation stage: detection errors and road miss rate of a segments folder before and after meta classification."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.io import read_json, read_parquet, write_json
from meta_ood.segment_eval import detection_errors
from meta_ood.stages.layout import SEGMENT_COMPONENTS, SEGMENT_IMAGES, SEGMENT_TABLE_SUFFIXES, threshold_tag


def segment_eval_stage(
    segments_dir: str | os.PathLike,
    meta_dir: str | os.PathLike,
    thresholds: Sequence[float],
    out_json: str | os.PathLike,
    meta_threshold: float = 0.5,
    reference_fp_after: bool = False,
) -> dict[str, Any]:
    """FP, FN, their sum and the road miss rate ε before and after meta classification, per threshold (paper table 2).

    A segment is removed when its ``prob_fp`` (the first meta protocol) exceeds ``meta_threshold``.
    When that protocol gave no estimate (``prob_fp`` NaN for every segment: leave-one-image-out
    with all segments in one image), the "after" numbers are None and ``meta_unavailable`` says why.
    Per threshold, ``per_image`` holds the counts per image in the order of ``frames`` (for paired
    comparisons of two methods on the same images).
    """
    segments_dir, meta_dir = Path(segments_dir), Path(meta_dir)
    images = read_parquet(segments_dir / SEGMENT_IMAGES)
    n_gt_in_total = int(images["n_gt_in"].sum()) if len(images) else 0
    components = read_json(segments_dir / SEGMENT_COMPONENTS) if (segments_dir / SEGMENT_COMPONENTS).is_file() else {}
    frames = images["name"].astype(str).tolist() if "name" in images else []
    image_ids = images["image"].tolist() if "image" in images else None  # per-image counts, in the order of frames
    result: dict[str, Any] = {"n_images": int(len(images)), "frames": frames, "n_gt_in_total": n_gt_in_total,
                              "meta_threshold": meta_threshold, "reference_fp_after": reference_fp_after,
                              "thresholds": {}}
    for t in sorted({float(x) for x in thresholds}):
        tag = threshold_tag(t)
        pred, gt, overlaps = (read_parquet(segments_dir / f"{tag}{suffix}") for suffix in SEGMENT_TABLE_SUFFIXES)
        meta = read_parquet(meta_dir / f"{tag}.parquet")
        unavailable = None
        if len(pred):
            if len(meta) != len(pred) or not (meta["image"].to_numpy() == pred["image"].to_numpy()).all():
                raise InputError(f"{meta_dir / f'{tag}.parquet'}: rows do not match the segments of {segments_dir / f'{tag}.parquet'}")
            prob = meta["prob_fp"].to_numpy(dtype=float)
            if np.isnan(prob).all():
                unavailable = (f"{meta_dir / f'{tag}.parquet'}: prob_fp is NaN for every segment (the meta protocol gave "
                               "no estimate, see its JSON), so the 'after' numbers are None")
            elif np.isnan(prob).any():
                raise InputError(f"{meta_dir / f'{tag}.parquet'}: prob_fp is NaN for {int(np.isnan(prob).sum())} of "
                                 f"{len(prob)} segments: expected probabilities for all or (protocol unavailable) none")
            else:
                pred = pred.assign(prob_fp=prob)
        else:
            pred = pd.DataFrame({"image": [], "segment": [], "iou0": [], "n_gt_in": [], "prob_fp": []})
        if len(gt) == 0:
            gt = pd.DataFrame({"image": [], "segment": [], "iou0": []})
        if len(overlaps) == 0:
            overlaps = pd.DataFrame({"image": [], "pred_segment": [], "gt_segment": [], "n_pixels": []})
        errors = detection_errors(pred, gt, meta_threshold=meta_threshold, overlaps=overlaps,
                                  n_gt_in_total=n_gt_in_total, reference_fp_after=reference_fp_after,
                                  images=image_ids)
        if unavailable is not None:
            errors.update({"meta_threshold": float(meta_threshold), "n_removed": None, "fp_after": None,
                           "fn_after": None, "total_after": None, "eps_after": None, "meta_unavailable": unavailable})
            for key in ("fp_after", "fn_after"):
                errors.get("per_image", {}).pop(key, None)
        errors["components"] = components.get(tag)
        result["thresholds"][tag] = errors
    write_json(out_json, result)
    return result
