"""Tests of meta_ood.meta: scores, the MSP baseline and the pipeline entry point meta_classify."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
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
from meta_reference import design, liblinear, refit_predict, scipy_fit, segment_data


@pytest.fixture(scope="module")
def data_d10():
    return segment_data(220, 10, seed=1)


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
