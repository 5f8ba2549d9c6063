"""Pixel-wise evaluation: histogram metrics against scikit-learn on the same (quantized) scores,
bootstrap against explicitly resampled pixels, violin data against numpy's histogram and quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from meta_ood.errors import InputError
from meta_ood.pixel_eval import (
    PooledHistogram,
    bootstrap,
    bootstrap_replicates,
    bootstrap_weights,
    dequantize,
    metrics,
    quantize,
    score_histogram_for_violin,
)

IN_ID, OUT_ID, VOID = 1, 2, 255


def _images(seed: int, n_images: int = 5, shape=(100, 200), p_out: float = 0.05, p_void: float = 0.1):
    """Random score maps (float32) and LostAndFound-style labels; OoD pixels score higher."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        ids = np.array([IN_ID, OUT_ID, VOID, 0], dtype=np.uint8)
        lab = rng.choice(ids, size=shape, p=[1 - p_out - p_void - 0.02, p_out, p_void, 0.02])
        s = rng.beta(1.0, 4.0, size=shape)
        s[lab == OUT_ID] = rng.beta(3.0, 2.0, size=int((lab == OUT_ID).sum()))
        out.append((s.astype(np.float32), lab))
    return out


def _fill(images, bits=16, image_bits=12, ids=True):
    h = PooledHistogram(bits=bits, image_bits=min(bits, image_bits))
    for k, (s, lab) in enumerate(images):
        h.update(s, lab, IN_ID, OUT_ID, image_id=f"img{k}" if ids else None)
    return h


def _pooled(images, bits=16):
    """Concatenated evaluated pixels: (dequantized score, is_ood)."""
    s = np.concatenate([x.ravel() for x, _ in images])
    lab = np.concatenate([y.ravel() for _, y in images])
    keep = (lab == IN_ID) | (lab == OUT_ID)
    return dequantize(quantize(s[keep], bits), bits), lab[keep] == OUT_ID


def _check_against_sklearn(m, q, y):
    assert m["n_pos"] == int(y.sum()) and m["n_neg"] == int((~y).sum())
    assert m["auroc"] == pytest.approx(roc_auc_score(y, q), abs=1e-9)
    assert m["auprc"] == pytest.approx(average_precision_score(y, q), abs=1e-9)
    fpr, tpr, thr = roc_curve(y, q, drop_intermediate=False)
    np.testing.assert_array_equal(m["roc"]["fpr"], fpr)
    np.testing.assert_array_equal(m["roc"]["tpr"], tpr)
    np.testing.assert_array_equal(m["roc"]["thresholds"], thr)
    assert m["fpr95"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
    prec, rec, pthr = precision_recall_curve(y, q)
    np.testing.assert_allclose(m["pr"]["precision"], prec, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m["pr"]["recall"], rec, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m["pr"]["thresholds"], pthr)
    # best F1: the maximum over sklearn's PR curve, attained at the reported threshold (pixels
    # with q >= threshold predicted OoD), and no higher threshold reaches it
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-300)
    assert m["best_f1"] == pytest.approx(f1.max(), abs=1e-12)
    t = m["best_f1_threshold"]
    pred = q >= t
    assert 2 * np.sum(pred & y) / (pred.sum() + y.sum()) == pytest.approx(f1.max(), abs=1e-12)
    assert f1[:-1][pthr > t].max(initial=0.0) < f1.max() - 1e-12


# ---------------------------------------------------------------------------------------------
# quantization
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [4, 16])
def test_quantize_rounds_half_up_to_grid_and_clips(bits):
    m = (1 << bits) - 1
    k = np.arange(m + 1)
    grid = k / m
    np.testing.assert_array_equal(quantize(grid, bits), k)
    np.testing.assert_array_equal(dequantize(quantize(grid, bits), bits), grid)
    # a score half-way between grid points goes to the upper one, just below it to the lower one
    mid = (k[:-1] + 0.5) / m
    np.testing.assert_array_equal(quantize(mid, bits), k[1:])
    np.testing.assert_array_equal(quantize(mid - 1e-9, bits), k[:-1])
    np.testing.assert_array_equal(quantize(np.array([-3.0, -1e-9, 1 + 1e-9, 7.0]), bits), [0, 0, m, m])
    assert quantize(np.zeros(3), bits).dtype == np.uint16
    with pytest.raises(InputError, match="NaN"):
        quantize(np.array([0.2, np.nan]), bits)
    with pytest.raises(InputError):
        quantize(np.zeros(2), 0)


