"""Tests of meta_ood.meta: the meta classifier, exact leave-one-out and grouped cross validation.

Every held-out probability is compared with an explicit refit on the fold's training rows:
scikit-learn's liblinear (the released code's solver, run with a tight tolerance), its lbfgs /
newton-cholesky solvers for the unpenalized intercept, and a direct minimization of the same
objective with scipy.optimize (trust-exact with the analytic Hessian).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize, root
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from meta_ood.errors import InputError
from meta_ood.meta import (
    DegenerateInputWarning,
    MetaClassifier,
    evaluate,
    grouped_cv_predict_proba,
    loo_predict_proba,
    meta_classify,
    msp_baseline,
    msp_scores,
    reference_feature_names,
    standardize,
)

EPS = 1e-10


# --------------------------------------------------------------------------------------------
# data and explicit references
# --------------------------------------------------------------------------------------------


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
    return LogisticRegression(solver="liblinear", C=C, tol=1e-12, max_iter=100000)


def fold_standardized(X: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardize with the training rows' statistics, computed explicitly (numpy, ddof=0)."""
    mu = X[train].mean(axis=0)
    sd = X[train].std(axis=0)
    return (X[train] - mu) / (sd + EPS), (X[test] - mu) / (sd + EPS)


def refit_predict(model, Xtr, ytr, Xte) -> np.ndarray:
    return clone(model).fit(Xtr, ytr).predict_proba(Xte)[:, 1]


@pytest.fixture(scope="module")
def data_d10():
    return segment_data(220, 10, seed=1)


@pytest.fixture(scope="module")
def data_d75():
    return segment_data(300, 75, seed=2, k=8)


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
    import meta_ood.meta as meta

    X, y = data_d10
    groups = np.arange(len(y)) % 13
    chord_loo = loo_predict_proba(X, y, standardize="fold")
    chord_logo = grouped_cv_predict_proba(X, y, groups)
    monkeypatch.setattr(meta, "_MAX_STORED_ENTRIES", 0)  # fold Hessians recomputed on every use
    assert np.abs(grouped_cv_predict_proba(X, y, groups) - chord_logo).max() < 1e-9
    monkeypatch.setattr(meta, "_MAX_CHORD", 0)  # every fold solved by Newton's method
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


# --------------------------------------------------------------------------------------------
# evaluation, MSP baseline and the pipeline entry point
# --------------------------------------------------------------------------------------------


def test_evaluate_matches_sklearn_metrics():
    rng = np.random.default_rng(12)
    y = (rng.random(100) < 0.4).astype(int)
    p = np.clip(0.3 * y + 0.7 * rng.random(100), 0, 1)
    out = evaluate(y, p)
    assert out["auroc"] == roc_auc_score(y, p)
    assert out["auprc"] == average_precision_score(y, p)
    assert out["accuracy"] == accuracy_score(y, p > 0.5)
    assert out["n"] == 100 and out["n_positive"] == int(y.sum())
    with pytest.warns(DegenerateInputWarning, match="undefined"):
        single = evaluate(np.ones(10), rng.random(10))
    assert single["auroc"] is None and single["auprc"] is None and single["accuracy"] is not None


def test_msp_baseline_scores_fp_by_confidence():
    rng = np.random.default_rng(13)
    y = (rng.random(80) < 0.5).astype(int)
    V = np.clip(0.6 - 0.3 * y + 0.2 * rng.random(80), 0, 1)  # FP segments: more confident
    msp = msp_scores(V)
    np.testing.assert_array_equal(msp, 1.0 - V)
    out = msp_baseline(msp, y)
    assert out["auroc"] == roc_auc_score(y, 1.0 - V)
    assert out["auprc"] == average_precision_score(y, 1.0 - V)


