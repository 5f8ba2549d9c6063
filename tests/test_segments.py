"""Tests of the segment metrics (meta_ood.segments).

Three independent checks: the golden input/output pairs of the reference implementation, a
slow pure-Python implementation of the documented definitions on small random images, and
hand-made cases with known answers.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from conftest import GOLDEN_DIR
from meta_ood import segments as sg
from meta_ood.errors import InputError

GOLDEN = GOLDEN_DIR
GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("segments_*.npz"))

INTEGER_PRED = {"iou0", "prc", "S", "S_in", "S_bd"}
INTEGER_GT = {"iou0", "train_class", "label_class", "S", "S_in", "S_bd"} | {f"S_{c}" for c in range(19)}
NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def _compare(df: pd.DataFrame, expected: dict, keys, integer_keys, atol: float, what: str):
    assert list(df.columns) == list(keys), what
    for k in keys:
        got = df[k].to_numpy()
        exp = np.asarray(expected[k], np.float64)
        assert got.shape == exp.shape, f"{what} {k}: {got.shape} vs {exp.shape}"
        if k in integer_keys:
            np.testing.assert_array_equal(got, exp, err_msg=f"{what} {k}")
        else:
            np.testing.assert_allclose(got, exp, rtol=0, atol=atol, err_msg=f"{what} {k}")


# -- golden --------------------------------------------------------------------------------


@pytest.fixture(params=GOLDEN_FILES or ["<missing>"])
def golden_case(request, golden_dir):
    path = golden_dir / request.param
    assert path.is_file(), f"golden file {path} missing"
    return np.load(path)


def test_golden_pred(golden_case):
    d = golden_case
    keys = [str(k) for k in d["meta_pred_keys"]]
    assert tuple(keys) == sg.PRED_KEYS
    df, comp = sg.segment_metrics(d["in_probs"], d["in_gt_train"], float(d["in_t"]), int(d["in_ood_index"]))
    assert comp.dtype == d["pred_components"].dtype
    np.testing.assert_array_equal(comp, d["pred_components"])
    expected = {k: d["pred_" + k] for k in keys}
    _compare(df, expected, keys, INTEGER_PRED, 1e-12, str(d["meta_case"]))


def test_golden_gt(golden_case):
    d = golden_case
    keys = [str(k) for k in d["meta_gt_keys"]]
    assert tuple(keys) == sg.GT_KEYS
    df, comp = sg.gt_segment_metrics(d["in_probs"], d["in_gt_train"], float(d["in_t"]), int(d["in_ood_index"]))
    assert comp.dtype == d["gt_components"].dtype
    np.testing.assert_array_equal(comp, d["gt_components"])
    expected = {k: d["gt_" + k] for k in keys}
    _compare(df, expected, keys, INTEGER_GT, 1e-12, str(d["meta_case"]))


def test_golden_multi_equals_single_and_float16(golden_case):
    d = golden_case
    t = float(d["in_t"])
    probs, gt = d["in_probs"], d["in_gt_train"]
    res = sg.segment_metrics_multi(probs, gt, (0.7, t, 0.3, 0.5, t), 2)
    assert list(res) == list(dict.fromkeys([0.7, t, 0.3, 0.5]))
    pred_df, pred_comp, gt_df, gt_comp = res[t]
    np.testing.assert_array_equal(pred_comp, d["pred_components"])
    np.testing.assert_array_equal(gt_comp, d["gt_components"])
    keys = [str(k) for k in d["meta_pred_keys"]]
    _compare(pred_df, {k: d["pred_" + k] for k in keys}, keys, INTEGER_PRED, 1e-12, "multi pred")
    keys = [str(k) for k in d["meta_gt_keys"]]
    _compare(gt_df, {k: d["gt_" + k] for k in keys}, keys, INTEGER_GT, 1e-12, "multi gt")
    # float16 store: same code path as its exact float32 cast
    p16 = probs.astype(np.float16)
    a, ac = sg.segment_metrics(p16, gt, t, 2)
    b, bc = sg.segment_metrics(p16.astype(np.float32), gt, t, 2)
    np.testing.assert_array_equal(ac, bc)
    pd.testing.assert_frame_equal(a, b)


# -- slow reference implementation ---------------------------------------------------------


def _bf_label(mask):
    """8-connected components, numbered in row-major order of their first pixel."""
    h, w = len(mask), len(mask[0])
    lab = [[0] * w for _ in range(h)]
    comps = []
    for r in range(h):
        for c in range(w):
            if mask[r][c] and not lab[r][c]:
                k = len(comps) + 1
                lab[r][c] = k
                pixels, queue = [], deque([(r, c)])
                while queue:
                    y, x = queue.popleft()
                    pixels.append((y, x))
                    for dy, dx in NEIGHBOURS:
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and mask[yy][xx] and not lab[yy][xx]:
                            lab[yy][xx] = k
                            queue.append((yy, xx))
                comps.append(sorted(pixels))
    return lab, comps


def _in_image_neighbours(y, x, h, w):
    for dy, dx in NEIGHBOURS:
        if 0 <= y + dy < h and 0 <= x + dx < w:
            yield y + dy, x + dx


def _bf_adjusted_iou(pixels, own, other):
    """|P & other| / (|P| + sizes of components of (other minus own) next to P), 0 if disjoint."""
    h, w = len(own), len(own[0])
    inter = sum(1 for y, x in pixels if other[y][x])
    if inter == 0:
        return 0.0
    rest = [[other[y][x] and not own[y][x] for x in range(w)] for y in range(h)]
    rest_lab, rest_comps = _bf_label(rest)
    touching = {rest_lab[yy][xx] for y, x in pixels for yy, xx in _in_image_neighbours(y, x, h, w)
                if rest_lab[yy][xx]}
    return inter / (len(pixels) + sum(len(rest_comps[k - 1]) for k in touching))


def _bf_maps(probs):
    """E, D, V and argmax per pixel, straight from the documented definitions."""
    c, h, w = probs.shape
    eps = np.float32(np.finfo(np.float32).eps)
    e = np.zeros((h, w), np.float32)
    for k in range(c):  # float32, classes added in order
        e = e + probs[k] * np.log(probs[k] + eps)
    e = e / np.float32(np.log(1 / c))
    d = np.zeros((h, w))
    v = np.zeros((h, w))
    arg = np.zeros((h, w), int)
    for y in range(h):
        for x in range(w):
            vals = [float(q) for q in probs[:, y, x]]
            s = sorted(vals, reverse=True)
            d[y, x] = np.float32(1.0 - s[0] + s[1])
            v[y, x] = np.float32(1.0 - s[0])
            arg[y, x] = vals.index(s[0])
    return {"E": e.astype(np.float64), "D": d, "V": v}, arg


def _stats(vals):
    if not vals:
        return 0.0, 0.0
    m = sum(vals) / len(vals)
    return m, sum(x * x for x in vals) / len(vals) - m * m


def _bf_pred(probs, gt, t, ood_id, void_id=255):
    c, h, w = probs.shape
    ent = scipy.stats.entropy(probs) / np.log(c)
    M = [[bool(ent[y, x] >= t and gt[y, x] != void_id) for x in range(w)] for y in range(h)]
    G = [[bool(gt[y, x] == ood_id) for x in range(w)] for y in range(h)]
    maps, arg = _bf_maps(probs)
    _, comps = _bf_label(M)
    comp_map = np.zeros((h, w), int)
    rows = []
    for k, pixels in enumerate(comps, start=1):
        inside = set(pixels)
        bd = [(y, x) for y, x in pixels
              if any((yy, xx) not in inside for yy, xx in _in_image_neighbours(y, x, h, w))]
        interior = [p for p in pixels if p not in set(bd)]
        for y, x in pixels:
            comp_map[y, x] = -k if (y, x) in set(bd) else k
        n, n_in, n_bd = len(pixels), len(interior), len(bd)
        row = {"S": n, "S_in": n_in, "S_bd": n_bd, "S_rel": n / n_bd, "S_rel_in": n_in / n_bd}
        for name, hmap in maps.items():
            m, var = _stats([hmap[p] for p in pixels])
            m_in, var_in = _stats([hmap[p] for p in interior])
            m_bd, var_bd = _stats([hmap[p] for p in bd])
            row.update({name: m, name + "_in": m_in, name + "_bd": m_bd, name + "_rel": m * n / n_bd,
                        name + "_rel_in": m_in * n_in / n_bd, name + "_var": var, name + "_var_in": var_in,
                        name + "_var_bd": var_bd, name + "_var_rel": var * n / n_bd,
                        name + "_var_rel_in": var_in * n_in / n_bd})
        pairs = [arg[yy, xx] for y, x in pixels for yy, xx in _in_image_neighbours(y, x, h, w)
                 if (yy, xx) not in inside]
        for cls in range(c):
            row[f"cprob{cls}"] = sum(float(probs[cls, y, x]) for y, x in pixels) / n
            row[f"ndist{cls}"] = pairs.count(cls) / max(len(pairs), 1)
        row["mean_x"] = sum(y for y, _ in pixels) / n
        row["mean_y"] = sum(x for _, x in pixels) / n
        row["iou"] = _bf_adjusted_iou(pixels, M, G)
        row["iou0"] = float(not any(G[y][x] for y, x in pixels))
        row["prc"] = 0.0
        rows.append(row)
    return {k: [r[k] for r in rows] for k in sg.PRED_KEYS}, comp_map


def _bf_gt(probs, gt, t, ood_id, void_id=255, gt_label=None):
    c, h, w = probs.shape
    gt_label = gt if gt_label is None else gt_label
    ent = scipy.stats.entropy(probs) / np.log(c)
    M = [[bool(ent[y, x] >= t and gt[y, x] != void_id) for x in range(w)] for y in range(h)]
    G = [[bool(gt[y, x] == ood_id) for x in range(w)] for y in range(h)]
    _, arg = _bf_maps(probs)
    _, comps = _bf_label(G)
    comp_map = np.zeros((h, w), int)
    rows = []
    for k, pixels in enumerate(comps, start=1):
        inside = set(pixels)
        bd = {(y, x) for y, x in pixels
              if any((yy, xx) not in inside for yy, xx in _in_image_neighbours(y, x, h, w))}
        for y, x in pixels:
            comp_map[y, x] = -k if (y, x) in bd else k
        n = len(pixels)
        inter = sum(1 for y, x in pixels if M[y][x])
        row = {"iou": _bf_adjusted_iou(pixels, G, M), "iou0": float(inter == 0), "rec": inter / n,
               "train_class": 255.0, "label_class": float(gt_label[pixels[0]]),
               "mean_x": sum(y for y, _ in pixels) / n, "mean_y": sum(x for _, x in pixels) / n,
               "S": n, "S_in": n - len(bd), "S_bd": len(bd)}
        for cls in range(c):
            row[f"S_{cls}"] = sum(1 for p in pixels if arg[p] == cls)
            row[f"cprob{cls}"] = sum(float(probs[cls, y, x]) for y, x in pixels) / n
        rows.append(row)
    return {k: [r[k] for r in rows] for k in sg.GT_KEYS}, comp_map


def _random_case(seed, h=14, w=17):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=12.0, size=(19, h, w))
    temp = rng.uniform(0.3, 1.5, size=(h, w))
    high = rng.random((h, w)) < 0.3  # scattered high-entropy pixels: many small segments
    temp[high] = rng.uniform(0.005, 0.1, size=high.sum())
    # a graded high-entropy blob: nested segments with interiors at every threshold
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(yy - cy, xx - cx)
    blob = dist < 4.5
    temp[blob] = 0.004 * (1 + dist[blob] ** 2)
    z = logits * temp
    p = np.exp(z - z.max(axis=0))
    probs = (p / p.sum(axis=0)).astype(np.float32)
    gt = np.ones((h, w), np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[max(y - 2, 0):y + rng.integers(1, 4), max(x - 3, 0):x + rng.integers(1, 4)] = 2
    gt[rng.random((h, w)) < 0.05] = 2
    if seed % 2:
        gt[0, :] = 255
        gt[rng.random((h, w)) < 0.08] = 255
    return probs, gt


@pytest.mark.parametrize("seed", range(8))
def test_brute_force_random(seed):
    probs, gt = _random_case(seed)
    thresholds = (0.2, 0.35, 0.5)
    multi = sg.segment_metrics_multi(probs, gt, thresholds, 2)
    n_segments = 0
    for t in thresholds:
        exp_pred, exp_comp = _bf_pred(probs, gt, t, 2)
        df, comp = sg.segment_metrics(probs, gt, t, 2)
        np.testing.assert_array_equal(comp, exp_comp)
        _compare(df, exp_pred, sg.PRED_KEYS, INTEGER_PRED, 1e-10, f"seed {seed} t {t} pred")
        exp_gt, exp_gt_comp = _bf_gt(probs, gt, t, 2)
        gdf, gcomp = sg.gt_segment_metrics(probs, gt, t, 2)
        np.testing.assert_array_equal(gcomp, exp_gt_comp)
        _compare(gdf, exp_gt, sg.GT_KEYS, INTEGER_GT, 1e-10, f"seed {seed} t {t} gt")
        # one pass over all thresholds gives the same tables
        m_df, m_comp, m_gdf, m_gcomp = multi[t]
        np.testing.assert_array_equal(m_comp, comp)
        np.testing.assert_array_equal(m_gcomp, gcomp)
        pd.testing.assert_frame_equal(m_df, df, check_exact=False, rtol=1e-12, atol=1e-13)
        pd.testing.assert_frame_equal(m_gdf, gdf, check_exact=False, rtol=1e-12, atol=1e-13)
        n_segments += len(df)
    assert n_segments > 5  # the cases are not trivial


# -- hand-made cases -----------------------------------------------------------------------


def _confident(h, w, cls=1):
    p = np.full((19, h, w), 1e-6, np.float32)
    p[cls] = 1 - 18e-6
    return p


def test_two_single_pixel_segments_in_one_object():
    """The hidden edge case: each 1-pixel segment inside a 20-pixel object has iou 1/19."""
    probs = _confident(10, 12)
    gt = np.ones((10, 12), np.uint8)
    gt[3:7, 4:9] = 2  # 20 pixels
    probs[:, 4, 5] = 1 / 19
    probs[:, 5, 7] = 1 / 19
    df, comp = sg.segment_metrics(probs, gt, 0.5, 2)
    assert len(df) == 2
    np.testing.assert_allclose(df["iou"], [1 / 19, 1 / 19], rtol=1e-15)
    np.testing.assert_array_equal(df["iou0"], [0, 0])
    np.testing.assert_array_equal(df["S"], [1, 1])
    assert comp[4, 5] == -1 and comp[5, 7] == -2  # single pixels are boundary pixels
    gdf, gcomp = sg.gt_segment_metrics(probs, gt, 0.5, 2)
    assert len(gdf) == 1
    np.testing.assert_allclose(gdf["iou"], [2 / 20])
    np.testing.assert_allclose(gdf["rec"], [2 / 20])
    assert (gcomp[gt == 2] != 0).all() and gcomp[4:6, 5:8].min() > 0  # interior of the object
    exp, _ = _bf_pred(probs, gt, 0.5, 2)
    np.testing.assert_allclose(df["iou"], exp["iou"])


def test_segment_at_image_border_and_void():
    probs = _confident(6, 8, cls=4)
    probs[:, 0:3, 0:3] = 1 / 19  # 3x3 segment in the corner
    probs[:, 3:6, 5:8] = 1 / 19  # 3x3 block whose left column is void
    gt = np.ones((6, 8), np.uint8)
    gt[3:6, 5] = 255
    df, comp = sg.segment_metrics(probs, gt, 0.5, 2)
    assert len(df) == 2
    # the corner pixel (0, 0) only borders the image edge and segment pixels: interior
    assert comp[0, 0] == 1 and comp[1, 1] == 1 and comp[2, 2] == -1
    np.testing.assert_array_equal(df["S"], [9, 6])
    np.testing.assert_array_equal(df["S_in"], [4, 2])
    assert (comp[3:6, 5] == 0).all()
    # corner segment: every outside neighbour has class 4. Second segment: 12 (pixel, neighbour)
    # pairs; the 7 with a void neighbour count too (uniform probabilities there: argmax 0)
    np.testing.assert_allclose(df["ndist4"], [1.0, 5 / 12])
    np.testing.assert_allclose(df["ndist0"], [0.0, 7 / 12])
    assert (df[[f"ndist{c}" for c in range(1, 19) if c != 4]].to_numpy() == 0).all()
    np.testing.assert_array_equal(df["iou0"], [1, 1])


def test_no_segments_and_no_ground_truth():
    probs = _confident(9, 11)
    gt = np.ones((9, 11), np.uint8)
    gt[2:4, 2:5] = 2
    df, comp = sg.segment_metrics(probs, gt, 0.3, 2)
    assert df.empty and list(df.columns) == list(sg.PRED_KEYS)
    assert (comp == 0).all() and comp.shape == (9, 11)
    gdf, _ = sg.gt_segment_metrics(probs, gt, 0.3, 2)
    assert len(gdf) == 1 and gdf["iou0"].iloc[0] == 1 and gdf["rec"].iloc[0] == 0
    gdf, gcomp = sg.gt_segment_metrics(probs, np.ones((9, 11), np.uint8), 0.3, 2)
    assert gdf.empty and list(gdf.columns) == list(sg.GT_KEYS) and (gcomp == 0).all()
    res = sg.segment_metrics_multi(probs, np.ones((9, 11), np.uint8), [0.1, 0.9], 2)
    for pred_df, pred_comp, gt_df, gt_comp in res.values():
        assert pred_df.empty and gt_df.empty


def test_segment_covering_the_whole_image():
    """No boundary pixel at all (the reference would divide by zero): documented fallback."""
    probs = np.full((19, 5, 6), 1 / 19, np.float32)
    gt = np.ones((5, 6), np.uint8)
    gt[1:3, 1:3] = 2
    df, comp = sg.segment_metrics(probs, gt, 0.5, 2)
    assert len(df) == 1 and (comp == 1).all()
    row = df.iloc[0]
    assert row["S"] == row["S_in"] == row["S_rel"] == row["S_rel_in"] == 30 and row["S_bd"] == 0
    assert row["E_bd"] == row["E_var_bd"] == 0 and row[[f"ndist{c}" for c in range(19)]].sum() == 0
    assert row["iou"] == pytest.approx(4 / 30)
    gdf, _ = sg.gt_segment_metrics(probs, gt, 0.5, 2)
    assert gdf["iou"].iloc[0] == pytest.approx(4 / 30) and gdf["rec"].iloc[0] == 1


def test_gt_label_class():
    probs, gt = _random_case(3)
    label = np.arange(gt.size, dtype=np.int64).reshape(gt.shape) % 50
    gdf, _ = sg.gt_segment_metrics(probs, gt, 0.3, 2, gt_label=label)
    exp, _ = _bf_gt(probs, gt, 0.3, 2, gt_label=label)
    np.testing.assert_array_equal(gdf["label_class"], exp["label_class"])
    np.testing.assert_array_equal(gdf["train_class"], 255)


# -- feature sets --------------------------------------------------------------------------


def test_feature_sets():
    assert len(sg.PRED_KEYS) == 78 and len(sg.GT_KEYS) == 48
    released = sg.feature_names("released")
    assert len(released) == 75 and released == sorted(set(sg.PRED_KEYS) - {"iou", "iou0", "prc"})
    assert released[:4] == ["D", "D_bd", "D_in", "D_rel"]
    assert released.index("cprob10") < released.index("cprob2")
    paper = sg.feature_names("paper")
    assert len(paper) == 46 and set(paper) <= set(released)
    assert {"E", "D", "V", "S", "S_rel", "S_rel_in", "mean_x", "mean_y"} <= set(paper)
    assert sum(k.startswith("cprob") for k in paper) == 19 and sum(k.startswith("ndist") for k in paper) == 19
    assert paper == [k for k in released if k in set(paper)]
    with pytest.raises(ValueError, match="unknown feature set"):
        sg.feature_names("nonsense")


# -- bad input -----------------------------------------------------------------------------


def test_bad_input():
    probs = _confident(5, 6)
    gt = np.ones((5, 6), np.uint8)
    bad = probs.copy()
    bad[2, 1, 1] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        sg.segment_metrics(bad, gt, 0.5, 2)
    with pytest.raises(InputError, match="non-finite"):
        sg.segment_metrics_multi(bad.astype(np.float16), gt, [0.5], 2)
    with pytest.raises(InputError, match=r"does not match"):
        sg.segment_metrics(probs, np.ones((6, 5), np.uint8), 0.5, 2)
    with pytest.raises(InputError, match=r"does not match"):
        sg.gt_segment_metrics(probs, np.ones((5, 7), np.uint8), 0.5, 2)
    with pytest.raises(InputError, match="threshold"):
        sg.segment_metrics(probs, gt, 1.5, 2)
    with pytest.raises(InputError, match="threshold"):
        sg.segment_metrics_multi(probs, gt, [], 2)
    with pytest.raises(InputError, match="integer"):
        sg.segment_metrics(probs, gt.astype(np.float32), 0.5, 2)
    with pytest.raises(InputError, match="gt_label"):
        sg.gt_segment_metrics(probs, gt, 0.5, 2, gt_label=np.ones((2, 2)))


# -- fast paths against direct computations ------------------------------------------------


def _fragmented_case(seed, h=40, w=56, dtype=np.float16):
    """Softmax with many high-entropy pixels near the thresholds and a ground truth whose objects,
    lines and single pixels cut the predicted segments apart."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=6.0, size=(19, h, w))
    temp = rng.uniform(0.02, 1.2, size=(h, w))
    temp[rng.random((h, w)) < 0.4] = rng.uniform(0.01, 0.12)
    z = logits * temp
    p = np.exp(z - z.max(axis=0))
    probs = (p / p.sum(axis=0)).astype(dtype)
    gt = np.ones((h, w), np.uint8)
    gt[rng.integers(0, h), :] = 2  # a line across the image
    gt[:, rng.integers(0, w)] = 2
    gt[rng.random((h, w)) < 0.04] = 2  # single pixels
    y, x = rng.integers(5, h - 5), rng.integers(5, w - 5)
    gt[y - 4:y + 4, x - 3:x + 3] = 2
    gt[rng.random((h, w)) < 0.05] = 255
    return probs, gt


