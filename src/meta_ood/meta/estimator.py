"""The meta classifier as a scikit-learn estimator (fit / predict_proba / get_params)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning

from meta_ood.errors import InputError
from meta_ood.meta.inputs import STD_EPS, as_binary01, as_matrix, check_options, single_class_message
from meta_ood.meta.newton import design, newton, penalty_diag

__all__ = ["MetaClassifier"]


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
        """Features checked against those seen in :meth:`fit`, standardized as in :meth:`fit`."""
        A, names = as_matrix(X)
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
        check_options(self.C, self.tol, self.max_iter, self.standardize, ("global", "none"))
        A, names = as_matrix(X)
        yv = np.asarray(y)
        if yv.ndim != 1 or yv.shape[0] != A.shape[0]:
            raise InputError(f"labels: expected a 1-D array with one label per row ({A.shape[0]}), got shape {yv.shape}")
        classes = np.unique(yv)
        if classes.shape[0] < 2:
            if set(classes.tolist()) <= {0, 1}:
                raise InputError(single_class_message(as_binary01(yv, yv.shape[0])))
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
        Z = design(A)
        r = penalty_diag(Z.shape[1], self.penalize_intercept)
        theta, n_iter, ok = newton(Z, t, float(self.C), r, np.zeros(Z.shape[1]), float(self.tol), int(self.max_iter))
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
