"""Readers of the real on-disk layouts, on fixtures written here in those layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meta_ood import labels as L
from meta_ood.datasets import (
    Cityscapes,
    CocoImages,
    FishyscapesLostAndFound,
    FishyscapesStatic,
    LostAndFound,
    open_dataset,
)
from meta_ood.errors import InputError

RNG = np.random.default_rng(0)
H, W = 12, 20


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _rgb(h: int = H, w: int = W) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _cs_label_ids(h: int = H, w: int = W) -> np.ndarray:
    ids = np.array([l.id for l in L.CITYSCAPES_LABELS if l.id >= 0], dtype=np.uint8)
    return RNG.choice(ids, (h, w)).astype(np.uint8)


def make_cityscapes(root: Path, split: str, cities: dict[str, int], train_ids: bool) -> dict[str, np.ndarray]:
    """Write a Cityscapes tree; return label ids by frame name."""
    out = {}
    for city, n in cities.items():
        for k in range(n):
            base = f"{city}_{k:06d}_{19 * k:06d}"
            _png(root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png", _rgb())
            ids = _cs_label_ids()
            _png(root / "gtFine" / split / city / f"{base}_gtFine_labelIds.png", ids)
            if train_ids:
                trn = L.CITYSCAPES_ID_TO_TRAIN[ids].astype(np.uint8)
                _png(root / "gtFine" / split / city / f"{base}_gtFine_labelTrainIds.png", trn)
            out[base] = ids
    return out


def test_cityscapes_train_ids_and_order(tmp_path):
    ids = make_cityscapes(tmp_path, "val", {"zurich": 2, "bonn": 2}, train_ids=True)
    ds = Cityscapes(tmp_path, "val")
    assert [s.name for s in ds.samples] == sorted(ids)  # bonn before zurich, frames sorted
    for item in ds:
        expected = L.CITYSCAPES_ID_TO_TRAIN[ids[item.name]]
        np.testing.assert_array_equal(item.label, expected)
        np.testing.assert_array_equal(item.label_ids, ids[item.name])
        assert item.image.shape == (H, W, 3) and item.label.dtype == np.uint8


def test_cityscapes_label_ids_only(tmp_path):
    ids = make_cityscapes(tmp_path, "train", {"aachen": 3}, train_ids=False)
    ds = Cityscapes(tmp_path, "train")
    assert len(ds) == 3
    for item in ds:
        lab = ids[item.name]
        # independent mapping through the name -> train id table
        by_id = {l.id: l.train_id for l in L.CITYSCAPES_LABELS}
        expected = np.vectorize(by_id.get)(lab)
        np.testing.assert_array_equal(item.label, expected)
        assert set(np.unique(item.label)) <= set(range(19)) | {255}


def test_cityscapes_license_plate_and_void_mapping():
    # the official table: license plate (-1) and all ignore_in_eval labels are void
    for lab in L.CITYSCAPES_LABELS:
        if lab.ignore_in_eval:
            assert lab.train_id == 255
    assert sorted({l.train_id for l in L.CITYSCAPES_LABELS} - {255}) == list(range(19))
    assert L.CITYSCAPES_TRAIN_NAMES[0] == "road" and L.CITYSCAPES_TRAIN_NAMES[18] == "bicycle"


def test_lostandfound_label_mapping(tmp_path):
    scene = "04_Maurener_Weg_8"
    ids = np.zeros((H, W), np.uint8)
    ids[4:, :] = 1
    ids[6:8, 3:6] = 17  # pylon -> OoD
    ids[9:11, 10:12] = 36  # timber (small), random non-hazard -> 0
    ids[0, 0] = 43
    base = f"{scene}_000002_000150"
    _png(tmp_path / "leftImg8bit" / "test" / scene / f"{base}_leftImg8bit.png", _rgb())
    _png(tmp_path / "gtCoarse" / "test" / scene / f"{base}_gtCoarse_labelIds.png", ids)
    ds = LostAndFound(tmp_path, "test")
    item = ds[0]
    expected = np.full((H, W), 255, np.uint8)
    expected[4:, :] = 1
    expected[6:8, 3:6] = 2
    expected[9:11, 10:12] = 0
    expected[0, 0] = 2
    np.testing.assert_array_equal(item.label, expected)
    np.testing.assert_array_equal(item.label_ids, ids)
    assert ds.convention.train_id_in == 1 and ds.convention.train_id_out == 2


def test_lostandfound_non_hazards_follow_released_table():
    non_hazard = {l.id for l in L.LOSTANDFOUND_LABELS if l.category == "Random non-hazards"}
    assert non_hazard == {31, 33, 34, 36, 37, 38, 39}
    assert all(L.LOSTANDFOUND_ID_TO_TRAIN[i] == 0 for i in non_hazard)
    assert L.LOSTANDFOUND_ID_TO_TRAIN[0] == 255 and L.LOSTANDFOUND_ID_TO_TRAIN[1] == 1
    assert L.LOSTANDFOUND_ID_TO_TRAIN[44] == -1


def test_fishyscapes_static(tmp_path):
    folder = tmp_path / "Static"
    labs = {}
    for k in range(3):
        lab = RNG.choice(np.array([0, 1, 255], np.uint8), (H, W))
        _png(folder / f"{k:04d}.png", lab)
        Image.fromarray(_rgb()).save(folder / f"{k:04d}.jpg")
        labs[f"{k:04d}"] = lab
    ds = open_dataset("fishyscapes_static", str(tmp_path))
    assert isinstance(ds, FishyscapesStatic) and len(ds) == 3
    for item in ds:
        np.testing.assert_array_equal(item.label, labs[item.name])
        assert item.path.endswith(".jpg") and item.label_ids is None


def test_fishyscapes_lostandfound(tmp_path):
    laf = tmp_path / "laf"
    base = "01_Hanns_Klemm_Str_45_000000_000200"
    _png(laf / "leftImg8bit" / "train" / "01_Hanns_Klemm_Str_45" / f"{base}_leftImg8bit.png", _rgb())
    fs = tmp_path / "fs"
    lab = RNG.choice(np.array([0, 1, 255], np.uint8), (H, W))
    _png(fs / "LostAndFound" / f"0007_{base}_labels.png", lab)
    ds = FishyscapesLostAndFound(fs, laf)
    assert len(ds) == 1
    np.testing.assert_array_equal(ds[0].label, lab)
    assert base in ds[0].path
    opened = open_dataset("fishyscapes_lostandfound", str(fs), laf_root=str(laf))
    assert isinstance(opened, FishyscapesLostAndFound) and opened.samples == ds.samples
    with pytest.raises(InputError, match="fishyscapes_lostandfound needs laf_root"):
        open_dataset("fishyscapes_lostandfound", str(fs))
    with pytest.raises(InputError, match="LostAndFound images .leftImg8bit. not found"):
        open_dataset("fishyscapes_lostandfound", str(fs), laf_root=str(tmp_path / "nope"))


def test_open_dataset_unknown_kind(tmp_path):
    with pytest.raises(InputError, match="unknown dataset kind 'fishyscapes'; expected one of cityscapes, "):
        open_dataset("fishyscapes", str(tmp_path))


def _coco_json(path: Path, images: list[tuple[int, int, int]]) -> None:
    anns = []
    for k, (image_id, h, w) in enumerate(images):
        anns.append({
            "id": k + 1, "image_id": image_id, "category_id": 18, "iscrowd": 0,
            "segmentation": [[2.0, 2.0, 8.0, 2.0, 8.0, 6.0, 2.0, 6.0]], "area": 24.0, "bbox": [2, 2, 6, 4],
        })
    doc = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "height": h, "width": w} for i, h, w in images],
        "annotations": anns,
        "categories": [{"id": 18, "name": "dog", "supercategory": "animal"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_coco_on_the_fly_masks_and_mask_dir(tmp_path):
    _coco_json(tmp_path / "annotations" / "instances_train2017.json", [(5, 10, 12), (3, 10, 12), (9, 10, 12)])
    for i in (3, 5):  # 9 has no file
        (tmp_path / "train2017").mkdir(exist_ok=True)
        Image.fromarray(_rgb(10, 12)).save(tmp_path / "train2017" / f"{i:012d}.jpg")
    ds = CocoImages(tmp_path)
    assert [s.name for s in ds.samples] == ["000000000003", "000000000005"]
    mask = ds[0].label
    assert set(np.unique(mask)) == {0, 254}
    assert mask.shape == (10, 12)
    masks = tmp_path / "masks"
    _png(masks / "000000000005.png", np.where(np.arange(120).reshape(10, 12) % 2, 254, 0).astype(np.uint8))
    ds2 = CocoImages(tmp_path, masks_dir=masks)
    assert len(ds2) == 1 and ds2[0].name == "000000000005"


# ---------------------------------------------------------------- bad input


def test_missing_root_and_split(tmp_path):
    with pytest.raises(InputError, match="Cityscapes root"):
        Cityscapes(tmp_path / "nope", "train")
    make_cityscapes(tmp_path, "train", {"a": 1}, train_ids=True)
    with pytest.raises(InputError, match="split 'val'"):
        Cityscapes(tmp_path, "val")


def test_image_without_label(tmp_path):
    make_cityscapes(tmp_path, "train", {"a": 1}, train_ids=True)
    _png(tmp_path / "leftImg8bit" / "train" / "a" / "a_000009_000009_leftImg8bit.png", _rgb())
    with pytest.raises(InputError, match="a_000009_000009_leftImg8bit.png: no ground truth"):
        Cityscapes(tmp_path, "train")


def test_label_values_outside_table(tmp_path):
    make_cityscapes(tmp_path, "train", {"a": 1}, train_ids=True)
    bad = np.full((H, W), 7, np.uint8)
    bad[0, 0] = 77
    _png(next((tmp_path / "gtFine").rglob("*labelTrainIds.png")), bad)
    with pytest.raises(InputError, match=r"labelTrainIds.png: unexpected label values \[77\]"):
        Cityscapes(tmp_path, "train")[0]
    # label ids outside the LostAndFound table
    scene = tmp_path / "laf"
    _png(scene / "leftImg8bit" / "test" / "s" / "s_000000_000000_leftImg8bit.png", _rgb())
    _png(scene / "gtCoarse" / "test" / "s" / "s_000000_000000_gtCoarse_labelIds.png", np.full((H, W), 200, np.uint8))
    with pytest.raises(InputError, match=r"labelIds.png: unexpected label values \[200\]"):
        LostAndFound(scene)[0]


def test_size_mismatch(tmp_path):
    make_cityscapes(tmp_path, "train", {"a": 1}, train_ids=False)
    _png(next((tmp_path / "gtFine").rglob("*labelIds.png")), np.zeros((H + 1, W), np.uint8))
    with pytest.raises(InputError, match=r"does not match image .* size 20x12"):
        Cityscapes(tmp_path, "train")[0]


def test_unreadable_and_wrong_mode(tmp_path):
    make_cityscapes(tmp_path, "train", {"a": 1}, train_ids=False)
    img = next((tmp_path / "leftImg8bit").rglob("*.png"))
    img.write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read image"):
        Cityscapes(tmp_path, "train")[0]
    make_cityscapes(tmp_path / "b", "train", {"a": 1}, train_ids=False)
    lab = next((tmp_path / "b" / "gtFine").rglob("*labelIds.png"))
    Image.fromarray(_rgb()).save(lab)
    with pytest.raises(InputError, match="single-channel"):
        Cityscapes(tmp_path / "b", "train")[0]


def test_fishyscapes_missing_image(tmp_path):
    _png(tmp_path / "Static" / "0000.png", np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match="0000.jpg not found"):
        FishyscapesStatic(tmp_path)


def test_empty_split(tmp_path):
    (tmp_path / "leftImg8bit" / "test").mkdir(parents=True)
    (tmp_path / "gtCoarse" / "test").mkdir(parents=True)
    with pytest.raises(InputError, match="no '\\*_leftImg8bit.png' images"):
        LostAndFound(tmp_path)


def test_coco_bad_json(tmp_path):
    (tmp_path / "train2017").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{not json")
    with pytest.raises(InputError, match="instances_train2017.json: .*JSON"):
        CocoImages(tmp_path)
