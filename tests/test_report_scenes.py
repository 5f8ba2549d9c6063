"""Tests of the scene figures (paper figures 1, 2, 6, 10, 13, 15, 16): the numbers each returns
are recomputed here, independently, from the fixture's float probabilities and ground truth
(entropies, predicted OoD pixels, changed predictions) or from the segment metrics and the meta
tables (segment counts, removals); the scene choice follows the documented rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from meta_ood import report
from meta_ood.errors import InputError
from meta_ood.io import write_jpeg, write_parquet, write_png
from meta_ood.labels import FISHYSCAPES, LOSTANDFOUND
from meta_ood.report import figures_scenes, figures_scenes_meta
from meta_ood.scores import normalized_entropy
from meta_ood.segments import segment_metrics
from meta_ood.store import StoreReader, StoreWriter

H, W, C = 24, 48, 19
Q = 1.0 / 65535  # entropy quantization step of the stored planes
# image names (not in index order) and OoD boxes (row, col, height, width): 12, 40, 40, 0, 20 pixels
NAMES = ("delta", "zeta", "alpha", "echo", "bravo")
BOXES = ((14, 20, 4, 3), (12, 10, 5, 8), (12, 30, 8, 5), None, (15, 36, 4, 5))
OOD_PIXELS = tuple(0 if b is None else b[2] * b[3] for b in BOXES)
LARGEST_FIRST = sorted(range(len(NAMES)), key=lambda i: (-OOD_PIXELS[i], NAMES[i]))  # the documented rule
# cityscapesScripts labels.py, colours of train ids 0..18
CS_COLORS = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
             (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
             (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))

# every figure a test draws: no text artist leaves the canvas or overlaps another one
pytestmark = pytest.mark.usefixtures("no_text_layout_problems")



def _scene(rng: np.random.Generator, k: int, trained: bool, conv) -> tuple[np.ndarray, np.ndarray]:
    """Sky (void) over a road (in) with an OoD box; uncertain blobs on the road (false positives) and
    in the sky (void, ignored). OoD training makes the box uncertain and relabels a road strip."""
    label = np.full((H, W), conv.void_id, np.uint8)
    label[H // 3:, 4:W - 4] = conv.train_id_in
    if conv is LOSTANDFOUND:
        label[H - 3:, 4:8] = 0  # a non-hazard: neither in nor out
    box = BOXES[k % len(BOXES)]
    if box is not None:
        r, c, h, w = box
        label[r:r + h, c:c + w] = conv.train_id_out
    cls = np.where(np.arange(H)[:, None] < H // 3, 10, 0) * np.ones((1, W), int)
    if trained:
        cls[H // 3 + 1:H // 3 + 3, 14:26] = 1
    strength = np.clip(7.0 + 0.5 * rng.normal(size=(H, W)), 5.0, 9.0)
    strength[label == conv.train_id_out] = 0.5 if trained else 4.5
    strength[2:5, 6 + 4 * k:10 + 4 * k] = 0.3  # sky: void
    for j in range(1 + k % 2 + (0 if trained else 1)):
        r, c = H // 3 + 2 + 4 * j, 2 + 12 * j + k
        if not (label[r:r + 2, c + 4:c + 7] == conv.train_id_out).any():
            strength[r:r + 2, c + 4:c + 7] = 0.3
    logits = 0.3 * rng.normal(size=(C, H, W))
    np.put_along_axis(logits, cls[None], np.take_along_axis(logits, cls[None], 0) + strength[None], 0)
    e = np.exp(logits - logits.max(0))
    return label, (e / e.sum(0)).astype(np.float32)


def _rgb(label: np.ndarray, conv, scale: int) -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:] = (120, 160, 220)
    rgb[label == conv.train_id_in] = (90, 90, 90)
    rgb[label == conv.train_id_out] = (200, 60, 40)
    return np.repeat(np.repeat(rgb, scale, 0), scale, 1)


def _write(folder: Path, dataset: str, conv, scenes, images: Path, names, store_conv="same", **kw) -> None:
    writer = StoreWriter(folder, C, model="tiny", dataset=dataset, total=len(scenes),
                         convention=conv if store_conv == "same" else store_conv, **kw)
    for i, (label, probs) in enumerate(scenes):
        path = images / f"{dataset}_{names[i]}.{'jpg' if i % 2 else 'png'}"
        if not path.exists():
            rgb = _rgb(label, conv, 2 if i == 1 else 1)  # one input image at twice the label's size
            (write_jpeg if i % 2 else write_png)(path, rgb)
        writer.write(i, names[i], str(path), probs, label)
    writer.finalize()


def _meta_table(store: Path, t: float, seed: int) -> pd.DataFrame:
    """A meta classifier table of the store's segments at t (random prob_fp)."""
    reader, rng, rows = StoreReader(store), np.random.default_rng(seed), []
    for i in range(len(reader)):
        img = reader[i]
        df, _ = segment_metrics(img.probs, img.label, t, ood_id=2)
        for s in range(1, len(df) + 1):
            rows.append({"image": i, "segment": s, "prob_fp": float(rng.uniform())})
    return pd.DataFrame(rows, columns=["image", "segment", "prob_fp"])


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("scenes")
    images, out = root / "images", {"root": root}
    images.mkdir()
    for trained in (False, True):
        rng = np.random.default_rng(7 + trained)
        scenes = [_scene(rng, k, trained, LOSTANDFOUND) for k in range(len(NAMES))]
        key = "ood" if trained else "base"
        out[f"{key}_scenes"] = scenes
        out[key] = root / key
        _write(out[key], "lostandfound", LOSTANDFOUND, scenes, images, NAMES)
        if trained:  # the same images without probabilities: only score planes and argmax
            out["planes"] = root / "planes"
            _write(out["planes"], "lostandfound", LOSTANDFOUND, scenes, images, NAMES, store_probs=False)
        rng = np.random.default_rng(11 + trained)  # Cityscapes val, void read as OoD (in 0, out 1, void 255)
        city = [_scene(rng, k, trained, FISHYSCAPES) for k in (1, 4)]
        out[f"city_{key}_scenes"] = city
        out[f"city_{key}"] = root / f"city_{key}"
        _write(out[f"city_{key}"], "cityscapes_val", FISHYSCAPES, city, images, ("frankfurt_1", "munster_2"))
    out["noconv"] = root / "noconv"
    _write(out["noconv"], "cityscapes_val", FISHYSCAPES, out["city_base_scenes"], images,
           ("frankfurt_1", "munster_2"), store_conv=None)
    for key, seed in (("base", 1), ("ood", 2)):
        for t in (0.5, 0.7):
            out[f"{key}_meta_{t}"] = root / f"meta_{key}_t{t}.parquet"
            write_parquet(out[f"{key}_meta_{t}"], _meta_table(out[key], t, seed))
    return out


