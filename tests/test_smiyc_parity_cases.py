"""Edge cases against the official SMIYC code's own output (tests/data/golden/smiyc/parity_cases.npz).

Constant maps at a threshold and values at float16 / float32 roundings of it (the comparison type), frames
tied at the top score (the official tie order), unbounded and infinite scores, quantized and continuous
maps, frames with only anomaly, no anomaly or no labelled pixel. Integers exactly, floats to 1e-12.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import GOLDEN_DIR
from meta_ood.errors import InputError
from meta_ood.smiyc.components import FrameTruth
from meta_ood.smiyc.evaluate import array_frames, evaluate_frames
from meta_ood.smiyc.summary import comparison_threshold

PATH = GOLDEN_DIR / "smiyc" / "parity_cases.npz"
TOL = 1e-12
CURVE_KEYS = ("curve_thresholds", "curve_tp", "curve_fp")


def _load():
    z = np.load(PATH)
    results = json.loads(str(z["results_json"]))
    cases = {}
    for name in z["cases"].tolist():
        frames, j = [], 0
        while f"{name}/{j}/scores" in z.files:
            frames.append((f"f{j}", z[f"{name}/{j}/scores"], z[f"{name}/{j}/labels"]))
            j += 1
        curve = {key: z[f"{name}/{key}"] for key in CURVE_KEYS if f"{name}/{key}" in z.files}
        cases[name] = (frames, results[name], curve)
    return cases


CASES = _load()
RAISING = sorted(name for name, (_, res, _) in CASES.items() if "error" in res)
EVALUATED = sorted(name for name in CASES if name not in RAISING)
FIXED = sorted((name, key) for name in EVALUATED for key in CASES[name][1] if key.startswith("segment_fixed_"))


def test_cases_were_made_by_the_official_numpy():
    z = np.load(PATH)
    assert str(z["numpy_version"]).startswith("1.23.")
    assert len(CASES) >= 14 and EVALUATED and RAISING
    assert all(z[key].dtype != object for key in z.files)
    # every evaluated case has its curve, a raising one none
    assert all(len(CASES[name][2]) == 3 for name in EVALUATED)
    assert all(not CASES[name][2] for name in RAISING)
    # both score dtypes, and fixed thresholds in each of them
    dtypes = {s.dtype for name in EVALUATED for _, s, _ in CASES[name][0]}
    assert dtypes == {np.dtype(np.float16), np.dtype(np.float32)}
    assert {name for name, _ in FIXED} >= {"constant_0.4_float32", "constant_0.4_float16", "at_0.3_float32",
                                           "at_0.3_float16"}


def _close(ours, theirs, what):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs official {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL, err_msg=what)


def _evaluate(frames, track, thresholds=(), details=None):
    # float32 scores outside [0, 1] need the exact protocol's float16 encoding (its 'unit' grid refuses them);
    # the official protocol compared here does not depend on it
    unbounded = any(s.dtype == np.float32 and (s.min() < 0 or s.max() > 1) for _, s, _ in frames)
    return evaluate_frames(array_frames(frames), track, n_boot=0, jobs=1, pixel_thresholds=thresholds,
                           details=details, exact_encoding="float16" if unbounded else "auto")


@pytest.mark.parametrize("name", EVALUATED)
def test_pixel_metrics_and_curve_equal_the_official(name):
    frames, off, curve = CASES[name]
    details: dict = {}
    res = _evaluate(frames, off["track"], details=details)
    pix = off["pixel"]
    for key in ("AP", "FPR95", "AUROC", "best_F1", "best_F1_threshold", "FPR95_threshold"):
        _close(res[key], pix[key], f"{name}: {key}")
    # the official curve: its thresholds, and its rates as the counts they are exact divisions of
    tp, fp = curve["curve_tp"], curve["curve_fp"]
    assert tp.size == fp.size == curve["curve_thresholds"].size == pix["n_curve_points"]
    assert (res["n_pos"], res["n_neg"]) == (pix["n_pos"], pix["n_neg"])
    np.testing.assert_array_equal(details["pix_curve_thresholds"], curve["curve_thresholds"], err_msg=name)
    np.testing.assert_array_equal(details["pix_curve_tpr"], tp / pix["n_pos"], err_msg=name)
    np.testing.assert_array_equal(details["pix_curve_fpr"], fp / pix["n_neg"], err_msg=name)
    precision = np.divide(tp, tp + fp, out=np.ones(tp.size), where=tp + fp > 0)
    np.testing.assert_array_equal(details["pix_curve_precision"], precision, err_msg=name)
    for key in ("AP", "FPR95", "AUROC"):
        _close(res["uniform"][key], off["uniform"][key], f"{name}: uniform {key}")


def _nan_or_close(ours, theirs, what):
    if theirs is None or (isinstance(theirs, float) and np.isnan(theirs)):
        assert np.isnan(ours), what
    else:
        _close(ours, theirs, what)


@pytest.mark.parametrize("name", EVALUATED)
def test_component_metrics_equal_the_official(name):
    """At the official best-F1 threshold (read back from its curve) and at each fixed threshold, compared in
    the map's dtype: per-frame counts of ground-truth and predicted components exactly, every sIoU and PPV."""
    frames, off, _ = CASES[name]
    fixed = [(key, off[key]["thresh_p"]) for key in off if key.startswith("segment_fixed_")]
    runs = [("segment_best_F1", None)] + fixed
    for key, thr in runs:
        seg = off[key]
        details: dict = {}
        res = _evaluate(frames, off["track"], () if thr is None else (thr,), details)
        assert (res["segsize"], res["instsize"]) == (seg["thresh_segsize"], seg["thresh_instsize"]), f"{name} {key}"
        prefix = "inst" if thr is None else f"inst{round(100 * thr):03d}"
        summary = res if thr is None else res["at_threshold"][f"{thr:g}"]
        n = len(frames)
        for what, count in (("sIoU_gt", "n_gt"), ("sIoU_pred", "n_pred")):
            sizes = [details[f"{prefix}_frame{i}_{what}"].size for i in range(n)]
            assert sizes == seg[count], f"{name} {key}: {count}"
        for i in range(n):
            for what in ("sIoU_gt", "sIoU_pred", "PPV"):
                _close(details[f"{prefix}_frame{i}_{what}"], seg[f"frame_{what}"][i], f"{name} {key} frame {i}: {what}")
        for ours, theirs in (("sIoU_gt", "sIoU_gt"), ("sIoU_pred", "sIoU_pred"), ("PPV", "PPV"), ("F1_mean", "F1_mean"),
                             ("F1_25", "f1_25"), ("F1_50", "f1_50"), ("F1_75", "f1_75"), ("tp_mean", "tp_mean"),
                             ("fn_mean", "fn_mean"), ("fp_mean", "fp_mean")):
            _nan_or_close(summary[ours], seg[theirs], f"{name} {key}: {ours}")