@pytest.mark.parametrize("seed", range(6))
def test_masks_and_segments_equal_direct_labelling(seed):
    """Candidates (bit screening, estimated entropies, exact re-decisions) and segments (pieces of
    M minus G joined through M & G) equal the direct mask and scipy's labelling of it."""
    from scipy import ndimage

    from meta_ood.scores import entropy_mask

    probs, gt = _fragmented_case(seed, dtype=(np.float16, np.float32)[seed % 2])
    # thresholds next to many pixels' entropies: their decisions need the exact evaluation
    ent = scipy.stats.entropy(probs.astype(np.float64)) / np.log(19)
    ts = tuple(sorted({float(np.round(v, 6)) for v in np.quantile(ent[ent > 0.01], [0.1, 0.4, 0.7, 0.95])}))
    res = sg.segment_metrics_multi(probs, gt, ts, 2)
    for t in ts:
        mask = entropy_mask(probs, t) & (gt != 255)
        expected, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        pred_df, comp, gt_df, _ = res[t]
        np.testing.assert_array_equal(np.abs(comp), expected)
        assert len(pred_df) == n
        single, single_comp = sg.segment_metrics(probs, gt, t, 2)
        np.testing.assert_array_equal(single_comp, comp)
        pd.testing.assert_frame_equal(single, pred_df, check_exact=False, rtol=1e-12, atol=1e-13)
    # the float16 store and its exact float32 cast give the same tables
    if probs.dtype == np.float16:
        wide = sg.segment_metrics_multi(probs.astype(np.float32), gt, ts, 2)
        for t in ts:
            for a, b in zip(res[t], wide[t]):
                if isinstance(a, pd.DataFrame):
                    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-12)
                else:
                    np.testing.assert_array_equal(a, b)