def _files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    return tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"


def _check_files(png: Path, pdf: Path) -> tuple[int, int]:
    assert png.stat().st_size > 3000 and pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as im:
        return im.size


def _mean(x: np.ndarray, m: np.ndarray) -> float:
    return float(x[m].mean()) if m.any() else float("nan")


def _expected_entropy(fx: dict, i: int, prefix: str = "", conv=LOSTANDFOUND) -> dict:
    (lab, pb), (_, po) = fx[f"{prefix}base_scenes"][i], fx[f"{prefix}ood_scenes"][i]
    out, inn = lab == conv.train_id_out, lab == conv.train_id_in
    eb, eo = normalized_entropy(pb).astype(float), normalized_entropy(po).astype(float)
    return {"entropy_ood_before": _mean(eb, out), "entropy_ood_after": _mean(eo, out),
            "entropy_in_before": _mean(eb, inn), "entropy_in_after": _mean(eo, inn),
            "ood_pixels": int(out.sum()), "in_pixels": int(inn.sum())}


def _assert_entropy(got: dict, exp: dict) -> None:
    for k, v in exp.items():
        if k.endswith("_pixels"):
            assert got[k] == v, k
        else:
            np.testing.assert_allclose(got[k], v, rtol=0, atol=Q, equal_nan=True, err_msg=k)