def _segment_table(X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(X, columns=[f"m{k:02d}" for k in range(X.shape[1])])
    frame["V"] = expit(X[:, 0] / 10.0)
    frame["iou0"] = y
    frame["iou"] = np.where(y == 1, 0.0, 0.5)
    frame["image"] = np.arange(len(y)) // 8
    frame.index = frame.index + 1000
    return frame


def test_meta_classify_loo_and_logo(data_d10):
    X, y = data_d10
    frame = _segment_table(X, y)
    names = reference_feature_names(frame.columns)
    assert names == sorted([f"m{k:02d}" for k in range(X.shape[1])] + ["V"])

    table, metrics = meta_classify(frame)
    expected = loo_predict_proba(frame[names], y)
    assert np.array_equal(table["prob_fp"].to_numpy(), expected)
    assert list(table.index) == list(frame.index)
    assert np.array_equal(table["pred_fp"].to_numpy(), expected > 0.5)
    assert metrics["auroc"] == roc_auc_score(y, expected)
    assert metrics["auprc"] == average_precision_score(y, expected)
    assert metrics["msp_auroc"] == roc_auc_score(y, 1.0 - frame["V"])
    assert metrics["n_segments"] == len(y) and metrics["n_fp"] == int(y.sum())
    assert metrics["feature_names"] == names and metrics["fallback"] is None
    full = MetaClassifier().fit(frame[names], y)
    assert metrics["coefficients"] == dict(zip(names, full.coef_[0].tolist()))

    table, metrics = meta_classify(frame, groups="image", protocol="logo", C=0.5)
    expected = grouped_cv_predict_proba(frame[names], y, frame["image"], C=0.5)
    assert np.array_equal(table["prob_fp"].to_numpy(), expected)
    assert metrics["n_groups"] == frame["image"].nunique()
    with pytest.raises(InputError, match="needs groups"):
        meta_classify(frame, protocol="logo")


def test_meta_classify_degenerate_tables():
    X, y = segment_data(20, 3, seed=14)
    frame = _segment_table(X, np.ones(20, dtype=int))
    with pytest.warns(DegenerateInputWarning):
        table, metrics = meta_classify(frame)
    assert np.all(table["prob_fp"] == 1.0)
    assert metrics["fallback"] == "single_class" and metrics["auroc"] is None and metrics["coefficients"] is None
    with pytest.raises(InputError, match="needs both TP and FP"):
        meta_classify(frame, on_single_class="raise")
    with pytest.warns(DegenerateInputWarning):
        table, metrics = meta_classify(frame.iloc[:0])
    assert len(table) == 0 and metrics["fallback"] == "no_segments" and metrics["accuracy"] is None


# --------------------------------------------------------------------------------------------
# leave-one-image-out on degenerate groupings: documented results, never an error
# --------------------------------------------------------------------------------------------


def test_logo_with_all_segments_in_one_image_is_unavailable():
    X, y = segment_data(20, 3, seed=15)
    frame = _segment_table(X, y)
    frame["image"] = 7
    names = reference_feature_names(frame.columns)
    with pytest.warns(DegenerateInputWarning, match="at least two groups"):
        table, metrics = meta_classify(frame, groups="image", protocol="logo")
    assert np.isnan(table["prob_fp"]).all() and not table["pred_fp"].any()
    assert metrics["fallback"] == "single_group" and "one image" in metrics["fallback_reason"]
    assert metrics["auroc"] is None and metrics["auprc"] is None and metrics["accuracy"] is None
    assert metrics["n_groups"] == 1 and metrics["n_single_class_folds"] == 0
    # the MSP baseline and the full-data model do not depend on the protocol
    assert metrics["msp_auroc"] == roc_auc_score(y, 1.0 - frame["V"])
    full = MetaClassifier().fit(frame[names], y)
    assert metrics["coefficients"] == dict(zip(names, full.coef_[0].tolist()))
    with pytest.warns(DegenerateInputWarning):
        assert np.isnan(grouped_cv_predict_proba(X, y, np.zeros(20), on_single_group="nan")).all()
    _, loo = meta_classify(frame, groups="image", protocol="loo")
    assert loo["fallback"] is None and loo["auroc"] is not None


def test_logo_with_one_class_per_image():
    X, _ = segment_data(12, 3, seed=16)
    y = np.array([1] * 5 + [0] * 7)
    frame = _segment_table(X, y)
    frame["image"] = np.array([0] * 5 + [1] * 7)
    names = reference_feature_names(frame.columns)
    Xs = standardize(frame[names].to_numpy())
    table, metrics = meta_classify(frame, groups="image", protocol="logo", C=0.8)
    # every fold trains on one class; with the penalized intercept the fold objective still has a
    # unique minimizer, computed here directly
    for g in (0, 1):
        test = frame["image"].to_numpy() == g
        theta = scipy_fit(design(Xs[~test]), y[~test].astype(float), 0.8, True)
        assert np.abs(table["prob_fp"].to_numpy()[test] - expit(design(Xs[test]) @ theta)).max() < 1e-8
    assert metrics["n_single_class_folds"] == 2 and metrics["fallback"] is None
    assert metrics["auroc"] == roc_auc_score(y, table["prob_fp"])
    # without the intercept penalty the limit is the training class frequency: the FP image is
    # scored 0 (trained on TP only), the TP image 1 -- every FP ranked below every TP
    with pytest.warns(DegenerateInputWarning, match="single class"):
        table, metrics = meta_classify(frame, groups="image", protocol="logo", penalize_intercept=False)
    np.testing.assert_array_equal(table["prob_fp"].to_numpy(), 1.0 - y)
    assert metrics["auroc"] == 0.0 and metrics["accuracy"] == 0.0 and metrics["n_single_class_folds"] == 2


def test_logo_with_one_single_class_fold_and_loo_count():
    X, _ = segment_data(9, 3, seed=17)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0])
    frame = _segment_table(X, y)
    frame["image"] = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    names = reference_feature_names(frame.columns)
    Xs = standardize(frame[names].to_numpy())
    table, metrics = meta_classify(frame, groups="image", protocol="logo")
    # fold 0 keeps images 1 and 2 (TP, TP, TP, FP, TP): both classes; fold 1 and fold 2 as well
    assert metrics["n_single_class_folds"] == 0
    for g in (0, 1, 2):
        test = frame["image"].to_numpy() == g
        ref = refit_predict(liblinear(), Xs[~test], y[~test], Xs[test])
        assert np.abs(table["prob_fp"].to_numpy()[test] - ref).max() < 1e-6
    frame["image"] = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])  # fold 1 trains on image 0: three FP only
    table, metrics = meta_classify(frame, groups="image", protocol="logo")
    assert metrics["n_single_class_folds"] == 1
    test = frame["image"].to_numpy() == 1
    theta = scipy_fit(design(Xs[~test]), y[~test].astype(float), 1.0, True)
    assert np.abs(table["prob_fp"].to_numpy()[test] - expit(design(Xs[test]) @ theta)).max() < 1e-8
    # leave-one-out: one fold per row, single-class only when the row is its class's only member
    y1 = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0])
    _, metrics = meta_classify(_segment_table(X, y1))
    assert metrics["n_single_class_folds"] == 1
