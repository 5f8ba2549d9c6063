"""``smiyc-eval`` on folders in the benchmark layout: score files of every frame, labels of some."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from meta_ood.cli import main
from meta_ood.errors import InputError
from meta_ood.smiyc import (
    OFFICIAL_DATASET_TRACKS,
    SIZE_FILTERS,
    array_frames,
    evaluate_frames,
    file_frames,
    filter_track,
    paired_frames,
    read_label,
    read_scores,
    smiyc_eval,
    unlabelled_ids,
    write_label,
    write_scores,
)
from meta_ood.smiyc.components import size_filters

LABELLED = ("val_000", "val_001", "val_002")
UNLABELLED = ("test_000", "test_001", "test_002", "test_003")
H, W = 48, 64


def _frame(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores in [0, 1] (float32) and a 0 / 1 / 255 mask with one obstacle and a void border row."""
    labels = np.zeros((H, W), np.uint8)
    labels[10 + k:30 + k, 12 + 3 * k:30 + 3 * k] = 1
    labels[40:44, 50:53] = 1  # a small component: 12 pixels, kept by ObstacleTrack's instsize 10
    labels[:2] = 255
    scores = rng.uniform(0.0, 0.6, (H, W))
    scores[labels == 1] += rng.uniform(0.1, 0.4, int((labels == 1).sum()))
    return np.clip(scores, 0, 1).astype(np.float32), labels


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``anomaly_p/m/ObstacleTrack-all`` with score files of every frame; ``labels_masks`` of the labelled ones."""
    rng = np.random.default_rng(7)
    scores_dir = tmp_path / "anomaly_p" / "m" / "ObstacleTrack-all"
    labels_root = tmp_path / "dataset_ObstacleTrack"
    frames = {}
    for k, fid in enumerate(LABELLED):
        s, lab = _frame(rng, k)
        write_scores(scores_dir / f"{fid}.hdf5", s, dtype="float32")
        write_label(labels_root / "labels_masks" / f"{fid}_labels_semantic.png", lab)
        frames[fid] = (s, lab)
    for k, fid in enumerate(UNLABELLED):  # other shapes and float16: never read
        write_scores(scores_dir / f"{fid}.hdf5", rng.uniform(0, 1, (8 + k, 9)).astype(np.float16))
    return scores_dir, labels_root, frames


def _equal(a, b, where: str = "") -> None:
    """Recursive equality of two result values; floats to 1e-12 (NaN equals NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for key in a:
            _equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)) and a and isinstance(a[0], (dict, str)):
        assert list(a) == list(b), where
    elif isinstance(a, str) or a is None:
        assert a == b, where
    else:
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=0, atol=1e-12,
                                   err_msg=where)


def test_default_mode_evaluates_exactly_the_labelled_frames(layout):
    scores_dir, labels_root, frames = layout
    assert unlabelled_ids(scores_dir, labels_root) == sorted(UNLABELLED)
    assert [fid for fid, _, _ in paired_frames(scores_dir, labels_root)] == sorted(LABELLED)
    assert [f.fid for f in file_frames(scores_dir, labels_root)] == sorted(LABELLED)

    res = smiyc_eval(scores_dir, labels_root, "obstacle", pixel_thresholds=(0.5,), n_boot=50, seed=3)
    assert res["frames"] == sorted(LABELLED) and res["n_frames"] == len(LABELLED)
    assert res["skipped_unlabelled"] == sorted(UNLABELLED)
    for fid, (s, lab) in frames.items():  # the files hold the arrays exactly
        assert np.array_equal(read_scores(scores_dir / f"{fid}.hdf5"), s)
        assert np.array_equal(read_label(labels_root / "labels_masks" / f"{fid}_labels_semantic.png"), lab)
    direct = evaluate_frames(array_frames((fid, *frames[fid]) for fid in sorted(frames)), "obstacle",
                             pixel_thresholds=(0.5,), n_boot=50, seed=3)
    assert sorted(res) == sorted([*direct, "frames", "skipped_unlabelled"])
    _equal({k: v for k, v in res.items() if k not in ("frames", "skipped_unlabelled")}, direct)
    for key in ("AP", "FPR95", "AUROC", "best_F1", "F1_mean", "sIoU_gt", "PPV"):
        assert np.isfinite(res[key]) and np.isfinite(res["exact"][key]), key
    assert 0.5 < res["AP"] < 1.0  # a real curve, not a degenerate one


def test_nothing_skipped_gives_empty_list(layout):
    scores_dir, labels_root, _ = layout
    for fid in UNLABELLED:
        (scores_dir / f"{fid}.hdf5").unlink()
    for strict in (False, True):
        res = smiyc_eval(scores_dir, labels_root, "obstacle", strict=strict, n_boot=0)
        assert res["skipped_unlabelled"] == [] and res["frames"] == sorted(LABELLED)


