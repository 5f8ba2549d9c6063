"""Cross-validated meta classification of the segment table of one threshold (paper section 7)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.meta.cv import grouped_cv_predict_proba, loo_predict_proba
from meta_ood.meta.estimator import MetaClassifier
from meta_ood.meta.evaluation import evaluate, msp_baseline, msp_scores
from meta_ood.meta.inputs import (
    DegenerateInputWarning,
    as_binary01,
    as_matrix,
    reference_feature_names,
    single_class_fallback,
)

__all__ = ["meta_classify"]


def _column_or_array(features: pd.DataFrame, value: Any, what: str) -> tuple[np.ndarray, str | None]:
    """``value`` as one entry per segment: the column it names, or the array it is; plus the column name."""
    if isinstance(value, str):
        if value not in features.columns:
            raise InputError(
                f"{what}: no column {value!r} in the segment table (columns: {list(features.columns)[:10]} ...)"
            )
        return features[value].to_numpy(), value
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != len(features):
        raise InputError(f"{what}: expected one value per segment ({len(features)}), got shape {arr.shape}")
    return arr, None


def meta_classify(
    features: pd.DataFrame,
    y: Any = "iou0",
    groups: Any = None,
    protocol: str = "loo",
    feature_names: Sequence[str] | None = None,
    C: float = 1.0,
    penalize_intercept: bool = True,
    standardize: str = "global",
    tol: float = 1e-10,
    max_iter: int = 100,
    on_single_class: str = "constant",
    msp: Any = None,
    blas_threads: int | None = 1,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cross-validated meta classification of the segments of one threshold (paper section 7).

    Parameters
    ----------
    features : DataFrame
        One row per predicted segment.
    y : str or array-like
        0/1 target (1 = FP), or the name of its column (default ``"iou0"``).
    groups : str, array-like or None
        Image of each segment (or the column's name); required for ``protocol="logo"``.
    protocol : {"loo", "logo"}
        Leave-one-out (paper) or leave-one-group-out (leave-one-image-out).
    feature_names : sequence of str or None
        Input columns. None: every column except
        :data:`~meta_ood.meta.inputs.NON_FEATURE_COLUMNS` and the ``y`` / ``groups`` columns,
        sorted as the released code sorts them (:func:`reference_feature_names`).
    C, penalize_intercept, standardize, tol, max_iter, on_single_class, blas_threads
        As in :func:`loo_predict_proba`; ``on_single_class`` defaults to ``"constant"`` here so that
        a threshold without TP or without FP segments does not stop the pipeline.
    msp : str, array-like or None
        Per-segment mean max-softmax probability for the MSP baseline, or the name of its column.
        None: ``1 - V`` when the table has the mean variation ratio column ``V``, else no baseline.

    Returns
    -------
    (DataFrame, dict)
        Per segment (same index as ``features``): ``prob_fp`` (held-out probability of FP; NaN
        when the protocol is unavailable), ``iou0`` (the target), ``pred_fp`` (``prob_fp > 0.5``,
        False for NaN), ``group`` (if given) and ``msp`` (if available). The dict holds the
        protocol and settings, counts, ``auroc``, ``auprc``, ``accuracy`` (None where undefined),
        ``msp_auroc`` / ``msp_auprc``, the full-data model's ``coefficients`` (per standardized
        feature) and ``intercept``, ``n_single_class_folds`` (folds whose training rows hold one
        class, see "Degenerate input" in :mod:`meta_ood.meta`), ``fallback`` (None, or the
        documented fallback used: ``"no_segments"``, ``"single_class"`` -- every probability is
        the class frequency --, or ``"single_group"`` -- logo with all segments in one image:
        unavailable, NaN) and ``fallback_reason`` (a sentence, or None).
    """
    if not isinstance(features, pd.DataFrame):
        raise InputError(f"features: expected a pandas DataFrame (one row per segment), got {type(features).__name__}")
    if protocol not in ("loo", "logo"):
        raise InputError(f"protocol = {protocol!r}: expected 'loo' (leave-one-out) or 'logo' (leave-one-image-out)")
    yv, y_col = _column_or_array(features, y, "y")
    gv, g_col = (None, None) if groups is None else _column_or_array(features, groups, "groups")
    if protocol == "logo" and gv is None:
        raise InputError("protocol 'logo' (leave-one-image-out) needs groups: the image of every segment")
    if feature_names is None:
        feature_names = reference_feature_names(features.columns, [c for c in (y_col, g_col) if c is not None])
    else:
        feature_names = [str(c) for c in feature_names]
        missing = [c for c in feature_names if c not in features.columns]
        if missing:
            raise InputError(f"features: missing metric columns {missing}; expected them in the segment table")
    X, _ = as_matrix(features[list(feature_names)], "features")
    n = X.shape[0]
    t = as_binary01(yv, n)

    if msp is None and "V" in features.columns:
        msp_v: np.ndarray | None = msp_scores(features["V"].to_numpy(dtype=np.float64))
    elif msp is not None:
        mv, _ = _column_or_array(features, msp, "msp")
        msp_v = np.asarray(mv, dtype=np.float64)
    else:
        msp_v = None

    n_groups = None if gv is None else int(len(pd.unique(gv)))
    fallback = reason = None
    coefficients: dict[str, float] | None = None
    intercept: float | None = None
    if n == 0 or t.min() == t.max():
        proba = single_class_fallback(t, on_single_class)
        fallback = "no_segments" if n == 0 else "single_class"
        reason = ("no segments at this threshold" if n == 0 else
                  f"all {n} segments have iou0 = {int(t[0])}: every probability is the class frequency {int(t[0])}")
    else:
        kw = dict(
            C=C,
            penalize_intercept=penalize_intercept,
            standardize=standardize,
            tol=tol,
            max_iter=max_iter,
            blas_threads=blas_threads,
        )
        if protocol == "loo":
            proba = loo_predict_proba(X, t, **kw)
        else:
            proba = grouped_cv_predict_proba(X, t, gv, on_single_group="nan", **kw)
            if n_groups < 2:
                fallback = "single_group"
                reason = (f"all {n} segments come from one image ({gv[0]!r}): leave-one-image-out has no fold with "
                          "training segments, so it gives no estimate (probabilities NaN, metrics None); see 'loo'")
        model = MetaClassifier(
            C=C,
            penalize_intercept=penalize_intercept,
            standardize="none" if standardize == "none" else "global",
            tol=tol,
            max_iter=max_iter,
        )
        model.fit(X, t)
        coefficients = {name: float(c) for name, c in zip(feature_names, model.coef_[0])}
        intercept = float(model.intercept_[0])

    table = pd.DataFrame({"prob_fp": proba, "iou0": t.astype(np.int64), "pred_fp": proba > 0.5}, index=features.index)
    if gv is not None:
        table["group"] = gv
    if msp_v is not None:
        table["msp"] = msp_v

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        if fallback == "single_group":
            scores = {"auroc": None, "auprc": None, "accuracy": None}
        else:
            scores = evaluate(t, proba)
        base = msp_baseline(msp_v, t) if msp_v is not None else None
    metrics: dict[str, Any] = {
        "protocol": protocol,
        "C": float(C),
        "penalize_intercept": bool(penalize_intercept),
        "standardize": standardize,
        "n_segments": int(n),
        "n_fp": int(t.sum()),
        "n_tp": int(n - t.sum()),
        "n_features": len(feature_names),
        "feature_names": list(feature_names),
        "auroc": scores["auroc"],
        "auprc": scores["auprc"],
        "accuracy": scores["accuracy"],
        "msp_auroc": None if base is None else base["auroc"],
        "msp_auprc": None if base is None else base["auprc"],
        "coefficients": coefficients,
        "intercept": intercept,
        "n_single_class_folds": _single_class_folds(t, None if protocol == "loo" else gv),
        "fallback": fallback,
        "fallback_reason": reason,
    }
    if gv is not None:
        metrics["n_groups"] = n_groups
    return table, metrics


def _single_class_folds(t: np.ndarray, groups: Any) -> int:
    """Number of folds (rows for leave-one-out, groups otherwise) whose training rows hold one class."""
    n, n_pos = t.shape[0], float(t.sum())
    if n == 0 or n_pos in (0.0, float(n)):
        return 0
    if groups is None:
        return int(n_pos == 1) + int(n - n_pos == 1)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    size = np.bincount(codes.ravel())
    pos = np.bincount(codes.ravel(), weights=t)
    pos_train, n_train = n_pos - pos, n - size
    return int(np.sum((n_train > 0) & ((pos_train == 0) | (pos_train == n_train))))