def _pairs(fx: dict, ood: str = "ood") -> dict:
    return {"baseline_store": str(fx["base"]), "ood_store": str(fx[ood])}


def _segment_counts(fx: dict, key: str, i: int, t: float, mt: float) -> dict:
    """Segments of image i from the segment metrics (TP: iou0 == 0) and removals from the meta table."""
    img = StoreReader(fx[key])[i]
    df, _ = segment_metrics(img.probs, img.label, t, ood_id=LOSTANDFOUND.train_id_out)
    meta = pd.read_parquet(fx[f"{key}_meta_{t}"])
    meta = meta[meta["image"] == i].sort_values("segment")
    tp, rm = df["iou0"].to_numpy() == 0, meta["prob_fp"].to_numpy() > mt
    assert len(tp) == len(rm)
    return {"segments": len(tp), "tp": int(tp.sum()), "fp": int((~tp).sum()), "removed": int(rm.sum()),
            "kept": int((~rm).sum()), "kept_tp": int((tp & ~rm).sum()), "kept_fp": int((~tp & ~rm).sum())}


def _most_removed(fx: dict, keys: tuple[str, ...], t: float, mt: float) -> list[int]:
    removed = np.zeros(len(NAMES), int)
    for key in keys:
        meta = pd.read_parquet(fx[f"{key}_meta_{t}"])
        for i in meta.loc[meta["prob_fp"] > mt, "image"]:
            removed[i] += 1
    return sorted(range(len(NAMES)), key=lambda i: (-removed[i], -OOD_PIXELS[i], NAMES[i]))


# ----------------------------------------------------------------------------------- tests


def test_cityscapes_colors():
    assert figures_scenes.CITYSCAPES_COLORS.shape == (19, 3)
    assert [tuple(int(v) for v in c) for c in figures_scenes.CITYSCAPES_COLORS] == list(CS_COLORS)


def test_figure1(fx, tmp_path):
    png, pdf = _files(tmp_path, "f1")
    got = report.figure1(_pairs(fx), png, pdf, n_images=2)
    w, h = _check_files(png, pdf)
    assert h > w  # two scenes x two rows of 1:2 images, two columns
    assert [s["name"] for s in got["scenes"]] == [NAMES[i] for i in LARGEST_FIRST[:2]]
    for s in got["scenes"]:
        i = NAMES.index(s["name"])
        assert s["index"] == i and s["ood_pixels"] == OOD_PIXELS[i]
        _assert_entropy(s, _expected_entropy(fx, i))
        (lab, pb), (_, po) = fx["base_scenes"][i], fx["ood_scenes"][i]
        ev = (lab == 1) | (lab == 2)
        assert s["changed_fraction"] == pytest.approx(float((pb.argmax(0) != po.argmax(0))[ev].mean()), abs=1e-12)
        assert s["changed_fraction"] > 0  # the relabelled road strip
        assert s["entropy_ood_after"] > 0.8 > 0.5 > s["entropy_ood_before"] > s["entropy_in_after"]
    # score planes only (no probabilities): the same numbers
    planes = report.figure1(_pairs(fx, "planes"), png, pdf, n_images=2)
    assert planes == got


