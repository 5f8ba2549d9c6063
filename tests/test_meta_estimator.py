"""Tests of the meta classifier fit: standardization, liblinear / lbfgs objectives, estimator API."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from meta_ood.meta import MetaClassifier, standardize
from meta_reference import design, liblinear, scipy_fit, segment_data


@pytest.fixture(scope="module")
def data_d10():
    return segment_data(220, 10, seed=1)


# --------------------------------------------------------------------------------------------
# standardization and the single fit
# --------------------------------------------------------------------------------------------


def test_standardize_is_the_reference_formula():
    X, _ = segment_data(50, 4, seed=0)
    X[:, 2] = 3.0  # constant column
    expected = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-10)
    assert np.array_equal(standardize(X), expected)
    assert np.all(standardize(X)[:, 2] == 0.0)


def test_fit_equals_liblinear_and_direct_minimization(data_d10):
    X, y = data_d10
    Xs = standardize(X)
    for C in (0.1, 1.0, 10.0):
        ours = MetaClassifier(C=C).fit(X, y)
        ref = liblinear(C).fit(Xs, y)
        theta = scipy_fit(design(Xs), y.astype(float), C, True)
        assert np.abs(ours.coef_ - ref.coef_).max() < 1e-6
        assert np.abs(ours.intercept_ - ref.intercept_).max() < 1e-6
        assert np.abs(ours.coef_[0] - theta[:-1]).max() < 1e-8
        assert abs(ours.intercept_[0] - theta[-1]) < 1e-8
        assert np.abs(ours.predict_proba(X) - ref.predict_proba(Xs)).max() < 1e-6
        assert np.array_equal(ours.predict(X), (ours.predict_proba(X)[:, 1] > 0.5).astype(int))


def test_fit_unpenalized_intercept_equals_lbfgs(data_d10):
    X, y = data_d10
    Xs = standardize(X)
    ours = MetaClassifier(C=0.5, penalize_intercept=False).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning from the penalty API
        lbfgs = LogisticRegression(C=0.5, tol=1e-12, max_iter=10000).fit(Xs, y)
        newton = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(Xs, y)
    assert np.abs(ours.coef_ - lbfgs.coef_).max() < 1e-5
    assert np.abs(ours.coef_ - newton.coef_).max() < 1e-9
    assert abs(ours.intercept_[0] - newton.intercept_[0]) < 1e-9


def test_estimator_api(data_d10):
    X, y = data_d10
    frame = pd.DataFrame(X, columns=[f"m{k}" for k in range(X.shape[1])])
    model = MetaClassifier(C=2.0, tol=1e-9)
    assert model.get_params()["C"] == 2.0
    copy = clone(model).set_params(C=0.3)
    assert copy.C == 0.3 and model.C == 2.0
    fitted = model.fit(frame, y)
    assert fitted is model
    assert list(model.feature_names_in_) == list(frame.columns)
    proba = model.predict_proba(frame)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], expit(model.decision_function(frame)))
    assert list(model.classes_) == [0, 1]


def test_fewer_rows_than_features_fit():
    X, y = segment_data(30, 60, seed=5)
    Xs = standardize(X)
    ours = MetaClassifier().fit(X, y)
    theta = scipy_fit(design(Xs), y.astype(float), 1.0, True)
    assert np.abs(ours.coef_[0] - theta[:-1]).max() < 1e-8
    assert np.abs(ours.coef_ - liblinear().fit(Xs, y).coef_).max() < 1e-6
