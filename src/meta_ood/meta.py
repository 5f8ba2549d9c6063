"""Meta classification of OoD segment predictions (paper sections 4 and 7).

A logistic regression on standardized segment metrics decides whether a predicted OoD segment is
a false positive (target ``iou0`` = 1) or a true positive (``iou0`` = 0). The paper evaluates it
by leave-one-out cross validation over all segments; the released code refits
``LogisticRegression(solver="liblinear")`` once per segment, which takes minutes to hours.

This module solves the same problems exactly, but much faster:

* :class:`MetaClassifier` -- L2-regularized logistic regression solved by damped Newton's method
  to a gradient norm of ``tol``. With ``penalize_intercept=True`` (default) the objective is
  liblinear's: ``0.5*||[w, b]||^2 + C * sum_i log(1 + exp(-y_i (w.x_i + b)))`` (the intercept is
  an extra constant feature and is penalized); with ``penalize_intercept=False`` it is
  ``0.5*||w||^2 + C * sum_i log(...)``, the objective of scikit-learn's ``lbfgs`` solver.
* :func:`loo_predict_proba` -- leave-one-out held-out probabilities, each from the minimizer of
  its fold's objective (not the one-step approximation), a few hundred times faster than one
  liblinear fit per segment (see "Algorithm").
* :func:`grouped_cv_predict_proba` -- leave-one-image-out, the honest protocol when segments of
  one image are correlated; same machinery with one fold per group.
* :func:`evaluate`, :func:`msp_baseline` -- AUROC / AUPRC / accuracy (paper table 3) and the
  maximum-softmax-probability baseline.
* :func:`meta_classify` -- the entry point of the pipeline stage.

Standardization
---------------
``standardize="global"`` (the released code): every feature is standardized once over all rows as
``(x - mean) / (std + 1e-10)`` with numpy's population std. ``standardize="fold"``: the mean and
std are recomputed without the held-out rows of each fold (closed-form downdates); a feature that
is constant on a fold's training rows is set to 0 in that fold, so it gets coefficient 0 there --
the exact-arithmetic answer, which a literal ``(x - mean) / (0 + 1e-10)`` would otherwise turn into
rounding noise amplified by 1e10. ``standardize="none"`` uses the features as given.

Algorithm (cross validation)
----------------------------
Let ``theta*`` minimize the objective on all rows and ``H`` be its Hessian there. For a fold that
leaves out the rows ``G``, ``P_G = H - C * sum_{j in G} w_j z_j z_j^T`` is the fold's Hessian at
``theta*`` (Sherman-Morrison for single rows, a Cholesky factor per group otherwise). Each fold
starts from the one-step approximation ``theta* - P_G^{-1} g_G(theta*)``, ``g_G`` being the
gradient of the fold's objective, and is iterated as ``theta <- theta - P_G^{-1} g_G(theta)`` (a
chord, or simplified Newton, method) with the *exact* gradient of the fold's objective. The
gradients of a few hundred folds come from two matrix products with all rows' features, so a
sweep over all folds costs about as much as a handful of full-data fits. The contraction factor
of the iteration is of the order of the change that removing the fold causes, so three or four
sweeps reach the tolerance: a fold stops once a first-order bound on the error of its held-out
probability, computed from its exact gradient, is below ``tol`` (the step computed from that
gradient is applied as well). A fold that contracts slowly, whose fold Hessian is not positive
definite, or whose training rows hold a single class is solved by damped Newton's method with its
own Hessian instead (stopping at ``max|gradient| <= tol``). With ``standardize="fold"`` the
fold's objective is written in the coordinates of the globally standardized features (the fold
standardization is an affine map of them), so the same matrix products serve every fold and only
the penalty term differs per fold; folds where that map degenerates (a column constant on the
training rows) are standardized explicitly and solved by Newton's method.

Degenerate input
----------------
* One class only (all segments TP or all FP): :class:`~meta_ood.errors.InputError` with
  ``on_single_class="raise"``; with ``on_single_class="constant"`` every probability is the class
  frequency (0 or 1) and a :class:`DegenerateInputWarning` is issued. :func:`meta_classify`, which
  the pipeline calls, defaults to ``"constant"`` so that a threshold without FP or without TP
  segments does not stop the workflow.
* A fold whose training rows hold one class (the held-out row was the only member of its class):
  with ``penalize_intercept=True`` the objective is still strictly convex with a finite minimizer,
  which is computed (liblinear itself refuses one-class data); with ``penalize_intercept=False`` no
  minimizer exists (the intercept diverges), and the limit of the predictions, the training class
  frequency (0 or 1), is returned with a :class:`DegenerateInputWarning`.
* Leave-one-image-out with all segments in one image: no fold has training rows, so the protocol
  has no estimate. :func:`grouped_cv_predict_proba` raises with ``on_single_group="raise"``; with
  ``on_single_group="nan"`` (what :func:`meta_classify` uses) every probability is NaN and a
  :class:`DegenerateInputWarning` is issued; :func:`meta_classify` then reports the protocol as
  unavailable: ``fallback = "single_group"``, AUROC / AUPRC / accuracy None, ``pred_fp`` False.
  Substituting leave-one-out would pass correlated segments of the same image off as an image-level
  estimate, so it is not done.
* Folds whose training rows hold one class are solved as described above (with two images, each
  holding one class, every fold is such a fold); :func:`meta_classify` reports their number as
  ``n_single_class_folds`` so that a table built on such folds can be recognized.
* Fewer rows than features and constant columns are fine: the L2 penalty keeps the problem
  strictly convex; a constant column standardizes to 0.
* NaN or inf in the features: :class:`~meta_ood.errors.InputError` naming the column.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from meta_ood.errors import InputError

__all__ = [
    "STD_EPS",
    "DegenerateInputWarning",
    "MetaClassifier",
    "evaluate",
    "grouped_cv_predict_proba",
    "loo_predict_proba",
    "meta_classify",
    "msp_baseline",
    "msp_scores",
    "reference_feature_names",
    "standardize",
]

#: The constant added to the standard deviation by the released code's standardization.
STD_EPS = 1e-10

#: Columns of a segment table that are never meta-classifier inputs by default: the targets of the
#: released code (``iou``, ``iou0``, the unused ``prc``) and the bookkeeping columns of the
#: pipeline's segment tables.
NON_FEATURE_COLUMNS = ("iou", "iou0", "prc", "image", "segment", "prob_fp", "n_gt_in")

_MODES = ("global", "fold", "none")
_MAX_CHORD = 30  # chord iterations before a fold is handed to Newton's method
_SLOW_RATIO = 0.5  # a fold whose gradient shrinks less than this per chord iteration goes to Newton
_BLOCK_ENTRIES = 1 << 20  # rows x folds of one chunk of margins (8 MiB) ...
_CHUNK_MIN, _CHUNK_MAX = 128, 512  # ... but at least / at most this many folds per matrix product
_MAX_STORED_ENTRIES = 1 << 24  # fold preconditioners kept in memory (128 MiB); beyond, recomputed


class DegenerateInputWarning(UserWarning):
    """Issued when a documented fallback replaces a fit (one class only, no segments, ...)."""


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


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
    return f"column {k} ({names[k]!r})" if names is not None else f"column {k}"


def _as_matrix(X: Any, what: str = "features") -> tuple[np.ndarray, list[str] | None]:
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


def _as_binary01(y: Any, n: int) -> np.ndarray:
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


def _check_options(C: float, tol: float, max_iter: int, mode: str, allowed: Sequence[str] = _MODES) -> None:
    if not (np.isfinite(C) and C > 0):
        raise InputError(f"C = {C!r}: expected a finite positive number")
    if not (np.isfinite(tol) and tol > 0):
        raise InputError(f"tol = {tol!r}: expected a finite positive number")
    if int(max_iter) < 1:
        raise InputError(f"max_iter = {max_iter!r}: expected a positive integer")
    if mode not in allowed:
        raise InputError(f"standardize = {mode!r}: expected one of {list(allowed)}")


def _single_class_message(t: np.ndarray) -> str:
    n = t.shape[0]
    if n == 0:
        return "meta classification needs both TP and FP segments, got no segments at all"
    kind = "FP segments (iou0 = 1)" if t[0] == 1 else "TP segments (iou0 = 0)"
    return f"meta classification needs both TP and FP segments, got only {kind}: all {n} labels are {int(t[0])}"


def _single_class_fallback(t: np.ndarray, on_single_class: str) -> np.ndarray:
    """Raise, or return the constant class frequency with a warning (documented fallback)."""
    msg = _single_class_message(t)
    if on_single_class == "raise":
        raise InputError(msg + " (pass on_single_class='constant' to get the class frequency instead)")
    if on_single_class != "constant":
        raise InputError(f"on_single_class = {on_single_class!r}: expected 'raise' or 'constant'")
    freq = float(t.mean()) if t.shape[0] else 0.0
    warnings.warn(msg + f"; every probability is set to the class frequency {freq:g}", DegenerateInputWarning, stacklevel=3)
    return np.full(t.shape[0], freq)


# --------------------------------------------------------------------------------------------
# Newton's method for one L2-regularized logistic regression
# --------------------------------------------------------------------------------------------


def _design(Xs: np.ndarray) -> np.ndarray:
    """Features with the constant intercept feature appended (last column)."""
    return np.hstack([Xs, np.ones((Xs.shape[0], 1))])


def _penalty_diag(p: int, penalize_intercept: bool) -> np.ndarray:
    r = np.ones(p)
    r[-1] = 1.0 if penalize_intercept else 0.0
    return r


def _grad_floor(Z: np.ndarray, C: float) -> float:
    """Rounding level of the data gradient: no solver can push ``max|g|`` much below it."""
    if Z.shape[0] == 0:
        return 0.0
    return 32.0 * np.finfo(np.float64).eps * C * float(np.abs(Z).sum(axis=0).max())


def _objective(Z: np.ndarray, sgn: np.ndarray, C: float, r: np.ndarray, theta: np.ndarray) -> float:
    m = Z @ theta
    return 0.5 * float(np.dot(r * theta, theta)) + C * float(np.logaddexp(0.0, -sgn * m).sum())


def _newton(
    Z: np.ndarray, t: np.ndarray, C: float, r: np.ndarray, theta0: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, int, bool]:
    """Minimize ``0.5 theta' diag(r) theta + C sum log(1 + exp(-s_i z_i.theta))`` by damped Newton.

    Stops when ``max|gradient| <= max(tol, rounding level)``. Returns (theta, iterations, converged).
    """
    sgn = 2.0 * t - 1.0
    theta = theta0.astype(np.float64, copy=True)
    tol_eff = max(tol, _grad_floor(Z, C))
    f = _objective(Z, sgn, C, r, theta)
    eps = np.finfo(np.float64).eps
    for it in range(max_iter + 1):
        prob = expit(Z @ theta)
        g = r * theta + C * (Z.T @ (prob - t))
        if np.abs(g).max() <= tol_eff:
            return theta, it, True
        if it == max_iter:
            break
        w = prob * (1.0 - prob)
        H = (Z.T * (C * w)) @ Z
        H[np.diag_indices_from(H)] += r
        try:
            d = cho_solve(cho_factor(H, lower=True, check_finite=False), -g, check_finite=False)
        except (LinAlgError, ValueError):
            d = np.linalg.lstsq(H, -g, rcond=None)[0]
        slope = float(g @ d)
        if not slope < 0:  # not a descent direction (numerically singular Hessian): use the gradient
            d = -g
            slope = -float(g @ g)
        alpha = 1.0
        while True:
            cand = theta + alpha * d
            fc = _objective(Z, sgn, C, r, cand)
            if fc <= f + 1e-4 * alpha * slope + 16 * eps * abs(f):
                break
            alpha *= 0.5
            if alpha < 1e-12:
                return theta, it, bool(np.abs(g).max() <= 1e3 * tol_eff)
        theta, f = cand, fc
    return theta, max_iter, False


# --------------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------------


class MetaClassifier(ClassifierMixin, BaseEstimator):
    """L2-regularized logistic regression on standardized segment metrics, solved by Newton's method.

    Parameters
    ----------
    C : float
        Inverse regularization strength, as in scikit-learn.
    penalize_intercept : bool
        True: liblinear's objective ``0.5*||[w, b]||^2 + C*sum(logloss)`` (the released code's
        ``LogisticRegression(solver="liblinear")``). False: ``0.5*||w||^2 + C*sum(logloss)``
        (scikit-learn's ``lbfgs`` objective).
    standardize : {"global", "none"}
        "global": features are standardized with the mean and std of the rows passed to
        :meth:`fit` (``(x - mean) / (std + 1e-10)``, as in the released code); "none": used as given.
    tol : float
        Stop when the largest absolute gradient entry is at most ``tol`` (or at the rounding level).
    max_iter : int
        Newton iterations at most.
    random_state : int
        Unused (the solver is deterministic); kept for scikit-learn compatibility.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    coef_ : ndarray of shape (1, n_features) -- on the standardized features
    intercept_ : ndarray of shape (1,)
    mean_, std_ : ndarray of shape (n_features,) or None -- the standardization statistics
    n_iter_ : ndarray of shape (1,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str (only when fitted on a DataFrame)
    """

    def __init__(
        self,
        C: float = 1.0,
        penalize_intercept: bool = True,
        standardize: str = "global",
        tol: float = 1e-10,
        max_iter: int = 100,
        random_state: int | None = 0,
    ) -> None:
        self.C = C
        self.penalize_intercept = penalize_intercept
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def _transform(self, X: Any) -> np.ndarray:
        A, names = _as_matrix(X)
        fitted_names = getattr(self, "feature_names_in_", None)
        if names is not None and fitted_names is not None and list(fitted_names) != names:
            raise InputError(f"features: columns {names[:5]}... differ from those seen in fit {list(fitted_names)[:5]}...")
        if A.shape[1] != self.n_features_in_:
            raise InputError(f"features: expected {self.n_features_in_} columns (as in fit), got {A.shape[1]}")
        if self.mean_ is not None:
            A = (A - self.mean_) / (self.std_ + STD_EPS)
        return A

    def fit(self, X: Any, y: Any) -> "MetaClassifier":
        """Fit on features ``X`` (n, d) and binary labels ``y``; returns self."""
        _check_options(self.C, self.tol, self.max_iter, self.standardize, ("global", "none"))
        A, names = _as_matrix(X)
        yv = np.asarray(y)
        if yv.ndim != 1 or yv.shape[0] != A.shape[0]:
            raise InputError(f"labels: expected a 1-D array with one label per row ({A.shape[0]}), got shape {yv.shape}")
        classes = np.unique(yv)
        if classes.shape[0] < 2:
            if set(classes.tolist()) <= {0, 1}:
                raise InputError(_single_class_message(_as_binary01(yv, yv.shape[0])))
            raise InputError(f"meta classification needs two classes, got only {classes.tolist()}")
        if classes.shape[0] > 2:
            raise InputError(f"labels: expected two classes, got {classes.shape[0]}: {classes[:5].tolist()} ...")
        t = (yv == classes[1]).astype(np.float64)
        if self.standardize == "global":
            self.mean_ = A.mean(axis=0)
            self.std_ = A.std(axis=0)
            A = (A - self.mean_) / (self.std_ + STD_EPS)
        else:
            self.mean_ = None
            self.std_ = None
        Z = _design(A)
        r = _penalty_diag(Z.shape[1], self.penalize_intercept)
        theta, n_iter, ok = _newton(Z, t, float(self.C), r, np.zeros(Z.shape[1]), float(self.tol), int(self.max_iter))
        if not ok:
            warnings.warn(
                f"Newton's method did not reach tol={self.tol:g} in {self.max_iter} iterations",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.classes_ = classes
        self.coef_ = theta[None, :-1].copy()
        self.intercept_ = theta[-1:].copy()
        self.n_iter_ = np.array([n_iter])
        self.n_features_in_ = A.shape[1]
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of the second class (``classes_[1]``, FP for ``iou0`` labels)."""
        A = self._transform(X)
        return A @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, 2), columns in the order of ``classes_``."""
        p1 = expit(self.decision_function(X))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[1]`` where the decision function is positive, else ``classes_[0]``."""
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


# --------------------------------------------------------------------------------------------
# exact cross validation
# --------------------------------------------------------------------------------------------


@dataclass
class _Folds:
    """Held-out row sets in CSR form: fold f holds ``rows[indptr[f]:indptr[f + 1]]``."""

    indptr: np.ndarray
    rows: np.ndarray

    @property
    def count(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.indptr)

    def test_rows(self, f: int) -> np.ndarray:
        return self.rows[self.indptr[f]:self.indptr[f + 1]]

    def fold_sums(self, V: np.ndarray) -> np.ndarray:
        """Per-fold sums of the rows of ``V`` over the held-out rows."""
        out = np.zeros((self.count,) + V.shape[1:])
        nz = self.sizes > 0
        out[nz] = np.add.reduceat(V[self.rows], self.indptr[:-1][nz], axis=0)
        return out


class _CV:
    """Shared state of one cross validation: the full-data solution and its Hessian."""

    def __init__(
        self, X: np.ndarray, t: np.ndarray, C: float, penalize_intercept: bool, mode: str, tol: float, max_iter: int
    ) -> None:
        self.n, self.d = X.shape
        self.p = self.d + 1
        self.t = t
        self.C = C
        self.mode = mode
        self.tol = tol
        self.max_iter = max_iter
        self.r = _penalty_diag(self.p, penalize_intercept)
        self.penalize_intercept = penalize_intercept
        self.X = X
        if mode in ("global", "fold"):
            self.mu = X.mean(axis=0)
            self.sd = X.std(axis=0)
            Xs = (X - self.mu) / (self.sd + STD_EPS)
        else:
            Xs = X
        self.Z = _design(Xs)
        self.ZT = np.ascontiguousarray(self.Z.T)
        self.tol_eff = max(tol, _grad_floor(self.Z, C))
        if mode == "fold":
            self.xc = X - self.mu
            self.S1 = self.xc.sum(axis=0)
            self.S2 = np.square(self.xc).sum(axis=0)
        # full-data optimum; penalize_intercept=True always has one, False needs both classes
        self.theta, _, ok = _newton(self.Z, t, C, self.r, np.zeros(self.p), tol, max_iter)
        if not ok:
            warnings.warn(f"Newton's method did not reach tol={tol:g} on the full data", ConvergenceWarning, stacklevel=4)
        prob = expit(self.Z @ self.theta)
        self.res = prob - t
        self.w = prob * (1.0 - prob)
        self.gfull = self.r * self.theta + C * (self.ZT @ self.res)
        H = (self.ZT * (C * self.w)) @ self.Z
        H[np.diag_indices_from(H)] += self.r
        self.H = H
        try:
            self.Hinv = cho_solve(cho_factor(H, lower=True, check_finite=False), np.eye(self.p), check_finite=False)
        except LinAlgError:
            self.Hinv = np.linalg.pinv(H)

    # -- fold standardization as an affine map of the globally standardized features --------

    def fold_affine(self, n_train: np.ndarray, xc_sum: np.ndarray, xc2_sum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(e, c) with fold-standardized = e * globally-standardized + c, per fold (rows)."""
        nt = n_train[:, None].astype(np.float64)
        mc = (self.S1 - xc_sum) / nt  # fold mean minus global mean
        var = (self.S2 - xc2_sum) / nt - np.square(mc)
        sdk = np.sqrt(np.maximum(var, 0.0)) + STD_EPS
        return (self.sd + STD_EPS) / sdk, -mc / sdk

    def penalty_grad(self, Phi: np.ndarray, E: np.ndarray | None, Cc: np.ndarray | None) -> np.ndarray:
        """Gradient of the penalty for per-fold parameters ``Phi`` (rows) in global coordinates."""
        if E is None:
            return Phi * self.r
        d = self.d
        tw = Phi[:, :d] / E
        tb = (Phi[:, d] - np.einsum("ij,ij->i", Cc, tw)) * self.r[d]
        out = np.empty_like(Phi)
        out[:, :d] = (tw - Cc * tb[:, None]) / E
        out[:, d] = tb
        return out

    # -- exact per-fold solve ----------------------------------------------------------------

    def solve_fold_exactly(self, test: np.ndarray) -> np.ndarray:
        """Held-out probabilities of one fold by Newton's method on the fold's own objective,
        starting from the full-data solution (fold standardization: computed explicitly)."""
        train = np.ones(self.n, dtype=bool)
        train[test] = False
        if self.mode == "fold":
            Xtr = self.X[train]
            mu = Xtr.mean(axis=0)
            sd = Xtr.std(axis=0)
            const = Xtr.max(axis=0) == Xtr.min(axis=0)
            Ztr = _design(np.where(const, 0.0, (Xtr - mu) / (sd + STD_EPS)))
            Zte = _design(np.where(const, 0.0, (self.X[test] - mu) / (sd + STD_EPS)))
        else:
            Ztr, Zte = self.Z[train], self.Z[test]
        theta, _, ok = _newton(Ztr, self.t[train], self.C, self.r, self.theta, self.tol, self.max_iter)
        if not ok:
            warnings.warn(
                f"Newton's method did not reach tol={self.tol:g} on the fold holding out rows {test[:5].tolist()}",
                ConvergenceWarning,
                stacklevel=4,
            )
        return expit(Zte @ theta)


def _sigmoid_inplace(M: np.ndarray) -> np.ndarray:
    np.negative(M, out=M)
    with np.errstate(over="ignore"):
        np.exp(M, out=M)
    M += 1.0
    np.reciprocal(M, out=M)
    return M


def _fold_degenerate_singletons(X: np.ndarray) -> np.ndarray:
    """For leave-one-out with fold standardization: rows whose removal makes some column constant."""
    n = X.shape[0]
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    order = np.argsort(X, axis=0, kind="stable")
    v = np.take_along_axis(X, order, axis=0)
    cols = np.arange(X.shape[1])
    unique_max = (v[-1] > v[-2]) & (v[0] == v[-2])
    unique_min = (v[0] < v[1]) & (v[1] == v[-1])
    out[order[-1, cols[unique_max]]] = True
    out[order[0, cols[unique_min]]] = True
    return out


def _fold_degenerate_groups(X: np.ndarray, folds: _Folds) -> np.ndarray:
    """For grouped folds with fold standardization: folds whose training rows make a column constant."""
    n, d = X.shape
    out = np.zeros(folds.count, dtype=bool)
    if d == 0:
        return out
    order = np.argsort(X, axis=0, kind="stable")
    v = np.take_along_axis(X, order, axis=0)
    varying = v[0] != v[-1]
    cols = np.arange(d)
    in_fold = np.zeros(n, dtype=bool)
    for f in range(folds.count):
        test = folds.test_rows(f)
        g = test.shape[0]
        if g >= n:
            continue
        in_fold[test] = True
        k = min(g + 1, n)
        lo_rows = order[:k]  # the first training row in sorted order is among the first g+1
        hi_rows = order[n - k:][::-1]
        first = np.argmax(~in_fold[lo_rows], axis=0)
        last = np.argmax(~in_fold[hi_rows], axis=0)
        lo = X[lo_rows[first, cols], cols]
        hi = X[hi_rows[last, cols], cols]
        out[f] = bool(np.any(varying & (lo == hi)))
        in_fold[test] = False
    return out


def _solve_cv(cv: _CV, folds: _Folds) -> np.ndarray:
    """Held-out probability of class 1 for every held-out row of every fold."""
    n, p, C = cv.n, cv.p, cv.C
    proba = np.empty(n)
    sizes = folds.sizes
    singleton = bool(np.all(sizes == 1))
    F = folds.count

    # folds whose training rows hold one class
    pos_train = cv.t.sum() - folds.fold_sums(cv.t)
    n_train = n - sizes
    one_class = (pos_train == 0) | (pos_train == n_train)
    exact = np.zeros(F, dtype=bool)
    constant = np.zeros(F, dtype=bool)
    if cv.penalize_intercept:
        exact |= one_class
    else:
        constant |= one_class

    sum_rz = folds.fold_sums(cv.res[:, None] * cv.Z)  # per fold: sum over held-out rows of res_j z_j
    if cv.mode == "fold":
        E_all, C_all = cv.fold_affine(n_train, folds.fold_sums(cv.xc), folds.fold_sums(np.square(cv.xc)))
        exact |= _fold_degenerate_singletons(cv.X)[folds.rows] if singleton else _fold_degenerate_groups(cv.X, folds)
    else:
        E_all = C_all = None

    if singleton:
        U = cv.Z @ cv.Hinv  # rows: H^{-1} z_i
        h = np.einsum("ij,ij->i", U, cv.Z)
        cw = C * cv.w
        den = 1.0 - cw * h
        bad = ~(den > 1e-12)
        exact |= bad[folds.rows]
        safe = np.where(bad, 1.0, den)
        sm = np.where(bad, 0.0, cw / safe)  # Sherman-Morrison weight of row i
        q_all = np.where(bad, 0.0, h / safe)  # z_i' P_i^{-1} z_i

    # preconditioners of the folds with several held-out rows: inverse fold Hessians at theta*
    q = np.zeros(F)
    if singleton:
        q[:] = q_all[folds.rows]
    else:
        store = F * p * p <= _MAX_STORED_ENTRIES
        Pinv_all = np.zeros((F, p, p)) if store else None

        def fold_pinv(f: int) -> np.ndarray | None:
            rows = folds.test_rows(f)
            Zg = cv.Z[rows]
            try:
                fac = cho_factor(cv.H - (Zg.T * (C * cv.w[rows])) @ Zg, lower=True, check_finite=False)
            except LinAlgError:
                return None
            return cho_solve(fac, np.eye(p), check_finite=False)

        for f in np.flatnonzero(~exact & ~constant):
            Pf = fold_pinv(f)
            if Pf is None:
                exact[f] = True
                continue
            rows = folds.test_rows(f)
            q[f] = float(np.einsum("ij,jk,ik->i", cv.Z[rows], Pf, cv.Z[rows]).max())
            if store:
                Pinv_all[f] = Pf

    def precond(G: np.ndarray, fs: np.ndarray) -> np.ndarray:
        """Apply the inverse fold Hessians at theta* to the rows of G (folds fs)."""
        if singleton:
            Uf = U[folds.rows[fs]]
            a = np.einsum("ij,ij->i", Uf, G)
            return G @ cv.Hinv + (sm[folds.rows[fs]] * a)[:, None] * Uf
        Pinv = Pinv_all[fs] if Pinv_all is not None else np.stack([fold_pinv(f) for f in fs])
        return np.matmul(Pinv, G[:, :, None])[:, :, 0]

    def held_out_positions(fs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(local fold index, row) of every held-out row of the folds fs."""
        lens = sizes[fs]
        local = np.repeat(np.arange(fs.shape[0]), lens)
        offsets = np.arange(local.shape[0]) - np.repeat(np.cumsum(lens) - lens, lens)
        return local, folds.rows[np.repeat(folds.indptr[fs], lens) + offsets]

    # A fold stops once 0.25 * sqrt(q) * sqrt(g' P^-1 g) <= tol: a first-order bound on the error of
    # its held-out probabilities at the current iterate (|z.e| <= ||z||_{P^-1} ||g||_{P^-1}).
    lam_tol = 4.0 * cv.tol / np.sqrt(np.maximum(q, 1e-300))
    todo = np.flatnonzero(~exact & ~constant)
    bs = int(min(_CHUNK_MAX, max(_CHUNK_MIN, _BLOCK_ENTRIES // max(n, 1))))
    Phi = np.full((F, p), np.nan)
    prev = np.full(F, np.inf)
    for s in range(0, todo.shape[0], bs):  # start: one Newton step from theta* with the fold Hessian
        fs = todo[s:s + bs]
        E = None if E_all is None else E_all[fs]
        Cf = None if C_all is None else C_all[fs]
        theta_rep = np.broadcast_to(cv.theta, (fs.shape[0], p))
        G0 = cv.gfull[None, :] - C * sum_rz[fs] + (cv.penalty_grad(theta_rep, E, Cf) - cv.r * cv.theta)
        Phi[fs] = theta_rep - precond(G0, fs)
        prev[fs] = np.abs(G0).max(axis=1)
    done = np.zeros(F, dtype=bool)
    active = todo
    for it in range(_MAX_CHORD):  # waves over all unfinished folds, in cache-sized chunks
        if active.shape[0] == 0:
            break
        keep = np.zeros(active.shape[0], dtype=bool)
        for s in range(0, active.shape[0], bs):
            fs = active[s:s + bs]
            M = Phi[fs] @ cv.ZT
            _sigmoid_inplace(M)
            M -= cv.t
            if singleton:
                M[np.arange(fs.shape[0]), folds.rows[fs]] = 0.0
            else:
                M[held_out_positions(fs)] = 0.0
            G = M @ cv.Z
            G *= C
            E = None if E_all is None else E_all[fs]
            G += cv.penalty_grad(Phi[fs], E, None if C_all is None else C_all[fs])
            gn = np.abs(G).max(axis=1)
            D = precond(G, fs)
            lam = np.sqrt(np.maximum(np.einsum("ij,ij->i", G, D), 0.0))
            finite = np.isfinite(gn) & np.isfinite(D).all(axis=1)
            conv = finite & ((lam <= lam_tol[fs]) | (gn <= cv.tol_eff))
            slow = ~conv & (~finite | (gn > (_SLOW_RATIO if it > 0 else 1.0) * prev[fs]))
            Phi[fs[finite]] -= D[finite]  # the step from the last verified gradient is applied too
            done[fs[conv]] = True
            prev[fs] = gn
            keep[s:s + fs.shape[0]] = ~conv & ~slow
        active = active[keep]
    exact[todo[~done[todo]]] = True

    # predictions of the folds solved by the chord iterations
    fold_of_row = np.repeat(np.arange(F), sizes)
    sel = done[fold_of_row]
    rows = folds.rows[sel]
    proba[rows] = expit(np.einsum("ij,ij->i", cv.Z[rows], Phi[fold_of_row[sel]]))
    for f in np.flatnonzero(exact & ~constant):
        test = folds.test_rows(f)
        proba[test] = cv.solve_fold_exactly(test)
    if constant.any():
        for f in np.flatnonzero(constant):
            proba[folds.test_rows(f)] = pos_train[f] / n_train[f]
        warnings.warn(
            f"{int(constant.sum())} fold(s) leave a single class in the training rows; with "
            "penalize_intercept=False their objective has no minimizer (the intercept diverges), so "
            "the held-out probability is the limit, the training class frequency (0 or 1)",
            DegenerateInputWarning,
            stacklevel=3,
        )
    return proba


def _prepare(X: Any, y: Any, C: float, standardize: str, tol: float, max_iter: int, on_single_class: str):
    _check_options(C, tol, max_iter, standardize)
    if on_single_class not in ("raise", "constant"):
        raise InputError(f"on_single_class = {on_single_class!r}: expected 'raise' or 'constant'")
    A, _ = _as_matrix(X)
    t = _as_binary01(y, A.shape[0])
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
    hundreds of times faster (see "Algorithm" in the module docstring).

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
        What to do when all labels are equal (see "Degenerate input" in the module docstring).
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
        return _single_class_fallback(t, on_single_class)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        cv = _CV(A, t, float(C), bool(penalize_intercept), standardize, float(tol), int(max_iter))
        return _solve_cv(cv, _Folds(np.arange(n + 1), np.arange(n)))


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
        return _single_class_fallback(t, on_single_class)
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
        cv = _CV(A, t, float(C), bool(penalize_intercept), standardize, float(tol), int(max_iter))
        return _solve_cv(cv, _Folds(indptr, order))


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def evaluate(y_true: Any, proba: Any) -> dict[str, float | int | None]:
    """AUROC, AUPRC (average precision) and accuracy at 0.5 of detecting FP segments (label 1).

    ``accuracy`` counts ``proba > 0.5`` as FP (scikit-learn's ``predict`` rule). AUROC and AUPRC
    are undefined with one class in ``y_true``: they are then None and a
    :class:`DegenerateInputWarning` is issued. Also returns ``n`` and ``n_positive``.
    """
    s = np.asarray(proba, dtype=np.float64)
    if s.ndim != 1:
        raise InputError(f"scores: expected a 1-D array, got shape {s.shape}")
    t = _as_binary01(y_true, s.shape[0])
    if not np.isfinite(s).all():
        raise InputError(f"scores: {int((~np.isfinite(s)).sum())} of {s.shape[0]} values are NaN or inf")
    out: dict[str, float | int | None] = {
        "auroc": None,
        "auprc": None,
        "accuracy": None,
        "n": int(s.shape[0]),
        "n_positive": int(t.sum()),
    }
    if s.shape[0] == 0:
        warnings.warn("evaluate: no segments; every score is None", DegenerateInputWarning, stacklevel=2)
        return out
    out["accuracy"] = float(accuracy_score(t, (s > 0.5).astype(np.float64)))
    if t.min() == t.max():
        warnings.warn(
            f"evaluate: all {s.shape[0]} labels are {int(t[0])}; AUROC and AUPRC are undefined (None)",
            DegenerateInputWarning,
            stacklevel=2,
        )
        return out
    out["auroc"] = float(roc_auc_score(t, s))
    out["auprc"] = float(average_precision_score(t, s))
    return out


def msp_scores(mean_variation_ratio: Any) -> np.ndarray:
    """Per-segment mean maximum softmax probability from the mean variation ratio ``V``: ``1 - V``."""
    v = np.asarray(mean_variation_ratio, dtype=np.float64)
    if v.ndim != 1:
        raise InputError(f"mean variation ratio: expected a 1-D array, got shape {v.shape}")
    return 1.0 - v


def msp_baseline(mean_msp: Any, y: Any) -> dict[str, float | int | None]:
    """The paper's MSP baseline (table 3): the segment's mean max-softmax probability as FP score.

    A segment predicted OoD by high entropy is more likely a false positive the more confident
    the network is on it, so the score for "FP" (``y = iou0 = 1``) is the mean MSP itself (as in
    the paper, the direction is fixed, so AUROC can fall below 0.5). ``accuracy`` counts
    ``MSP > 0.5`` as FP. Returns :func:`evaluate`'s dict.
    """
    return evaluate(y, mean_msp)


# --------------------------------------------------------------------------------------------
# the pipeline's entry point
# --------------------------------------------------------------------------------------------


def _column_or_array(features: pd.DataFrame, value: Any, what: str) -> tuple[np.ndarray, str | None]:
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
        Input columns. None: every column except :data:`NON_FEATURE_COLUMNS` and the ``y`` /
        ``groups`` columns, sorted as the released code sorts them (:func:`reference_feature_names`).
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
        class, see "Degenerate input"), ``fallback`` (None, or the documented fallback used:
        ``"no_segments"``, ``"single_class"`` -- every probability is the class frequency --, or
        ``"single_group"`` -- logo with all segments in one image: unavailable, NaN) and
        ``fallback_reason`` (a sentence, or None).
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
    X, _ = _as_matrix(features[list(feature_names)], "features")
    n = X.shape[0]
    t = _as_binary01(yv, n)

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
        proba = _single_class_fallback(t, on_single_class)
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