def test_figure2(fx, tmp_path):
    png, pdf = _files(tmp_path, "f2")
    pinned = ["echo", "delta"]
    got = report.figure2(_pairs(fx), png, pdf, threshold=0.7, images=pinned)
    _check_files(png, pdf)
    assert got["threshold"] == 0.7 and [s["name"] for s in got["scenes"]] == pinned
    for s in got["scenes"]:
        i = NAMES.index(s["name"])
        assert s["ood_pixels"] == OOD_PIXELS[i]
        for key in ("ood", "baseline"):
            lab, probs = fx[f"{key if key == 'ood' else 'base'}_scenes"][i]
            e, keep, out = normalized_entropy(probs), lab != 255, lab == 2
            lo, hi = ((e >= 0.7 + Q) & keep), ((e >= 0.7 - Q) & keep)  # within the quantization
            assert lo.sum() <= s[key]["predicted_pixels"] <= hi.sum()
            assert (lo & out).sum() <= s[key]["inside_gt_pixels"] <= (hi & out).sum()
            assert ((e >= 0.7) & ~keep).any()  # the void blob: not counted
    assert got["scenes"][1]["ood"]["inside_gt_pixels"] == OOD_PIXELS[0]  # delta's object found after OoD training
    assert got["scenes"][1]["baseline"]["inside_gt_pixels"] == 0


def test_figure13_default_rule_and_pinned(fx, tmp_path):
    png, pdf = _files(tmp_path, "f13")
    got = report.figure13(_pairs(fx), png, pdf)
    _check_files(png, pdf)
    assert [s["index"] for s in got["scenes"]] == LARGEST_FIRST[:3] == [2, 1, 4]  # tie 40/40 by name
    for s in got["scenes"]:
        _assert_entropy(s, _expected_entropy(fx, s["index"]))
    pinned = report.figure13(_pairs(fx), png, pdf, images=["bravo", "echo"])
    assert [s["name"] for s in pinned["scenes"]] == ["bravo", "echo"]
    assert np.isnan(pinned["scenes"][1]["entropy_ood_after"])  # no OoD object
    assert figures_scenes._scenes(StoreReader(fx["ood"]), None, 50, "figure13") == LARGEST_FIRST  # n > images: all


def test_figure10(fx, tmp_path):
    png, pdf = _files(tmp_path, "f10")
    entries = [{"dataset": "cityscapes_val", "baseline_store": str(fx["city_base"]), "ood_store": str(fx["city_ood"])},
               {"dataset": "lostandfound", **_pairs(fx)}]
    got = report.figure10(entries, png, pdf)
    w, h = _check_files(png, pdf)
    assert w > h
    city, laf = got["entries"]
    assert (city["dataset"], city["name"], laf["name"]) == ("cityscapes_val", "frankfurt_1", NAMES[LARGEST_FIRST[0]])
    for e, prefix, conv in ((city, "city_", FISHYSCAPES), (laf, "", LOSTANDFOUND)):
        exp = _expected_entropy(fx, e["index"], prefix, conv)
        _assert_entropy({"ood_pixels": e["ood_pixels"], "in_pixels": e["in_pixels"],
                         "entropy_ood_before": e["baseline"]["entropy_ood"], "entropy_in_before": e["baseline"]["entropy_in"],
                         "entropy_ood_after": e["ood"]["entropy_ood"], "entropy_in_after": e["ood"]["entropy_in"]}, exp)
    pinned = report.figure10(entries, png, pdf, images=["munster_2", "bravo"])
    assert [e["name"] for e in pinned["entries"]] == ["munster_2", "bravo"]
    with pytest.raises(InputError, match="one image name per entry"):
        report.figure10(entries, png, pdf, images=["munster_2"])


