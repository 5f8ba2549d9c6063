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
from meta_ood.smiyc import array_frames, evaluate_frames

PATH = GOLDEN_DIR / "smiyc" / "parity_cases.npz"
TOL = 1e-12


def _load():
    z = np.load(PATH)
    results = json.loads(str(z["results_json"]))
    cases = {}
    for name in z["cases"].tolist():
        frames, j = [], 0
        while f"{name}/{j}/scores" in z.files:
            frames.append((f"f{j}", z[f"{name}/{j}/scores"], z[f"{name}/{j}/labels"]))
            j += 1
        cases[name] = (frames, results[name])
    return cases


CASES = _load()
RAISING = sorted(name for name, (_, res) in CASES.items() if "error" in res)
EVALUATED = sorted(name for name in CASES if name not in RAISING)


def test_cases_were_made_by_the_official_numpy():
    assert str(np.load(PATH)["numpy_version"]).startswith("1.23.")
    assert len(CASES) >= 14 and EVALUATED


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
    frames, off = CASES[name]
    details: dict = {}
    res = _evaluate(frames, off["track"], details=details)
    pix = off["pixel"]
    for key in ("AP", "FPR95", "AUROC", "best_F1", "best_F1_threshold", "FPR95_threshold"):
        _close(res[key], pix[key], f"{name}: {key}")
    # the official curve: its thresholds, and its rates as the counts they are exact divisions of
    tp, fp = np.array(pix["curve_tp"]), np.array(pix["curve_fp"])
    assert (res["n_pos"], res["n_neg"]) == (pix["n_pos"], pix["n_neg"])
    np.testing.assert_array_equal(details["pix_curve_thresholds"], pix["curve_thresholds"], err_msg=name)
    np.testing.assert_array_equal(details["pix_curve_tpr"], tp / pix["n_pos"], err_msg=name)
    np.testing.assert_array_equal(details["pix_curve_fpr"], fp / pix["n_neg"], err_msg=name)
    precision = np.divide(tp, tp + fp, out=np.ones(tp.size), where=tp + fp > 0)
    np.testing.assert_array_equal(details["pix_curve_precision"], precision, err_msg=name)
    for key in ("AP", "FPR95", "AUROC"):
        _close(res["uniform"][key], off["uniform"][key], f"{name}: uniform {key}")


@pytest.mark.parametrize("name", EVALUATED)
def test_component_metrics_equal_the_official(name):
    """At the official best-F1 threshold (read back from its curve) and at each fixed threshold, compared in
    the map's dtype: per-frame counts of ground-truth and predicted components exactly, every sIoU."""
    frames, off = CASES[name]
    runs = [("best_F1", None)] + [(key, value["thresh_p"]) for key, value in off.items() if key.startswith("segment_fixed")]
    for key, thr in runs:
        seg = off["segment_best_F1" if key == "best_F1" else key]
        details: dict = {}
        res = _evaluate(frames, off["track"], () if thr is None else (thr,), details)
        prefix = "inst" if thr is None else f"inst{round(100 * thr):03d}"
        summary = res if thr is None else res["at_threshold"][f"{thr:g}"]
        n = len(frames)
        assert [details[f"{prefix}_frame{i}_sIoU_gt"].size for i in range(n)] == seg["n_gt"], f"{name} {key}: n_gt"
        assert [details[f"{prefix}_frame{i}_sIoU_pred"].size for i in range(n)] == seg["n_pred"], f"{name} {key}: n_pred"
        for i in range(n):
            _close(details[f"{prefix}_frame{i}_sIoU_gt"], seg["frame_sIoU_gt"][i], f"{name} {key} frame {i}: sIoU_gt")
            _close(details[f"{prefix}_frame{i}_sIoU_pred"], seg["frame_sIoU_pred"][i], f"{name} {key} frame {i}: sIoU_pred")
        for ours, theirs in (("sIoU_gt", "sIoU_gt"), ("sIoU_pred", "sIoU_pred"), ("PPV", "PPV"), ("F1_mean", "F1_mean")):
            if seg[theirs] is None or (isinstance(seg[theirs], float) and np.isnan(seg[theirs])):
                assert np.isnan(summary[ours]), f"{name} {key}: {ours}"
            else:
                _close(summary[ours], seg[theirs], f"{name} {key}: {ours}")


def test_unbounded_float32_scores_need_the_float16_exact_encoding():
    frames, _ = CASES["unbounded"]
    with pytest.raises(InputError, match="exact_encoding='float16'"):
        evaluate_frames(array_frames(frames), "obstacle", n_boot=0, jobs=1)


def test_a_frame_without_labelled_pixel():
    """The official code stops on a frame whose every pixel is void (numpy: zero-size minimum); here it takes no
    part in the pixel metrics (the merged curve of the other frames) and has no component."""
    frames, off = CASES["all_void_frame"]
    assert off["error"].startswith("ValueError: zero-size array")
    details: dict = {}
    res = _evaluate(frames, "obstacle", details=details)
    alone = _evaluate(frames[:1], "obstacle")
    for key in ("AP", "FPR95", "AUROC", "best_F1", "best_F1_threshold"):
        assert res[key] == alone[key]
    assert details["pix_frames_used"].tolist() == [0]
    assert details["inst_frame1_sIoU_gt"].size == 0 and details["inst_frame1_sIoU_pred"].size == 0
