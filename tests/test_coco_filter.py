"""Tests of meta_ood.coco_filter against the reference outputs (golden/coco_public.*)."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from meta_ood.coco_filter import (
    DEFAULT_EXCLUDE,
    DEFAULT_MIN_SIZE,
    filter_coco,
    load_coco,
    ood_mask,
    select_images,
)
from meta_ood.errors import InputError
from meta_ood.io import read_label

# pycocotools 2.0.11 decodes RLEs through an __array__ without a 'copy' keyword (numpy 2 notice)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture(scope="module")
def golden(golden_dir: Path) -> dict[str, np.ndarray]:
    with np.load(golden_dir / "coco_public.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def coco_json(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "coco_public.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory: pytest.TempPathFactory, golden_dir: Path, golden: dict) -> Path:
    """COCO-like tree: the annotation file and an 8x8 dummy jpg for the ids the reference saw on disk.

    Also holds a jpg that the json does not list and a non-image file; both must be ignored.
    """
    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    shutil.copy(golden_dir / "coco_public.json", root / "annotations" / "instances_train2017.json")
    images = root / "train2017"
    images.mkdir()
    dummy = Image.fromarray(np.full((8, 8, 3), 127, dtype=np.uint8))
    for image_id in golden["in_image_ids_on_disk"]:
        dummy.save(images / f"{int(image_id):012d}.jpg", format="JPEG")
    dummy.save(images / "000000999999.jpg", format="JPEG")
    (images / "README.txt").write_text("not an image\n")
    return root


def _ann(root: Path) -> Path:
    return root / "annotations" / "instances_train2017.json"


def _imgs(root: Path) -> Path:
    return root / "train2017"


@pytest.fixture(scope="module")
def first_run(coco_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("coco_out")
    table = filter_coco(_ann(coco_root), _imgs(coco_root), out, progress=False)
    return out, table


def _expected_ids_for(coco_json: dict, on_disk: set[int], exclude: tuple[str, ...], min_size: int) -> list[int]:
    """Selection rule re-derived from the raw json (without pycocotools)."""
    excluded_cats = {c["id"] for c in coco_json["categories"] if c["name"] in exclude}
    dropped = {a["image_id"] for a in coco_json["annotations"] if a["category_id"] in excluded_cats}
    return sorted(
        im["id"]
        for im in coco_json["images"]
        if im["id"] in on_disk
        and im["id"] not in dropped
        and im["height"] >= min_size
        and im["width"] >= min_size
    )


def test_reference_parameters_match_defaults(golden: dict) -> None:
    assert tuple(str(n) for n in golden["in_exclude_classes"]) == DEFAULT_EXCLUDE
    assert int(golden["in_min_image_size"]) == DEFAULT_MIN_SIZE


def test_select_images_matches_reference(coco_root: Path, golden: dict, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="meta_ood.coco_filter"):
        ids = select_images(_ann(coco_root), _imgs(coco_root))
    assert ids == [int(i) for i in golden["pred_mask_ids"]]
    # the stray jpg on disk that the json does not list is never selected
    assert 999999 not in ids

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    n_missing = len(set(golden["in_image_ids_in_json"].tolist()) - set(golden["in_image_ids_on_disk"].tolist()))
    assert n_missing == 2
    assert warnings[0].getMessage().startswith(f"{n_missing} of {len(golden['in_image_ids_in_json'])} images")


def test_filter_coco_masks_match_reference(first_run: tuple[Path, pd.DataFrame], golden: dict) -> None:
    out, table = first_run
    expected_ids = [int(i) for i in golden["pred_mask_ids"]]
    assert table["image_id"].tolist() == expected_ids
    written = sorted(p.name for p in (out / "masks").iterdir())
    assert written == [f"{i:012d}.png" for i in expected_ids]
    for image_id in expected_ids:
        expected = golden[f"pred_mask_{image_id:012d}"]
        got = read_label(out / "masks" / f"{image_id:012d}.png")
        assert got.dtype == np.uint8
        assert got.shape == expected.shape, image_id
        np.testing.assert_array_equal(got, expected, err_msg=str(image_id))
        # the PNG is a plain 8-bit grey image, as the reference wrote it
        with Image.open(out / "masks" / f"{image_id:012d}.png") as img:
            assert img.mode == "L"


def test_ood_mask_in_memory_matches_reference(coco_root: Path, golden: dict) -> None:
    coco = load_coco(_ann(coco_root))
    for image_id in golden["pred_mask_ids"]:
        np.testing.assert_array_equal(ood_mask(coco, int(image_id)), golden[f"pred_mask_{int(image_id):012d}"])


def test_selected_csv_is_consistent_with_json(first_run: tuple[Path, pd.DataFrame], coco_json: dict) -> None:
    out, table = first_run
    csv = pd.read_csv(out / "selected.csv")
    assert list(csv.columns) == ["image_id", "file_name", "height", "width", "n_annotations"]
    pd.testing.assert_frame_equal(csv, table, check_dtype=False)

    images = {im["id"]: im for im in coco_json["images"]}
    n_anns = Counter(a["image_id"] for a in coco_json["annotations"])
    for row in csv.itertuples(index=False):
        assert row.file_name == f"{row.image_id:012d}.jpg"
        assert (row.height, row.width) == (images[row.image_id]["height"], images[row.image_id]["width"])
        assert row.n_annotations == n_anns.get(row.image_id, 0)
    # the one kept image without annotations, and images with crowd + polygon annotations
    assert (csv["n_annotations"] == 0).sum() == sum(1 for i in csv["image_id"] if n_anns.get(i, 0) == 0)
    assert not list(out.glob(".*.tmp*")) and not list((out / "masks").glob(".*.tmp*"))


def test_rule_rederived_from_json(coco_root: Path, coco_json: dict, golden: dict) -> None:
    on_disk = set(golden["in_image_ids_on_disk"].tolist())
    expected = _expected_ids_for(coco_json, on_disk, DEFAULT_EXCLUDE, DEFAULT_MIN_SIZE)
    assert expected == golden["pred_mask_ids"].tolist()
    exclude = ("person", "train")
    assert select_images(_ann(coco_root), _imgs(coco_root), exclude_names=exclude, min_size=400) == (
        _expected_ids_for(coco_json, on_disk, exclude, 400)
    )


def test_rerun_with_stricter_filter_removes_stale_masks(
    coco_root: Path, coco_json: dict, golden: dict, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = filter_coco(_ann(coco_root), _imgs(coco_root), out, progress=False)
    (out / "masks" / "notes.txt").write_text("keep me\n")
    (out / "masks" / "1234.png").write_bytes(b"not a mask name")

    second = filter_coco(_ann(coco_root), _imgs(coco_root), out, min_size=500, progress=False)
    on_disk = set(golden["in_image_ids_on_disk"].tolist())
    expected = _expected_ids_for(coco_json, on_disk, DEFAULT_EXCLUDE, 500)
    assert 0 < len(expected) < len(first)
    assert second["image_id"].tolist() == expected
    assert pd.read_csv(out / "selected.csv")["image_id"].tolist() == expected
    names = sorted(p.name for p in (out / "masks").iterdir())
    assert names == sorted([f"{i:012d}.png" for i in expected] + ["notes.txt", "1234.png"])
    for image_id in expected:
        np.testing.assert_array_equal(
            read_label(out / "masks" / f"{image_id:012d}.png"), golden[f"pred_mask_{image_id:012d}"]
        )


def test_empty_selection_raises_and_keeps_previous_output(
    coco_root: Path, first_run: tuple[Path, pd.DataFrame]
) -> None:
    out, table = first_run
    before = sorted(p.name for p in (out / "masks").iterdir())
    with pytest.raises(InputError, match=r"min size 100000") as err:
        filter_coco(_ann(coco_root), _imgs(coco_root), out, min_size=100000, progress=False)
    assert "person" in str(err.value) and "28 image(s) considered" in str(err.value)
    assert sorted(p.name for p in (out / "masks").iterdir()) == before
    assert pd.read_csv(out / "selected.csv")["image_id"].tolist() == table["image_id"].tolist()


def test_unknown_exclude_name(coco_root: Path) -> None:
    with pytest.raises(InputError, match="'pedestrian'") as err:
        select_images(_ann(coco_root), _imgs(coco_root), exclude_names=("person", "pedestrian"))
    assert "available names" in str(err.value) and "traffic light" in str(err.value)


def test_missing_inputs(coco_root: Path, tmp_path: Path) -> None:
    missing_json = tmp_path / "nope" / "instances_train2017.json"
    with pytest.raises(InputError, match=str(missing_json)):
        select_images(missing_json, _imgs(coco_root))
    missing_dir = tmp_path / "train2017"
    with pytest.raises(InputError, match=str(missing_dir)):
        filter_coco(_ann(coco_root), missing_dir, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        select_images(bad, _imgs(coco_root))
    with pytest.raises(InputError, match="min_size"):
        select_images(_ann(coco_root), _imgs(coco_root), min_size=-1)


# --- hand-built annotation file: masks known independently of pycocotools' decoder -------------

H, W = 12, 16


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO uncompressed RLE: run lengths over the column-major pixel order, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0, *runs]


@pytest.fixture()
def tiny(tmp_path: Path):
    # image 1: a rectangle polygon (pixel corners at integer coordinates: columns 2..6, rows 3..5),
    #          a compressed RLE (crowd) of a diagonal stroke, and an uncompressed RLE (crowd) blob
    # image 2: no annotations; image 3: only a crowd 'person' (excluded)
    poly = np.zeros((H, W), dtype=np.uint8)
    poly[3:6, 2:7] = 1
    stroke = np.zeros((H, W), dtype=np.uint8)
    for k in range(8):
        stroke[2 + k, 8 + k // 2] = 1
    blob = np.zeros((H, W), dtype=np.uint8)
    blob[9:12, 0:4] = 1
    blob[10, 4] = 1

    rle = mask_utils.encode(np.asfortranarray(stroke))
    rle["counts"] = rle["counts"].decode("ascii")
    data = {
        "images": [
            {"id": 1, "file_name": "000000000001.jpg", "height": H, "width": W},
            {"id": 2, "file_name": "000000000002.jpg", "height": H, "width": W},
            {"id": 3, "file_name": "000000000003.jpg", "height": H, "width": W},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 7, "name": "train"}, {"id": 44, "name": "bottle"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "iscrowd": 0,
             "segmentation": [[2, 3, 7, 3, 7, 6, 2, 6]], "area": 15.0, "bbox": [2, 3, 5, 3]},
            {"id": 11, "image_id": 1, "category_id": 44, "iscrowd": 1,
             "segmentation": rle, "area": 8.0, "bbox": [8, 2, 4, 8]},
            {"id": 12, "image_id": 1, "category_id": 44, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": _uncompressed_counts(blob)}, "area": 13.0,
             "bbox": [0, 9, 5, 3]},
            {"id": 13, "image_id": 3, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": _uncompressed_counts(blob)}, "area": 13.0,
             "bbox": [0, 9, 5, 3]},
        ],
    }
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(data))
    images = tmp_path / "images"
    images.mkdir()
    for image_id in (1, 2, 3):
        (images / f"{image_id:012d}.jpg").write_bytes(b"")
    return ann, images, {"poly": poly, "stroke": stroke, "blob": blob}


def test_ood_mask_formats_hand_built(tiny) -> None:
    ann, _, parts = tiny
    coco = load_coco(ann)
    # each format on its own
    for ann_id, part in ((10, "poly"), (11, "stroke"), (12, "blob")):
        np.testing.assert_array_equal(coco.annToMask(coco.anns[ann_id]), parts[part], err_msg=part)
    expected = np.where(parts["poly"] | parts["stroke"] | parts["blob"], 254, 0).astype(np.uint8)
    got = ood_mask(coco, 1)
    assert got.dtype == np.uint8 and got.shape == (H, W)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ood_mask(coco, 1, ood_id=1), (expected > 0).astype(np.uint8))
    np.testing.assert_array_equal(ood_mask(coco, 2), np.zeros((H, W), dtype=np.uint8))
    with pytest.raises(InputError, match="image id 99"):
        ood_mask(coco, 99)
    with pytest.raises(InputError, match="ood_id"):
        ood_mask(coco, 1, ood_id=256)


def test_filter_coco_hand_built(tiny, tmp_path: Path) -> None:
    ann, images, parts = tiny
    table = filter_coco(ann, images, tmp_path / "out", exclude_names=("person",), min_size=H, progress=False)
    # image 3 is dropped by its crowd 'person' annotation; 'train' does not exclude image 1
    assert table["image_id"].tolist() == [1, 2]
    assert table["n_annotations"].tolist() == [3, 0]
    expected = np.where(parts["poly"] | parts["stroke"] | parts["blob"], 254, 0).astype(np.uint8)
    np.testing.assert_array_equal(read_label(tmp_path / "out" / "masks" / "000000000001.png"), expected)
    np.testing.assert_array_equal(read_label(tmp_path / "out" / "masks" / "000000000002.png"), 0 * expected)
    with pytest.raises(InputError, match=f"min size {H + 1}"):
        filter_coco(ann, images, tmp_path / "out2", exclude_names=("person",), min_size=H + 1, progress=False)