def test_screening_bound_is_sound():
    """Pixels the octave test rules out have a normalized entropy below the lowest threshold."""
    from meta_ood.segments.pixels import screen_corners, top_bits

    rng = np.random.default_rng(5)
    for c in (2, 3, 19):
        n = 20000
        # dominant class plus a random spread of the rest, over many orders of magnitude
        p = rng.random((c, n)) ** rng.uniform(1, 30, size=(1, n))
        p[rng.integers(0, c, n), np.arange(n)] += rng.uniform(0, 4, n)
        p = (p / p.sum(axis=0)).astype(np.float16)
        ent = scipy.stats.entropy(p.astype(np.float32)) / np.log(c)
        b = p.view(np.uint16)[:, None, :]
        p1, p2, p3, _ = (a[0] for a in top_bits(b))
        for t_min in (0.02, 0.1, 0.3):
            settled = np.zeros(n, bool)
            for a, bb in screen_corners(t_min, c):
                settled |= (p1 - p2 >= a << 10) & (p1 - p3 >= bb << 10)
            assert settled.any()
            assert ent[settled].max() < t_min


def test_unusual_values_take_the_exact_path():
    """Negative zeros and values above 2**60 are valid input the bit test does not vouch for."""
    probs, gt = _fragmented_case(1, dtype=np.float32)
    probs[probs < 1e-6] = 0.0
    ref, ref_comp = sg.segment_metrics(probs, gt, 0.3, 2)
    neg = probs.copy()
    neg[probs == 0] = -0.0
    df, comp = sg.segment_metrics(neg, gt, 0.3, 2)
    np.testing.assert_array_equal(comp, ref_comp)
    pd.testing.assert_frame_equal(df, ref)
    big = probs * np.float32(2.0 ** 70)  # exact scaling: same normalized entropies
    df, comp = sg.segment_metrics(big, gt, 0.3, 2)
    np.testing.assert_array_equal(comp, ref_comp)
    np.testing.assert_array_equal(df["S"], ref["S"])
