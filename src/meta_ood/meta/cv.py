"""Cross-validated held-out probabilities: exact leave-one-out and leave-one-group-out.

Every held-out probability comes from the minimizer of its fold's objective (not the one-step
approximation), a few hundred times faster than one liblinear fit per segment (see
:mod:`meta_ood.meta.chord`).

Standardization
---------------
``standardize="global"`` (the released code): every feature is standardized once over all rows as
``(x - mean) / (std + 1e-10)`` with numpy's population std. ``standardize="fold"``: the mean and
std are recomputed without the held-out rows of each fold (closed-form downdates); a feature that
is constant on a fold's training rows is set to 0 in that fold, so it gets coefficient 0 there --
the exact-arithmetic answer, which a literal ``(x - mean) / (0 + 1e-10)`` would otherwise turn into
rounding noise amplified by 1e10. ``standardize="none"`` uses the features as given.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from meta_ood.errors import InputError
from meta_ood.meta.chord import FoldSolver
from meta_ood.meta.folds import CVState, Folds
from meta_ood.meta.inputs import DegenerateInputWarning, as_binary01, as_matrix, check_options, single_class_fallback

__all__ = ["grouped_cv_predict_proba", "loo_predict_proba"]


def _prepare(
    X: Any, y: Any, C: float, standardize: str, tol: float, max_iter: int, on_single_class: str
) -> tuple[np.ndarray, np.ndarray]:
    """Checked options, the features as a finite float matrix and the labels as 0/1 floats."""
    check_options(C, tol, max_iter, standardize)
    if on_single_class not in ("raise", "constant"):
        raise InputError(f"on_single_class = {on_single_class!r}: expected 'raise' or 'constant'")
    A, _ = as_matrix(X)
    t = as_binary01(y, A.shape[0])
    return A, t


def loo_predict_proba(
    X: Any,
    y: Any,
    C: float = 1.0,
    penalize_intercept: bool = True,
    standardize: str = "global",
    tol: float = 1e-10,
    max_iter: int = 100,
    on_single_class: str = "raise",
    blas_threads: int | None = 1,
) -> np.ndarray:
    """Exact leave-one-out probability of FP (label 1) for every segment.

    Row ``i`` gets the probability predicted by the minimizer of the objective on all rows except
    ``i`` (the same objective as :class:`MetaClassifier`): the released code's ``LeaveOneOut`` +
    ``LogisticRegression(solver="liblinear")`` loop without liblinear's loose default tolerance, and
    hundreds of times faster (see :mod:`meta_ood.meta.chord`).

    Parameters
    ----------
    X : array-like or DataFrame, shape (n, d)
        Segment metrics.
    y : array-like of 0/1, shape (n,)
        1 = false positive (``iou0``).
    C, penalize_intercept : see :class:`MetaClassifier`.
    standardize : {"global", "fold", "none"}
        "global": standardize once on all rows (released code); "fold": with the statistics of each
        fold's training rows; "none": raw features.
    tol : float
        Accuracy of the held-out probabilities. A fold stops once the first-order bound
        ``0.25 * ||z_i||_{P^-1} * ||g||_{P^-1}`` on the error of its held-out probability is at
        most ``tol``, where ``g`` is the exact gradient of the fold's objective at the current
        iterate and ``P`` the fold's Hessian at the full-data solution; the step computed from
        ``g`` is applied as well, so the actual error is smaller still. Folds handed to Newton's
        method stop at ``max|g| <= tol``.
    max_iter : int
        Newton iterations at most (full-data fit and folds solved by Newton's method).
    on_single_class : {"raise", "constant"}
        What to do when all labels are equal (see "Degenerate input" in :mod:`meta_ood.meta`).
    blas_threads : int or None
        BLAS threads while solving (default 1: the matrix products are small, single-threaded BLAS
        is the fastest when several jobs share the machine, and liblinear is single-threaded too).
        None leaves the thread pool as it is.

    Returns
    -------
    ndarray of shape (n,)
    """
    A, t = _prepare(X, y, C, standardize, tol, max_iter, on_single_class)
    n = A.shape[0]
    if n == 0 or t.min() == t.max():
        return single_class_fallback(t, on_single_class)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        cv = CVState(A, t, float(C), bool(penalize_intercept), standardize, float(tol), int(max_iter))
        return FoldSolver(cv, Folds(np.arange(n + 1), np.arange(n))).solve()


def grouped_cv_predict_proba(
    X: Any,
    y: Any,
    groups: Any,
    C: float = 1.0,
    penalize_intercept: bool = True,
    standardize: str = "global",
    tol: float = 1e-10,
    max_iter: int = 100,
    on_single_class: str = "raise",
    blas_threads: int | None = 1,
    on_single_group: str = "raise",
) -> np.ndarray:
    """Leave-one-group-out (e.g. leave-one-image-out) probability of FP for every segment.

    Row ``i`` gets the probability predicted by the minimizer of the objective on all rows whose
    group differs from that of ``i``; every fold is refitted starting from the full-data solution
    (same iteration and tolerance as :func:`loo_predict_proba`, with the fold Hessian at the
    full-data solution factorized per group). Segments of one image are correlated, so this is the
    honest estimate of how the meta classifier does on unseen images. Parameters as in
    :func:`loo_predict_proba`; ``groups`` holds one group label (e.g. the image) per row.
    ``on_single_group``: with a single distinct group no fold has training rows; "raise" raises
    :class:`InputError`, "nan" returns NaN for every row with a :class:`DegenerateInputWarning`.
    """
    if on_single_group not in ("raise", "nan"):
        raise InputError(f"on_single_group = {on_single_group!r}: expected 'raise' or 'nan'")
    A, t = _prepare(X, y, C, standardize, tol, max_iter, on_single_class)
    n = A.shape[0]
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise InputError(f"groups: expected one group label per segment ({n}), got shape {g.shape}")
    if n == 0 or t.min() == t.max():
        return single_class_fallback(t, on_single_class)
    try:
        _, codes = np.unique(g, return_inverse=True)
    except TypeError:
        raise InputError("groups: labels must be mutually comparable (all numbers or all strings)") from None
    codes = codes.ravel()
    n_groups = int(codes.max()) + 1
    if n_groups < 2:
        msg = (f"groups: leave-one-group-out needs at least two groups, got only {g[0]!r}: no fold has "
               "training rows")
        if on_single_group == "raise":
            raise InputError(msg + " (pass on_single_group='nan' to get NaN probabilities instead)")
        warnings.warn(msg + "; every probability is NaN", DegenerateInputWarning, stacklevel=2)
        return np.full(n, np.nan)
    order = np.argsort(codes, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_groups))])
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        cv = CVState(A, t, float(C), bool(penalize_intercept), standardize, float(tol), int(max_iter))
        return FoldSolver(cv, Folds(indptr, order)).solve()
