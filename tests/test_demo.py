"""The embedded demo generator: determinism, the real on-disk formats, content, readers round trip."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from meta_ood import labels as L
from meta_ood.datasets.demo import (
    MARKER_NAME,
    OWNER_NAME,
    DemoConfig,
    demo_config_from_dict,
    generate,
    planned_files,
    render_cityscapes,
)
from meta_ood.datasets.demo import writers as demo_writers
from meta_ood.errors import InputError

SMALL = dict(
    seed=3,
    height=64,
    width=128,
    n_train=8,
    n_val=3,
    n_coco=12,
    n_lostandfound=5,
    n_fishyscapes=4,
    coco_min_size=64,
    coco_size_range=(48, 160),
)
EXCLUDED_COCO_IDS = {1, 2, 3, 4, 6, 8, 10, 13}  # person, bicycle, car, motorcycle, bus, truck, traffic light, stop sign
CITYSCAPES_IDS = {lab.id for lab in L.CITYSCAPES_LABELS if lab.id >= 0}
LAF_IDS = {lab.id for lab in L.LOSTANDFOUND_LABELS}
LAF_HAZARD_IDS = {lab.id for lab in L.LOSTANDFOUND_LABELS if lab.train_id == 2}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _label(path: Path) -> np.ndarray:
    img = Image.open(path)
    assert img.mode == "L", f"{path}: mode {img.mode}"
    return np.asarray(img)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_a")
    info = generate(out, DemoConfig(**SMALL), progress=False)
    return out, info


@pytest.fixture(scope="module")
def demo_again(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_b")
    generate(out, DemoConfig(**SMALL), progress=False)
    return out


@pytest.fixture(scope="module")
def demo_other_seed(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_c")
    generate(out, DemoConfig(**{**SMALL, "seed": 4}), progress=False)
    return out


@pytest.fixture(scope="module")
def coco(demo) -> COCO:
    out, _ = demo
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(out / "coco" / "annotations" / "instances_train2017.json"))


# -- determinism, layout, marker ----------------------------------------------------------------


def test_same_seed_gives_identical_files(demo, demo_again):
    a, b = _files(demo[0]), _files(demo_again)
    assert a.keys() == b.keys()
    different = [name for name in a if a[name] != b[name]]
    assert not different, f"files differ between two generations with the same seed: {different[:5]}"


def test_other_seed_differs(demo, demo_other_seed):
    a, c = _files(demo[0]), _files(demo_other_seed)
    labels = [n for n in a if n.endswith("_labelIds.png") and n in c]
    assert labels
    assert sum(a[n] != c[n] for n in labels) == len(labels)


def test_layout_marker_and_return_value(demo):
    out, info = demo
    cfg = DemoConfig(**SMALL)
    expected = {p.relative_to(out) for p in planned_files(out, cfg)}
    written = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    assert written == expected
    for name in ("cityscapes", "coco", "lostandfound", "fishyscapes"):
        assert Path(info[name]) == out / name and (out / name).is_dir()
    counts = info["counts"]
    assert counts["cityscapes_train"] == 8 and counts["cityscapes_val"] == 3
    assert counts["coco_images"] == 12 and counts["lostandfound"] == 5 and counts["fishyscapes"] == 4
    assert counts["fishyscapes_lostandfound"] == 5  # min(n_fishyscapes_lostandfound = 10, n_lostandfound = 5)
    owner = json.loads((out / OWNER_NAME).read_text())
    assert owner["generator"] == "meta_ood.datasets.demo" and demo_config_from_dict(owner["config"]) == cfg
    marker = json.loads((out / MARKER_NAME).read_text())
    assert Path(info["marker"]) == out / MARKER_NAME
    assert demo_config_from_dict(marker["config"]) == cfg
    assert marker["counts"] == counts
    # the marker is the last file written
    newest = max((p for p in out.rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
    assert newest.stat().st_mtime_ns <= (out / MARKER_NAME).stat().st_mtime_ns
    # Cityscapes naming: <city>_<seq:06d>_<frame:06d>_leftImg8bit.png under <split>/<city>/
    for img in (out / "cityscapes" / "leftImg8bit" / "train").rglob("*.png"):
        city, seq, frame, suffix = img.name.split("_")
        assert img.parent.name == city and len(seq) == 6 and len(frame) == 6 and suffix == "leftImg8bit.png"


def test_regenerating_with_fewer_images_keeps_earlier_images_and_removes_stale_ones(demo, tmp_path):
    out = tmp_path / "demo"
    generate(out, DemoConfig(**SMALL), progress=False)
    fewer = DemoConfig(**{**SMALL, "n_train": 4, "n_coco": 5, "write_train_ids": ()})
    generate(out, fewer, progress=False)
    written = {p for p in out.rglob("*") if p.is_file()}
    assert written == set(planned_files(out, fewer))
    assert not list(out.rglob("*_labelTrainIds.png"))
    reference = _files(demo[0])
    for path in (out / "cityscapes").rglob("*.png"):
        rel = str(path.relative_to(out))
        assert path.read_bytes() == reference[rel], rel


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as None) with its bytes."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("marker", [None, '{"config": {}}'])
def test_refuses_a_folder_it_did_not_create(tmp_path, marker):
    out = tmp_path / "my_data"
    (out / "cityscapes" / "leftImg8bit" / "train" / "a").mkdir(parents=True)
    (out / "cityscapes" / "leftImg8bit" / "train" / "a" / "a_000000_000019_leftImg8bit.png").write_bytes(b"user image")
    (out / "notes.txt").write_text("keep me")
    if marker is not None:  # a DEMO_DATA.json that the generator did not write
        (out / MARKER_NAME).write_text(marker)
    before = _tree(out)
    with pytest.raises(InputError, match=r"my_data: folder is not empty and was not created by the demo generator"):
        generate(out, DemoConfig(**SMALL), progress=False)
    assert _tree(out) == before


def test_refuses_a_file_as_root(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError, match="file: exists and is not a folder"):
        generate(target, DemoConfig(**SMALL), progress=False)
    assert target.read_text() == "x"


def test_empty_folder_is_used(demo, tmp_path):
    generate(tmp_path, DemoConfig(**SMALL), progress=False)
    assert _files(tmp_path) == _files(demo[0])


def test_killed_generation_is_redone(demo, tmp_path, monkeypatch):
    """The ownership record comes first: a run killed half-way leaves a folder the generator may finish."""
    out = tmp_path / "demo"

    def killed(cfg, index):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_writers, "render_lostandfound", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(out, DemoConfig(**SMALL), progress=False)
    assert (out / OWNER_NAME).is_file() and not (out / MARKER_NAME).exists()
    assert list((out / "cityscapes").rglob("*.png"))
    monkeypatch.undo()
    generate(out, DemoConfig(**SMALL), progress=False)
    assert _files(out) == _files(demo[0])


def test_regenerates_own_folder_without_completion_marker(demo, tmp_path):
    """The workflow deletes DEMO_DATA.json before rerunning the generator: the ownership record suffices."""
    out = tmp_path / "demo"
    bigger = DemoConfig(**{**SMALL, "n_val": 5, "n_lostandfound": 7})
    generate(out, bigger, progress=False)
    (out / MARKER_NAME).unlink()
    generate(out, DemoConfig(**SMALL), progress=False)
    assert _files(out) == _files(demo[0])  # the extra val / LostAndFound / Fishyscapes files are gone


# -- Cityscapes format --------------------------------------------------------------------------


def test_cityscapes_label_files(demo):
    out, _ = demo
    gt = out / "cityscapes" / "gtFine"
    seen_train_ids: set[int] = set()
    seen_ids: set[int] = set()
    for split, n in (("train", 8), ("val", 3)):
        id_files = sorted((gt / split).rglob("*_gtFine_labelIds.png"))
        assert len(id_files) == n
        for path in id_files:
            ids = _label(path)
            assert ids.shape == (64, 128)
            assert set(np.unique(ids).tolist()) <= CITYSCAPES_IDS
            image = Image.open(str(path).replace("gtFine", "leftImg8bit", 1).replace("_gtFine_labelIds", "_leftImg8bit"))
            assert image.mode == "RGB" and image.size == (128, 64)
            train_file = Path(str(path).replace("_labelIds", "_labelTrainIds"))
            if split == "train":
                train = _label(train_file)
                np.testing.assert_array_equal(train, L.CITYSCAPES_ID_TO_TRAIN[ids])
                seen_train_ids |= set(np.unique(train).tolist())
                seen_ids |= set(np.unique(ids).tolist())
            else:
                assert not train_file.exists()  # default: train ids only for the train split
    assert set(range(19)) <= seen_train_ids, f"classes missing from the train set: {sorted(set(range(19)) - seen_train_ids)}"
    assert L.VOID_ID in seen_train_ids
    assert 1 in seen_ids  # ego vehicle


def test_every_class_present_with_four_images():
    cfg = DemoConfig(**{**SMALL, "seed": 11})
    present: set[int] = set()
    for i in range(4):
        _, ids = render_cityscapes(cfg, "train", i)
        present |= set(np.unique(L.CITYSCAPES_ID_TO_TRAIN[ids]).tolist())
    assert set(range(19)) <= present


def test_colour_does_not_give_away_the_class(demo):
    """Mean colours of road, building and wall overlap across images (per-image palettes and lighting)."""
    out, _ = demo
    means: dict[int, list[np.ndarray]] = {0: [], 2: []}
    for path in sorted((out / "cityscapes" / "gtFine" / "train").rglob("*_labelTrainIds.png")):
        train = _label(path)
        img = np.asarray(Image.open(str(path).replace("gtFine", "leftImg8bit", 1).replace("_gtFine_labelTrainIds", "_leftImg8bit")), float)
        for k in means:
            if (train == k).sum() > 50:
                means[k].append(img[train == k].mean(axis=0))
                # textured, not flat colour
                assert img[train == k].std(axis=0).mean() > 4
    road, building = np.array(means[0]).mean(axis=1), np.array(means[2]).mean(axis=1)
    assert road.max() > building.min()


# -- COCO format ---------------------------------------------------------------------------------


def test_coco_json_and_images(demo, coco):
    out, _ = demo
    cats = {c["id"]: c for c in coco.loadCats(coco.getCatIds())}
    for cid, name, sup in ((1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"),
                           (4, "motorcycle", "vehicle"), (6, "bus", "vehicle"), (8, "truck", "vehicle"),
                           (10, "traffic light", "outdoor"), (13, "stop sign", "outdoor"), (16, "bird", "animal"),
                           (18, "dog", "animal"), (44, "bottle", "kitchen"), (62, "chair", "furniture"),
                           (64, "potted plant", "furniture"), (72, "tv", "electronic")):
        assert cats[cid]["name"] == name and cats[cid]["supercategory"] == sup
    data = json.loads((out / "coco" / "annotations" / "instances_train2017.json").read_text())
    assert {"info", "licenses", "images", "annotations", "categories"} <= data.keys()
    assert len(coco.getImgIds()) == 12
    for image_id, entry in coco.imgs.items():
        assert entry["file_name"] == f"{image_id:012d}.jpg"
        img = Image.open(out / "coco" / "train2017" / entry["file_name"])
        assert img.format == "JPEG" and img.mode == "RGB"
        assert img.size == (entry["width"], entry["height"])
        assert coco.getAnnIds(imgIds=[image_id]), f"image {image_id} has no annotation"


def test_coco_annotation_encodings(coco):
    kinds = {"polygon": 0, "uncompressed": 0, "compressed": 0}
    for ann in coco.anns.values():
        seg = ann["segmentation"]
        img = coco.imgs[ann["image_id"]]
        m = coco.annToMask(ann)
        assert m.shape == (img["height"], img["width"]) and m.any()
        if isinstance(seg, list):
            kinds["polygon"] += 1
            assert ann["iscrowd"] == 0 and all(len(p) >= 6 and len(p) % 2 == 0 for p in seg)
        elif isinstance(seg["counts"], list):
            kinds["uncompressed"] += 1
            assert ann["iscrowd"] == 1 and sum(seg["counts"]) == img["height"] * img["width"]
            assert seg["size"] == [img["height"], img["width"]]
            assert ann["area"] == pytest.approx(m.sum())
        else:
            kinds["compressed"] += 1
            assert isinstance(seg["counts"], str)
            assert ann["area"] == pytest.approx(m.sum())
        rle = coco.annToRLE(ann)
        assert ann["area"] == pytest.approx(float(mask_utils.area(rle)))
        assert ann["bbox"] == pytest.approx(mask_utils.toBbox(rle).tolist(), abs=0.01)
    assert all(kinds.values()), kinds
    assert len({a["id"] for a in coco.anns.values()}) == len(coco.anns)


def test_coco_filter_has_work(coco):
    min_size = SMALL["coco_min_size"]
    small = {i for i, e in coco.imgs.items() if min(e["height"], e["width"]) < min_size}
    excluded = {a["image_id"] for a in coco.anns.values() if a["category_id"] in EXCLUDED_COCO_IDS}
    kept = set(coco.imgs) - small - excluded
    assert small and excluded and kept
    assert max(max(e["height"], e["width"]) for e in coco.imgs.values()) <= SMALL["coco_size_range"][1]


# -- LostAndFound format -------------------------------------------------------------------------


def test_lostandfound_labels(demo):
    out, _ = demo
    root = out / "lostandfound"
    assert not list(root.rglob("*labelTrainIds*"))
    files = sorted((root / "gtCoarse" / "test").rglob("*_gtCoarse_labelIds.png"))
    assert len(files) == 5
    for path in files:
        lab = _label(path)
        values = set(np.unique(lab).tolist())
        assert values <= LAF_IDS
        assert 0 in values and 1 in values and values & LAF_HAZARD_IDS
        ood = np.isin(lab, list(LAF_HAZARD_IDS)).mean()
        assert 0.002 <= ood <= 0.05, f"{path.name}: OoD fraction {ood:.4f}"
        assert (lab == 1).mean() > 0.2  # the road dominates
        image = Image.open(str(path).replace("gtCoarse", "leftImg8bit", 1).replace("_gtCoarse_labelIds", "_leftImg8bit"))
        assert image.mode == "RGB" and image.size == (128, 64)


# -- Fishyscapes format --------------------------------------------------------------------------


def test_fishyscapes_labels(demo):
    out, _ = demo
    folder = out / "fishyscapes" / "Static"
    labels = sorted(folder.glob("*.png"))
    assert [p.stem for p in labels] == ["0000", "0001", "0002", "0003"]
    for path in labels:
        lab = _label(path)
        assert set(np.unique(lab).tolist()) <= {0, 1, 255}
        assert 0.005 <= (lab == 1).mean() <= 0.05
        assert (lab[0] == 255).all() and (lab[-1] == 255).all() and (lab[:, 0] == 255).all()
        assert (lab == 255).mean() < 0.4
        image = Image.open(path.with_suffix(".jpg"))
        assert image.format == "JPEG" and image.size == (128, 64)


def test_fishyscapes_lostandfound_labels_and_reader(demo):
    """Fishyscapes LostAndFound: labels of the first LostAndFound frames, read with their LostAndFound images."""
    datasets = pytest.importorskip("meta_ood.datasets")
    out, _ = demo
    names = sorted(p.name for p in (out / "fishyscapes" / "LostAndFound").iterdir())
    assert names == ["0000_01_Demo_Ring_1_000000_000040_labels.png", "0001_02_Pixel_Weg_7_000000_000050_labels.png",
                     "0002_03_Synth_Allee_12_000000_000060_labels.png", "0003_04_Muster_Str_3_000000_000070_labels.png",
                     "0004_01_Demo_Ring_1_000001_000080_labels.png"]
    ds = datasets.open_dataset("fishyscapes_lostandfound", str(out / "fishyscapes"), laf_root=str(out / "lostandfound"))
    assert isinstance(ds, datasets.FishyscapesLostAndFound) and len(ds) == 5
    assert ds.convention == L.FISHYSCAPES
    for item in ds:
        image = Path(item.path)
        assert image.parent.parent.parent == out / "lostandfound" / "leftImg8bit"
        ids = _label(Path(str(image).replace("leftImg8bit", "gtCoarse", 1).replace("_leftImg8bit.png", "_gtCoarse_labelIds.png")))
        expected = np.full(ids.shape, 255, np.uint8)
        expected[ids == 1] = 0  # free road: in-distribution
        expected[np.isin(ids, list(LAF_HAZARD_IDS))] = 1  # obstacles: OoD; everything else void
        np.testing.assert_array_equal(item.label, expected)
        np.testing.assert_array_equal(item.image, np.asarray(Image.open(image)))
        assert (item.label == 0).any() and (item.label == 1).any()


# -- round trip through the readers --------------------------------------------------------------


def test_readers_round_trip(demo, coco):
    datasets = pytest.importorskip("meta_ood.datasets")
    out, _ = demo
    for split in ("train", "val"):
        ds = datasets.Cityscapes(out / "cityscapes", split)
        assert len(ds) == SMALL[f"n_{split}"]
        for item in ds:
            ids = _label(Path(item.path.replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit.png", "_gtFine_labelIds.png")))
            np.testing.assert_array_equal(item.label, L.CITYSCAPES_ID_TO_TRAIN[ids])
            assert item.image.shape == (64, 128, 3)
    laf = datasets.LostAndFound(out / "lostandfound", "test")
    assert len(laf) == 5
    for item in laf:
        ids = _label(Path(item.path.replace("leftImg8bit", "gtCoarse", 1).replace("_leftImg8bit.png", "_gtCoarse_labelIds.png")))
        np.testing.assert_array_equal(item.label, L.LOSTANDFOUND_ID_TO_TRAIN[ids])
        assert (item.label == 2).any() and (item.label == 1).any()
    fs = datasets.FishyscapesStatic(out / "fishyscapes")
    assert len(fs) == 4
    for item in fs:
        np.testing.assert_array_equal(item.label, _label(Path(item.path).with_suffix(".png")))
    cc = datasets.CocoImages(out / "coco", "train2017")
    assert len(cc) == 12
    for item in cc:
        expected = np.zeros(item.image.shape[:2], bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[int(item.name)])):
            expected |= coco.annToMask(ann).astype(bool)
        np.testing.assert_array_equal(item.label == L.COCO_OOD_ID, expected)


# -- configuration -------------------------------------------------------------------------------


def test_config_from_dict():
    cfg = demo_config_from_dict({"seed": 2, "height": 64, "coco_size_range": [50, 90], "write_train_ids": True})
    assert cfg.seed == 2 and cfg.height == 64 and cfg.coco_size_range == (50, 90)
    assert cfg.write_train_ids == ("train", "val")
    assert demo_config_from_dict({"write_train_ids": False}).write_train_ids == ()
    assert demo_config_from_dict({"write_train_ids": ["val"]}).write_train_ids == ("val",)
    assert demo_config_from_dict({}) == DemoConfig()
    with pytest.raises(InputError, match="n_trian"):
        demo_config_from_dict({"n_trian": 3})


@pytest.mark.parametrize(
    "bad",
    [{"height": 8}, {"n_val": 0}, {"seed": -1}, {"n_fishyscapes_lostandfound": 0}, {"width": 64.5}, {"n_coco": True},
     {"coco_size_range": [90, 50]}, {"coco_small_fraction": 1.5}, {"write_train_ids": ["test"]}],
)
def test_config_rejects_bad_values(bad):
    key = next(iter(bad))
    with pytest.raises(InputError, match=key):
        demo_config_from_dict(bad)


def test_default_config_sizes():
    cfg = DemoConfig()
    assert (cfg.height, cfg.width) == (128, 256)
    assert (cfg.n_train, cfg.n_val, cfg.n_coco, cfg.n_lostandfound, cfg.n_fishyscapes) == (120, 30, 60, 40, 15)
    assert cfg.n_fishyscapes_lostandfound == 10
    assert cfg.coco_min_size == 128 and cfg.write_train_ids == ("train",)


def test_coco_street_backgrounds_are_empty_streets():
    from meta_ood.datasets.demo.street import _Street

    rng = np.random.default_rng(5)
    for _ in range(3):
        img, ids = _Street(rng, 96, 160, mode="coco").render()
        assert img.shape == (96, 160, 3)
        shown = set(np.unique(ids).tolist())
        road = {lab.id for lab in L.CITYSCAPES_LABELS if lab.name == "road"}
        no_go = {lab.id for lab in L.CITYSCAPES_LABELS if lab.name in
                 ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle", "ego vehicle")}
        assert road <= shown and not shown & no_go