def test_strict_mode_refuses_unlabelled_score_files(layout):
    scores_dir, labels_root, _ = layout
    for call in (lambda: paired_frames(scores_dir, labels_root, strict=True),
                 lambda: file_frames(scores_dir, labels_root, strict=True),
                 lambda: smiyc_eval(scores_dir, labels_root, "obstacle", strict=True, n_boot=0)):
        with pytest.raises(InputError, match=r"^4 score files without _labels_semantic\.png label in .*'test_000'"):
            call()


@pytest.mark.parametrize("strict", [False, True])
def test_labelled_frame_without_score_file_is_an_error_in_both_modes(layout, strict):
    scores_dir, labels_root, _ = layout
    (scores_dir / "val_001.hdf5").unlink()
    with pytest.raises(InputError, match=r"1 labelled frames without \.hdf5 score file in .*ObstacleTrack-all.*"
                                         r"'val_001'"):
        smiyc_eval(scores_dir, labels_root, "obstacle", strict=strict, n_boot=0)


def test_no_label_at_all_is_an_error(layout, tmp_path):
    scores_dir, _, _ = layout
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no <fid>_labels_semantic\.png label masks found \(7 score files"):
        paired_frames(scores_dir, tmp_path / "empty")
    with pytest.raises(InputError, match="7 score files without"):
        paired_frames(scores_dir, tmp_path / "empty", strict=True)


def test_official_dataset_names_map_to_tracks():
    assert set(OFFICIAL_DATASET_TRACKS.values()) <= set(SIZE_FILTERS)
    for name in ("AnomalyTrack-all", "AnomalyTrack-validation", "AnomalyTrack-test", "FishyLAFAnomaly-val"):
        assert filter_track(name) == "anomaly" and size_filters(name) == (500, 100)
    for name in ("ObstacleTrack-all", "ObstacleTrack-validation", "ObstacleTrack-test"):
        assert filter_track(name) == "obstacle" and size_filters(name) == (50, 10)
    for name in ("LostAndFound-test", "LostAndFound-testNoKnown"):
        assert filter_track(name) == "lostandfound" and size_filters(name) == (50, 10)
    assert size_filters("ObstacleTrack-all", segsize=5) == (5, 10)
    with pytest.raises(InputError, match="ObstacleTrack-all"):  # the message lists the official names
        filter_track("ObstacleTrack")


def _cli(scores_dir: Path, labels_root: Path, out: Path, *extra: str) -> int:
    return main(["-q", "smiyc-eval", "--scores", str(scores_dir), "--labels", str(labels_root),
                 "--out", str(out), "--n-boot", "0", *extra])


def test_cli_skips_unlabelled_frames_and_reports_them(layout, tmp_path, capsys):
    scores_dir, labels_root, _ = layout
    out = tmp_path / "out" / "r.json"
    assert _cli(scores_dir, labels_root, out, "--track", "ObstacleTrack-all") == 0
    captured = capsys.readouterr()
    assert (f"smiyc-eval: skipped 4 score files without a label in {labels_root} (unlabelled test frames); "
            "--strict refuses them") in captured.err.splitlines()
    assert "skipped" not in captured.out and "AP" in captured.out
    res = json.loads(out.read_text())
    assert res["frames"] == sorted(LABELLED) and res["skipped_unlabelled"] == sorted(UNLABELLED)
    assert res["track"] == "ObstacleTrack-all"

    assert _cli(scores_dir, labels_root, tmp_path / "o.json", "--track", "obstacle") == 0
    capsys.readouterr()
    ref = json.loads((tmp_path / "o.json").read_text())
    assert (res["segsize"], res["instsize"]) == (ref["segsize"], ref["instsize"]) == (50, 10)
    _equal({k: v for k, v in res.items() if k != "track"}, {k: v for k, v in ref.items() if k != "track"})

    assert _cli(scores_dir, labels_root, tmp_path / "a.json", "--track", "AnomalyTrack-validation") == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "a.json").read_text())["segsize"] == 500


def test_cli_prints_nothing_extra_when_every_score_file_has_a_label(layout, tmp_path, capsys):
    scores_dir, labels_root, _ = layout
    for fid in UNLABELLED:
        (scores_dir / f"{fid}.hdf5").unlink()
    assert _cli(scores_dir, labels_root, tmp_path / "r.json", "--track", "obstacle") == 0
    assert "skipped" not in capsys.readouterr().err


def test_cli_strict_refuses_with_one_message(layout, tmp_path, capsys):
    scores_dir, labels_root, _ = layout
    out = tmp_path / "r.json"
    assert _cli(scores_dir, labels_root, out, "--track", "ObstacleTrack-all", "--strict") == 2
    err = capsys.readouterr().err
    assert err.startswith("meta-ood: error: 4 score files without _labels_semantic.png label in ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_lists_official_names_and_strict_in_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside the names
    with pytest.raises(SystemExit):
        main(["smiyc-eval", "--help"])
    text = capsys.readouterr().out
    assert "--strict" in text and "refuse score files without a label" in text
    for name in OFFICIAL_DATASET_TRACKS:
        assert name in text, name