def test_figure6(fx, tmp_path):
    png, pdf = _files(tmp_path, "f6")
    entry = {"ood_store": str(fx["ood"]), "ood_meta": str(fx["ood_meta_0.7"])}
    got = report.figure6(entry, png, pdf, threshold=0.7, meta_threshold=0.5, n_images=3)
    _check_files(png, pdf)
    assert (got["threshold"], got["meta_threshold"]) == (0.7, 0.5)
    assert [s["index"] for s in got["scenes"]] == _most_removed(fx, ("ood",), 0.7, 0.5)[:3]
    for s in got["scenes"]:
        exp = _segment_counts(fx, "ood", s["index"], 0.7, 0.5)
        assert {k: s[k] for k in exp} == exp
        assert s["segments"] == s["removed"] + s["kept_tp"] + s["kept_fp"]
    assert sum(s["segments"] for s in got["scenes"]) > 0 and sum(s["removed"] for s in got["scenes"]) > 0
    strict = report.figure6(entry, png, pdf, threshold=0.7, meta_threshold=0.9, images=["alpha"])
    assert strict["scenes"][0]["removed"] == _segment_counts(fx, "ood", 2, 0.7, 0.9)["removed"]
    with pytest.raises(InputError, match="keeps no probabilities"):
        report.figure6({"ood_store": str(fx["planes"]), "ood_meta": str(fx["ood_meta_0.7"])}, png, pdf)
    meta = pd.read_parquet(fx["ood_meta_0.7"])
    write_parquet(tmp_path / "short.parquet", meta[~((meta["image"] == 2) & (meta["segment"] == 1))])
    with pytest.raises(InputError, match=r"short\.parquet: has .* segment\(s\) for image 2"):  # not this store's table
        report.figure6({"ood_store": str(fx["ood"]), "ood_meta": str(tmp_path / "short.parquet")}, png, pdf,
                       threshold=0.7, images=["alpha"])


def test_figure15(fx, tmp_path):
    png, pdf = _files(tmp_path, "f15")
    entry = {**_pairs(fx), "baseline_meta": str(fx["base_meta_0.5"]), "ood_meta": str(fx["ood_meta_0.5"])}
    got = report.figure15(entry, png, pdf)
    _check_files(png, pdf)
    assert got["index"] == _most_removed(fx, ("base", "ood"), 0.5, 0.5)[0]
    assert got["name"] == NAMES[got["index"]]
    for key, store, meta in (("plain", "base", False), ("plain_meta", "base", True),
                             ("ood", "ood", False), ("ood_meta", "ood", True)):
        c = _segment_counts(fx, store, got["index"], 0.5, 0.5)
        exp = ({"segments": c["kept"], "tp": c["kept_tp"], "fp": c["kept_fp"]} if meta
               else {"segments": c["segments"], "tp": c["tp"], "fp": c["fp"]})
        assert got["panels"][key] == exp, key
    pinned = report.figure15(entry, png, pdf, images=["zeta"])
    assert (pinned["name"], pinned["index"]) == ("zeta", 1)
    with pytest.raises(InputError, match="one scene"):
        report.figure15(entry, png, pdf, images=["zeta", "alpha"])


def test_figure16(fx, tmp_path):
    png, pdf = _files(tmp_path, "f16")
    entry = {"ood_store": str(fx["ood"]), "ood_meta": str(fx["ood_meta_0.5"])}
    got = report.figure16(entry, png, pdf, n_images=2)
    _check_files(png, pdf)
    assert [s["index"] for s in got["scenes"]] == _most_removed(fx, ("ood",), 0.5, 0.5)[:2]
    pinned = report.figure16(entry, png, pdf, images=["echo", "zeta", "alpha"])
    assert [s["name"] for s in pinned["scenes"]] == ["echo", "zeta", "alpha"]
    for s in got["scenes"] + pinned["scenes"]:
        c = _segment_counts(fx, "ood", s["index"], 0.5, 0.5)
        assert s["without"] == {"segments": c["segments"], "tp": c["tp"], "fp": c["fp"]}
        assert s["with"] == {"segments": c["kept"], "tp": c["kept_tp"], "fp": c["kept_fp"]}
        assert s["removed"] == c["removed"]


