"""Inputs of the meta classifier: validation of features and labels, and standardization.

Features must be finite numeric segment metrics, labels 0/1 (1 = FP, the released code's
``iou0``); every violation raises :class:`~meta_ood.errors.InputError` naming the column or value.
Standardization follows the released code: ``(x - mean) / (std + 1e-10)`` with numpy's population
std.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError

__all__ = [
    "NON_FEATURE_COLUMNS",
    "STD_EPS",
    "DegenerateInputWarning",
    "as_binary01",
    "as_matrix",
    "check_options",
    "reference_feature_names",
    "single_class_fallback",
    "single_class_message",
    "standardize",
]

#: The constant added to the standard deviation by the released code's standardization.
STD_EPS = 1e-10

#: Columns of a segment table that are never meta-classifier inputs by default: the targets of the
#: released code (``iou``, ``iou0``, the unused ``prc``) and the bookkeeping columns of the
#: pipeline's segment tables.
NON_FEATURE_COLUMNS = ("iou", "iou0", "prc", "image", "segment", "prob_fp", "n_gt_in")

_MODES = ("global", "fold", "none")


class DegenerateInputWarning(UserWarning):
    """Issued when a documented fallback replaces a fit (one class only, no segments, ...)."""


def standardize(X: Any, eps: float = STD_EPS) -> np.ndarray:
    """Standardize columns as the released code does: ``(x - mean) / (std + eps)``.

    ``mean`` and ``std`` (numpy's population std, ``ddof=0``) are taken over all rows; the ``eps``
    keeps constant columns finite (they become 0).
    """
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise InputError(f"standardize: expected a 2-D array (segments x metrics), got shape {A.shape}")
    return (A - A.mean(axis=0)) / (A.std(axis=0) + eps)


def reference_feature_names(columns: Sequence[Hashable], exclude: Sequence[Hashable] = ()) -> list[str]:
    """Meta-classifier inputs chosen as the released code does: all columns except the targets.

    Plain Python string sort (upper case first, ``cprob10`` before ``cprob2``) of every column not
    in :data:`NON_FEATURE_COLUMNS` or ``exclude``.
    """
    skip = set(NON_FEATURE_COLUMNS) | set(exclude)
    return sorted(str(c) for c in columns if c not in skip)


def _column_label(names: Sequence[str] | None, k: int) -> str:
    """How an error message names column ``k``: with its name when the input had names."""
    return f"column {k} ({names[k]!r})" if names is not None else f"column {k}"


def as_matrix(X: Any, what: str = "features") -> tuple[np.ndarray, list[str] | None]:
    """Float64 (n, d) array of finite values plus the column names of a DataFrame (else None)."""
    names: list[str] | None = None
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        bad = [str(c) for c in X.columns if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))]
        if bad:
            raise InputError(f"{what}: columns {bad} are not numeric; expected numeric segment metrics")
        A = X.to_numpy(dtype=np.float64)
    else:
        try:
            A = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{what}: cannot convert to a float array ({exc}); expected numeric segment metrics") from None
    if A.ndim != 2:
        raise InputError(f"{what}: expected a 2-D array (segments x metrics), got shape {A.shape}")
    finite = np.isfinite(A)
    if not finite.all():
        cols = np.flatnonzero(~finite.all(axis=0))
        k = int(cols[0])
        n_bad = int((~finite[:, k]).sum())
        more = f" (and {len(cols) - 1} more columns)" if len(cols) > 1 else ""
        raise InputError(
            f"{what}: {_column_label(names, k)} holds NaN or inf in {n_bad} of {A.shape[0]} rows{more}; "
            "expected finite segment metrics"
        )
    return A, names


def as_binary01(y: Any, n: int) -> np.ndarray:
    """Labels as a float array of 0/1 (1 = FP, the released code's ``iou0``)."""
    v = np.asarray(y)
    if v.ndim != 1 or v.shape[0] != n:
        raise InputError(f"labels: expected a 1-D array with one label per segment ({n}), got shape {v.shape}")
    if v.dtype == bool:
        return v.astype(np.float64)
    try:
        f = v.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"labels: expected 0/1 (1 = false positive), got values of type {v.dtype}") from None
    ok = (f == 0) | (f == 1)
    if not ok.all():
        bad = np.unique(v[~ok])[:5]
        raise InputError(f"labels: expected 0/1 (1 = false positive), got {list(bad)}")
    return f


def check_options(C: float, tol: float, max_iter: int, mode: str, allowed: Sequence[str] = _MODES) -> None:
    """Reject a non-positive ``C`` or ``tol``, ``max_iter < 1`` and an unknown standardization mode."""
    if not (np.isfinite(C) and C > 0):
        raise InputError(f"C = {C!r}: expected a finite positive number")
    if not (np.isfinite(tol) and tol > 0):
        raise InputError(f"tol = {tol!r}: expected a finite positive number")
    if int(max_iter) < 1:
        raise InputError(f"max_iter = {max_iter!r}: expected a positive integer")
    if mode not in allowed:
        raise InputError(f"standardize = {mode!r}: expected one of {list(allowed)}")


def single_class_message(t: np.ndarray) -> str:
    """The error message for labels ``t`` that hold one class only (or no rows at all)."""
    n = t.shape[0]
    if n == 0:
        return "meta classification needs both TP and FP segments, got no segments at all"
    kind = "FP segments (iou0 = 1)" if t[0] == 1 else "TP segments (iou0 = 0)"
    return f"meta classification needs both TP and FP segments, got only {kind}: all {n} labels are {int(t[0])}"


def single_class_fallback(t: np.ndarray, on_single_class: str) -> np.ndarray:
    """Raise, or return the constant class frequency with a warning (documented fallback)."""
    msg = single_class_message(t)
    if on_single_class == "raise":
        raise InputError(msg + " (pass on_single_class='constant' to get the class frequency instead)")
    if on_single_class != "constant":
        raise InputError(f"on_single_class = {on_single_class!r}: expected 'raise' or 'constant'")
    freq = float(t.mean()) if t.shape[0] else 0.0
    warnings.warn(msg + f"; every probability is set to the class frequency {freq:g}", DegenerateInputWarning, stacklevel=3)
    return np.full(t.shape[0], freq)

