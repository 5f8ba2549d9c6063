"""Metric definitions of other toolkits from one histogram, each against a direct computation on the pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from meta_ood.errors import InputError
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.report.definitions import definition_values, table_definitions

IN, OUT = 0, 1


def _images(seed: int, n: int = 6, drop_ood_in: int | None = None):
    """(id, scores on a 12-bit grid, labels); image ``drop_ood_in`` has no OoD pixel."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        lab = (rng.random((8, 10)) < 0.3).astype(np.uint8)
        if k == drop_ood_in:
            lab[:] = 0
        s = np.clip(rng.normal(0.35 + 0.3 * lab, 0.2), 0, 1)
        out.append((f"i{k}", np.round(s * 4095) / 4095, lab))
    return out


def _hist(images):
    h = PooledHistogram(bits=16, image_bits=12)
    for name, s, lab in images:
        h.update(s, lab, IN, OUT, image_id=name)
    return h


def test_each_definition_equals_a_direct_computation():
    images = _images(1, drop_ood_in=2)
    v = definition_values(_hist(images))
    y = np.concatenate([lab.ravel() for _, _, lab in images])
    s = np.concatenate([sc.ravel() for _, sc, _ in images])
    assert v["ap_step"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    p, r, _ = precision_recall_curve(y, s)
    assert v["ap_trapz"] == pytest.approx(abs(np.trapezoid(p, r)), abs=1e-12)
    assert v["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    k = int(np.argmax(tpr >= 0.95))
    assert v["fpr95_first"] == pytest.approx(fpr[k], abs=1e-12)
    assert v["fpr95_nearest"] == pytest.approx(fpr[int(np.argmin(np.abs(tpr - 0.95)))], abs=1e-12)
    assert v["fpr95_interp"] == pytest.approx(
        fpr[k - 1] + (0.95 - tpr[k - 1]) / (tpr[k] - tpr[k - 1]) * (fpr[k] - fpr[k - 1]), abs=1e-12)
    # per image (pytorch-ood segmentation mode), the image without OoD pixels left out
    per_ap, per_auroc = [], []
    for _, sc, lab in images:
        if lab.min() == lab.max():
            continue
        pi, ri, _ = precision_recall_curve(lab.ravel(), sc.ravel())
        per_ap.append(abs(np.trapezoid(pi, ri)))
        per_auroc.append(roc_auc_score(lab.ravel(), sc.ravel()))
    assert (v["n_images"], v["n_images_used"]) == (6, 5)
    assert v["ap_image_mean"] == pytest.approx(np.mean(per_ap), abs=1e-12)
    assert v["auroc_image_mean"] == pytest.approx(np.mean(per_auroc), abs=1e-12)


def test_table_notes_pairs_whose_order_a_definition_reverses(tmp_path):
    """Method b is better on one large image, a on several small ones: pooled and per-image means disagree."""
    def write(name, images):
        h = _hist(images)
        h.save(tmp_path / f"{name}.npz")
        (tmp_path / f"{name}.json").write_text("{}")
        return str(tmp_path / f"{name}.json")

    rng = np.random.default_rng(3)
    a_imgs, b_imgs = [], []
    for k in range(5):
        size = (40, 40) if k == 0 else (6, 6)
        lab = (rng.random(size) < 0.3).astype(np.uint8)
        good = np.clip(0.2 + 0.6 * lab + rng.normal(0, 0.1, size), 0, 1)
        bad = np.clip(0.4 + 0.1 * lab + rng.normal(0, 0.3, size), 0, 1)
        q = lambda x: np.round(x * 4095) / 4095  # noqa: E731
        a_imgs.append((f"i{k}", q(bad if k == 0 else good), lab))
        b_imgs.append((f"i{k}", q(good if k == 0 else bad), lab))
    entries = [{"model": "m", "label": "a", "dataset": "lostandfound", "path": write("a", a_imgs)},
               {"model": "m", "label": "b", "dataset": "lostandfound", "path": write("b", b_imgs)}]
    out = {f"out_{ext}": tmp_path / f"d.{ext}" for ext in ("csv", "md", "tex")}
    df = table_definitions(entries, **out)
    va, vb = df.iloc[0], df.iloc[1]
    assert (va["ap_step"] < vb["ap_step"]) and (va["ap_image_mean"] > vb["ap_image_mean"])
    md = out["out_md"].read_text()
    assert "m a vs m b: the AP definitions disagree on which is better" in md
    assert (tmp_path / "d.html").is_file()


def test_definitions_key_selects_columns_and_smiyc_binned_comes_from_the_json(tmp_path):
    """``definitions`` (config evaluation.definitions) picks and orders nothing but the named columns; the SMIYC
    binned values are the pixel evaluation's ``smiyc_binned`` (shown as "–" where a result lacks them)."""
    rng = np.random.default_rng(5)
    imgs = [(f"i{k}", np.round(rng.random((8, 9)) * 4095) / 4095, (rng.random((8, 9)) < 0.3).astype(np.uint8))
            for k in range(3)]
    _hist(imgs).save(tmp_path / "a.npz")
    (tmp_path / "a.json").write_text(json.dumps({"smiyc_binned": {"auprc": 0.625, "auroc": 0.75, "fpr95": 0.5}}))
    _hist(imgs).save(tmp_path / "b.npz")
    (tmp_path / "b.json").write_text("{}")
    entries = [{"model": "m", "label": x, "dataset": "lostandfound", "path": str(tmp_path / f"{x}.json")}
               for x in ("a", "b")]
    out = {f"out_{ext}": tmp_path / f"d.{ext}" for ext in ("csv", "md", "tex")}
    df = table_definitions(entries, **out, definitions=["fpr95_smiyc", "ap_step", "ap_smiyc"])
    assert [c for c in df.columns if c not in ("dataset", "model", "label", "n_images", "n_images_used")] == \
        ["ap_step", "ap_smiyc", "fpr95_smiyc"]
    assert (df["ap_smiyc"].iloc[0], df["fpr95_smiyc"].iloc[0]) == (0.625, 0.5)
    assert df["ap_smiyc"].isna().iloc[1]
    header = out["out_md"].read_text().splitlines()
    assert any("AP SMIYC binned" in line and "AP trapezoid" not in line for line in header)
    with pytest.raises(InputError, match="definitions"):
        table_definitions(entries, **out, definitions=["ap_nope"])