# ---------------------------------------------------------------------------------------------
# exactness against scikit-learn
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn_on_quantized_scores(seed):
    images = _images(seed)  # 5 images x 20,000 pixels
    h = _fill(images)
    q, y = _pooled(images)
    _check_against_sklearn(h.metrics(), q, y)


@pytest.mark.parametrize("bits", [8, 12])
def test_metrics_exact_at_coarse_resolution(bits):
    images = _images(7, n_images=3)
    q, y = _pooled(images, bits)
    _check_against_sklearn(metrics(_fill(images, bits=bits)), q, y)


def _single_image_hist(scores, is_ood):
    lab = np.where(is_ood, OUT_ID, IN_ID).astype(np.uint8)
    h = PooledHistogram()
    h.update(scores, lab, IN_ID, OUT_ID)
    return h


@pytest.mark.parametrize(
    "case",
    ["all_equal", "two_values", "one_positive", "one_negative", "duplicates", "perfect", "inverted"],
)
def test_metrics_equal_sklearn_with_heavy_ties(case):
    rng = np.random.default_rng(3)
    n = 100_000
    y = rng.random(n) < 0.1
    if case == "all_equal":
        s = np.full(n, 0.37)
    elif case == "two_values":
        s = np.where(rng.random(n) < 0.5, 0.2, 0.8)
        s[y & (rng.random(n) < 0.6)] = 0.8
    elif case == "one_positive":
        y = np.zeros(n, bool)
        y[12345] = True
        s = rng.random(n)
    elif case == "one_negative":
        y = np.ones(n, bool)
        y[777] = False
        s = np.round(rng.random(n), 2)
    elif case == "duplicates":
        s = np.round(rng.random(n), 3)
        s[y] = np.round(np.clip(s[y] + 0.2, 0, 1), 3)
    elif case == "perfect":
        s = np.where(y, 0.9, 0.1)
    else:
        s = np.where(y, 0.1, 0.9)
    h = _single_image_hist(s, y)
    q = dequantize(quantize(s))
    _check_against_sklearn(h.metrics(), q, y)


def test_curve_thinning_keeps_endpoints():
    images = _images(4, n_images=2)
    m = _fill(images).metrics(curve_points=50)
    full = _fill(images).metrics()
    assert len(m["roc"]["fpr"]) <= 50 and len(m["pr"]["precision"]) <= 50
    for key in ("fpr", "tpr", "thresholds"):
        assert m["roc"][key][0] == full["roc"][key][0] and m["roc"][key][-1] == full["roc"][key][-1]
    assert m["pr"]["precision"][-1] == 1.0 and m["pr"]["recall"][-1] == 0.0
    assert m["auroc"] == full["auroc"]


def test_no_ood_or_no_in_distribution_pixels_is_an_input_error():
    s = np.random.default_rng(0).random((10, 10))
    h = PooledHistogram()
    h.update(s, np.full((10, 10), IN_ID, np.uint8), IN_ID, OUT_ID)
    with pytest.raises(InputError, match="no OoD pixels"):
        h.metrics()
    with pytest.raises(InputError, match="no OoD pixels"):
        bootstrap(h, n_boot=10)
    h = PooledHistogram()
    h.update(s, np.full((10, 10), OUT_ID, np.uint8), IN_ID, OUT_ID)
    with pytest.raises(InputError, match="no in-distribution pixels"):
        h.metrics()


def test_update_rejects_bad_input():
    h = PooledHistogram()
    with pytest.raises(InputError, match="shape"):
        h.update(np.zeros((4, 4)), np.zeros((4, 5), np.uint8), IN_ID, OUT_ID)
    with pytest.raises(InputError, match="NaN"):
        h.update(np.full((2, 2), np.nan), np.zeros((2, 2), np.uint8), IN_ID, OUT_ID, image_id="x")
    h.update(np.zeros((2, 2)), np.zeros((2, 2), np.uint8), IN_ID, OUT_ID, image_id="x")
    with pytest.raises(InputError, match="already"):
        h.update(np.zeros((2, 2)), np.zeros((2, 2), np.uint8), IN_ID, OUT_ID, image_id="x")


# ---------------------------------------------------------------------------------------------
# merge, save / load
# ---------------------------------------------------------------------------------------------