@pytest.mark.parametrize("name,key", FIXED)
def test_fixed_threshold_components_of_one_frame(name, key):
    """FrameTruth on its own, frame by frame: ``scores > threshold`` compared as numpy 1.23 compares a map with a
    Python float (in the map's dtype), under the official size filters of the case."""
    frames, off, _ = CASES[name]
    seg = off[key]
    for i, (_, scores, labels) in enumerate(frames):
        thr = comparison_threshold(seg["thresh_p"], scores.dtype)
        assert thr.dtype == scores.dtype
        fc = FrameTruth(labels, seg["thresh_instsize"]).components(scores, thr, seg["thresh_segsize"])
        assert (fc.sIoU_gt.size, fc.sIoU_pred.size) == (seg["n_gt"][i], seg["n_pred"][i]), f"{name} {key} frame {i}"
        _close(fc.sIoU_gt, seg["frame_sIoU_gt"][i], f"{name} {key} frame {i}: sIoU_gt")
        _close(fc.PPV, seg["frame_PPV"][i], f"{name} {key} frame {i}: PPV")


def _float64_counts(name, thr, seg):
    frames, off, _ = CASES[name]
    sizes = off[seg]["thresh_instsize"], off[seg]["thresh_segsize"]
    return [FrameTruth(lab, sizes[0]).components(s, np.float64(thr), sizes[1]).sIoU_pred.size for _, s, lab in frames]


def test_the_threshold_compares_in_the_map_dtype():
    """The pixels equal to a threshold: at the Python float 0.3 the official code counts the map dtype's 0.3 as
    not above it (value-based casting), so the dtype cases keep the same components at 0.3 and at dtype(0.3),
    and the cases tell this apart from a float64 comparison (which would count other components)."""
    for tag, dtype in (("float32", np.float32), ("float16", np.float16)):
        off = CASES[f"at_0.3_{tag}"][1]
        assert off["segment_fixed_0.3"]["n_pred"] == off[f"segment_fixed_{float(dtype(0.3))!r}"]["n_pred"]
        assert _float64_counts(f"at_0.3_{tag}", 0.3, "segment_fixed_0.3") != off["segment_fixed_0.3"]["n_pred"]
        const = CASES[f"constant_0.4_{tag}"][1]
        # a whole frame at 0.4 is not above 0.4 in its dtype; it is above 0.3
        assert const["segment_fixed_0.4"]["n_pred"][:2] == [0, 0]
        assert all(k > 0 for k in const["segment_fixed_0.3"]["n_pred"])
    # float32(0.4) > 0.4 in float64: there, the constant frames would be one component each
    assert _float64_counts("constant_0.4_float32", 0.4, "segment_fixed_0.4") == [1, 1, 1]


def test_unbounded_float32_scores_need_the_float16_exact_encoding():
    frames, _, _ = CASES["unbounded"]
    with pytest.raises(InputError, match="exact_encoding='float16'"):
        evaluate_frames(array_frames(frames), "obstacle", n_boot=0, jobs=1)


def test_a_frame_without_labelled_pixel():
    """The official code stops on a frame whose every pixel is void (numpy: zero-size minimum); here it takes no
    part in the pixel metrics (the merged curve of the other frames) and has no component."""
    frames, off, _ = CASES["all_void_frame"]
    assert off["error"].startswith("ValueError: zero-size array")
    details: dict = {}
    res = _evaluate(frames, "obstacle", details=details)
    alone = _evaluate(frames[:1], "obstacle")
    for key in ("AP", "FPR95", "AUROC", "best_F1", "best_F1_threshold"):
        assert res[key] == alone[key]
    assert details["pix_frames_used"].tolist() == [0]
    assert details["inst_frame1_sIoU_gt"].size == 0 and details["inst_frame1_sIoU_pred"].size == 0
