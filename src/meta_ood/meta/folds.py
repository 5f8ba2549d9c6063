"""Cross-validation folds and the full-data solution that every fold's solve starts from.

:class:`Folds` holds the held-out row sets (one row per fold for leave-one-out, one group per fold
otherwise); :class:`CVState` the full-data minimizer, its Hessian and what fold standardization
needs; :func:`fold_degenerate_singletons` / :func:`fold_degenerate_groups` find the folds whose
training rows leave a column constant, which fold standardization cannot express as an affine map
of the globally standardized features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning

from meta_ood.meta.inputs import STD_EPS
from meta_ood.meta.newton import design, grad_floor, newton, penalty_diag

__all__ = ["CVState", "Folds", "fold_degenerate_groups", "fold_degenerate_singletons"]


@dataclass
class Folds:
    """Held-out row sets in CSR form: fold f holds ``rows[indptr[f]:indptr[f + 1]]``."""

    indptr: np.ndarray
    rows: np.ndarray

    @property
    def count(self) -> int:
        """Number of folds."""
        return self.indptr.shape[0] - 1

    @property
    def sizes(self) -> np.ndarray:
        """Number of held-out rows of every fold."""
        return np.diff(self.indptr)

    def test_rows(self, f: int) -> np.ndarray:
        """The held-out rows of fold ``f``."""
        return self.rows[self.indptr[f]:self.indptr[f + 1]]

    def held_out_positions(self, fs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(local fold index, row) of every held-out row of the folds ``fs``: an index into a
        (folds x rows) array with one line per fold of ``fs``."""
        lens = self.sizes[fs]
        local = np.repeat(np.arange(fs.shape[0]), lens)
        offsets = np.arange(local.shape[0]) - np.repeat(np.cumsum(lens) - lens, lens)
        return local, self.rows[np.repeat(self.indptr[fs], lens) + offsets]

    def fold_sums(self, V: np.ndarray) -> np.ndarray:
        """Per-fold sums of the rows of ``V`` over the held-out rows."""
        out = np.zeros((self.count,) + V.shape[1:])
        nz = self.sizes > 0
        out[nz] = np.add.reduceat(V[self.rows], self.indptr[:-1][nz], axis=0)
        return out


class CVState:
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
        self.r = penalty_diag(self.p, penalize_intercept)
        self.penalize_intercept = penalize_intercept
        self.X = X
        if mode in ("global", "fold"):
            self.mu = X.mean(axis=0)
            self.sd = X.std(axis=0)
            Xs = (X - self.mu) / (self.sd + STD_EPS)
        else:
            Xs = X
        self.Z = design(Xs)
        self.ZT = np.ascontiguousarray(self.Z.T)
        self.tol_eff = max(tol, grad_floor(self.Z, C))
        if mode == "fold":
            self.xc = X - self.mu
            self.S1 = self.xc.sum(axis=0)
            self.S2 = np.square(self.xc).sum(axis=0)
        # full-data optimum; penalize_intercept=True always has one, False needs both classes
        self.theta, _, ok = newton(self.Z, t, C, self.r, np.zeros(self.p), tol, max_iter)
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
            Ztr = design(np.where(const, 0.0, (Xtr - mu) / (sd + STD_EPS)))
            Zte = design(np.where(const, 0.0, (self.X[test] - mu) / (sd + STD_EPS)))
        else:
            Ztr, Zte = self.Z[train], self.Z[test]
        theta, _, ok = newton(Ztr, self.t[train], self.C, self.r, self.theta, self.tol, self.max_iter)
        if not ok:
            warnings.warn(
                f"Newton's method did not reach tol={self.tol:g} on the fold holding out rows {test[:5].tolist()}",
                ConvergenceWarning,
                stacklevel=4,
            )
        return expit(Zte @ theta)



def fold_degenerate_singletons(X: np.ndarray) -> np.ndarray:
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


def fold_degenerate_groups(X: np.ndarray, folds: Folds) -> np.ndarray:
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

