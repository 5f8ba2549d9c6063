"""SegmentMeIfYouCan end to end: one run on the distributed layouts evaluates the labelled frames and writes
the submission, and what it writes is found by the benchmark's own path templates.

The dataset tree is the one a user unpacks (``dataset_AnomalyTrack/``, ``dataset_ObstacleTrack/`` with
validation frames that have labels and test frames that do not, a LostAndFound-layout NoKnown tree and
Road Anomaly); the config is what a user writes, with the SMIYC splits left at their default.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, make_real_tree, run_snakemake
from meta_ood.io import read_parquet

pytestmark = pytest.mark.slow

RUN = "bench"
META_OOD = str(Path(sys.executable).parent / "meta-ood")  # the console script of the installed package
MODEL = "net"
METHODS = [f"{MODEL}-plain", f"{MODEL}-ood", f"{MODEL}-ood-meta"]


# ---------------------------------------------------------------------------------------------------------------
# The official code's frame listing and path templates (road-anomaly-benchmark, commit 1c7804e), rewritten small:
# road_anomaly_benchmark/evaluation.py     Evaluation.channels['anomaly_p'] = DIR_OUTPUTS / "anomaly_p/{method_name}/{dset_name}/{fid}.hdf5",
#                                          read by ChannelLoaderHDF5 (dataset 'value'), np.squeeze'd
# road_anomaly_benchmark/datasets/dataset_io.py   DatasetBase.get_frame: dset_name = cfg.name_for_persistence or cfg.name
# road_anomaly_benchmark/datasets/tracks.py       DatasetAnomalyTrack ('AnomalyTrack-all', images/{fid}.jpg),
#     DatasetObstacleTrack (images/{fid}.webp, frames filtered by scene = fid up to the first '_',
#     name_for_persistence 'ObstacleTrack-all'), DatasetLostAndFound (leftImg8bit/{split}/*/{fid}_leftImg8bit.*,
#     'LostAndFound-testNoKnown': exclude_prefix, name_for_persistence 'LostAndFound-test')
# road_anomaly_benchmark/datasets/tracks_extra.py RoadAnomalyByClass 'AnomalyTrack-validation' / '-test': a fid list
#     whose frames are read through AnomalyTrack-all's get_frame, hence dset_name 'AnomalyTrack-all'
# ---------------------------------------------------------------------------------------------------------------

OBSTACLE_SCENES_ALL = {"curvy-street", "one-way-street", "gravel", "greyasphalt", "motorway", "paving", "darkasphalt",
                       "darkasphalt2", "snowstorm1", "snowstorm2", "driveway", "validation"}
NOKNOWN_EXCLUDE = ("15_Rechbergstr_Deckenpfronn", "01_Hanns_Klemm_Str_45_000006", "01_Hanns_Klemm_Str_45_000007",
                   "10_Schlossberg_9_000004")


def official_frames(dir_datasets: Path, dir_laf: Path, name: str) -> list[dict]:
    """Frames of an official dataset name as the benchmark lists them: fid, dset_name, image and label channel paths.

    AnomalyTrack-validation's official fid list names the real validation frames; here it is the frames whose
    label is distributed, as in the real dataset.
    """
    if name.startswith("AnomalyTrack-"):
        root = dir_datasets / "dataset_AnomalyTrack"
        fids = sorted(p.stem for p in (root / "images").glob("*.jpg"))
        labelled = [f for f in fids if (root / "labels_masks" / f"{f}_labels_semantic.png").is_file()]
        fids = {"AnomalyTrack-all": fids, "AnomalyTrack-validation": labelled,
                "AnomalyTrack-test": sorted(set(fids) - set(labelled))}[name]
        return [{"fid": f, "dset_name": "AnomalyTrack-all", "image": root / "images" / f"{f}.jpg",
                 "label": root / "labels_masks" / f"{f}_labels_semantic.png"} for f in fids]
    if name.startswith("ObstacleTrack-"):
        root = dir_datasets / "dataset_ObstacleTrack"
        scenes = {"ObstacleTrack-all": OBSTACLE_SCENES_ALL, "ObstacleTrack-validation": {"validation"},
                  "ObstacleTrack-test": OBSTACLE_SCENES_ALL - {"snowstorm1", "snowstorm2", "driveway", "validation"}}[name]
        fids = sorted(p.stem for p in (root / "images").glob("*.webp") if p.stem.split("_")[0] in scenes)
        return [{"fid": f, "dset_name": "ObstacleTrack-all", "image": root / "images" / f"{f}.webp",
                 "label": root / "labels_masks" / f"{f}_labels_semantic.png"} for f in fids]
    assert name == "LostAndFound-testNoKnown", name
    images = sorted((dir_laf / "leftImg8bit" / "test").glob("*/*_leftImg8bit.png"))
    frames = [{"fid": p.name[: -len("_leftImg8bit.png")], "dset_name": "LostAndFound-test", "image": p,
               "label": dir_laf / "gtCoarse" / "test" / p.parent.name
               / p.name.replace("_leftImg8bit.png", "_gtCoarse_labelIds.png")} for p in images]
    return [f for f in frames if not any(f["fid"].startswith(p) for p in NOKNOWN_EXCLUDE)]


def official_scores(dir_outputs: Path, method: str, frame: dict) -> np.ndarray:
    """``Evaluation.channels['anomaly_p'].read(method_name=..., dset_name=..., fid=...)``, squeezed."""
    import h5py

    path = dir_outputs / "anomaly_p" / method / frame["dset_name"] / f"{frame['fid']}.hdf5"
    with h5py.File(path, "r") as fh:
        return np.squeeze(fh["value"][:])


# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def submission_run(tmp_path_factory):
    """One workflow run on the distributed layouts: a user config with the SMIYC splits at their default."""
    base = tmp_path_factory.mktemp("smiyc_run")
    roots = make_real_tree(base / "datasets", n_smiyc_anomaly=5, n_smiyc_obstacle=6, n_smiyc_validation=3,
                           n_lostandfound_noknown=5, n_road_anomaly=3)
    data = base / "datasets"
    from meta_ood.stages.training import train_baseline_stage

    torch.set_num_threads(1)
    ckpt = train_baseline_stage(str(roots["cityscapes"]), "train", base / "net.pt",
                                {"model": "tiny", "epochs": 3, "lr": 0.003, "batch_size": 4, "crop": [64, 128],
                                 "workers": 0, "seed": 0}, progress=False)
    config = {
        "run": RUN,
        "datasets": {
            "cityscapes": {"root": str(roots["cityscapes"])},
            "coco": {"root": str(roots["coco"])},
            # the archive's own folder for one track, the folder holding it for the other
            "smiyc_anomaly": {"root": str(data / "smiyc" / "dataset_AnomalyTrack")},
            "smiyc_obstacle": {"root": str(data / "smiyc")},
            "lostandfound_noknown": {"root": str(data / "lostandfound_noknown")},
            "road_anomaly": {"root": str(data / "road_anomaly")},
        },
        "coco_filter": {"min_size": 64},
        "models": {MODEL: {"arch": "tiny", "checkpoint": str(ckpt),
                           "finetune": {"epochs": 1, "lr": 0.001, "batch_size": 4, "crop": [64, 128], "workers": 0}}},
        "evaluation": {"ood_datasets": ["smiyc_anomaly", "smiyc_obstacle"],
                       "segment_datasets": ["smiyc_anomaly", "smiyc_obstacle"],
                       "smiyc_datasets": ["smiyc_anomaly", "smiyc_obstacle", "lostandfound_noknown", "road_anomaly"],
                       "miou": False, "thresholds": [0.3, 0.5], "n_boot": 5},
        "inference": {"workers": 0, "batch_size": 2},
        "report": {"example_threshold": 0.5, "examples": 1},
    }
    work = base / "work"
    work.mkdir()
    proc = run_snakemake(work, config=config, timeout=3000)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return work, data


def _labelled(track: Path) -> list[str]:
    return sorted(p.name[: -len("_labels_semantic.png")] for p in (track / "labels_masks").glob("*_labels_semantic.png"))


def _all(track: Path, ext: str) -> list[str]:
    return sorted(p.stem for p in (track / "images").glob(f"*.{ext}"))


def test_every_evaluation_uses_exactly_the_labelled_frames(submission_run):
    work, data = submission_run
    res = work / "results" / RUN
    for ds, folder, ext in (("smiyc_anomaly", "dataset_AnomalyTrack", "jpg"),
                            ("smiyc_obstacle", "dataset_ObstacleTrack", "webp")):
        track = data / "smiyc" / folder
        labelled, every = _labelled(track), _all(track, ext)
        assert 0 < len(labelled) < len(every)  # the run saw test frames
        for variant in ("baseline", "epoch1"):
            pixel = json.loads((res / "pixel" / MODEL / variant / f"{ds}.json").read_text())
            assert pixel["frames"] == labelled and pixel["n_images"] == len(labelled)
            assert pixel["n_unlabelled_skipped"] == len(every) - len(labelled)
            errors = json.loads((res / "segment_eval" / MODEL / variant / f"{ds}.json").read_text())
            assert errors["frames"] == labelled
            images = read_parquet(res / "segments" / MODEL / variant / ds / "images.parquet")
            for tag in ("t0.3", "t0.5"):
                meta = json.loads((res / "meta" / MODEL / variant / ds / f"{tag}.json").read_text())
                assert meta["frames"] == labelled
                # store positions (with gaps where the test frames lie), as the segments' image column holds them
                assert meta["image_ids"] == images["image"].tolist() and len(meta["image_ids"]) == len(labelled)
                segs = read_parquet(res / "meta" / MODEL / variant / ds / f"{tag}.parquet")
                assert set(segs["image"]) <= set(meta["image_ids"])
                per_image = errors["thresholds"][tag]["per_image"]
                assert len(per_image["fp_before"]) == len(labelled)
                assert sum(per_image["fp_before"]) == errors["thresholds"][tag]["fp_before"]
        for method in METHODS:
            ev = json.loads((res / "smiyc" / "eval" / method / f"{ds}.json").read_text())
            assert ev["frames"] == labelled
            assert ev["skipped_unlabelled"] == sorted(set(every) - set(labelled))
        labels = sorted(p.name[: -len("_labels_semantic.png")]
                        for p in (res / "smiyc" / "labels" / ds).glob("*_labels_semantic.png"))
        assert labels == labelled
    # the pixel counts of the labelled frames: what the dataset's own label masks hold
    track = data / "smiyc" / "dataset_ObstacleTrack"
    masks = [np.asarray(Image.open(track / "labels_masks" / f"{f}_labels_semantic.png")) for f in _labelled(track)]
    pixel = json.loads((res / "pixel" / MODEL / "baseline" / "smiyc_obstacle.json").read_text())
    assert (pixel["n_pos"], pixel["n_neg"]) == (sum(int((m == 1).sum()) for m in masks),
                                                sum(int((m == 0).sum()) for m in masks))
    # tables 2 and 3 and the SMIYC table carry the tracks
    for name in ("table2", "table3", "table_smiyc"):
        text = (res / "tables" / f"{name}.csv").read_text()
        assert "smiyc_obstacle" in text or "ObstacleTrack" in text, name


def test_submission_zip_holds_every_frame_of_both_tracks_under_the_official_names(submission_run):
    work, data = submission_run
    res = work / "results" / RUN
    with zipfile.ZipFile(res / "smiyc" / "submission.zip") as zf:
        names = set(zf.namelist())
    expected = set()
    for method in METHODS:
        expected |= {f"anomaly_p/{method}/AnomalyTrack-all/{f}.hdf5"
                     for f in _all(data / "smiyc" / "dataset_AnomalyTrack", "jpg")}
        expected |= {f"anomaly_p/{method}/ObstacleTrack-all/{f}.hdf5"
                     for f in _all(data / "smiyc" / "dataset_ObstacleTrack", "webp")}
    # LostAndFound-testNoKnown, read from LostAndFound-test (no meta variant: not a segment dataset here)
    noknown = official_frames(data, data / "lostandfound_noknown", "LostAndFound-testNoKnown")
    expected |= {f"anomaly_p/{m}/LostAndFound-test/{f['fid']}.hdf5" for m in METHODS[:2] for f in noknown}
    assert names == expected
    # Road Anomaly is no benchmark split: its files are written, under the project's own folder name, but not submitted
    assert sorted((res / "smiyc" / "anomaly_p" / f"{MODEL}-ood" / "RoadAnomaly").glob("*.hdf5"))


def test_meta_variant_of_the_test_frames_follows_the_classifier_of_the_labelled_segments(submission_run):
    """The meta variant differs from the OoD variant only where it lowers scores: on labelled frames the segments
    the leave-one-out table rejects, on test frames those the classifier fit on every labelled segment rejects."""
    import pandas as pd

    from meta_ood.meta import MetaClassifier
    from meta_ood.segments import feature_names, segment_metrics
    from meta_ood.store import StoreReader

    work, data = submission_run
    res = work / "results" / RUN
    out = res / "smiyc"
    table = pd.read_parquet(res / "segments" / MODEL / "epoch1" / "smiyc_obstacle" / "t0.5.parquet")
    meta = pd.read_parquet(res / "meta" / MODEL / "epoch1" / "smiyc_obstacle" / "t0.5.parquet")
    names, y = feature_names("paper"), table["iou0"].to_numpy(int)
    clf = MetaClassifier().fit(table[names].to_numpy(float), y) if np.unique(y).size == 2 else None
    reader = StoreReader(res / "softmax" / MODEL / "epoch1" / "smiyc_obstacle")
    frames = {f["fid"]: f for f in official_frames(data / "smiyc", data, "ObstacleTrack-all")}
    assert sorted(frames) == sorted(reader.names)
    n_test = 0
    for img in reader.iter(probs=True):
        ood = official_scores(out, f"{MODEL}-ood", frames[img.name])
        lowered = official_scores(out, f"{MODEL}-ood-meta", frames[img.name])
        if img.labelled:
            rows = meta[(meta["image"] == img.index) & (meta["prob_fp"] > 0.5)]
            _, comp = segment_metrics(img.probs, img.label, 0.5, ood_id=1, void_id=255)
            rejected = rows["segment"].to_numpy()
        else:
            n_test += 1
            df, comp = segment_metrics(img.probs, np.zeros(img.label.shape, np.uint8), 0.5, ood_id=1, void_id=255)
            prob = clf.predict_proba(df[names].to_numpy(float))[:, 1] if clf is not None else np.full(len(df), y.mean())
            rejected = np.flatnonzero(prob > 0.5) + 1
        hit = np.isin(np.abs(comp), rejected)
        np.testing.assert_array_equal(lowered != ood, hit & (ood >= np.float16(0.5)))
        assert (lowered <= ood).all()
    assert n_test == len(reader) - len(reader.labelled_indices) > 0


def test_official_templates_find_every_file_and_give_the_table_numbers(submission_run):
    """Pointing the official code's DIR_OUTPUTS at results/<run>/smiyc: every frame of every official split it
    evaluates has its file, at the image's size, and its PixBinaryClass AP equals table_smiyc's official AP."""
    from meta_ood.smiyc import array_frames, evaluate_frames

    work, data = submission_run
    out = work / "results" / RUN / "smiyc"
    laf = data / "lostandfound_noknown"
    for method in METHODS:
        for name in ("AnomalyTrack-all", "AnomalyTrack-validation", "AnomalyTrack-test", "ObstacleTrack-all",
                     "ObstacleTrack-validation", "ObstacleTrack-test", "LostAndFound-testNoKnown"):
            if name == "LostAndFound-testNoKnown" and method.endswith("meta"):
                continue  # lostandfound_noknown has no meta classification in this config
            frames = official_frames(data / "smiyc", laf, name)
            assert frames, name
            for frame in frames:
                scores = official_scores(out, method, frame)
                with Image.open(frame["image"]) as img:
                    assert scores.shape == (img.height, img.width) and scores.dtype == np.float16
        for name, ds, track in (("ObstacleTrack-validation", "smiyc_obstacle", "obstacle"),
                                ("AnomalyTrack-validation", "smiyc_anomaly", "anomaly")):
            items = [(f["fid"], official_scores(out, method, f), np.asarray(Image.open(f["label"])))
                     for f in official_frames(data / "smiyc", laf, name)]
            official = evaluate_frames(array_frames(items), track, n_boot=0)
            ours = json.loads((out / "eval" / method / f"{ds}.json").read_text())
            assert official["AP"] == pytest.approx(ours["AP"], abs=1e-12)
            assert official["FPR95"] == pytest.approx(ours["FPR95"], abs=1e-12)


def test_smiyc_eval_on_an_all_folder_reproduces_the_pipeline_and_reports_the_skipped_frames(submission_run, tmp_path):
    work, data = submission_run
    res = work / "results" / RUN / "smiyc"
    track = data / "smiyc" / "dataset_AnomalyTrack"
    n_test = len(_all(track, "jpg")) - len(_labelled(track))
    method = f"{MODEL}-ood-meta"
    out = tmp_path / "e.json"
    proc = subprocess.run([META_OOD, "smiyc-eval", "--scores",
                           str(res / "anomaly_p" / method / "AnomalyTrack-all"), "--labels", str(track),
                           "--track", "AnomalyTrack-validation", "--out", str(out), "--n-boot", "0"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(rf"skipped {n_test} score files without a label", proc.stderr), proc.stderr
    mine = json.loads(out.read_text())
    pipeline = json.loads((res / "eval" / method / "smiyc_anomaly.json").read_text())
    for key in ("AP", "FPR95", "F1_mean", "sIoU_gt", "PPV"):
        assert mine[key] == pytest.approx(pipeline[key], abs=1e-12), key
    assert mine["skipped_unlabelled"] == pipeline["skipped_unlabelled"] and len(mine["skipped_unlabelled"]) == n_test
    strict = subprocess.run([META_OOD, "smiyc-eval", "--scores",
                             str(res / "anomaly_p" / method / "AnomalyTrack-all"), "--labels", str(track),
                             "--track", "anomaly", "--out", str(tmp_path / "s.json"), "--strict"],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert strict.returncode != 0 and "Traceback" not in strict.stderr and str(n_test) in strict.stderr