def test_most_removed_rule_breaks_ties_by_ood_pixels_then_name(fx):
    reader = StoreReader(fx["ood"])
    # removed rows (prob_fp > 0.5): alpha 2, zeta 2, delta 1, bravo 1, echo 1 (+ kept rows that do not count)
    meta = pd.DataFrame({"image": [2, 2, 1, 1, 0, 4, 3, 3, 0], "segment": [1, 2, 1, 2, 1, 1, 1, 2, 2],
                         "prob_fp": [0.9, 0.6, 0.7, 0.8, 0.51, 0.99, 0.55, 0.5, 0.1]})
    assert list(figures_scenes_meta.removed_counts(reader, [(meta, "m")], 0.5)) == [1, 2, 2, 1, 1]
    # alpha / zeta tie on removals and OoD pixels (40): by name; then bravo (20), delta (12), echo (0)
    assert figures_scenes_meta.choose_most_removed(reader, [(meta, "m")], 0.5, 5) == [2, 1, 4, 0, 3]
    assert figures_scenes_meta.choose_most_removed(reader, [(meta, "m"), (meta[meta["image"] == 3], "m3")], 0.5, 2) \
        == [2, 1]
    bad = meta.assign(image=meta["image"] + 3)
    with pytest.raises(InputError, match="image index 7 outside the 5 images"):
        figures_scenes_meta.removed_counts(reader, [(bad, "bad.parquet")], 0.5)
    assert figures_scenes.choose_largest_ood(reader, 5) == LARGEST_FIRST
    assert list(figures_scenes.ood_pixel_counts(reader)) == list(OOD_PIXELS)


@pytest.mark.parametrize("name", ["figure1", "figure2", "figure13", "figure6", "figure16", "figure15", "figure10"])
def test_unknown_image_names(fx, tmp_path, name):
    entry = {**_pairs(fx), "dataset": "lostandfound", "baseline_meta": str(fx["base_meta_0.5"]),
             "ood_meta": str(fx["ood_meta_0.5"])}
    png, pdf = _files(tmp_path, name)
    with pytest.raises(InputError, match=r"no image named 'nope'.*available \(5\): 'delta', 'zeta', 'alpha'"):
        getattr(report, name)([entry] if name == "figure10" else entry, png, pdf, images=["nope"])
    assert not png.exists() and not pdf.exists()


@pytest.mark.parametrize(("name", "kwargs", "match"), [
    ("figure1", {"n_images": 0}, "n_images=0"),
    ("figure13", {"n_images": 2.5}, "n_images=2.5"),
    ("figure2", {"threshold": 0.0}, r"threshold=0\.0: expected a value in \(0, 1\]"),
    ("figure2", {"threshold": "high"}, "threshold='high'"),
    ("figure6", {"meta_threshold": 1.5}, r"meta_threshold=1\.5: expected a value in \[0, 1\]"),
    ("figure16", {"threshold": 2}, "threshold=2"),
    ("figure15", {"meta_threshold": -0.1}, r"meta_threshold=-0\.1"),
    ("figure1", {"images": []}, r"images=\[\]"),
    ("figure13", {"images": [3]}, r"images=\[3\]"),
])
def test_bad_arguments(fx, tmp_path, name, kwargs, match):
    entry = {**_pairs(fx), "baseline_meta": str(fx["base_meta_0.5"]), "ood_meta": str(fx["ood_meta_0.5"])}
    png, pdf = _files(tmp_path, name)
    with pytest.raises(InputError, match=match):
        getattr(report, name)(entry, png, pdf, **kwargs)
    assert not png.exists()


def test_bad_entries(fx, tmp_path):
    png, pdf = _files(tmp_path, "bad")
    with pytest.raises(InputError, match="expected exactly one"):
        report.figure1([_pairs(fx), _pairs(fx)], png, pdf)
    with pytest.raises(InputError, match="lacks 'ood_meta'"):
        report.figure16({"ood_store": str(fx["ood"])}, png, pdf)
    with pytest.raises(InputError, match="noconv: the store has no in/out convention"):
        report.figure13({"baseline_store": str(fx["noconv"]), "ood_store": str(fx["city_ood"])}, png, pdf)
    with pytest.raises(InputError, match="hold different images"):
        report.figure13({"baseline_store": str(fx["city_base"]), "ood_store": str(fx["ood"])}, png, pdf)
    with pytest.raises(InputError, match="gone"):
        report.figure2({"baseline_store": str(fx["base"]), "ood_store": str(tmp_path / "gone")}, png, pdf)
    assert not png.exists() and not pdf.exists()
