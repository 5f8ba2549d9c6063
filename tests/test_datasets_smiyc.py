"""Readers of SegmentMeIfYouCan (AnomalyTrack, ObstacleTrack), LostAndFound-NoKnown and Road Anomaly, and their demo sets."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meta_ood import labels as L
from meta_ood.datasets import (
    LostAndFound,
    LostAndFoundNoKnown,
    LostAndFoundROI,
    RoadAnomaly,
    SmiycAnomalyTrack,
    SmiycObstacleTrack,
    open_dataset,
)
from meta_ood.datasets.demo import DemoConfig, generate
from meta_ood.datasets.smiyc import NOKNOWN_EXCLUDED, OBSTACLE_TEST_SCENES
from meta_ood.errors import InputError

RNG = np.random.default_rng(1)
H, W = 10, 16
DEMO = dict(seed=5, height=64, width=128, n_train=1, n_val=1, n_coco=1, n_lostandfound=1, n_fishyscapes=1,
            n_fishyscapes_lostandfound=1, coco_min_size=0)


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _rgb(h: int = H, w: int = W) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_smiyc")
    generate(out, DemoConfig(**DEMO), progress=False)
    return out


# -- round trip: demo generator -> readers ------------------------------------------------------


def test_demo_anomaly_track(demo):
    every = open_dataset("smiyc_anomaly", str(demo / "smiyc"))  # the default: AnomalyTrack-all
    assert isinstance(every, SmiycAnomalyTrack) and every.split == "all" and every.has_labels and len(every) == 6
    assert every.labelled_names == ["validation0000", "validation0001", "validation0002"]
    assert [item.labelled for item in every] == [False] * 3 + [True] * 3  # anomaly0003.. sort first
    ds = open_dataset("smiyc_anomaly", str(demo / "smiyc"), "validation")
    assert isinstance(ds, SmiycAnomalyTrack) and ds.split == "validation" and ds.has_labels
    assert [s.name for s in ds.samples] == ["validation0000", "validation0001", "validation0002"]
    assert ds.convention == L.FISHYSCAPES
    for sample, item in zip(ds.samples, ds):
        assert item.image.shape == (64, 128, 3) and sample.image.suffix == ".jpg"
        np.testing.assert_array_equal(item.label, _read(sample.train_ids))
        assert set(np.unique(item.label)) <= {0, 1, 255} and (item.label == 1).any()
    test = SmiycAnomalyTrack(demo / "smiyc" / "dataset_AnomalyTrack", "test")  # the track folder itself is a root too
    assert [s.name for s in test.samples] == ["anomaly0003", "anomaly0004", "anomaly0005"]
    assert len(SmiycAnomalyTrack(demo / "smiyc", "all")) == 6


def test_demo_obstacle_track_and_scenes(demo):
    ds = open_dataset("smiyc_obstacle", str(demo / "smiyc"), "validation")
    assert isinstance(ds, SmiycObstacleTrack) and len(ds) == 3 and set(ds.scenes.values()) == {"validation"}
    for sample, item in zip(ds.samples, ds):
        assert sample.image.suffix == ".webp" and item.image.shape == (64, 128, 3)
        np.testing.assert_array_equal(item.label, _read(sample.train_ids))
        assert (item.label == 0).any() and (item.label == 1).any() and (item.label == 255).any()
    test = SmiycObstacleTrack(demo / "smiyc", "test")
    assert test.scenes == {"gravel_demo_3": "gravel", "motorway_demo_4": "motorway"}
    assert set(test.scenes.values()) <= OBSTACLE_TEST_SCENES
    every = open_dataset("smiyc_obstacle", str(demo / "smiyc"), "all")
    assert len(every) == 6 and every.scenes["snowstorm1_demo_5"] == "snowstorm1" and every.has_labels
    assert every.labelled_names == [s.name for s in ds.samples]


@pytest.mark.parametrize("split", ["test", "all"])
def test_unlabelled_frames_say_so(demo, split):
    for reader in (SmiycAnomalyTrack, SmiycObstacleTrack):
        ds = reader(demo / "smiyc", split)
        assert ds.has_labels == (split == "all")
        unlabelled = [k for k, s in enumerate(ds.samples) if s.train_ids is None]
        # ObstacleTrack-test leaves the snowstorm scene out
        assert len(unlabelled) == (2 if split == "test" and reader is SmiycObstacleTrack else 3)
        assert len(ds) - len(unlabelled) == (3 if split == "all" else 0)
        with pytest.raises(InputError, match="has no label.*cannot be evaluated"):
            ds.load_label(ds.samples[unlabelled[0]])
        item = ds[unlabelled[0]]  # all void: scores can be dumped for a submission, nothing is evaluated
        assert item.image.shape[:2] == item.label.shape and (item.label == 255).all() and not item.labelled


def test_demo_lostandfound_noknown(demo):
    root = demo / "lostandfound_noknown"
    ds = open_dataset("lostandfound_noknown", str(root))
    assert isinstance(ds, LostAndFoundNoKnown) and ds.convention == L.LOSTANDFOUND
    assert [s.name for s in ds.samples] == ["01_Demo_Ring_1_000000_000030", "01_Demo_Ring_1_000001_000060",
                                            "10_Schlossberg_9_000003_000050"]
    assert ds.excluded == 3 and ds.unannotated == 0 and len(LostAndFound(root)) == 6
    for item in ds:
        assert (item.label == 2).any() and set(np.unique(item.label)) <= {0, 1, 2, 255}


def test_demo_road_anomaly(demo):
    ds = open_dataset("road_anomaly", str(demo / "road_anomaly"))
    assert isinstance(ds, RoadAnomaly) and len(ds) == 6 and ds.convention == L.FISHYSCAPES
    assert {s.image.suffix for s in ds.samples} == {".jpg", ".webp"}
    for sample, item in zip(ds.samples, ds):
        raw = _read(sample.label_ids)
        assert set(np.unique(raw)) <= {0, 2, 255} and (raw == 2).any()
        np.testing.assert_array_equal(item.label, np.where(raw == 2, 1, raw))
        np.testing.assert_array_equal(item.label_ids, raw)


# -- SegmentMeIfYouCan tracks on fixtures -------------------------------------------------------


def make_track(root: Path, folder: str, ext: str, fids: dict[str, np.ndarray | None]) -> Path:
    """Write a track: one image per fid, its label where given, and a colour rendering next to each label."""
    track = root / folder
    for fid, lab in fids.items():
        (track / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb()).save(track / "images" / f"{fid}{ext}")
        if lab is not None:
            _png(track / "labels_masks" / f"{fid}_labels_semantic.png", lab)
            _png(track / "labels_masks" / f"{fid}_labels_semantic_color.png", np.stack([lab] * 3, axis=-1))
    return track


def _lab(*values: int) -> np.ndarray:
    return RNG.choice(np.array(values, np.uint8), (H, W))


def test_anomaly_track_splits(tmp_path):
    labs = {"validation0000": _lab(0, 1, 255), "validation0001": _lab(0, 1)}
    make_track(tmp_path, "dataset_AnomalyTrack", ".jpg", {**labs, "airplane0000": None, "cow0001": None})
    val = SmiycAnomalyTrack(tmp_path, "validation")
    assert [s.name for s in val.samples] == sorted(labs)
    for item in val:
        np.testing.assert_array_equal(item.label, labs[item.name])
    assert [s.name for s in SmiycAnomalyTrack(tmp_path, "test").samples] == ["airplane0000", "cow0001"]
    every = SmiycAnomalyTrack(tmp_path)  # the default split: all
    assert every.split == "all" and len(every) == 4 and every.labelled_names == sorted(labs)


def test_obstacle_track_test_scenes(tmp_path):
    fids = {"validation_1": _lab(0, 1, 255), "curvy-street_box_1": None, "darkasphalt2_dog_3": None,
            "driveway_night_2": None, "snowstorm2_00_01_35.045": None}
    make_track(tmp_path, "dataset_ObstacleTrack", ".webp", fids)
    test = SmiycObstacleTrack(tmp_path, "test")
    assert test.scenes == {"curvy-street_box_1": "curvy-street", "darkasphalt2_dog_3": "darkasphalt2"}
    every = SmiycObstacleTrack(tmp_path, "all")
    assert every.scenes["snowstorm2_00_01_35.045"] == "snowstorm2" and every.scenes["validation_1"] == "validation"


def test_track_errors(tmp_path):
    with pytest.raises(InputError, match="SMIYC AnomalyTrack root not found"):
        SmiycAnomalyTrack(tmp_path / "missing")
    with pytest.raises(InputError, match="no split 'val'.*validation, test, all"):
        SmiycAnomalyTrack(tmp_path, "val")
    with pytest.raises(InputError, match="not a SMIYC ObstacleTrack folder: expected .*images/"):
        SmiycObstacleTrack(tmp_path)
    track = make_track(tmp_path, "dataset_ObstacleTrack", ".webp", {"gravel_a_1": None})
    with pytest.raises(InputError, match="no '\\*_labels_semantic.png' label files found"):
        SmiycObstacleTrack(tmp_path, "validation")
    assert not SmiycObstacleTrack(tmp_path).has_labels  # 'all' lists the frames: score files only
    make_track(tmp_path, "dataset_ObstacleTrack", ".webp", {"driveway_a_1": None})
    (track / "images" / "gravel_a_1.webp").unlink()
    with pytest.raises(InputError, match="no image of the SMIYC ObstacleTrack test split"):
        SmiycObstacleTrack(tmp_path, "test")
    _png(track / "labels_masks" / "validation_9_labels_semantic.png", _lab(0, 1))
    with pytest.raises(InputError, match="validation_9_labels_semantic.png: label without its image"):
        SmiycObstacleTrack(tmp_path, "all")
    (tmp_path / "dataset_AnomalyTrack" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="no '\\*.jpg' images found"):
        SmiycAnomalyTrack(tmp_path)


def test_track_label_values_and_size(tmp_path):
    make_track(tmp_path, "dataset_AnomalyTrack", ".jpg", {"validation0000": _lab(0, 1, 7)})
    with pytest.raises(InputError, match=r"validation0000_labels_semantic.png: unexpected label values \[7\]"):
        SmiycAnomalyTrack(tmp_path)[0]
    _png(tmp_path / "dataset_AnomalyTrack" / "labels_masks" / "validation0000_labels_semantic.png",
         np.zeros((H + 1, W), np.uint8))
    with pytest.raises(InputError, match="validation0000_labels_semantic.png: label size 16x11 does not match image"):
        SmiycAnomalyTrack(tmp_path)[0]


# -- LostAndFound-NoKnown and the ROI ------------------------------------------------------------


def make_laf(root: Path, frames: dict[str, np.ndarray], split: str = "test") -> None:
    """Write LostAndFound frames ``<scene>_<seq>_<frame>`` with the given label ids."""
    for base, ids in frames.items():
        scene = base.rsplit("_", 2)[0]
        _png(root / "leftImg8bit" / split / scene / f"{base}_leftImg8bit.png", _rgb())
        _png(root / "gtCoarse" / split / scene / f"{base}_gtCoarse_labelIds.png", ids)


def _laf_ids(empty: bool = False) -> np.ndarray:
    ids = np.zeros((H, W), np.uint8)
    if not empty:
        ids[H // 2:, :] = 1
        ids[H // 2: H // 2 + 2, 4:7] = 17
    return ids


def test_noknown_filter_counts(tmp_path):
    kept = ["01_Hanns_Klemm_Str_45_000005_000100", "01_Hanns_Klemm_Str_45_000060_000100",
            "10_Schlossberg_9_000003_000040", "15_Rechbergstr_Deckenpfronnweg_000000_000010"]
    excluded = ["15_Rechbergstr_Deckenpfronn_000000_000010", "15_Rechbergstr_Deckenpfronn_000001_000020",
                "01_Hanns_Klemm_Str_45_000006_000030", "01_Hanns_Klemm_Str_45_000007_000050",
                "10_Schlossberg_9_000004_000070"]
    frames = {name: _laf_ids() for name in kept + excluded}
    frames["04_Maurener_Weg_8_000001_000090"] = _laf_ids(empty=True)  # no annotation at all
    make_laf(tmp_path, frames)
    ds = LostAndFoundNoKnown(tmp_path)
    assert [s.name for s in ds.samples] == sorted(kept)
    assert (ds.excluded, ds.unannotated, len(LostAndFound(tmp_path))) == (5, 1, 10)
    custom = LostAndFoundNoKnown(tmp_path, exclude=["10_Schlossberg_9"])
    assert (len(custom), custom.excluded, custom.unannotated) == (7, 2, 1)
    assert "15_Rechbergstr_Deckenpfronn" in NOKNOWN_EXCLUDED


def test_noknown_errors(tmp_path):
    with pytest.raises(InputError, match="LostAndFound root not found"):
        LostAndFoundNoKnown(tmp_path / "missing")
    make_laf(tmp_path, {"15_Rechbergstr_Deckenpfronn_000000_000010": _laf_ids()})
    with pytest.raises(InputError, match="no LostAndFound-NoKnown frame left.*1 frames of excluded sequences"):
        LostAndFoundNoKnown(tmp_path)
    (tmp_path / "gtCoarse" / "test" / "15_Rechbergstr_Deckenpfronn" /
     "15_Rechbergstr_Deckenpfronn_000000_000010_gtCoarse_labelIds.png").unlink()
    with pytest.raises(InputError, match="_leftImg8bit.png: no ground truth found"):
        LostAndFoundNoKnown(tmp_path)


@pytest.mark.parametrize("mode", ["1", "L01", "L255"])
def test_roi_voids_outside(tmp_path, mode):
    base = "02_Hanns_Klemm_Str_44_000000_000010"
    make_laf(tmp_path / "laf", {base: _laf_ids()})
    inside = np.zeros((H, W), bool)
    inside[3:, 2:12] = True
    roi = tmp_path / "roi.png"
    if mode == "1":
        Image.fromarray(inside).save(roi)
    else:
        _png(roi, inside.astype(np.uint8) * (1 if mode == "L01" else 255))
    plain = LostAndFound(tmp_path / "laf")[0].label
    for ds in (LostAndFoundROI(tmp_path / "laf", roi=roi), open_dataset("lostandfound", str(tmp_path / "laf"), roi=str(roi)),
               open_dataset("lostandfound_noknown", str(tmp_path / "laf"), roi=str(roi))):
        label = ds[0].label
        np.testing.assert_array_equal(label[inside], plain[inside])
        assert (label[~inside] == L.VOID_ID).all()
    assert type(open_dataset("lostandfound", str(tmp_path / "laf"))) is LostAndFound


def test_roi_errors(tmp_path):
    make_laf(tmp_path / "laf", {"02_Hanns_Klemm_Str_44_000000_000010": _laf_ids()})
    with pytest.raises(InputError, match="nope.png: file not found"):
        LostAndFoundROI(tmp_path / "laf", roi=tmp_path / "nope.png")
    _png(tmp_path / "grey.png", np.full((H, W), 7, np.uint8))
    with pytest.raises(InputError, match=r"grey.png: the ROI mask must hold 0.*\[7\]"):
        LostAndFoundROI(tmp_path / "laf", roi=tmp_path / "grey.png")
    _png(tmp_path / "rgb.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(InputError, match="rgb.png: the ROI mask must be a single-channel binary image"):
        LostAndFoundROI(tmp_path / "laf", roi=tmp_path / "rgb.png")
    _png(tmp_path / "small.png", np.ones((H, W - 1), np.uint8))
    with pytest.raises(InputError, match="small.png: ROI mask size 15x10 does not match label .*labelIds.png size 16x10"):
        LostAndFoundROI(tmp_path / "laf", roi=tmp_path / "small.png")[0]


# -- Road Anomaly on fixtures -------------------------------------------------------------------


def make_road_anomaly(root: Path, frames: dict[str, np.ndarray]) -> None:
    """Write frames (file name -> label) and the frame list."""
    for name, lab in frames.items():
        (root / "frames").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb()).save(root / "frames" / name)
        _png(root / "frames" / f"{Path(name).stem}.labels" / "labels_semantic.png", lab)
    (root / "frame_list.json").write_text(json.dumps(list(frames)))


def test_road_anomaly_mapping(tmp_path):
    raw = _lab(0, 2, 3, 255)
    make_road_anomaly(tmp_path, {"zebra01.webp": raw, "animals01_cow.jpg": _lab(0, 2)})
    ds = RoadAnomaly(tmp_path)
    assert [s.name for s in ds.samples] == ["animals01_cow", "zebra01"]
    item = ds[1]
    np.testing.assert_array_equal(item.label, np.where((raw >= 2) & (raw < 255), 1, raw))
    assert set(np.unique(item.label)) <= {0, 1, 255}


def test_road_anomaly_errors(tmp_path):
    with pytest.raises(InputError, match="Road Anomaly root not found"):
        RoadAnomaly(tmp_path / "missing")
    with pytest.raises(InputError, match="one split, 'all'"):
        RoadAnomaly(tmp_path, "test")
    make_road_anomaly(tmp_path, {"a.jpg": _lab(0, 1)})
    with pytest.raises(InputError, match=r"labels_semantic.png: unexpected label value 1"):
        RoadAnomaly(tmp_path)[0]
    _png(tmp_path / "frames" / "a.labels" / "labels_semantic.png", np.zeros((H, W + 2), np.uint8))
    with pytest.raises(InputError, match="labels_semantic.png: label size 18x10 does not match image"):
        RoadAnomaly(tmp_path)[0]
    (tmp_path / "frames" / "a.labels" / "labels_semantic.png").unlink()
    with pytest.raises(InputError, match="a.jpg: no ground truth found"):
        RoadAnomaly(tmp_path)
    (tmp_path / "frame_list.json").write_text(json.dumps(["b.jpg"]))
    with pytest.raises(InputError, match="frame_list.json: frame 'b.jpg' is listed but"):
        RoadAnomaly(tmp_path)
    for bad in ("{", "[]", '["x/a.jpg"]', '["a.jpg", "a.jpg"]'):
        (tmp_path / "frame_list.json").write_text(bad)
        with pytest.raises(InputError, match="frame_list.json: "):
            RoadAnomaly(tmp_path)
    (tmp_path / "frame_list.json").unlink()
    with pytest.raises(InputError, match="not a Road Anomaly folder: expected frame_list.json and frames/ in "):
        RoadAnomaly(tmp_path)


# -- roots: the folder an archive unpacks to, or the folder holding it -------------------------------------------


def test_roots_accept_the_unpacked_folder_and_its_parent(demo, tmp_path):
    from meta_ood.datasets import RoadAnomaly

    for kind, folder in (("smiyc_anomaly", "dataset_AnomalyTrack"), ("smiyc_obstacle", "dataset_ObstacleTrack")):
        a, b = open_dataset(kind, str(demo / "smiyc")), open_dataset(kind, str(demo / "smiyc" / folder))
        assert [s.image for s in a.samples] == [s.image for s in b.samples] and len(a) == 6
    # Road Anomaly: RoadAnomaly_jpg/ as unpacked, below the folder the user names
    shutil.copytree(demo / "road_anomaly", tmp_path / "downloads" / "RoadAnomaly_jpg")
    parent = RoadAnomaly(tmp_path / "downloads")
    assert [s.name for s in parent.samples] == [s.name for s in RoadAnomaly(demo / "road_anomaly").samples]
    # LostAndFound (and NoKnown): the benchmark's dataset_LostAndFound/ below DIR_DATASETS
    shutil.copytree(demo / "lostandfound_noknown", tmp_path / "bench" / "dataset_LostAndFound")
    assert len(open_dataset("lostandfound_noknown", str(tmp_path / "bench"))) == 3
    assert len(LostAndFound(tmp_path / "bench")) == 6
    # Fishyscapes LostAndFound finds its images below laf_root's dataset_LostAndFound/ too
    shutil.copytree(demo / "lostandfound", tmp_path / "laf_parent" / "dataset_LostAndFound")
    from meta_ood.datasets import FishyscapesLostAndFound

    direct = FishyscapesLostAndFound(demo / "fishyscapes", demo / "lostandfound")
    below = FishyscapesLostAndFound(demo / "fishyscapes", tmp_path / "laf_parent")
    assert len(direct) > 0 and [s.image.name for s in below.samples] == [s.image.name for s in direct.samples]
    # a wrong root names the folders looked at and what they should hold
    with pytest.raises(InputError, match=r"not a SMIYC AnomalyTrack folder: expected .*images/.* in "
                                         rf"{re.escape(str(tmp_path))} or {re.escape(str(tmp_path / 'dataset_AnomalyTrack'))}"):
        open_dataset("smiyc_anomaly", str(tmp_path))
    with pytest.raises(InputError, match=r"not a Road Anomaly folder: expected frame_list.json and frames/ in .*RoadAnomaly_jpg"):
        RoadAnomaly(tmp_path / "bench")
    with pytest.raises(InputError, match=r"not a LostAndFound folder: expected leftImg8bit/ and gtCoarse/ in .*dataset_LostAndFound"):
        LostAndFound(tmp_path / "downloads")
