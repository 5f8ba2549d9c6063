"""One L2-regularized logistic regression, minimized by damped Newton's method.

The objective is ``0.5 * theta' diag(r) theta + C * sum_i log(1 + exp(-s_i z_i.theta))`` with
``z_i`` the features plus a constant intercept feature (last), ``s_i = +-1`` the label and ``r``
the penalty weights: all ones is liblinear's objective (penalized intercept), a 0 for the
intercept that of scikit-learn's ``lbfgs`` solver.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.special import expit

__all__ = ["design", "grad_floor", "newton", "penalty_diag"]


def design(Xs: np.ndarray) -> np.ndarray:
    """Features with the constant intercept feature appended (last column)."""
    return np.hstack([Xs, np.ones((Xs.shape[0], 1))])


def penalty_diag(p: int, penalize_intercept: bool) -> np.ndarray:
    """Penalty weights ``r`` of ``p`` parameters: 1 each, the intercept (last) 0 unless penalized."""
    r = np.ones(p)
    r[-1] = 1.0 if penalize_intercept else 0.0
    return r


def grad_floor(Z: np.ndarray, C: float) -> float:
    """Rounding level of the data gradient: no solver can push ``max|g|`` much below it."""
    if Z.shape[0] == 0:
        return 0.0
    return 32.0 * np.finfo(np.float64).eps * C * float(np.abs(Z).sum(axis=0).max())


def _objective(Z: np.ndarray, sgn: np.ndarray, C: float, r: np.ndarray, theta: np.ndarray) -> float:
    """The objective at ``theta`` for labels ``sgn`` in {-1, +1} (log-loss without overflow)."""
    m = Z @ theta
    return 0.5 * float(np.dot(r * theta, theta)) + C * float(np.logaddexp(0.0, -sgn * m).sum())


def newton(
    Z: np.ndarray, t: np.ndarray, C: float, r: np.ndarray, theta0: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, int, bool]:
    """Minimize ``0.5 theta' diag(r) theta + C sum log(1 + exp(-s_i z_i.theta))`` by damped Newton.

    Stops when ``max|gradient| <= max(tol, rounding level)``. Returns (theta, iterations, converged).
    """
    sgn = 2.0 * t - 1.0
    theta = theta0.astype(np.float64, copy=True)
    tol_eff = max(tol, grad_floor(Z, C))
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
