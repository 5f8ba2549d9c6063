"""Segment-wise evaluation: hand-computed detection errors and road miss rates, component maps,
and SegmentMeIfYouCan component metrics against a direct set-based implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from sklearn.linear_model import LogisticRegression

from meta_ood.errors import InputError
from meta_ood.segment_eval import (
    SMIYC_THRESHOLDS,
    ComponentMetrics,
    detection_errors,
    overlap_table,
    removed_by_meta,
    road_miss_rate,
)

IN_ID, OUT_ID, VOID = 1, 2, 255
EIGHT = np.ones((3, 3), bool)


def gt_missed_after_removal(pred_components, gt_components, removed_labels):
    """Reference: sorted labels of the gt segments that no kept predicted segment touches (direct set computation)."""
    p, g = np.abs(np.asarray(pred_components)), np.abs(np.asarray(gt_components))
    kept = (p > 0) & ~np.isin(p, np.asarray(list(removed_labels), dtype=np.int64))
    return np.setdiff1d(np.unique(g[g > 0]), np.unique(g[kept & (g > 0)]))


# ---------------------------------------------------------------------------------------------
# detection errors (table 2), a hand-made case
# ---------------------------------------------------------------------------------------------
#
# image "a": predicted segments 1 (TP), 2 (FP), 3 (TP); gt objects 1 (touched by pred 1 and 3),
#            2 (touched by pred 3 only), 3 (missed)
# image "b": predicted segments 1 (FP, prob_fp exactly 0.5), 2 (FP); gt object 1 (missed)
# The meta classifier removes prob_fp > 0.5: a2 (0.9) and a3 (0.7); b1 (0.5) stays.

PRED = pd.DataFrame(
    {
        "image": ["a", "a", "a", "b", "b"],
        "segment": [1, 2, 3, 1, 2],
        "iou0": [0, 1, 0, 1, 1],
        "prob_fp": [0.2, 0.9, 0.7, 0.5, 0.1],
        "n_gt_in": [10, 30, 5, 4, 7],
    }
)
GT = pd.DataFrame({"image": ["a", "a", "a", "b"], "segment": [1, 2, 3, 1], "iou0": [0, 0, 1, 1]})
OVERLAPS = pd.DataFrame({"image": ["a", "a", "a"], "pred_segment": [1, 3, 3], "gt_segment": [1, 1, 2]})
N_IN = 1000


def test_detection_errors_hand_computed():
    r = detection_errors(PRED, GT, overlaps=OVERLAPS, n_gt_in_total=N_IN)
    assert r["fp_before"] == 3  # a2, b1, b2
    assert r["fn_before"] == 2  # a3, b1
    assert r["total_before"] == 5
    assert r["n_removed"] == 2  # a2, a3
    assert r["fp_after"] == 2  # b1 (0.5 is not > 0.5) and b2 remain
    assert r["fn_after"] == 3  # a3, b1, and gt a2 whose only segment a3 was removed
    assert r["total_after"] == 5
    assert r["eps_before"] == (10 + 30 + 5 + 4 + 7) / N_IN
    assert r["eps_after"] == (10 + 4 + 7) / N_IN  # a1, b1, b2 remain


def test_reference_quirk_counts_removed_true_positives():
    r = detection_errors(PRED, GT, overlaps=OVERLAPS, reference_fp_after=True)
    assert r["fp_after"] == 1  # the released code counts removed & iou0 == 0: only a3
    assert r["fn_after"] == detection_errors(PRED, GT, overlaps=OVERLAPS)["fn_after"]
    lower = detection_errors(PRED, GT, overlaps=OVERLAPS, meta_threshold=0.15, reference_fp_after=True)
    assert lower["fp_after"] == 2  # a1 (0.2) and a3 removed although both are true positives


def test_before_only_without_prob_fp_and_errors():
    r = detection_errors(PRED.drop(columns="prob_fp"), GT)
    assert (r["fp_before"], r["fn_before"]) == (3, 2) and "fp_after" not in r
    with pytest.raises(InputError, match="overlaps"):
        detection_errors(PRED, GT)
    with pytest.raises(InputError, match="lacks column"):
        detection_errors(PRED.drop(columns="iou0"), GT, overlaps=OVERLAPS)
    with pytest.raises(InputError, match="iou0"):
        detection_errors(PRED.assign(iou0=[0, 2, 0, 1, 1]), GT, overlaps=OVERLAPS)
    with pytest.raises(InputError, match="duplicate"):
        detection_errors(pd.concat([PRED, PRED.iloc[:1]]), GT, overlaps=OVERLAPS)
    with pytest.raises(InputError, match="iou0=0 but no overlap"):  # gt a2 marked found, no overlap row
        detection_errors(PRED, GT, overlaps=OVERLAPS.iloc[:2])
    with pytest.raises(InputError, match="not in the pred table"):
        extra = pd.DataFrame({"image": ["b"], "pred_segment": [9], "gt_segment": [1]})
        detection_errors(PRED, GT, overlaps=pd.concat([OVERLAPS, extra]))
    with pytest.raises(InputError, match="n_gt_in"):
        detection_errors(PRED.drop(columns="n_gt_in"), GT, overlaps=OVERLAPS, n_gt_in_total=N_IN)


def test_meta_rule_matches_sklearn_predict():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x @ [1.0, -2.0, 0.5] + rng.normal(size=400) > 0).astype(int)
    clf = LogisticRegression().fit(x, y)
    table = pd.DataFrame({"prob_fp": clf.predict_proba(x)[:, 1]})
    np.testing.assert_array_equal(removed_by_meta(table), clf.predict(x) == 1)


def test_road_miss_rate():
    assert road_miss_rate([3, 0, 2], [100, 50, 50]) == 5 / 200
    assert road_miss_rate(0, 10) == 0.0
    with pytest.raises(InputError):
        road_miss_rate(1, 0)
    with pytest.raises(InputError):
        road_miss_rate(11, 10)


# ---------------------------------------------------------------------------------------------
# component maps
# ---------------------------------------------------------------------------------------------


def test_overlap_table_and_missed_after_removal_by_hand():
    # reference component maps: +k interior, -k boundary
    pred = np.array(
        [
            [-1, -1, 0, 0, -2],
            [-1, 1, 0, 0, -2],
            [0, 0, 0, 0, 0],
            [-3, 0, 0, 0, 0],
        ]
    )
    gt = np.array(
        [
            [0, -1, -1, 0, 0],
            [0, -1, -1, 0, -2],
            [0, 0, 0, 0, -2],
            [0, 0, -3, 0, 0],
        ]
    )
    ov = overlap_table(pred, gt, image="x")
    assert ov[["pred_segment", "gt_segment", "n_pixels"]].values.tolist() == [[1, 1, 2], [2, 2, 1]]
    assert (ov["image"] == "x").all()
    np.testing.assert_array_equal(gt_missed_after_removal(pred, gt, []), [3])  # gt 3 never touched
    np.testing.assert_array_equal(gt_missed_after_removal(pred, gt, [2]), [2, 3])
    np.testing.assert_array_equal(gt_missed_after_removal(pred, gt, [1, 2, 3]), [1, 2, 3])


def _random_scene(rng, shape=(40, 50)):
    """Blobby OoD ground truth and prediction, void band, in-distribution elsewhere."""
    gt = np.full(shape, IN_ID, np.uint8)
    gt[ndimage.gaussian_filter(rng.random(shape), 2) > 0.56] = OUT_ID
    gt[:, :3] = VOID
    gt[ndimage.gaussian_filter(rng.random(shape), 2) < 0.44] = VOID
    noise = ndimage.gaussian_filter(rng.random(shape), 1.5)
    pred = (noise > 0.55) | ((gt == OUT_ID) & (rng.random(shape) < 0.5))
    return pred, gt


def _tables(scenes):
    """Per-segment tables and overlaps as the segments stage would produce them."""
    rows_p, rows_g, ovs, maps = [], [], [], []
    for i, (pred, gt) in enumerate(scenes):
        pl, n_p = ndimage.label(pred & (gt != VOID), structure=EIGHT)
        gl, n_g = ndimage.label(gt == OUT_ID, structure=EIGHT)
        for k in range(1, n_p + 1):
            seg = pl == k
            iou0 = int(not np.any(seg & (gl > 0)))
            rows_p.append({"image": i, "segment": k, "iou0": iou0, "n_gt_in": int(np.sum(seg & (gt == IN_ID)))})
        for k in range(1, n_g + 1):
            rows_g.append({"image": i, "segment": k, "iou0": int(not np.any((gl == k) & (pl > 0)))})
        ovs.append(overlap_table(pl, gl, image=i))
        maps.append((pl, gl))
    return pd.DataFrame(rows_p), pd.DataFrame(rows_g), pd.concat(ovs, ignore_index=True), maps


def test_detection_errors_agree_with_component_maps():
    rng = np.random.default_rng(1)
    scenes = [_random_scene(rng) for _ in range(6)]
    pred, gt, ov, maps = _tables(scenes)
    pred["prob_fp"] = rng.random(len(pred))
    removed = pred["prob_fp"].to_numpy() > 0.5
    n_in = sum(int(np.sum(g == IN_ID)) for _, g in scenes)
    r = detection_errors(pred, gt, overlaps=ov, n_gt_in_total=n_in)
    fn_after = 0
    flagged = 0
    for i, (pl, gl) in enumerate(maps):
        rm = pred.loc[(pred["image"] == i).to_numpy() & removed, "segment"].tolist()
        fn_after += len(gt_missed_after_removal(pl, gl, rm))
        kept = (pl > 0) & ~np.isin(pl, rm)
        flagged += int(np.sum(kept & (scenes[i][1] == IN_ID)))
    assert r["fn_after"] == fn_after
    assert r["fn_after"] >= r["fn_before"] > 0 and r["n_removed"] > 0
    assert r["eps_after"] == flagged / n_in
    # eps before: every in-distribution pixel predicted OoD (void pixels are never in-distribution)
    assert r["eps_before"] == sum(int(np.sum(p & (g == IN_ID))) for p, g in scenes) / n_in


# ---------------------------------------------------------------------------------------------
# SegmentMeIfYouCan component metrics
# ---------------------------------------------------------------------------------------------


def _scene(h=6, w=9):
    return np.zeros((h, w), bool), np.full((h, w), IN_ID, np.uint8)


def test_siou_and_ppv_hand_computed():
    pred, gt = _scene()
    gt[1:3, 1:3] = OUT_ID  # gt object: 4 pixels
    pred[1:3, 2:5] = True  # prediction: 6 pixels, 2 of them on the object
    cm = ComponentMetrics(thresholds=[0.25, 0.3, 0.5])
    siou, ppv = cm.update(pred, gt, IN_ID, OUT_ID)
    assert siou.tolist() == [2 / 8]  # |k ∩ K̂| = 2, |k ∪ K̂| = 4 + 6 - 2
    assert ppv.tolist() == [2 / 6]
    r = cm.result()
    # tau 0.25: TP (0.25 >= 0.25), no FP (1/3 >= 0.25) -> F1 = 1
    # tau 0.3:  FN (0.25 < 0.3),   no FP (1/3 >= 0.3)  -> F1 = 0
    # tau 0.5:  FN,                FP (1/3 < 0.5)      -> F1 = 0
    assert r["tp"].tolist() == [1, 0, 0] and r["fn"].tolist() == [0, 1, 1] and r["fp"].tolist() == [0, 0, 1]
    assert r["f1"].tolist() == [1.0, 0.0, 0.0] and r["f1_mean"] == 1 / 3


def test_siou_adjustment_excludes_other_gt_objects():
    pred, gt = _scene()
    gt[1:3, 1:3] = OUT_ID  # object A (4 px)
    gt[1:3, 6:8] = OUT_ID  # object B (4 px)
    pred[1:3, 1:8] = True  # one prediction of 14 px covering both and 6 px between them
    siou, ppv = ComponentMetrics().update(pred, gt, IN_ID, OUT_ID)
    # for A: K̂ = the prediction (14 px); B's 4 px are left out of the union: (4 + 14 - 4) - 4 = 10
    assert siou.tolist() == [4 / 10, 4 / 10]
    assert ppv.tolist() == [8 / 14]


def test_void_and_size_filters():
    pred, gt = _scene(8, 12)
    gt[1:3, 1:3] = OUT_ID  # object of 4 px
    gt[6, 10] = OUT_ID  # object of 1 px
    gt[5:8, 0:3] = VOID
    pred[5:8, 0:3] = True  # only on void: no predicted component at all
    pred[1:3, 1:3] = True  # exact hit
    pred[0, 8] = True  # isolated 1-px false positive
    pred[6:8, 9:12] = True  # 6 px covering the 1-px object
    siou, ppv = ComponentMetrics().update(pred, gt, IN_ID, OUT_ID)
    assert sorted(siou.tolist()) == [1 / 6, 1.0] and sorted(ppv.tolist()) == [0.0, 1 / 6, 1.0]
    # min_pred_size=2 drops the 1-px prediction; min_gt_size=2 turns the 1-px object into void,
    # so the 6-px prediction keeps its 5 non-void pixels, none of them OoD
    siou, ppv = ComponentMetrics(min_pred_size=2, min_gt_size=2).update(pred, gt, IN_ID, OUT_ID)
    assert siou.tolist() == [1.0] and sorted(ppv.tolist()) == [0.0, 1.0]
    # other labels than in/out (here 0) are void as well
    gt2 = gt.copy()
    gt2[gt2 == VOID] = 0
    np.testing.assert_array_equal(
        ComponentMetrics().update(pred, gt2, IN_ID, OUT_ID)[1], ComponentMetrics().update(pred, gt, IN_ID, OUT_ID)[1]
    )


def _brute_force(pred_mask, gt, min_pred=0, min_gt=0):
    """Direct set-based sIoU / PPV per component, written from the definitions."""
    roi = (gt == IN_ID) | (gt == OUT_ID)
    pl, n_p = ndimage.label(pred_mask & roi, structure=EIGHT)
    gl, n_g = ndimage.label(gt == OUT_ID, structure=EIGHT)
    pred_sets = {k: set(np.flatnonzero(pl == k)) for k in range(1, n_p + 1)}
    gt_sets = {k: set(np.flatnonzero(gl == k)) for k in range(1, n_g + 1)}
    pred_sets = {k: s for k, s in pred_sets.items() if len(s) >= min_pred}
    void = set(np.flatnonzero(~roi))
    for k in [k for k, s in gt_sets.items() if len(s) < min_gt]:
        void |= gt_sets.pop(k)
    pred_sets = {k: s - void for k, s in pred_sets.items() if s - void}
    all_gt = set().union(*gt_sets.values()) if gt_sets else set()
    siou, adjusted = [], 0
    for k, comp in gt_sets.items():
        hits = [s for s in pred_sets.values() if s & comp]
        k_hat = set().union(*hits) if hits else set()
        others = all_gt - comp
        adjusted += bool(k_hat & others)
        siou.append(len(comp & k_hat) / len((comp | k_hat) - others))
    ppv = [len(s & all_gt) / len(s) for s in pred_sets.values()]
    return siou, ppv, adjusted


@pytest.mark.parametrize("min_pred,min_gt", [(0, 0), (5, 8)])
def test_component_metrics_equal_brute_force(min_pred, min_gt):
    rng = np.random.default_rng(3)
    cm = ComponentMetrics(min_pred_size=min_pred, min_gt_size=min_gt)
    all_siou, all_ppv, n_adjusted = [], [], 0
    for _ in range(8):
        pred, gt = _random_scene(rng)
        siou, ppv = cm.update(pred, gt, IN_ID, OUT_ID)
        ref_siou, ref_ppv, adjusted = _brute_force(pred, gt, min_pred, min_gt)
        n_adjusted += adjusted
        np.testing.assert_allclose(siou, ref_siou, rtol=0, atol=1e-15)
        np.testing.assert_allclose(ppv, ref_ppv, rtol=0, atol=1e-15)
        all_siou += ref_siou
        all_ppv += ref_ppv
    assert n_adjusted > 0  # some predictions span several gt objects: the adjustment matters
    r = cm.result()
    s, p = np.array(all_siou), np.array(all_ppv)
    assert r["n_gt"] == s.size > 5 and r["n_pred"] == p.size
    f1 = []
    for t in SMIYC_THRESHOLDS:
        tp, fn, fp = np.sum(s >= t), np.sum(s < t), np.sum(p < t)
        f1.append(2 * tp / (2 * tp + fn + fp))
    np.testing.assert_allclose(r["f1"], f1, rtol=0, atol=1e-15)
    assert r["f1_mean"] == pytest.approx(np.mean(f1), abs=1e-15)
    assert r["siou_gt"] == pytest.approx(s.mean(), abs=1e-15) and r["ppv"] == pytest.approx(p.mean(), abs=1e-15)


def test_component_metrics_errors():
    pred, gt = _scene()
    cm = ComponentMetrics()
    cm.update(pred, gt, IN_ID, OUT_ID)
    with pytest.raises(InputError, match="no OoD ground-truth component"):
        cm.result()
    with pytest.raises(InputError, match="shapes"):
        cm.update(pred[:2], gt, IN_ID, OUT_ID)
    bad = pred.astype(int)
    bad[0, 0] = 3
    with pytest.raises(InputError, match="binary"):
        cm.update(bad, gt, IN_ID, OUT_ID)
