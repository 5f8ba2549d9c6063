"""Tests of the pixel-wise dispersion maps (meta_ood.scores)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats

from meta_ood import scores
from meta_ood.errors import InputError


def _golden_files(golden_dir):
    files = sorted(golden_dir.glob("segments_*.npz"))
    assert files, f"no segments_*.npz in {golden_dir}"
    return files


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def _random_probs(rng, shape=(19, 23, 31), scale=4.0, dtype=np.float32) -> np.ndarray:
    return _softmax(rng.normal(scale=scale, size=shape)).astype(dtype)


# -- golden parity ----------------------------------------------------------------------


def test_golden_pixel_maps(golden_dir):
    for path in _golden_files(golden_dir):
        d = np.load(path)
        p = d["in_probs"]
        e = scores.reference_entropy(p)
        assert e.dtype == np.float32
        np.testing.assert_allclose(e, d["aux_heatmap_E"], rtol=0, atol=1e-6, err_msg=path.name)
        np.testing.assert_allclose(scores.probability_margin(p), d["aux_heatmap_D"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(scores.variation_ratio(p), d["aux_heatmap_V"], rtol=0, atol=1e-6)
        em = scores.compute_entropy_map(p, (), with_argmax=True)
        np.testing.assert_array_equal(em.argmax, d["aux_argmax"], err_msg=path.name)
        _, _, idx = scores.top2(p)
        np.testing.assert_array_equal(idx, d["aux_argmax"])
        np.testing.assert_allclose(scores.normalized_entropy(p), d["aux_mask_entropy"], rtol=0, atol=1e-6)


def test_golden_ood_mask(golden_dir):
    for path in _golden_files(golden_dir):
        d = np.load(path)
        mask = scores.entropy_mask(d["in_probs"], float(d["in_t"]))
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, d["in_ood_mask"].astype(bool), err_msg=path.name)


def test_entropy_mask_decides_like_reference_next_to_threshold():
    """Pixels within 1e-7 of t: the decision must follow scipy.stats.entropy exactly."""
    c, t = 19, 0.5
    base = np.full(c, 1.0 / c)
    peak = np.zeros(c)
    peak[0] = 1.0

    def ent(a):
        p = (a * peak + (1 - a) * base).astype(np.float32)
        return scipy.stats.entropy(p) / np.log(c)

    lo, hi = 0.0, 1.0  # entropy decreases in a
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ent(mid) > t else (lo, mid)
    a = lo + np.linspace(-3e-7, 3e-7, 400)
    p = (a[None, :] * peak[:, None] + (1 - a[None, :]) * base[:, None]).astype(np.float32)
    p = p.reshape(c, 20, 20)
    reference = scipy.stats.entropy(p) / np.log(c) >= t
    assert 0 < reference.sum() < reference.size  # the threshold really cuts through
    fast = scores.normalized_entropy(p) >= t
    assert (fast != reference).any()  # float32 alone would decide some pixels differently
    np.testing.assert_array_equal(scores.entropy_mask(p, t), reference)
    em = scores.compute_entropy_map(p, (0.3, t))
    np.testing.assert_array_equal(em.mask(t), reference)
    with pytest.raises(ValueError):
        em.mask(0.4)


# -- closed forms and brute force ----------------------------------------------------------


def test_uniform_and_one_hot():
    c, h, w = 19, 5, 7
    uniform = np.full((c, h, w), 1.0 / c, np.float32)
    one_hot = np.zeros((c, h, w), np.float32)
    one_hot[3] = 1.0
    np.testing.assert_allclose(scores.normalized_entropy(uniform), 1.0, atol=1e-6)
    np.testing.assert_allclose(scores.normalized_entropy(one_hot), 0.0, atol=1e-7)
    assert scores.entropy_mask(uniform, 0.99).all()
    assert not scores.entropy_mask(one_hot, 0.1).any()
    eps = float(np.finfo(np.float32).eps)
    # reference E: one-hot gives log(1 + eps) / log(1/C) < 0, uniform slightly below 1
    np.testing.assert_allclose(scores.reference_entropy(one_hot), math.log1p(eps) / math.log(1 / c), atol=1e-9)
    assert (scores.reference_entropy(one_hot) < 0).all()
    expected_uniform = math.log(1 / c + eps) / math.log(1 / c)
    np.testing.assert_allclose(scores.reference_entropy(uniform), expected_uniform, atol=1e-6)
    assert (scores.reference_entropy(uniform) < 1).all()
    np.testing.assert_allclose(scores.variation_ratio(one_hot), 0.0)
    np.testing.assert_allclose(scores.probability_margin(one_hot), 0.0)
    np.testing.assert_allclose(scores.msp(one_hot), 1.0)
    np.testing.assert_allclose(scores.variation_ratio(uniform), 1 - 1 / c, atol=1e-7)
    # two tied maxima: the second largest equals the largest, margin = 1
    tie = np.zeros((c, h, w), np.float32)
    tie[[2, 5]] = 0.5
    np.testing.assert_allclose(scores.probability_margin(tie), 1.0)
    assert (scores.compute_entropy_map(tie, with_argmax=True).argmax == 2).all()


def test_brute_force_against_float64():
    rng = np.random.default_rng(7)
    p = _random_probs(rng, shape=(19, 9, 11))
    p64 = p.astype(np.float64)
    ent = np.zeros(p.shape[1:])
    vr = np.zeros(p.shape[1:])
    mg = np.zeros(p.shape[1:])
    for r in range(p.shape[1]):
        for c in range(p.shape[2]):
            v = p64[:, r, c] / p64[:, r, c].sum()
            ent[r, c] = -sum(x * math.log(x) for x in v if x > 0) / math.log(19)
            s = sorted(p64[:, r, c], reverse=True)
            vr[r, c] = 1 - s[0]
            mg[r, c] = 1 - s[0] + s[1]
    np.testing.assert_allclose(scores.normalized_entropy(p), ent, atol=1e-6)
    np.testing.assert_allclose(scores.variation_ratio(p), vr, atol=1e-7)
    np.testing.assert_allclose(scores.probability_margin(p), mg, atol=1e-7)
    np.testing.assert_allclose(scores.msp(p), 1 - vr, atol=1e-7)
    # renormalization: a constant factor per pixel does not change the entropy
    scaled = (p64 * rng.uniform(0.5, 1.5, size=p.shape[1:])).astype(np.float32)
    np.testing.assert_allclose(scores.normalized_entropy(scaled), ent, atol=2e-6)


def test_blocks_cover_many_rows():
    rng = np.random.default_rng(3)
    p = _random_probs(rng, shape=(19, 157, 300), scale=2.0)  # several row blocks
    p64 = p.astype(np.float64)
    ent = scipy.stats.entropy(p64) / np.log(19)
    np.testing.assert_allclose(scores.normalized_entropy(p), ent, atol=1e-6)
    eps = np.finfo(np.float32).eps
    e_ref = (p64 * np.log(p64 + eps)).sum(axis=0) / np.log(1 / 19)
    np.testing.assert_allclose(scores.reference_entropy(p), e_ref, atol=2e-6)
    np.testing.assert_array_equal(scores.compute_entropy_map(p, with_argmax=True).argmax, p.argmax(axis=0))


def test_float16_input():
    rng = np.random.default_rng(11)
    p16 = _random_probs(rng, shape=(19, 40, 50), scale=6.0, dtype=np.float16)
    assert (p16 == 0).any() and ((p16 > 0) & (p16 < 6.1e-5)).any()  # zeros and subnormals occur
    p32 = p16.astype(np.float32)
    np.testing.assert_array_equal(scores.as_float32(p16), p32)
    for fn in (scores.normalized_entropy, scores.reference_entropy, scores.variation_ratio,
               scores.probability_margin, scores.msp):
        out = fn(p16)
        assert out.dtype == np.float32 and out.shape == (40, 50)
        np.testing.assert_array_equal(out, fn(p32))
    np.testing.assert_array_equal(scores.entropy_mask(p16, 0.3), scores.entropy_mask(p32, 0.3))
    ent = scipy.stats.entropy(p16.astype(np.float64)) / np.log(19)
    np.testing.assert_allclose(scores.normalized_entropy(p16), ent, atol=1e-6)


def test_float16_conversion_all_bit_patterns():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    finite_pos = bits[bits < 0x7C00].view(np.float16)
    np.testing.assert_array_equal(scores.as_float32(finite_pos), finite_pos.astype(np.float32))
    every = bits.view(np.float16)  # with negatives, inf and nan: the exact fallback
    np.testing.assert_array_equal(scores.as_float32(every), every.astype(np.float32))


def test_float64_input():
    rng = np.random.default_rng(5)
    p = _softmax(rng.normal(size=(19, 6, 8)))
    np.testing.assert_allclose(scores.normalized_entropy(p), scipy.stats.entropy(p) / np.log(19), atol=1e-6)


# -- logit scores -------------------------------------------------------------------------


def test_max_logit_and_energy():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3, size=(19, 7, 9)).astype(np.float32)
    np.testing.assert_allclose(scores.max_logit(logits), -logits.max(axis=0))
    l64 = logits.astype(np.float64)
    for temp in (1.0, 2.5):
        expected = -temp * scipy.special.logsumexp(l64 / temp, axis=0)
        np.testing.assert_allclose(scores.energy(logits, T=temp), expected, rtol=1e-5, atol=1e-5)
    big = np.full((19, 2, 2), 1000.0, np.float32)  # no overflow
    np.testing.assert_allclose(scores.energy(big), -(1000 + math.log(19)), rtol=1e-6)
    with pytest.raises(InputError):
        scores.energy(logits, T=0)


def test_scorers_higher_means_more_anomalous():
    assert set(scores.SCORERS) == {"entropy", "variation_ratio", "margin", "msp", "max_logit", "energy"}
    assert scores.LOGIT_SCORERS == {"max_logit", "energy"}
    logits = np.zeros((19, 1, 2), np.float32)
    logits[4, 0, 1] = 12.0  # pixel 0: flat (anomalous), pixel 1: confident
    probs = _softmax(logits.astype(np.float64)).astype(np.float32)
    for name, fn in scores.SCORERS.items():
        out = fn(logits if name in scores.LOGIT_SCORERS else probs)
        assert out.dtype == np.float32 and out.shape == (1, 2)
        assert out[0, 0] > out[0, 1], name
    np.testing.assert_allclose(scores.SCORERS["msp"](probs), 1 - scores.msp(probs), atol=1e-7)


def test_unit_interval_scorers_and_their_histogram_encoding():
    from meta_ood.pixel_eval import score_encoding

    assert scores.UNIT_INTERVAL_SCORERS | scores.LOGIT_SCORERS == set(scores.SCORERS)
    assert not scores.UNIT_INTERVAL_SCORERS & scores.LOGIT_SCORERS
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=6, size=(19, 30, 40)).astype(np.float32)
    logits[:, 0, :5] = 0.0  # uniform pixels: the maximal scores
    logits[3, 1, :5] = 80.0  # one-hot pixels: the minimal ones
    probs = _softmax(logits.astype(np.float64)).astype(np.float32)
    for name in scores.UNIT_INTERVAL_SCORERS:
        out = scores.SCORERS[name](probs)
        assert -1e-6 <= out.min() and out.max() <= 1 + 1e-6, name
        assert out[1, :5].max() < 1e-6 and out[0, :5].min() > 0.9, name
        assert score_encoding(name) == "unit"
    # the logit scorers leave [0, 1]: the negated max logit of a one-hot pixel is -80
    assert scores.max_logit(logits)[1, 0] == -80.0
    assert scores.energy(logits)[0, 0] == pytest.approx(-math.log(19), rel=1e-6)
    for name in scores.LOGIT_SCORERS:
        assert score_encoding(name) == "float16"
    with pytest.raises(InputError, match="unknown scorer"):
        score_encoding("entropie")


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_probabilities(bad):
    p = np.full((19, 4, 5), 1 / 19, np.float32)
    p[7, 2, 3] = bad
    with pytest.raises(InputError, match="non-finite"):
        scores.normalized_entropy(p)
    with pytest.raises(InputError, match="non-finite"):
        scores.entropy_mask(p.astype(np.float16), 0.5)


def test_bad_shapes_and_values():
    with pytest.raises(InputError, match="expected a"):
        scores.normalized_entropy(np.ones((4, 5), np.float32))
    with pytest.raises(InputError, match="floating"):
        scores.normalized_entropy(np.ones((19, 4, 5), np.int32))
    p = np.full((19, 4, 5), 1 / 19, np.float32)
    p[0, 0, 0] = -0.1
    with pytest.raises(InputError, match="negative"):
        scores.normalized_entropy(p)
    p = np.full((19, 4, 5), 1 / 19, np.float32)
    p[:, 3, 1] = 0
    with pytest.raises(InputError, match=r"pixel \(row 3, column 1\) sum to 0"):
        scores.normalized_entropy(p)