def test_merge_equals_single_pass_and_roundtrips(tmp_path):
    images = _images(5, n_images=6)
    single = _fill(images)
    a = PooledHistogram()
    b = PooledHistogram()
    for k, (s, lab) in enumerate(images):
        (a if k < 4 else b).update(s, lab, IN_ID, OUT_ID, image_id=f"img{k}")
    path = tmp_path / "sub" / "b.npz"
    b.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.npz"]  # no temporary left behind
    merged = a.merge(PooledHistogram.load(path))
    np.testing.assert_array_equal(merged.pos, single.pos)
    np.testing.assert_array_equal(merged.neg, single.neg)
    assert merged.image_ids == single.image_ids
    assert (merged.image_matrix() != single.image_matrix()).nnz == 0
    m1, m2 = merged.metrics(), single.metrics()
    for key in ("auroc", "auprc", "fpr95", "best_f1", "best_f1_threshold", "n_pos", "n_neg"):
        assert m1[key] == m2[key]
    assert bootstrap(merged, n_boot=50, seed=3) == bootstrap(single, n_boot=50, seed=3)
    with pytest.raises(InputError, match="both histograms"):
        merged.merge(PooledHistogram.load(path))
    with pytest.raises(InputError, match="resolution"):
        merged.merge(PooledHistogram(bits=12))


def test_load_reports_missing_or_foreign_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        PooledHistogram.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not a PooledHistogram"):
        PooledHistogram.load(tmp_path / "other.npz")


# ---------------------------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------------------------


def test_bootstrap_weights_are_seeded_resamples():
    w = bootstrap_weights(7, 100, seed=5)
    assert w.shape == (100, 7) and (w.sum(axis=1) == 7).all() and (w >= 0).all()
    np.testing.assert_array_equal(w, bootstrap_weights(7, 100, seed=5))
    assert not np.array_equal(w, bootstrap_weights(7, 100, seed=6))


def test_bootstrap_is_deterministic_and_contains_point_estimate():
    images = _images(11, n_images=40, shape=(40, 50))
    h = _fill(images)
    ci = bootstrap(h, n_boot=300, seed=1)
    assert ci == bootstrap(h, n_boot=300, seed=1)
    assert ci != bootstrap(h, n_boot=300, seed=2)
    point = h.metrics()
    for key in ("auroc", "auprc", "fpr95", "best_f1"):
        lo, hi = ci[key]
        assert lo < point[key] < hi, key
    narrow = bootstrap(h, n_boot=300, seed=1, alpha=0.5)
    assert ci["auroc"][0] <= narrow["auroc"][0] <= narrow["auroc"][1] <= ci["auroc"][1]


@pytest.mark.parametrize("image_bits", [16, 9])
def test_bootstrap_replicate_equals_sklearn_on_resampled_pixels(image_bits):
    images = _images(21, n_images=8, shape=(30, 40), p_out=0.1)
    h = _fill(images, bits=16, image_bits=image_bits)
    reps = bootstrap_replicates(h, n_boot=25, seed=4, max_block_bytes=4096)  # many small blocks
    weights = reps["weights"]
    for r in (0, 7, 24):
        parts = [images[i] for i in range(len(images)) for _ in range(weights[r, i])]
        s = np.concatenate([x.ravel() for x, _ in parts])
        lab = np.concatenate([y.ravel() for _, y in parts])
        keep = (lab == IN_ID) | (lab == OUT_ID)
        y = lab[keep] == OUT_ID
        q = quantize(s[keep], 16) >> (16 - image_bits)  # the resolution of the per-image histograms
        assert reps["auroc"][r] == pytest.approx(roc_auc_score(y, q), abs=1e-9)
        assert reps["auprc"][r] == pytest.approx(average_precision_score(y, q), abs=1e-9)
        fpr, tpr, _ = roc_curve(y, q, drop_intermediate=False)
        assert reps["fpr95"][r] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
        prec, rec, _ = precision_recall_curve(y, q)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1), 0)
        assert reps["best_f1"][r] == pytest.approx(f1.max(), abs=1e-12)


def test_bootstrap_replicate_without_ood_is_nan_and_left_out():
    rng = np.random.default_rng(0)
    h = PooledHistogram()
    h.update(rng.random((5, 5)), np.full((5, 5), OUT_ID, np.uint8), IN_ID, OUT_ID)  # the only OoD image
    for _ in range(3):
        h.update(rng.random((5, 5)), np.full((5, 5), IN_ID, np.uint8), IN_ID, OUT_ID)
    weights = np.array([[0, 2, 1, 1], [1, 1, 1, 1]])
    reps = bootstrap_replicates(h, weights=weights)
    assert np.isnan(reps["auroc"][0]) and np.isfinite(reps["auroc"][1])
    assert reps["auroc"][1] == pytest.approx(h.metrics()["auroc"], abs=1e-12)


