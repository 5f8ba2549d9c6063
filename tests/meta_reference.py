"""Explicit references for the tests of :mod:`meta_ood.meta`: synthetic segment metrics and refits.

Every held-out probability is compared with an explicit refit on the fold's training rows:
scikit-learn's liblinear (the released code's solver, run with a tight tolerance), its lbfgs /
newton-cholesky solvers for the unpenalized intercept, and a direct minimization of the same
objective with scipy.optimize (trust-exact with the analytic Hessian).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, root
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

#: The released code's standardization constant.
EPS = 1e-10

def segment_data(n: int, d: int, seed: int, k: int = 5, intercept: float = -0.4) -> tuple[np.ndarray, np.ndarray]:
    """Correlated metrics on different scales and offsets; labels from a logistic model (~40 % FP)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, k))
    X = latent @ rng.standard_normal((k, d)) + 0.6 * rng.standard_normal((n, d))
    X = X * rng.uniform(0.1, 20.0, size=d) + rng.uniform(-5.0, 5.0, size=d)
    y = (rng.random(n) < expit(latent @ rng.standard_normal(k) * 0.9 + intercept)).astype(np.int64)
    assert 0 < y.sum() < n
    return X, y


def design(Xs: np.ndarray) -> np.ndarray:
    """Features with the constant intercept feature appended (last column)."""
    return np.hstack([Xs, np.ones((Xs.shape[0], 1))])


def scipy_fit(Z: np.ndarray, t: np.ndarray, C: float, penalize_intercept: bool) -> np.ndarray:
    """Direct minimization of 0.5*theta'R theta + C*sum(logloss) (intercept = last column of Z)."""
    r = np.ones(Z.shape[1])
    r[-1] = 1.0 if penalize_intercept else 0.0
    s = 2.0 * t - 1.0

    def fun(th):
        return 0.5 * np.dot(r * th, th) + C * np.logaddexp(0.0, -s * (Z @ th)).sum()

    def jac(th):
        return r * th + C * (Z.T @ (expit(Z @ th) - t))

    def hess(th):
        p = expit(Z @ th)
        return np.diag(r) + C * (Z.T * (p * (1.0 - p))) @ Z

    res = minimize(fun, np.zeros(Z.shape[1]), jac=jac, hess=hess, method="trust-exact", options={"gtol": 1e-12})
    # trust-exact may stop early when objective differences reach rounding level: finish by
    # solving the optimality condition gradient = 0 (MINPACK hybrid method) from its result
    sol = root(jac, res.x, jac=hess, method="hybr", options={"xtol": 1e-15})
    assert np.abs(jac(sol.x)).max() < 1e-10
    return sol.x


def liblinear(C: float = 1.0) -> LogisticRegression:
    """The released code's classifier, with a tolerance tight enough to compare to 1e-6."""
    return LogisticRegression(solver="liblinear", C=C, tol=1e-12, max_iter=100000)


def fold_standardized(X: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardize with the training rows' statistics, computed explicitly (numpy, ddof=0)."""
    mu = X[train].mean(axis=0)
    sd = X[train].std(axis=0)
    return (X[train] - mu) / (sd + EPS), (X[test] - mu) / (sd + EPS)


def refit_predict(model: LogisticRegression, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray) -> np.ndarray:
    """Probability of class 1 on ``Xte`` from a fresh copy of ``model`` fitted on the training rows."""
    return clone(model).fit(Xtr, ytr).predict_proba(Xte)[:, 1]
