"""mIoU with an extra OoD class (meta_ood.pixel_eval.miou) against a brute-force confusion matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from meta_ood.errors import InputError
from meta_ood.pixel_eval import MiouAccumulator

VOID = 255


def _miou_images(seed, k=5, n_images=3, shape=(30, 40)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        gt = rng.integers(0, k, size=shape).astype(np.uint8)
        gt[rng.random(shape) < 0.1] = VOID
        pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, k, size=shape)).astype(np.int64)
        pred[gt == VOID] = rng.integers(0, k, size=int((gt == VOID).sum()))
        ent = rng.random(shape).astype(np.float32)
        ent[0, 0] = 0.5  # exactly on a threshold: counts as OoD (entropy >= t)
        out.append((pred, ent, gt))
    return out


def test_miou_equals_brute_force_confusion_matrix():
    k = 5
    thresholds = [0.3, 0.5, 0.9]
    acc = MiouAccumulator(num_classes=k, thresholds=thresholds)
    images = _miou_images(0, k)
    for pred, ent, gt in images:
        acc.update(pred, ent, gt)
    res = acc.result()
    assert set(res) == {0.3, 0.5, 0.9, math.inf}
    g = np.concatenate([x[2].ravel() for x in images]).astype(np.int64)
    p = np.concatenate([x[0].ravel() for x in images])
    e = np.concatenate([x[1].ravel() for x in images])
    valid = g != VOID
    for t in [*thresholds, math.inf]:
        p_ood = np.where(e >= t, k, p)  # class index k = "OoD"
        cm = confusion_matrix(g[valid], p_ood[valid], labels=np.arange(k + 1))
        np.testing.assert_array_equal(acc.confusion(t), cm[:k, :])
        assert cm[k].sum() == 0  # no OoD ground truth
        iou = []
        for c in range(k):
            tp = np.sum((g[valid] == c) & (p_ood[valid] == c))
            fp = np.sum((g[valid] != c) & (p_ood[valid] == c))
            fn = np.sum((g[valid] == c) & (p_ood[valid] != c))
            iou.append(tp / (tp + fp + fn))
        np.testing.assert_allclose(res[t]["iou"], iou, rtol=0, atol=1e-15)
        assert res[t]["miou"] == pytest.approx(np.mean(iou), abs=1e-15)
        assert res[t]["ood_fraction"] == pytest.approx(np.mean(e[valid] >= t), abs=1e-15)


def test_miou_leaves_out_absent_classes_and_checks_ids():
    k = 4
    gt = np.array([[0, 0, 1, VOID]], np.uint8)
    pred = np.array([[0, 1, 1, 3]])  # class 3 only predicted on void, class 2 nowhere
    ent = np.array([[0.1, 0.1, 0.95, 0.1]])
    acc = MiouAccumulator(num_classes=k, thresholds=[0.9])
    acc.update(pred, ent, gt)
    res = acc.result()
    # plain: IoU_0 = 1/2 (one FN), IoU_1 = 1/2 (one FP); at t=0.9 the gt-1 pixel becomes OoD: IoU_1 = 0/2
    assert np.isnan(res[math.inf]["iou"][2]) and np.isnan(res[math.inf]["iou"][3])
    assert res[math.inf]["miou"] == pytest.approx(np.mean([1 / 2, 1 / 2]))
    assert res[0.9]["miou"] == pytest.approx(np.mean([1 / 2, 0.0]))
    with pytest.raises(InputError, match="ground truth contains id"):
        acc.update(pred, ent, np.array([[0, 7, 1, 1]], np.uint8))
    with pytest.raises(InputError, match="shapes"):
        acc.update(pred, ent[:, :3], gt)
    with pytest.raises(InputError, match="non-void"):
        MiouAccumulator(num_classes=k).result()
