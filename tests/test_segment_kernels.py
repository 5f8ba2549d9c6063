"""The compiled loops of the segment metrics against the numpy / scipy computations they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from meta_ood.segments import pixels
from meta_ood.segments.frame import STRUCT
from meta_ood.segments.kernels import label_level, screen_mask, screen_table

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def _softmax16(seed: int, c: int = 19, h: int = 48, w: int = 64) -> np.ndarray:
    """Float16 probabilities with smooth regions of every entropy, many of them near the thresholds."""
    rng = np.random.default_rng(seed)
    logits = ndimage.zoom(rng.normal(size=(c, h // 8, w // 8)), (1, 8, 8), order=1)
    temp = ndimage.zoom(rng.uniform(0.05, 3.0, size=(h // 4, w // 4)), 4, order=1)
    logits = logits * (6.0 / temp)[None]
    p = np.exp(logits - logits.max(axis=0))
    return (p / p.sum(axis=0)).astype(np.float16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_float16_pass_equals_the_numpy_pass(seed):
    """The compiled float16 pass gives the candidates, levels, E, D, V and argmax of the numpy pass over the
    same values read as float32 (E: the reference's float32 formula in both), undecided pixels included."""
    probs = _softmax16(seed)
    void = np.zeros(probs.shape[1:], bool)
    void[:5] = True
    fast = pixels._scan(probs.view(np.uint16), np.dtype(np.float16), void, LEVELS, exact=False)
    wide = probs.astype(np.float32)
    slow = pixels._scan(wide.view(np.uint32), np.dtype(np.float32), void, LEVELS, exact=False)
    assert fast is not None and slow is not None
    assert fast.cand.size > 100 and set(np.unique(fast.lev)) == set(range(len(LEVELS)))
    order_f, order_s = np.argsort(fast.cand), np.argsort(slow.cand)
    np.testing.assert_array_equal(fast.cand[order_f], slow.cand[order_s])
    np.testing.assert_array_equal(fast.lev[order_f], slow.lev[order_s])
    for key in ("E", "D", "V"):
        np.testing.assert_array_equal(fast.heat[key][order_f], slow.heat[key][order_s], err_msg=key)
    np.testing.assert_array_equal(fast.argmax, np.argmax(probs, axis=0))
    # some pixels were decided exactly: their estimate lay within the margin of a threshold
    e = fast.heat["E"]
    assert (np.abs(e[:, None] - np.array(LEVELS)[None]) < pixels.ESTIMATE_MARGIN).any()


def test_float16_values_the_bits_cannot_vouch_for_take_the_exact_path():
    """A float16 softmax with negative zeros gives the results of the same values with positive zeros."""
    probs = _softmax16(3)
    probs[probs == 0] = 0
    assert (probs == 0).any()
    neg = probs.copy()
    neg[probs == 0] = -0.0
    void = np.zeros(probs.shape[1:], bool)
    assert pixels._scan(neg.view(np.uint16), np.dtype(np.float16), void, LEVELS, exact=False) is None
    a, b = pixels.pixel_data(probs, void, LEVELS), pixels.pixel_data(neg, void, LEVELS)
    order_a, order_b = np.argsort(a.cand), np.argsort(b.cand)
    np.testing.assert_array_equal(a.cand[order_a], b.cand[order_b])
    np.testing.assert_array_equal(a.lev[order_a], b.lev[order_b])
    np.testing.assert_array_equal(a.heat["E"][order_a], b.heat["E"][order_b])


def test_the_screen_table_equals_the_corners():
    """Clearing by the per-octave table equals clearing where some corner ``(a, b)`` of screen_corners holds."""
    rng = np.random.default_rng(1)
    n = 50000
    p1 = rng.integers(1, 0x7C00, n).astype(np.uint16)
    p2 = (p1 - rng.integers(0, 40 << 10, n).clip(0, p1)).astype(np.uint16)
    p3 = (p2 - rng.integers(0, 40 << 10, n).clip(0, p2)).astype(np.uint16)
    for t_min, c in ((0.1, 19), (0.3, 19), (0.02, 3), (0.5, 2)):
        corners = pixels.screen_corners(t_min, c)
        expected = np.ones(n, bool)
        for a, b in corners:
            expected &= ~((p1.astype(np.int64) - p2 >= a << 10) & (p1.astype(np.int64) - p3 >= b << 10))
        got = np.ones(n, bool)
        screen_mask(p1, p2, p3, screen_table(corners, 10), 10, got)
        np.testing.assert_array_equal(got, expected)
        assert (~got).any() or not corners


@pytest.mark.parametrize("seed", [0, 1])
def test_label_level_equals_scipy_label_at_every_level(seed):
    """Nested masks labelled level by level in one reused map: the labels (numbering included), the first
    position and size of every component equal scipy.ndimage.label with 8-connectivity; excluded pixels
    (the ground truth) stay 0."""
    rng = np.random.default_rng(seed)
    h, w = 60, 90
    field = ndimage.gaussian_filter(rng.normal(size=(h, w)), 2.5)
    lev_img = np.digitize(field, np.quantile(field, [0.3, 0.5, 0.65, 0.8, 0.9, 0.97])) - 1  # -1 .. 5
    lev_img[rng.random((h, w)) < 0.03] = -1  # holes
    excluded = np.zeros((h, w), bool)
    excluded[20:28, 30:50] = True
    win = np.full((h + 2, w + 2), -1, np.int64)  # a zero ring around the image
    win[1:-1, 1:-1] = np.where(excluded, -1, lev_img)
    pos = np.flatnonzero(win >= 0)  # row-major
    lev = win.ravel()[pos].astype(np.int8)
    labels = np.zeros(win.size, np.int32)
    count = pos.size
    work_pos, work_lev = pos.copy(), lev.copy()
    for level in range(6):
        count, n, first, size = label_level(work_pos, work_lev, count, level, labels, w + 2)
        ref, n_ref = ndimage.label(win >= level, structure=STRUCT)
        assert n == n_ref > 1
        np.testing.assert_array_equal(labels.reshape(win.shape), ref)
        flat = ref.ravel()
        np.testing.assert_array_equal(first[1:], [np.flatnonzero(flat == k)[0] for k in range(1, n + 1)])
        np.testing.assert_array_equal(size, np.bincount(flat, minlength=n + 1) * (np.arange(n + 1) > 0))
        assert count == int((win >= level).sum())
