"""SegmentMeIfYouCan evaluation against the official outputs in tests/data/golden/smiyc (see its README)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from meta_ood.cli import main
from meta_ood.errors import InputError
from meta_ood.pixel_eval import dequantize, quantize
from meta_ood.smiyc import (
    array_frames,
    component_metrics,
    curve_metrics,
    evaluate_frames,
    frame_components,
    merge_frames,
    method_dir,
    percentile_bins,
    read_scores,
    smiyc_eval,
    uniform_bins,
    write_label,
    write_scores,
    write_submission_zip,
)
from meta_ood.smiyc.components import size_filters

TRACKS = ("anomaly", "obstacle")
SIZES = {"anomaly": (500, 100), "obstacle": (50, 10)}
PIX_SCALARS = ("AP", "AUROC", "FPR95", "FPR95_threshold", "best_F1", "best_F1_threshold", "recall50_threshold")
INST_SUMMARY = {"mean_F1": "F1_mean", "mean_sIoU_gt": "sIoU_gt", "mean_PPV": "PPV", "mean_sIoU_pred": "sIoU_pred",
                "F1_25": "F1_25", "F1_50": "F1_50", "F1_75": "F1_75", "tp_mean": "tp_mean", "fn_mean": "fn_mean",
                "fp_mean": "fp_mean", "tp": "tp", "fn": "fn", "fp": "fp", "F1": "F1", "tau": "tau"}
FRAME_ARRAYS = ("sIoU_gt", "size_gt", "PPV", "sIoU_pred", "size_pred", "kept_pred_mask", "tp", "fn", "fp")


@pytest.fixture(scope="module", params=TRACKS)
def golden(request, golden_dir):
    path = golden_dir / "smiyc" / f"smiyc_{request.param}_seed1.npz"
    manifest = json.loads((golden_dir / "smiyc" / "manifest.json").read_text())["files"][path.name]
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["frames"] = [(f"{i:03d}", data[f"scores_{i}"], data[f"label_{i}"]) for i in range(int(data["n_frames"]))]
    data["quantisation"] = [f["score_quantisation"] for f in manifest["frames"]]
    return data


def _same(value, expected, key: str) -> None:
    value, expected = np.asarray(value), np.asarray(expected)
    assert value.shape == expected.shape, key
    if expected.dtype.kind in "iub":
        np.testing.assert_array_equal(value, expected, err_msg=key)
    else:
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-9, err_msg=key)


def _check_details(details: dict, g: dict) -> None:
    """Every per-frame and curve array of the golden file equals the same key of ``details``."""
    keys = [k for k in g if k.startswith(("pix", "inst")) and ("frame" in k or "curve" in k or k.endswith("edges"))]
    assert len(keys) > 300
    for key in keys:
        _same(details[key], g[key], key)


def _check_summary(res: dict, g: dict) -> None:
    for key in PIX_SCALARS:
        _same(res[key], g[f"pix_{key}"], key)
        _same(res["uniform"][key], g[f"pixuni_{key}"], f"uniform {key}")
    at = res["at_threshold"]
    for prefix, block in (("inst", res), ("inst050", at["0.5"]), ("inst070", at["0.7"])):
        for gkey, key in INST_SUMMARY.items():
            _same(block[key], g[f"{prefix}_{gkey}"], f"{prefix} {key}")
    _same(res["best_F1_threshold"], g["inst_thresh_p"], "instance threshold")
    assert (res["segsize"], res["instsize"]) == (int(g["inst_thresh_segsize"]), int(g["inst_thresh_instsize"]))


# ------------------------------------------------------------------ the official protocol, module by module


def test_per_frame_bins_match_golden(golden):
    for i, (_, s, lab) in enumerate(golden["frames"]):
        b, u = percentile_bins(s, lab), uniform_bins(s, lab)
        _same(b.edges, golden[f"pix_frame{i}_bin_edges"], f"edges {i}")
        _same(u.edges, golden["pixuni_bin_edges"], f"uniform edges {i}")
        for key in ("tp_rel", "fp_rel", "num_pos", "num_neg"):
            _same(getattr(b, key), golden[f"pix_frame{i}_{key}"], f"{key} {i}")
            _same(getattr(u, key), golden[f"pixuni_frame{i}_{key}"], f"uniform {key} {i}")


def test_merged_curve_and_pixel_metrics_match_golden(golden):
    for prefix, binning in (("pix", percentile_bins), ("pixuni", uniform_bins)):
        curve = merge_frames([binning(s, lab) for _, s, lab in golden["frames"]])
        for key in ("thresholds", "tpr", "fpr", "precision"):
            _same(getattr(curve, key), golden[f"{prefix}_curve_{key}"], f"{prefix} {key}")
        for key, value in curve_metrics(curve).items():
            _same(value, golden[f"{prefix}_{key}"], f"{prefix} {key}")


@pytest.mark.parametrize("prefix", ["inst", "inst050", "inst070"])
def test_component_metrics_match_golden(golden, prefix):
    seg, inst = SIZES[str(golden["track"])]
    thr = float(golden[f"{prefix}_thresh_p"])
    frames = [frame_components(s, lab, thr, seg, inst) for _, s, lab in golden["frames"]]
    for i, f in enumerate(frames):
        for key, value in zip(("tp", "fn", "fp"), f.counts()):
            _same(value, golden[f"{prefix}_frame{i}_{key}"], f"{key} {i}")
        for key in FRAME_ARRAYS[:6]:
            _same(getattr(f, key), golden[f"{prefix}_frame{i}_{key}"], f"{key} {i}")
        assert f.size_gt.size <= golden[f"aux_frame{i}_gt_first_pixel"].size
    m = component_metrics(frames)
    for gkey, key in INST_SUMMARY.items():
        _same(m[key], golden[f"{prefix}_{gkey}"], f"{prefix} {key}")


def test_size_filters_by_track():
    assert size_filters("anomaly") == (500, 100)
    assert size_filters("obstacle") == size_filters("lostandfound") == (50, 10)
    assert size_filters("anomaly", segsize=20) == (20, 100)
    assert size_filters("obstacle", instsize=0) == (50, 0)
    with pytest.raises(InputError, match="track"):
        size_filters("road")
    with pytest.raises(InputError, match=">= 0"):
        size_filters("anomaly", segsize=-1)


# ------------------------------------------------------------------ the library and the CLI end to end


def test_library_reproduces_every_golden_number(golden):
    details: dict = {}
    res = evaluate_frames(array_frames(golden["frames"]), str(golden["track"]), pixel_thresholds=(0.5, 0.7),
                          n_boot=0, details=details)
    _check_summary(res, golden)
    _check_details(details, golden)
    _same(details["pix_frames_used"], golden["pix_frames_used"], "frames used")


def _write_golden_files(golden: dict, root: Path, f16: bool = False) -> tuple[Path, Path]:
    """Score files of the golden frames (float32 as stored in the golden file; with ``f16``, float16 for the
    frames whose values float16 represents exactly) and label PNGs."""
    scores, labels = root / "scores", root / "labels"
    for (fid, s, lab), q in zip(golden["frames"], golden["quantisation"]):
        write_scores(scores / f"{fid}.hdf5", s, dtype="float16" if f16 and q == "f16" else "float32")
        write_label(labels / f"{fid}_labels_semantic.png", lab)
    return scores, labels


def test_cli_reproduces_every_golden_number(golden, tmp_path, capsys):
    scores, labels = _write_golden_files(golden, tmp_path)
    out, npz = tmp_path / "res.json", tmp_path / "details.npz"
    track = str(golden["track"])
    rc = main(["-q", "smiyc-eval", "--scores", str(scores), "--labels", str(labels), "--track", track,
               "--out", str(out), "--pixel-thresholds", "0.5", "0.7", "--n-boot", "100", "--details", str(npz)])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    _check_summary(res, golden)
    with np.load(npz) as z:
        _check_details({k: z[k] for k in z.files}, golden)
    for key in ("AP", "FPR95", "AUROC", "best_F1", "best_F1_threshold", "sIoU_gt", "PPV", "F1_mean", "F1"):
        assert key in res and key in res["exact"]
    assert len(res["F1"]) == len(res["exact"]["F1"]) == 11
    for key, (lo, hi) in res["exact"]["ci"].items():
        assert lo <= hi, key


def test_float16_files_keep_the_official_numbers(golden, tmp_path):
    """Frames whose values float16 holds exactly give the same binned curve and components from float16 files
    (only the uniform variant's edges follow the stored dtype)."""
    scores, labels = _write_golden_files(golden, tmp_path, f16=True)
    assert {read_scores(p).dtype for p in scores.glob("*.hdf5")} == {np.dtype("float16"), np.dtype("float32")}
    res = smiyc_eval(scores, labels, str(golden["track"]), n_boot=0)
    for key in PIX_SCALARS:
        _same(res[key], golden[f"pix_{key}"], key)
    for gkey, key in INST_SUMMARY.items():
        _same(res[key], golden[f"inst_{gkey}"], key)


def test_exact_protocol_equals_scikit_learn(golden):
    res = evaluate_frames(array_frames(golden["frames"]), str(golden["track"]), n_boot=0)
    ex = res["exact"]
    assert (ex["encoding"], ex["bits"]) == ("unit", 24)
    y = np.concatenate([lab[lab != 255] == 1 for _, _, lab in golden["frames"]])
    s = np.concatenate([sc[lab != 255] for _, sc, lab in golden["frames"]])
    grid = dequantize(quantize(s, 24), 24)  # the histogram's score grid (spacing 6e-8)
    assert ex["AP"] == pytest.approx(average_precision_score(y, grid), abs=1e-9)
    assert ex["AUROC"] == pytest.approx(roc_auc_score(y, grid), abs=1e-9)
    # against the raw float32 scores the grid moves AP / AUROC by about 1e-8
    assert ex["AP"] == pytest.approx(average_precision_score(y, s), abs=1e-7)
    assert ex["AUROC"] == pytest.approx(roc_auc_score(y, s), abs=1e-7)
    # README §4.2: exact pooled AP 0.585212 (anomaly) / 0.585829 (obstacle), below the binned official AP
    assert round(ex["AP"], 6) == {"anomaly": 0.585212, "obstacle": 0.585829}[str(golden["track"])]
    assert res["AP"] - ex["AP"] > 0.004


def test_exact_protocol_is_exact_on_float16_maps(golden):
    frames = [(fid, s.astype(np.float16), lab) for fid, s, lab in golden["frames"]]
    ex = evaluate_frames(array_frames(frames), str(golden["track"]), n_boot=0)["exact"]
    assert ex["encoding"] == "float16"
    y = np.concatenate([lab[lab != 255] == 1 for _, _, lab in frames])
    s = np.concatenate([sc[lab != 255] for _, sc, lab in frames]).astype(np.float64)
    assert ex["AP"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert ex["AUROC"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


# ------------------------------------------------------------------ degenerate frames and bad input


def test_degenerate_frames_are_evaluated_not_rejected(golden):
    h, w = 64, 96
    extra = [
        ("all_void", np.random.default_rng(0).random((h, w), dtype=np.float32), np.full((h, w), 255, np.uint8)),
        ("constant", np.full((h, w), 0.3, np.float32), np.zeros((h, w), np.uint8)),
        ("no_anomaly", np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w), np.zeros((h, w), np.uint8)),
    ]
    assert percentile_bins(extra[0][1], extra[0][2]) is None
    f = frame_components(extra[0][1], extra[0][2], 0.5, 50, 10)
    assert f.sIoU_gt.size == f.PPV.size == 0
    const = percentile_bins(extra[1][1], extra[1][2])
    assert const.num_pos == 0 and const.fp_rel.sum() == h * w and not const.tp_rel.any()
    details: dict = {}
    res = evaluate_frames(array_frames(golden["frames"] + extra), str(golden["track"]), n_boot=0, details=details)
    n = len(golden["frames"])
    assert details["pix_frames_used"].tolist() == list(range(n)) + [n + 1, n + 2]
    assert res["n_frames"] == n + 3
    # an all-void frame contributes nothing at all
    base = evaluate_frames(array_frames(golden["frames"] + extra[:1]), str(golden["track"]), n_boot=0)
    assert base["AP"] == pytest.approx(float(golden["pix_AP"]), abs=1e-12)
    assert base["F1_mean"] == pytest.approx(float(golden["inst_mean_F1"]), abs=1e-12)
    # frames without anomaly add negatives only, and their predicted components as FP
    assert res["n_neg"] == base["n_neg"] + 2 * h * w and res["n_pos"] == base["n_pos"]
    assert np.all(np.asarray(res["fp"]) >= np.asarray(base["fp"]))


def test_dataset_without_anomaly_is_an_input_error():
    frames = array_frames([("a", np.full((8, 8), 0.2, np.float32), np.zeros((8, 8), np.uint8))])
    with pytest.raises(InputError, match="anomaly"):
        evaluate_frames(frames, "obstacle", n_boot=0)


@pytest.fixture
def small_files(golden, tmp_path):
    golden_small = {**golden, "frames": golden["frames"][:3], "quantisation": golden["quantisation"][:3]}
    return _write_golden_files(golden_small, tmp_path)


def _cli_error(capsys, scores, labels, tmp_path, *extra: str) -> str:
    rc = main(["-q", "smiyc-eval", "--scores", str(scores), "--labels", str(labels), "--track", "anomaly",
               "--out", str(tmp_path / "r.json"), "--n-boot", "0", *extra])
    assert rc == 2
    return capsys.readouterr().err


def test_missing_extra_and_misshaped_frames(small_files, tmp_path, capsys):
    scores, labels = small_files
    (scores / "001.hdf5").rename(tmp_path / "moved.hdf5")
    err = _cli_error(capsys, scores, labels, tmp_path)
    assert "labelled frames without .hdf5 score file" in err and "'001'" in err
    (tmp_path / "moved.hdf5").rename(scores / "001.hdf5")
    write_scores(scores / "zzz.hdf5", np.zeros((4, 4), np.float32))
    err = _cli_error(capsys, scores, labels, tmp_path, "--strict")  # skipped without --strict
    assert "score files without _labels_semantic.png label" in err and "'zzz'" in err
    (scores / "zzz.hdf5").unlink()
    write_scores(scores / "002.hdf5", np.zeros((10, 10), np.float32))
    err = _cli_error(capsys, scores, labels, tmp_path)
    assert "'002'" in err and "expected equal (H, W) shapes" in err
    with pytest.raises(InputError, match="labels contain"):
        evaluate_frames(array_frames([("x", np.zeros((4, 4), np.float32), np.full((4, 4), 7, np.uint8))]), "anomaly")


def test_score_files_layout_and_zip(tmp_path):
    s = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4) / 3
    folder = method_dir(tmp_path, "mine", "RoadObstacle21")
    assert folder == tmp_path / "anomaly_p" / "mine" / "RoadObstacle21"
    f16 = read_scores(write_scores(folder / "a.hdf5", s))
    assert f16.dtype == np.float16 and np.array_equal(f16, s.astype(np.float16))
    f32 = read_scores(write_scores(folder / "b.hdf5", s, dtype="float32"))
    assert f32.dtype == np.float32 and np.array_equal(f32, s)
    with zipfile.ZipFile(write_submission_zip(tmp_path, tmp_path / "sub.zip")) as zf:
        assert sorted(zf.namelist()) == ["anomaly_p/mine/RoadObstacle21/a.hdf5", "anomaly_p/mine/RoadObstacle21/b.hdf5"]
    with pytest.raises(InputError, match="method"):
        method_dir(tmp_path, "../x", "d")
    with pytest.raises(InputError, match="dtype"):
        write_scores(folder / "c.hdf5", s, dtype="float64")
    with pytest.raises(InputError, match="folder not found"):
        smiyc_eval(tmp_path / "nope", tmp_path, "anomaly")
