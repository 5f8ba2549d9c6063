"""Meta classification stage: TP vs FP probabilities of the segments of one threshold, from their table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.io import read_parquet, write_json, write_parquet
from meta_ood.meta import meta_classify
from meta_ood.segments import feature_names
from meta_ood.stages.layout import SEGMENT_IMAGES


def meta_classify_stage(
    segments_parquet: str | os.PathLike,
    out_parquet: str | os.PathLike,
    out_json: str | os.PathLike,
    features: str = "paper",
    protocols: Sequence[str] = ("loo", "logo"),
    C: float = 1.0,
    penalize_intercept: bool = True,
    standardize: str = "global",
) -> dict[str, Any]:
    """Meta classification (TP vs FP) of the predicted segments of one threshold.

    The held-out probability of being a false positive comes from the first protocol
    (``prob_fp``; ``loo`` = leave-one-out, the paper's protocol); further protocols add
    ``prob_fp_<protocol>`` columns (``logo`` = leave-one-image-out, the honest protocol since
    segments of one image are correlated). The JSON holds AUROC / AUPRC / accuracy per protocol
    and the MSP baseline of paper table 3. A protocol that cannot be evaluated never stops the
    workflow: it reports ``fallback`` and ``fallback_reason`` (see :func:`meta_ood.meta.meta_classify`;
    e.g. ``logo`` with all segments in one image is unavailable: NaN probabilities, None metrics).
    """
    if not protocols:
        raise InputError("meta classification needs at least one protocol ('loo' or 'logo')")
    seg = read_parquet(segments_parquet)
    names = feature_names(features)
    images = Path(segments_parquet).with_name(SEGMENT_IMAGES)
    out = pd.DataFrame({"image": seg.get("image", pd.Series(dtype=int)), "segment": seg.get("segment", pd.Series(dtype=int)),
                        "iou0": seg.get("iou0", pd.Series(dtype=float))})
    summary: dict[str, Any] = {"segments": str(segments_parquet), "features": features, "n_features": len(names),
                               "n_segments": int(len(seg)), "protocols": {}}
    frames = read_parquet(images) if images.is_file() else None
    if frames is not None and "name" in frames:  # the frames whose segments were classified (the labelled ones)
        summary["frames"] = frames["name"].astype(str).tolist()
        if "image" in frames:  # their ids in the segments' ``image`` column (paired comparisons over images)
            summary["image_ids"] = frames["image"].astype(int).tolist()
    for k, protocol in enumerate(protocols):
        if len(seg) == 0:
            summary["protocols"][protocol] = {"fallback": "no_segments", "fallback_reason": "no segments at this threshold",
                                              "n": 0}
            out["prob_fp" if k == 0 else f"prob_fp_{protocol}"] = pd.Series(dtype=float)
            continue
        per_seg, metrics = meta_classify(
            seg, y="iou0", groups="image", protocol=protocol, feature_names=names, C=C,
            penalize_intercept=penalize_intercept, standardize=standardize,
        )
        out["prob_fp" if k == 0 else f"prob_fp_{protocol}"] = per_seg["prob_fp"].to_numpy()
        if "msp" in per_seg and "msp" not in out:
            out["msp"] = per_seg["msp"].to_numpy()
        summary["protocols"][protocol] = {k2: v for k2, v in metrics.items() if k2 not in ("coefficients",)}
        if k == 0:
            coef = metrics.get("coefficients")
            summary["coefficients"] = coef if isinstance(coef, dict) else dict(zip(names, np.asarray(coef if coef is not None else [], dtype=float).tolist()))
            summary["intercept"] = metrics.get("intercept")
    write_parquet(out_parquet, out)
    write_json(out_json, summary)
    return summary
