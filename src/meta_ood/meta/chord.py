"""Held-out probabilities of all folds of one cross validation, each from its fold's minimizer.

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
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.special import expit

from meta_ood.meta.folds import CVState, Folds, fold_degenerate_groups, fold_degenerate_singletons
from meta_ood.meta.inputs import DegenerateInputWarning

__all__ = ["FoldSolver"]

_MAX_CHORD = 30  # chord iterations before a fold is handed to Newton's method
_SLOW_RATIO = 0.5  # a fold whose gradient shrinks less than this per chord iteration goes to Newton
_BLOCK_ENTRIES = 1 << 20  # rows x folds of one chunk of margins (8 MiB) ...
_CHUNK_MIN, _CHUNK_MAX = 128, 512  # ... but at least / at most this many folds per matrix product
_MAX_STORED_ENTRIES = 1 << 24  # fold preconditioners kept in memory (128 MiB); beyond, recomputed


def _sigmoid_inplace(M: np.ndarray) -> np.ndarray:
    """The logistic function applied to ``M`` in place (no temporary of the size of ``M``)."""
    np.negative(M, out=M)
    with np.errstate(over="ignore"):
        np.exp(M, out=M)
    M += 1.0
    np.reciprocal(M, out=M)
    return M


class _RowPreconditioner:
    """Inverse leave-one-row-out Hessians at ``theta*`` by Sherman-Morrison, never formed.

    ``P_i^{-1} = H^{-1} + sm_i u_i u_i'`` with ``u_i = H^{-1} z_i``. ``q`` holds ``z_i' P_i^{-1} z_i``
    per fold; ``failed`` marks the folds whose fold Hessian is not numerically positive definite.
    """

    def __init__(self, cv: CVState, folds: Folds) -> None:
        self.Hinv = cv.Hinv
        self.rows = folds.rows
        self.U = cv.Z @ cv.Hinv  # rows: H^{-1} z_i
        h = np.einsum("ij,ij->i", self.U, cv.Z)
        cw = cv.C * cv.w
        den = 1.0 - cw * h
        bad = ~(den > 1e-12)
        safe = np.where(bad, 1.0, den)
        self.sm = np.where(bad, 0.0, cw / safe)  # Sherman-Morrison weight of row i
        self.q = np.where(bad, 0.0, h / safe)[folds.rows]  # z_i' P_i^{-1} z_i
        self.failed = bad[folds.rows]

    def apply(self, G: np.ndarray, fs: np.ndarray) -> np.ndarray:
        """``P_f^{-1} g_f`` for every row ``g_f`` of ``G`` (folds ``fs``)."""
        rows = self.rows[fs]
        Uf = self.U[rows]
        a = np.einsum("ij,ij->i", Uf, G)
        return G @ self.Hinv + (self.sm[rows] * a)[:, None] * Uf


class _GroupPreconditioner:
    """Inverse fold Hessians at ``theta*`` from a Cholesky factor per fold (kept while they fit).

    Only the folds not in ``skip`` are factorized. ``q`` holds the largest ``z_j' P_f^{-1} z_j``
    over the held-out rows of every fold; ``failed`` marks the folds whose fold Hessian is not
    positive definite.
    """

    def __init__(self, cv: CVState, folds: Folds, skip: np.ndarray) -> None:
        self.cv, self.folds = cv, folds
        F, p = folds.count, cv.p
        self.stored = np.zeros((F, p, p)) if F * p * p <= _MAX_STORED_ENTRIES else None
        self.q = np.zeros(F)
        self.failed = np.zeros(F, dtype=bool)
        for f in np.flatnonzero(~skip):
            Pf = self._inverse(f)
            if Pf is None:
                self.failed[f] = True
                continue
            rows = folds.test_rows(f)
            self.q[f] = float(np.einsum("ij,jk,ik->i", cv.Z[rows], Pf, cv.Z[rows]).max())
            if self.stored is not None:
                self.stored[f] = Pf

    def _inverse(self, f: int) -> np.ndarray | None:
        """``P_f^{-1}`` of fold ``f``, or None when ``P_f`` is not positive definite."""
        cv = self.cv
        rows = self.folds.test_rows(f)
        Zg = cv.Z[rows]
        try:
            fac = cho_factor(cv.H - (Zg.T * (cv.C * cv.w[rows])) @ Zg, lower=True, check_finite=False)
        except LinAlgError:
            return None
        return cho_solve(fac, np.eye(cv.p), check_finite=False)

    def apply(self, G: np.ndarray, fs: np.ndarray) -> np.ndarray:
        """``P_f^{-1} g_f`` for every row ``g_f`` of ``G`` (folds ``fs``)."""
        Pinv = self.stored[fs] if self.stored is not None else np.stack([self._inverse(f) for f in fs])
        return np.matmul(Pinv, G[:, :, None])[:, :, 0]


class FoldSolver:
    """Chord iterations over all folds at once, Newton's method for the folds they do not suit.

    Construction sorts the folds: ``constant`` (one class in the training rows and no intercept
    penalty: no minimizer), ``exact`` (solved by Newton's method: one class with the penalized
    intercept, degenerate fold standardization, fold Hessian not positive definite) and the rest,
    which :meth:`solve` iterates (see the module docstring).
    """

    def __init__(self, cv: CVState, folds: Folds) -> None:
        self.cv, self.folds = cv, folds
        n, F = cv.n, folds.count
        sizes = folds.sizes
        singleton = bool(np.all(sizes == 1))

        # folds whose training rows hold one class
        self.pos_train = cv.t.sum() - folds.fold_sums(cv.t)
        self.n_train = n - sizes
        one_class = (self.pos_train == 0) | (self.pos_train == self.n_train)
        self.exact = np.zeros(F, dtype=bool)
        self.constant = np.zeros(F, dtype=bool)
        if cv.penalize_intercept:
            self.exact |= one_class
        else:
            self.constant |= one_class

        self.sum_rz = folds.fold_sums(cv.res[:, None] * cv.Z)  # per fold: sum over held-out rows of res_j z_j
        self.E_all: np.ndarray | None = None
        self.C_all: np.ndarray | None = None
        if cv.mode == "fold":
            self._fold_standardization(singleton)

        if singleton:
            self.precond: _RowPreconditioner | _GroupPreconditioner = _RowPreconditioner(cv, folds)
        else:
            self.precond = _GroupPreconditioner(cv, folds, self.exact | self.constant)
        self.exact |= self.precond.failed

        # A fold stops once 0.25 * sqrt(q) * sqrt(g' P^-1 g) <= tol: a first-order bound on the error of
        # its held-out probabilities at the current iterate (|z.e| <= ||z||_{P^-1} ||g||_{P^-1}).
        self.lam_tol = 4.0 * cv.tol / np.sqrt(np.maximum(self.precond.q, 1e-300))
        self.chunk = int(min(_CHUNK_MAX, max(_CHUNK_MIN, _BLOCK_ENTRIES // max(n, 1))))
        self.Phi = np.full((F, cv.p), np.nan)  # per fold: the current iterate
        self.prev = np.full(F, np.inf)  # per fold: max|gradient| at the previous iterate
        self.done = np.zeros(F, dtype=bool)

    def _fold_standardization(self, singleton: bool) -> None:
        """Per-fold affine maps from global to fold standardization; folds where the map
        degenerates (a column constant on the training rows) are handed to Newton's method."""
        cv, folds = self.cv, self.folds
        self.E_all, self.C_all = cv.fold_affine(self.n_train, folds.fold_sums(cv.xc), folds.fold_sums(np.square(cv.xc)))
        if singleton:
            self.exact |= fold_degenerate_singletons(cv.X)[folds.rows]
        else:
            self.exact |= fold_degenerate_groups(cv.X, folds)

    def _chunks(self, fs: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, folds) of the consecutive chunks of ``fs`` that one matrix product handles."""
        for s in range(0, fs.shape[0], self.chunk):
            yield s, fs[s:s + self.chunk]

    def _affine(self, fs: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The fold standardization maps of the folds ``fs`` (None, None without fold standardization)."""
        E = None if self.E_all is None else self.E_all[fs]
        return E, None if self.C_all is None else self.C_all[fs]

    def _start(self, fs: np.ndarray) -> None:
        """First iterate of the folds ``fs``: one Newton step from ``theta*`` with the fold Hessian."""
        cv = self.cv
        E, Cf = self._affine(fs)
        theta_rep = np.broadcast_to(cv.theta, (fs.shape[0], cv.p))
        G0 = cv.gfull[None, :] - cv.C * self.sum_rz[fs] + (cv.penalty_grad(theta_rep, E, Cf) - cv.r * cv.theta)
        self.Phi[fs] = theta_rep - self.precond.apply(G0, fs)
        self.prev[fs] = np.abs(G0).max(axis=1)

    def _gradients(self, fs: np.ndarray) -> np.ndarray:
        """Exact gradients of the objectives of the folds ``fs`` at their current iterates."""
        cv = self.cv
        M = self.Phi[fs] @ cv.ZT
        _sigmoid_inplace(M)
        M -= cv.t
        M[self.folds.held_out_positions(fs)] = 0.0
        G = M @ cv.Z
        G *= cv.C
        E, Cf = self._affine(fs)
        G += cv.penalty_grad(self.Phi[fs], E, Cf)
        return G

    def _step(self, fs: np.ndarray, slow_ratio: float) -> np.ndarray:
        """One chord step of the folds ``fs``; True where a fold continues (neither done nor slow)."""
        G = self._gradients(fs)
        gn = np.abs(G).max(axis=1)
        D = self.precond.apply(G, fs)
        lam = np.sqrt(np.maximum(np.einsum("ij,ij->i", G, D), 0.0))
        finite = np.isfinite(gn) & np.isfinite(D).all(axis=1)
        conv = finite & ((lam <= self.lam_tol[fs]) | (gn <= self.cv.tol_eff))
        slow = ~conv & (~finite | (gn > slow_ratio * self.prev[fs]))
        self.Phi[fs[finite]] -= D[finite]  # the step from the last verified gradient is applied too
        self.done[fs[conv]] = True
        self.prev[fs] = gn
        return ~conv & ~slow

    def _iterate(self, todo: np.ndarray) -> None:
        """Chord sweeps over the unfinished folds of ``todo``, in cache-sized chunks."""
        for _, fs in self._chunks(todo):
            self._start(fs)
        active = todo
        for it in range(_MAX_CHORD):
            if active.shape[0] == 0:
                break
            keep = np.zeros(active.shape[0], dtype=bool)
            for s, fs in self._chunks(active):
                keep[s:s + fs.shape[0]] = self._step(fs, _SLOW_RATIO if it > 0 else 1.0)
            active = active[keep]

    def solve(self) -> np.ndarray:
        """Held-out probability of class 1 for every held-out row of every fold."""
        cv, folds = self.cv, self.folds
        proba = np.empty(cv.n)
        todo = np.flatnonzero(~self.exact & ~self.constant)
        self._iterate(todo)
        self.exact[todo[~self.done[todo]]] = True

        fold_of_row = np.repeat(np.arange(folds.count), folds.sizes)
        sel = self.done[fold_of_row]
        rows = folds.rows[sel]
        proba[rows] = expit(np.einsum("ij,ij->i", cv.Z[rows], self.Phi[fold_of_row[sel]]))
        for f in np.flatnonzero(self.exact & ~self.constant):
            test = folds.test_rows(f)
            proba[test] = cv.solve_fold_exactly(test)
        if self.constant.any():
            for f in np.flatnonzero(self.constant):
                proba[folds.test_rows(f)] = self.pos_train[f] / self.n_train[f]
            warnings.warn(
                f"{int(self.constant.sum())} fold(s) leave a single class in the training rows; with "
                "penalize_intercept=False their objective has no minimizer (the intercept diverges), so "
                "the held-out probability is the limit, the training class frequency (0 or 1)",
                DegenerateInputWarning,
                stacklevel=3,
            )
        return proba