# ---------------------------------------------------------------------------------------------
# violin data
# ---------------------------------------------------------------------------------------------


def test_violin_histogram_and_quantiles():
    images = _images(8, n_images=3)
    h = _fill(images)
    q, y = _pooled(images)
    qs = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)
    v = score_histogram_for_violin(h, n_bins=100, quantiles=qs)
    for key, sel in (("in", ~y), ("out", y)):
        ref, _ = np.histogram(q[sel], bins=100, range=(0.0, 1.0))
        np.testing.assert_array_equal(v[key]["counts"], ref)
        assert np.sum(v[key]["density"]) * (1 / 100) == pytest.approx(1.0)
        assert v[key]["n"] == sel.sum()
        for qq in qs:
            assert v[key]["quantiles"][qq] == np.quantile(q[sel], qq, method="inverted_cdf")
        assert v[key]["min"] == q[sel].min() and v[key]["max"] == q[sel].max()
        assert v[key]["mean"] == pytest.approx(q[sel].mean(), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# unbounded scores: the float16 encoding
# ---------------------------------------------------------------------------------------------


def test_float16_codes_preserve_order_and_roundtrip():
    codes = np.arange(1 << 16)
    v = dequantize(codes, 16, "float16")
    real = ~np.isnan(v) & (codes != 0x7FFF)  # 0x7FFF would be -0, which is stored as +0 (0x8000)
    assert real.sum() == 2 * (0x7C00 + 1) - 1  # every float16 from -inf to +inf, zero once
    assert np.all(np.diff(v[real]) > 0)  # integer order = float order
    np.testing.assert_array_equal(quantize(v[real], 16, "float16"), codes[real])
    x = np.array([-np.inf, -7e4, -65504.0, -1.5, -0.0, 0.0, 6e-8, 1.0, 1.0001, 65504.0, 7e4, np.inf])
    c = quantize(x, encoding="float16")
    assert c.dtype == np.uint16
    assert c.tolist() == [0x03FF, 0x03FF, 0x0400, 0x41FF, 0x8000, 0x8000, 0x8001, 0xBC00, 0xBC00, 0xFBFF, 0xFC00, 0xFC00]
    with np.errstate(over="ignore"):
        x16 = x.astype(np.float16).astype(np.float64) + 0.0  # -0 + 0 = +0
    np.testing.assert_array_equal(dequantize(c, encoding="float16"), x16)
    with pytest.raises(InputError, match="NaN"):
        quantize(np.array([-3.0, np.nan]), encoding="float16")
    with pytest.raises(InputError, match="bits=16"):
        quantize(np.zeros(2), 12, "float16")
    with pytest.raises(InputError, match="encoding"):
        PooledHistogram(encoding="log")


def _logit_images(seed: int, n_images: int = 4, shape=(30, 40)):
    """Logits rounded to 0.25 (many tied scores); OoD pixels get flatter logits."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        lab = rng.choice(np.array([IN_ID, OUT_ID, VOID], np.uint8), size=shape, p=[0.8, 0.12, 0.08])
        logits = rng.normal(size=(19, *shape)) * np.where(lab == OUT_ID, 1.5, 4.0)
        out.append(((np.round(4 * logits) / 4).astype(np.float32), lab))
    return out


@pytest.mark.parametrize("scorer", ["max_logit", "energy"])
def test_unbounded_scores_are_ranked_exactly(scorer):
    from meta_ood.pixel_eval import score_encoding
    from meta_ood.scores import SCORERS

    assert score_encoding(scorer) == "float16"
    images = [(SCORERS[scorer](lg), lab) for lg, lab in _logit_images(31)]
    h = PooledHistogram(encoding="float16", image_bits=16)
    clipped = PooledHistogram()  # the [0, 1] grid: every score of these scorers lands in one bin
    for k, (s, lab) in enumerate(images):
        h.update(s, lab, IN_ID, OUT_ID, image_id=f"img{k}")
        clipped.update(s, lab, IN_ID, OUT_ID)
    s = np.concatenate([x.ravel() for x, _ in images])
    lab = np.concatenate([y.ravel() for _, y in images])
    keep = (lab == IN_ID) | (lab == OUT_ID)
    q = s[keep].astype(np.float16).astype(np.float64)
    y = lab[keep] == OUT_ID
    assert np.unique(q).size < q.size // 2  # ties
    m = h.metrics()
    _check_against_sklearn(m, q, y)
    assert m["auroc"] > 0.8 and m["best_f1_threshold"] in set(q.tolist())
    fpr, tpr, _ = roc_curve(y, q, drop_intermediate=False)
    assert m["fpr95"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-9)
    assert clipped.metrics()["auroc"] == 0.5  # what clipping to [0, 1] did to these scores
    # the bootstrap at full resolution resamples exactly the float16 scores of the drawn images
    reps = bootstrap_replicates(h, n_boot=3, seed=2)
    w = reps["weights"][1]
    parts = [images[i] for i in range(len(images)) for _ in range(w[i])]
    sr = np.concatenate([x.ravel() for x, _ in parts])
    lr = np.concatenate([y_.ravel() for _, y_ in parts])
    kr = (lr == IN_ID) | (lr == OUT_ID)
    qr = sr[kr].astype(np.float16).astype(np.float64)
    assert reps["auroc"][1] == pytest.approx(roc_auc_score(lr[kr] == OUT_ID, qr), abs=1e-9)


def test_float16_histogram_roundtrip_merge_violin(tmp_path):
    from meta_ood.scores import max_logit

    images = [(max_logit(lg), lab) for lg, lab in _logit_images(32, n_images=5)]
    single = PooledHistogram(encoding="float16", image_bits=14)
    a = PooledHistogram(encoding="float16", image_bits=14)
    b = PooledHistogram(encoding="float16", image_bits=14)
    for k, (s, lab) in enumerate(images):
        single.update(s, lab, IN_ID, OUT_ID, image_id=f"img{k}")
        (a if k < 3 else b).update(s, lab, IN_ID, OUT_ID, image_id=f"img{k}")
    b.save(tmp_path / "b.npz")
    loaded = PooledHistogram.load(tmp_path / "b.npz")
    assert loaded.encoding == "float16"
    np.testing.assert_array_equal(loaded.values()[loaded.pos + loaded.neg > 0], b.values()[b.pos + b.neg > 0])
    merged = a.merge(loaded)
    m1, m2 = merged.metrics(), single.metrics()
    for key in ("auroc", "auprc", "fpr95", "best_f1", "best_f1_threshold"):
        assert m1[key] == m2[key]
    assert m1["best_f1_threshold"] < 0  # a negated max logit, in score units
    assert bootstrap(merged, n_boot=40, seed=3) == bootstrap(single, n_boot=40, seed=3)
    with pytest.raises(InputError, match="encoding"):
        PooledHistogram().merge(PooledHistogram(encoding="float16"))

    s = np.concatenate([x.ravel() for x, _ in images])
    lab = np.concatenate([y.ravel() for _, y in images])
    keep = (lab == IN_ID) | (lab == OUT_ID)
    q, y = s[keep].astype(np.float16).astype(np.float64), lab[keep] == OUT_ID
    v = score_histogram_for_violin(merged, n_bins=20, quantiles=(0.0, 0.5, 1.0))
    assert v["encoding"] == "float16"
    assert v["edges"][0] == q.min() and v["edges"][-1] == q.max()  # the observed range
    width = (q.max() - q.min()) / 20
    for key, sel in (("in", ~y), ("out", y)):
        ref = np.minimum(np.floor((q[sel] - q.min()) / (q.max() - q.min()) * 20), 19).astype(int)
        np.testing.assert_array_equal(v[key]["counts"], np.bincount(ref, minlength=20))
        assert np.sum(v[key]["density"]) * width == pytest.approx(1.0)
        assert v[key]["quantiles"][0.5] == np.quantile(q[sel], 0.5, method="inverted_cdf")
        assert v[key]["mean"] == pytest.approx(q[sel].mean(), rel=1e-12)


def test_version_1_histogram_files_load_as_unit_encoding(tmp_path):
    h = _fill(_images(6, n_images=2))
    h.save(tmp_path / "h.npz")
    with np.load(tmp_path / "h.npz") as z:
        old = {k: z[k] for k in z.files if k != "encoding"}
    old["format"] = np.array("meta_ood.PooledHistogram/1")
    np.savez(tmp_path / "v1.npz", **old)
    loaded = PooledHistogram.load(tmp_path / "v1.npz")
    assert loaded.encoding == "unit" and loaded.metrics()["auroc"] == h.metrics()["auroc"]
