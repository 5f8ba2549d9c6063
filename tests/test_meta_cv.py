"""Tests of exact leave-one-out and leave-one-group-out: every fold against an explicit refit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from meta_ood.errors import InputError
from meta_ood.meta import (
    DegenerateInputWarning,
    MetaClassifier,
    grouped_cv_predict_proba,
    loo_predict_proba,
    standardize,
)
from meta_reference import design, fold_standardized, liblinear, refit_predict, scipy_fit, segment_data


@pytest.fixture(scope="module")
def data_d10():
    return segment_data(220, 10, seed=1)


@pytest.fixture(scope="module")
def data_d75():
    return segment_data(300, 75, seed=2, k=8)


# --------------------------------------------------------------------------------------------
# exact leave-one-out
# --------------------------------------------------------------------------------------------


def test_loo_equals_liblinear_refits(data_d10):
    X, y = data_d10
    n = len(y)
    Xs = standardize(X)
    ours = loo_predict_proba(X, y)
    ref = np.empty(n)
    for i in range(n):
        train = np.arange(n) != i
        ref[i] = refit_predict(liblinear(), Xs[train], y[train], Xs[i:i + 1])[0]
    assert np.abs(ours - ref).max() < 1e-4
    assert np.abs(ours - ref).max() < 1e-6  # liblinear with tol=1e-12 gets this close
    for i in range(0, n, 11):  # the same objective minimized directly
        train = np.arange(n) != i
        theta = scipy_fit(design(Xs[train]), y[train].astype(float), 1.0, True)
        assert abs(ours[i] - expit(design(Xs[i:i + 1]) @ theta)[0]) < 1e-8


def test_loo_equals_refits_with_75_metrics(data_d75):
    X, y = data_d75
    n = len(y)
    Xs = standardize(X)
    C = 0.5
    ours = loo_predict_proba(X, y, C=C)
    worst_sklearn = worst_scipy = 0.0
    for i in range(0, n, 6):
        train = np.arange(n) != i
        ref = refit_predict(liblinear(C), Xs[train], y[train], Xs[i:i + 1])[0]
        worst_sklearn = max(worst_sklearn, abs(ours[i] - ref))
        if i % 30 == 0:
            theta = scipy_fit(design(Xs[train]), y[train].astype(float), C, True)
            worst_scipy = max(worst_scipy, abs(ours[i] - expit(design(Xs[i:i + 1]) @ theta)[0]))
    assert worst_sklearn < 1e-4
    assert worst_scipy < 1e-8


def test_loo_fewer_rows_than_features():
    X, y = segment_data(40, 60, seed=6)
    n = len(y)
    Xs = standardize(X)
    ours = loo_predict_proba(X, y)
    assert np.isfinite(ours).all()
    for i in range(n):
        train = np.arange(n) != i
        ref = refit_predict(liblinear(), Xs[train], y[train], Xs[i:i + 1])[0]
        assert abs(ours[i] - ref) < 1e-4
        theta = scipy_fit(design(Xs[train]), y[train].astype(float), 1.0, True)
        assert abs(ours[i] - expit(design(Xs[i:i + 1]) @ theta)[0]) < 1e-8


def test_loo_unpenalized_intercept_equals_sklearn(data_d10):
    X, y = data_d10
    n = len(y)
    Xs = standardize(X)
    C = 2.0
    ours = loo_predict_proba(X, y, C=C, penalize_intercept=False)
    newton = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    lbfgs = LogisticRegression(C=C, tol=1e-12, max_iter=10000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(n):
            train = np.arange(n) != i
            assert abs(ours[i] - refit_predict(newton, Xs[train], y[train], Xs[i:i + 1])[0]) < 1e-8
        for i in range(0, n, 20):
            train = np.arange(n) != i
            assert abs(ours[i] - refit_predict(lbfgs, Xs[train], y[train], Xs[i:i + 1])[0]) < 1e-5


def test_loo_fold_standardization_equals_explicit_refits(data_d10):
    X, y = data_d10
    n = len(y)
    ours = loo_predict_proba(X, y, standardize="fold")
    glob = loo_predict_proba(X, y, standardize="global")
    assert np.abs(ours - glob).max() > 1e-8  # the two protocols really differ
    for i in range(n):
        train = np.arange(n) != i
        Xtr, Xte = fold_standardized(X, train, np.array([i]))
        assert abs(ours[i] - refit_predict(liblinear(), Xtr, y[train], Xte)[0]) < 1e-6
        if i % 20 == 0:
            theta = scipy_fit(design(Xtr), y[train].astype(float), 1.0, True)
            assert abs(ours[i] - expit(design(Xte) @ theta)[0]) < 1e-8


def test_loo_no_standardization_equals_refits(data_d10):
    X, y = data_d10
    X = X[:, :5] / 10.0
    n = len(y)
    ours = loo_predict_proba(X, y, standardize="none")
    for i in range(0, n, 4):
        train = np.arange(n) != i
        theta = scipy_fit(design(X[train]), y[train].astype(float), 1.0, True)
        assert abs(ours[i] - expit(design(X[i:i + 1]) @ theta)[0]) < 1e-8


def test_fold_standardization_column_constant_on_training_rows():
    X, y = segment_data(80, 5, seed=7)
    X[:, 1] = 0.0
    X[13, 1] = 4.0  # only row 13 differs: its fold sees a constant (all-zero) column
    X[:, 3] = 2.0  # constant everywhere
    n = len(y)
    ours = loo_predict_proba(X, y, standardize="fold")
    for i in (13, 0, 40):
        train = np.arange(n) != i
        Xtr, Xte = fold_standardized(X, train, np.array([i]))
        if i == 13:
            assert np.all(Xtr[:, 1] == 0.0) and abs(Xte[0, 1]) > 1e9  # the held-out value explodes...
        ref = refit_predict(liblinear(), Xtr, y[train], Xte)[0]
        assert abs(ours[i] - ref) < 1e-6  # ...but its coefficient is exactly 0


def test_grouped_fold_standardization_column_constant_on_training_rows():
    X, y = segment_data(90, 4, seed=15)
    groups = np.arange(90) % 10
    X[:, 2] = 1.0
    X[groups == 4, 2] = 3.0  # leaving out group 4 makes column 2 constant
    ours = grouped_cv_predict_proba(X, y, groups, standardize="fold")
    for g in (4, 5):
        test = np.flatnonzero(groups == g)
        train = groups != g
        Xtr, Xte = fold_standardized(X, train, test)
        assert np.abs(ours[test] - refit_predict(liblinear(), Xtr, y[train], Xte)).max() < 1e-6


def test_newton_fallback_and_recomputed_preconditioners_agree(data_d10, monkeypatch):
    import meta_ood.meta.chord as chord

    X, y = data_d10
    groups = np.arange(len(y)) % 13
    chord_loo = loo_predict_proba(X, y, standardize="fold")
    chord_logo = grouped_cv_predict_proba(X, y, groups)
    monkeypatch.setattr(chord, "_MAX_STORED_ENTRIES", 0)  # fold Hessians recomputed on every use
    assert np.abs(grouped_cv_predict_proba(X, y, groups) - chord_logo).max() < 1e-9
    monkeypatch.setattr(chord, "_MAX_CHORD", 0)  # every fold solved by Newton's method
    assert np.abs(loo_predict_proba(X, y, standardize="fold") - chord_loo).max() < 1e-9
    assert np.abs(grouped_cv_predict_proba(X, y, groups) - chord_logo).max() < 1e-9


def test_loo_with_constant_column_equals_loo_without_it(data_d10):
    X, y = data_d10
    with_const = np.hstack([X, np.full((len(y), 1), 7.0)])
    assert np.abs(loo_predict_proba(with_const, y) - loo_predict_proba(X, y)).max() < 1e-12


def test_loo_held_out_row_is_the_only_member_of_its_class():
    X, y = segment_data(60, 4, seed=8)
    y[:] = 0
    y[17] = 1  # the fold of row 17 trains on one class only
    n = len(y)
    Xs = standardize(X)
    with pytest.raises(ValueError):  # liblinear refuses one-class data...
        LogisticRegression(solver="liblinear").fit(np.delete(Xs, 17, axis=0), np.delete(y, 17))
    ours = loo_predict_proba(X, y)  # ...but the penalized objective has a finite minimizer
    train = np.arange(n) != 17
    theta = scipy_fit(design(Xs[train]), y[train].astype(float), 1.0, True)
    assert abs(ours[17] - expit(design(Xs[17:18]) @ theta)[0]) < 1e-8
    for i in (0, 30):
        train = np.arange(n) != i
        assert abs(ours[i] - refit_predict(liblinear(), Xs[train], y[train], Xs[i:i + 1])[0]) < 1e-6

    with pytest.warns(DegenerateInputWarning, match="no minimizer"):
        unpen = loo_predict_proba(X, y, penalize_intercept=False)
    assert unpen[17] == 0.0  # the limit: the training rows' class frequency
    assert np.isfinite(unpen).all()


def test_single_class_raises_or_falls_back():
    X, _ = segment_data(30, 3, seed=9)
    ones = np.ones(30, dtype=int)
    with pytest.raises(InputError, match="needs both TP and FP segments, got only FP"):
        loo_predict_proba(X, ones)
    with pytest.raises(InputError, match="got only TP"):
        grouped_cv_predict_proba(X, 0 * ones, np.arange(30) % 3)
    with pytest.raises(InputError, match="needs both TP and FP"):
        MetaClassifier().fit(X, ones)
    with pytest.warns(DegenerateInputWarning, match="class frequency"):
        const = loo_predict_proba(X, ones, on_single_class="constant")
    assert np.array_equal(const, np.ones(30))
    with pytest.warns(DegenerateInputWarning):
        assert loo_predict_proba(np.zeros((0, 3)), np.zeros(0), on_single_class="constant").shape == (0,)


def test_non_finite_features_name_the_column(data_d10):
    X, y = data_d10
    frame = pd.DataFrame(X[:, :4], columns=["E", "E_var", "S", "V"])
    frame.loc[5, "E_var"] = np.nan
    with pytest.raises(InputError, match="E_var"):
        loo_predict_proba(frame, y)
    Xbad = X.copy()
    Xbad[3, 6] = np.inf
    with pytest.raises(InputError, match="column 6"):
        MetaClassifier().fit(Xbad, y)
    with pytest.raises(InputError, match="0/1"):
        loo_predict_proba(X, y + 1)


def test_deterministic(data_d75):
    X, y = data_d75
    a = loo_predict_proba(X, y)
    b = loo_predict_proba(X.copy(), y.copy())
    assert np.array_equal(a, b)
    g = np.arange(len(y)) // 7
    assert np.array_equal(grouped_cv_predict_proba(X, y, g), grouped_cv_predict_proba(X, y, g))


# --------------------------------------------------------------------------------------------
# leave-one-group-out
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["global", "fold"])
def test_grouped_cv_equals_explicit_group_refits(data_d10, mode):
    X, y = data_d10
    n = len(y)
    rng = np.random.default_rng(11)
    groups = rng.integers(0, 25, size=n).astype(str)  # images, uneven sizes
    ours = grouped_cv_predict_proba(X, y, groups, C=0.7, standardize=mode)
    Xs = standardize(X)
    for k, g in enumerate(np.unique(groups)):
        test = np.flatnonzero(groups == g)
        train = groups != g
        if mode == "global":
            Xtr, Xte = Xs[train], Xs[test]
        else:
            Xtr, Xte = fold_standardized(X, train, test)
        ref = refit_predict(liblinear(0.7), Xtr, y[train], Xte)
        assert np.abs(ours[test] - ref).max() < 1e-6
        if k % 6 == 0:
            theta = scipy_fit(design(Xtr), y[train].astype(float), 0.7, True)
            assert np.abs(ours[test] - expit(design(Xte) @ theta)).max() < 1e-8


def test_grouped_cv_unpenalized_intercept_and_one_group_error(data_d10):
    X, y = data_d10
    n = len(y)
    groups = np.arange(n) % 9
    Xs = standardize(X)
    ours = grouped_cv_predict_proba(X, y, groups, penalize_intercept=False)
    newton = LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000)
    for g in range(9):
        test = groups == g
        ref = refit_predict(newton, Xs[~test], y[~test], Xs[test])
        assert np.abs(ours[test] - ref).max() < 1e-8
    with pytest.raises(InputError, match="at least two groups"):
        grouped_cv_predict_proba(X, y, np.zeros(n))
