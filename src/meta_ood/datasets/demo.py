"""The embedded demo: small synthetic datasets written in the exact on-disk formats of the real ones.

The real datasets (Cityscapes, COCO, LostAndFound, Fishyscapes) cannot be downloaded everywhere,
so the default run of the pipeline works on data produced here. Everything is written in the
official layouts, so the demo goes through the same readers, rules and code paths as a real run::

    <out>/cityscapes/leftImg8bit/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <out>/cityscapes/gtFine/<split>/<city>/<city>_<seq:06d>_<frame:06d>_gtFine_labelIds.png
    <out>/cityscapes/gtFine/<split>/<city>/<city>_<seq:06d>_<frame:06d>_gtFine_labelTrainIds.png
        (the train-id file only for the splits in ``DemoConfig.write_train_ids``)
    <out>/coco/annotations/instances_train2017.json
    <out>/coco/train2017/<image_id:012d>.jpg
    <out>/lostandfound/leftImg8bit/test/<scene>/<scene>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <out>/lostandfound/gtCoarse/test/<scene>/<scene>_<seq:06d>_<frame:06d>_gtCoarse_labelIds.png
    <out>/fishyscapes/Static/<name>.png   (0 in, 1 out, 255 void)  next to  <name>.jpg
    <out>/fishyscapes/LostAndFound/<index:04d>_<scene>_<seq:06d>_<frame:06d>_labels.png
        (0 in = road, 1 out = obstacle, 255 void; the images are the LostAndFound-format ones)
    <out>/DEMO_DATA.owner.json            (written first: the folder belongs to the generator)
    <out>/DEMO_DATA.json                  (config + counts, written last: marks a complete data set)

Content
-------
* **Cityscapes format**: perspective street scenes (road with lane markings, sidewalks with
  curbs and tiles, buildings with windows, walls, fences, poles with traffic signs and lights,
  trees, terrain, a sky gradient with clouds, pedestrians, cars, and in turn trucks, buses,
  trams, riders, bicycles and motorcycles), labelled with the official Cityscapes label ids
  including the void ones (ego vehicle, out of roi, rectification border, static, dynamic,
  ground, parking, guard rail, polegroup). Colours, textures, geometry and lighting (global
  gain/contrast/gamma/white balance, cast shadows, vignetting, blur, sensor noise) vary per
  image and the colour ranges of the classes overlap, so a small network learns the task well
  but not perfectly.
* **COCO format**: images of varied size with polygon, uncompressed-RLE (crowd) and compressed
  RLE annotations under real COCO category ids. Like real COCO, the objects are many and
  diverse: animal-, furniture- and object-like silhouettes plus generic blobs, boxes, elongated
  objects, discs and polygons, mostly small to medium and now and then large, whose surfaces
  come from broad families (fur, wood, fabric, metallic, two-tone patches, and checkers,
  stripes, spots, coloured noise and colour gradients at random scales, angles and hues). They
  stand on varied backgrounds: empty streets drawn by the street renderer below (no vehicles,
  no people: real COCO has many outdoor scenes, and only those with an excluded category are
  filtered out), with the objects standing on the ground in perspective; paved ground seen from
  above; indoor, outdoor and abstract scenes. An object always contrasts with what is behind it
  and is never a mere darker shade of it (so it cannot pass for a shadow). A fraction of the
  images is smaller than ``coco_min_size`` and a fraction contains a category that Cityscapes
  also has (person, car, ...), so the COCO filter has work to do.
* **LostAndFound format**: road-dominated scenes of the same kind with 1-3 small obstacles on
  the road (checkerboard crates, striped pylons, spotted blobs in unusual hues, occasionally a
  lying timber or post, one of the 'random non-hazard' ids); label ids 1 = free road, obstacle
  ids 2..43, 0 elsewhere; no train-id file, like the official archive.
* **Fishyscapes Static format**: Cityscapes-format scenes with pasted foreign objects (rainbow
  stars, ring targets, swirl blobs), 1 on the objects, 0 elsewhere, 255 on the Cityscapes void
  pixels (ego vehicle and friends) and on a thin image border.
* **Fishyscapes LostAndFound format**: the first ``n_fishyscapes_lostandfound`` LostAndFound-format
  frames relabelled the Fishyscapes way: 0 on the free road, 1 on the obstacles, 255 elsewhere
  (including the 'random non-hazard' objects). Like the official release, only the labels are
  written; the reader finds the images in the LostAndFound ``leftImg8bit/`` folder.

What the OoD proxies share with the test objects, and what not: neither the LostAndFound
obstacles nor the Fishyscapes objects occur in the Cityscapes-format training scenes. The
COCO-format proxies share *texture families* with the obstacles (checkers, stripes, spots,
saturated colours of any hue) and, on street backgrounds, the setting (an object on the road).
They share no object: the obstacles are 3-D bodies rendered in perspective with shaded faces
and a ground shadow (checkered crates whose pattern follows the faces, striped cones on a base
plate, spotted wobbly domes, lying timbers) with a two-colour scheme drawn from hues 0.42-1.15
and a second hue 0.3-0.6 apart; the proxies are flat silhouettes whose patterns lie in the image
plane, with independently drawn colours, and no cone, crate, dome or timber among them. The
Fishyscapes objects (rainbow stars, ring targets, swirls, faceted crystals) share no shape with
either. OoD detection on the test sets therefore has to generalize from the proxies, as with
the real datasets.

Determinism: every image is drawn with its own :class:`numpy.random.Generator` seeded from
``(seed, dataset, index)``, so the same config writes byte-identical files and changing a count
does not change the images that are generated anyway. All files are written atomically; files of
an earlier generation into the same folder that the new config no longer produces are removed.

User data is never touched: :func:`generate` writes only into a new or empty folder, or into one
that holds its own ``DEMO_DATA.owner.json`` or ``DEMO_DATA.json``; any other non-empty folder is
refused with an :class:`~meta_ood.errors.InputError` and left as it is. In a fresh folder the
ownership record ``DEMO_DATA.owner.json`` (with the config being generated) is written before
anything else, so a generation that was killed can be redone in the same folder; the files it
lists are the only ones a later generation removes. ``DEMO_DATA.json`` is written last and marks
a complete data set (the workflow deletes it before it reruns the generator, hence the separate
ownership record).
"""

from __future__ import annotations

import colorsys
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from tqdm import tqdm

from meta_ood import labels as L
from meta_ood.errors import InputError
from meta_ood.io import write_jpeg, write_png, write_text_atomic

__all__ = [
    "MARKER_NAME",
    "OWNER_NAME",
    "COCO_CATEGORIES",
    "DemoConfig",
    "demo_config_from_dict",
    "fishyscapes_lostandfound_frames",
    "generate",
    "planned_files",
    "render_cityscapes",
    "render_coco",
    "render_fishyscapes",
    "render_lostandfound",
]

#: Name of the completion marker written last into the output root.
MARKER_NAME = "DEMO_DATA.json"
#: Name of the ownership record written first into the output root (the folder is the generator's).
OWNER_NAME = "DEMO_DATA.owner.json"
_GENERATOR = "meta_ood.datasets.demo"
_FORMAT_VERSION = 1

# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------

_SPLITS = ("train", "val")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and options of the demo data (defaults: about 20 s and 20 MB).

    Attributes
    ----------
    seed
        Master seed; every image is seeded from ``(seed, dataset, index)``.
    height, width
        Size of the street scenes (Cityscapes, LostAndFound and Fishyscapes formats).
    n_train, n_val
        Cityscapes-format images in the train and val splits.
    n_coco
        COCO-format images (before the COCO filter).
    n_lostandfound, n_fishyscapes
        LostAndFound-format test images and Fishyscapes-Static-format images.
    n_fishyscapes_lostandfound
        Fishyscapes-LostAndFound-format labels, made for the first LostAndFound-format frames (at
        most ``n_lostandfound``, see :func:`fishyscapes_lostandfound_frames`).
    coco_min_size
        The minimum height and width of the COCO filter; about ``coco_small_fraction`` of the
        COCO images get a side below it.
    coco_size_range
        ``(smallest, largest)`` side length of the COCO images that pass the size filter.
    coco_small_fraction, coco_excluded_fraction
        Fractions of COCO images that are too small and that show a Cityscapes class.
    write_train_ids
        Cityscapes splits that get a ``*_gtFine_labelTrainIds.png`` next to the label ids (the
        others exercise the readers' on-the-fly conversion).
    jpeg_quality
        Quality of the JPEG files (COCO images and Fishyscapes images).
    """

    seed: int = 0
    height: int = 128
    width: int = 256
    n_train: int = 120
    n_val: int = 30
    n_coco: int = 60
    n_lostandfound: int = 40
    n_fishyscapes: int = 15
    n_fishyscapes_lostandfound: int = 10
    coco_min_size: int = 128
    coco_size_range: tuple[int, int] = (96, 320)
    coco_small_fraction: float = 0.25
    coco_excluded_fraction: float = 0.2
    write_train_ids: tuple[str, ...] = ("train",)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        def integer(name: str, lo: int, hi: int | None = None) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"demo config: {name} must be an integer, got {value!r}")
            if value < lo or (hi is not None and value > hi):
                bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                raise InputError(f"demo config: {name} must be {bound}, got {value!r}")
            object.__setattr__(self, name, int(value))

        integer("seed", 0)
        integer("height", 32, 4096)
        integer("width", 32, 8192)
        for name in ("n_train", "n_val", "n_coco", "n_lostandfound", "n_fishyscapes", "n_fishyscapes_lostandfound"):
            integer(name, 1)
        integer("coco_min_size", 0)
        integer("jpeg_quality", 10, 100)
        rng = self.coco_size_range
        if (
            not isinstance(rng, (tuple, list))
            or len(rng) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in rng)
            or not 16 <= rng[0] <= rng[1] <= 4096
        ):
            raise InputError(f"demo config: coco_size_range must be two integers 16 <= lo <= hi <= 4096, got {rng!r}")
        object.__setattr__(self, "coco_size_range", (int(rng[0]), int(rng[1])))
        for name in ("coco_small_fraction", "coco_excluded_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InputError(f"demo config: {name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        splits = self.write_train_ids
        if isinstance(splits, bool):
            splits = _SPLITS if splits else ()
        elif isinstance(splits, str):
            splits = (splits,)
        splits = tuple(splits)
        bad = [s for s in splits if s not in _SPLITS]
        if bad:
            raise InputError(f"demo config: write_train_ids names unknown split(s) {bad}; expected a subset of {list(_SPLITS)}")
        object.__setattr__(self, "write_train_ids", tuple(s for s in _SPLITS if s in splits))


def demo_config_from_dict(d: Mapping[str, Any] | None) -> DemoConfig:
    """Build a :class:`DemoConfig` from a mapping (e.g. the ``demo`` block of the config file).

    Lists become tuples; ``write_train_ids`` may be a bool (all / no splits), a split name or a
    list of split names. An unknown key or a bad value raises :class:`InputError` naming it.
    """
    d = dict(d or {})
    known = {f.name for f in fields(DemoConfig)}
    unknown = sorted(k for k in d if k not in known)
    if unknown:
        raise InputError(f"demo config: unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(sorted(known))}")
    for key in ("coco_size_range", "write_train_ids"):
        if isinstance(d.get(key), list):
            d[key] = tuple(d[key])
    return DemoConfig(**d)


# --------------------------------------------------------------------------------------------
# names, seeds and small helpers
# --------------------------------------------------------------------------------------------

_TRAIN_CITIES = ("ashbury", "demotown", "pixelburg")
_VAL_CITIES = ("quellstadt", "synthberg")
_LAF_SCENES = ("01_Demo_Ring_1", "02_Pixel_Weg_7", "03_Synth_Allee_12", "04_Muster_Str_3")
_STREAMS = {"train": 11, "val": 12, "coco": 21, "lostandfound": 31, "fishyscapes": 41}

_ID = {lab.name: lab.id for lab in L.CITYSCAPES_LABELS if lab.id >= 0}
UNLABELED, EGO, RECT_BORDER, OUT_OF_ROI = _ID["unlabeled"], _ID["ego vehicle"], _ID["rectification border"], _ID["out of roi"]
STATIC, DYNAMIC, GROUND, ROAD, SIDEWALK, PARKING = _ID["static"], _ID["dynamic"], _ID["ground"], _ID["road"], _ID["sidewalk"], _ID["parking"]
BUILDING, WALL, FENCE, GUARD_RAIL = _ID["building"], _ID["wall"], _ID["fence"], _ID["guard rail"]
POLE, POLEGROUP, TRAFFIC_LIGHT, TRAFFIC_SIGN = _ID["pole"], _ID["polegroup"], _ID["traffic light"], _ID["traffic sign"]
VEGETATION, TERRAIN, SKY, PERSON, RIDER = _ID["vegetation"], _ID["terrain"], _ID["sky"], _ID["person"], _ID["rider"]
CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = _ID["car"], _ID["truck"], _ID["bus"], _ID["train"], _ID["motorcycle"], _ID["bicycle"]

# Rare classes: every image gets one of these groups (by index), see render_cityscapes.
_RARE_GROUPS = (("train", "parked_bicycle"), ("bus", "motorcyclist"), ("truck", "cyclist"), ("cyclist", "parked_motorcycle"))
_SLOT_EXTRA = (TERRAIN, WALL, FENCE, TRAFFIC_LIGHT)
_RARE_LABELS = {"train": TRAIN, "bus": BUS, "truck": TRUCK, "cyclist": BICYCLE, "motorcyclist": MOTORCYCLE,
                "parked_bicycle": BICYCLE, "parked_motorcycle": MOTORCYCLE}

# LostAndFound obstacles are painted into the Cityscapes id canvas as _LAF_MARK + official id.
_LAF_MARK = 100
_LAF_CRATE_IDS = (2, 3, 4, 5, 6, 7, 10, 11, 12, 13)
_LAF_PYLON_IDS = (17, 18, 19)
_LAF_BLOB_IDS = (9, 22, 30, 32, 35)
_LAF_NON_HAZARD_IDS = (33, 36, 37, 39)


def _rng(seed: int, stream: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _STREAMS[stream], int(index)]))


def cityscapes_name(split: str, index: int) -> tuple[str, str]:
    """(city, frame base name) of Cityscapes-format image ``index`` of ``split``."""
    cities = _TRAIN_CITIES if split == "train" else _VAL_CITIES
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{19:06d}"


def lostandfound_name(index: int) -> tuple[str, str]:
    """(scene, frame base name) of LostAndFound-format image ``index``."""
    scene = _LAF_SCENES[index % len(_LAF_SCENES)]
    return scene, f"{scene}_{index // len(_LAF_SCENES):06d}_{40 + 10 * (index % 7):06d}"


def fishyscapes_name(index: int) -> str:
    return f"{index:04d}"


def fishyscapes_lostandfound_frames(cfg: DemoConfig) -> range:
    """LostAndFound-format frame indices that get a Fishyscapes LostAndFound label: the first ones.

    The first ``min(n_fishyscapes_lostandfound, n_lostandfound)`` frames: from four frames on they
    cover every scene, and a larger ``n_lostandfound`` does not change them (like the other sets).
    """
    return range(min(cfg.n_fishyscapes_lostandfound, cfg.n_lostandfound))


def fishyscapes_lostandfound_name(index: int) -> str:
    """File name of the Fishyscapes LostAndFound label of LostAndFound-format frame ``index``."""
    return f"{index:04d}_{lostandfound_name(index)[1]}_labels.png"


def fishyscapes_lostandfound_label(laf_ids: np.ndarray) -> np.ndarray:
    """Fishyscapes labels (0 free road, 1 obstacle, 255 void) of a LostAndFound label-id image."""
    train = L.LOSTANDFOUND_ID_TO_TRAIN[laf_ids]
    lab = np.full(laf_ids.shape, L.VOID_ID, dtype=np.uint8)
    lab[train == L.LOSTANDFOUND.train_id_in] = L.FISHYSCAPES.train_id_in
    lab[train == L.LOSTANDFOUND.train_id_out] = L.FISHYSCAPES.train_id_out
    return lab


def coco_image_id(index: int) -> int:
    """COCO image id of COCO-format image ``index`` (sparse, like the real ids)."""
    return 1009 + 7919 * index


def _low_discrepancy(index: int, phase: float, step: float) -> float:
    """A value in [0, 1) per index; any run of consecutive indices covers [0, 1) evenly."""
    return (index * step + phase) % 1.0


def _coco_flags(cfg: DemoConfig, index: int) -> tuple[bool, bool]:
    small = cfg.coco_min_size > 16 and _low_discrepancy(index, 0.31, 0.6180339887) < cfg.coco_small_fraction
    excluded = _low_discrepancy(index, 0.17, 0.7548776662) < cfg.coco_excluded_fraction
    return small, excluded


def _smooth(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise with unit standard deviation and a feature size of about ``cell`` pixels."""
    gh = max(2, int(math.ceil(h / cell)) + 2)
    gw = max(2, int(math.ceil(w / cell)) + 2)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    out = np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    std = float(out.std())
    return out / std if std > 1e-6 else out


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)


def _hsv_array(h: np.ndarray, s: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
    """Vectorized HSV -> RGB for arrays in [0, 1] (hue wraps)."""
    h = np.asarray(h, np.float32) % 1.0
    s = np.clip(np.broadcast_to(np.asarray(s, np.float32), h.shape), 0, 1)
    v = np.clip(np.broadcast_to(np.asarray(v, np.float32), h.shape), 0, 1)
    k = (np.array([5.0, 3.0, 1.0], np.float32) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _grey(rng: np.random.Generator, lo: float, hi: float, tint: float = 0.04) -> np.ndarray:
    return np.clip(rng.uniform(lo, hi) * (1.0 + rng.normal(0.0, tint, 3)), 0, 1).astype(np.float32)


def _jitter(rng: np.random.Generator, rgb, amount: float = 0.08) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    return np.clip(rgb * rng.uniform(1 - amount, 1 + amount) * (1.0 + rng.normal(0.0, amount / 2, 3)), 0, 1).astype(np.float32)


def _hash01(a: np.ndarray, b: np.ndarray, c: float = 0.0) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer cell (a, b)."""
    x = np.sin(np.asarray(a, np.float64) * 12.9898 + np.asarray(b, np.float64) * 78.233 + c * 37.719) * 43758.5453
    return (x - np.floor(x)).astype(np.float32)


def _convex(u: np.ndarray, v: np.ndarray, pts) -> np.ndarray:
    """Mask of the convex polygon ``pts`` ((k, 2) in the (u, v) frame, either orientation)."""
    pts = np.asarray(pts, np.float64)
    area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    if area < 0:
        pts = pts[::-1]
    m = np.ones(u.shape, bool)
    for (u0, v0), (u1, v1) in zip(pts, np.roll(pts, -1, axis=0)):
        m &= (u1 - u0) * (v - v0) - (v1 - v0) * (u - u0) >= 0
    return m


def _segment(u: np.ndarray, v: np.ndarray, p0, p1, width: float) -> np.ndarray:
    """Mask of a thick line segment from ``p0`` to ``p1``."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    den = du * du + dv * dv
    if den <= 1e-12:
        return (u - p0[0]) ** 2 + (v - p0[1]) ** 2 <= (width / 2) ** 2
    t = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / den, 0.0, 1.0)
    return (u - p0[0] - t * du) ** 2 + (v - p0[1] - t * dv) ** 2 <= (width / 2) ** 2


def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _regular(cu: float, cv: float, r: float, n: int, rot: float = 0.0) -> np.ndarray:
    a = rot + 2 * np.pi * np.arange(n) / n
    return np.stack([cu + r * np.cos(a), cv + r * np.sin(a)], axis=1)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# street scenes (Cityscapes, LostAndFound and Fishyscapes formats)
# --------------------------------------------------------------------------------------------

_CAR_COLOURS = (
    (0.85, 0.85, 0.85), (0.08, 0.08, 0.09), (0.55, 0.56, 0.58), (0.3, 0.31, 0.33), (0.1, 0.13, 0.3),
    (0.6, 0.08, 0.07), (0.15, 0.3, 0.6), (0.12, 0.25, 0.15), (0.65, 0.6, 0.5), (0.4, 0.12, 0.1),
)
_BIG_VEHICLE_COLOURS = (
    (0.9, 0.88, 0.85), (0.8, 0.65, 0.1), (0.7, 0.12, 0.1), (0.15, 0.3, 0.6), (0.2, 0.45, 0.25),
    (0.55, 0.55, 0.55), (0.85, 0.85, 0.9),
)
_BUILDING_COLOURS = (
    (0.76, 0.69, 0.56), (0.55, 0.55, 0.55), (0.62, 0.33, 0.25), (0.86, 0.85, 0.82), (0.72, 0.6, 0.38),
    (0.42, 0.41, 0.42), (0.7, 0.66, 0.62), (0.5, 0.42, 0.36), (0.66, 0.7, 0.72),
)


@dataclass
class _Plane:
    """Segments along depth of a vertical plane parallel to the road (a facade or a wall line)."""

    start: np.ndarray  # (k,) depth at which each segment starts (ascending)
    end: np.ndarray  # (k,) depth at which it ends
    kind: np.ndarray  # (k,) int code
    top: np.ndarray  # (k,) height (camera heights)
    colour: np.ndarray  # (k, 3)
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class _Street:
    """One street scene, drawn back to front with its Cityscapes label ids.

    World units are camera heights; the camera looks along the road at height 1 above the ground
    (``Y = 0``); a point at lateral offset ``L``, depth ``D`` and height ``Y`` projects to
    ``x = vx + f L / D`` and ``y = yh + f (1 - Y) / D``. The ground plane therefore has the
    lateral coordinate ``X = (x - vx) / (y - yh)`` along every line through the vanishing point.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, mode: str = "cityscapes",
                 rare_slot: int | None = None, force_ego: bool = False) -> None:
        self.rng, self.h, self.w = rng, h, w
        # 'coco': an empty street (no vehicles, people or ego hood) as a COCO-format background
        self.coco = mode == "coco"
        self.laf = mode == "lostandfound" or (self.coco and rng.random() < 0.5)
        self.rare_slot = rare_slot
        # the class this scene must show besides its rare vehicles (see render_cityscapes)
        self.forced = _SLOT_EXTRA[rare_slot % len(_SLOT_EXTRA)] if rare_slot is not None else None
        self.forced_side = 1 if rng.random() < 0.5 else -1
        self.force_ego = force_ego
        self.img = np.zeros((h, w, 3), np.float32)
        self.ids = np.full((h, w), UNLABELED, np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        self.yy = yy.astype(np.float32) + 0.5
        self.xx = xx.astype(np.float32) + 0.5
        self.n_fine = rng.standard_normal((h, w), dtype=np.float32)
        self.n_mid = _smooth(rng, h, w, 2.5 * w / 256 + 1.0)
        self.n_coarse = _smooth(rng, h, w, 12.0 * w / 256 + 2.0)
        self.f = w * rng.uniform(0.48, 0.62)
        self.yh = h * (rng.uniform(0.3, 0.4) if self.laf else rng.uniform(0.36, 0.5))
        self.vx = w * rng.uniform(0.4, 0.6)
        self.required: set[int] = set()
        self._palette()
        self._layout()

    # -- frames -------------------------------------------------------------------------------

    def _bbox(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
        c0, c1 = max(0, int(math.floor(x0))), min(self.w, int(math.ceil(x1)) + 1)
        r0, r1 = max(0, int(math.floor(y0))), min(self.h, int(math.ceil(y1)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def project(self, lat: float, depth: float, height: float = 0.0) -> tuple[float, float]:
        return self.vx + self.f * lat / depth, self.yh + self.f * (1.0 - height) / depth

    def sprite(self, lat: float, depth: float, half_w: float, top: float, bottom: float = 0.0):
        """A front-parallel frame at ``(lat, depth)``: (slices, u, v, pixels per unit) or None."""
        s = self.f / depth
        x0, y0 = self.project(lat, depth)
        sl = self._bbox(x0 - half_w * s, x0 + half_w * s, y0 - top * s, y0 + bottom * s)
        if sl is None:
            return None
        u = (self.xx[sl] - x0) / s
        v = (y0 - self.yy[sl]) / s
        return sl, u, v, s

    def box_faces(self, l0: float, l1: float, d0: float, d1: float, y0: float, y1: float):
        """Slices and the visible faces (name, mask, u, v) of an axis-aligned box, far faces first."""
        xs, ys = [], []
        for lat in (l0, l1):
            for dep in (d0, d1):
                for hgt in (y0, y1):
                    x, y = self.project(lat, dep, hgt)
                    xs.append(x)
                    ys.append(y)
        sl = self._bbox(min(xs), max(xs), min(ys), max(ys))
        if sl is None:
            return None, []
        dx = self.xx[sl] - self.vx
        dy = self.yy[sl] - self.yh
        faces = []
        side = l1 if l1 < 0 else (l0 if l0 > 0 else None)
        if side is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                dep = self.f * side / dx
            hgt = 1.0 - dy * dep / self.f
            m = np.isfinite(dep) & (dep >= d0) & (dep <= d1) & (hgt >= y0) & (hgt <= y1)
            faces.append(("side", m, dep, hgt))
        if y1 < 1.0:
            with np.errstate(divide="ignore", invalid="ignore"):
                dep = self.f * (1.0 - y1) / dy
            lat = dx * dep / self.f
            m = (dy > 0) & (lat >= l0) & (lat <= l1) & (dep >= d0) & (dep <= d1)
            faces.append(("top", m, lat, dep))
        lat = dx * d0 / self.f
        hgt = 1.0 - dy * d0 / self.f
        faces.append(("rear", (lat >= l0) & (lat <= l1) & (hgt >= y0) & (hgt <= y1), lat, hgt))
        return sl, faces

    def side_plane(self, sl, lat: float):
        """(depth, height) of the vertical plane ``L = lat`` at the pixels of ``sl`` (NaN where invalid)."""
        dx = self.xx[sl] - self.vx
        with np.errstate(divide="ignore", invalid="ignore"):
            dep = self.f * lat / dx
        dep = np.where(dep > 0, dep, np.nan)
        return dep, 1.0 - (self.yy[sl] - self.yh) * dep / self.f

    def paint(self, sl, mask: np.ndarray, colour: np.ndarray, label: int | None) -> None:
        if not mask.any():
            return
        region = self.img[sl]
        colour = np.asarray(colour, np.float32)
        region[mask] = colour if colour.ndim == 1 else colour[mask]
        if label is not None:
            self.ids[sl][mask] = label

    def tex(self, sl, base, fine: float = 0.04, mid: float = 0.04, coarse: float = 0.06) -> np.ndarray:
        k = 1.0 + fine * self.n_fine[sl] + mid * self.n_mid[sl] + coarse * self.n_coarse[sl]
        return np.asarray(base, np.float32) * k[..., None]

    # -- palette and layout -------------------------------------------------------------------

    def _palette(self) -> None:
        rng = self.rng
        p: dict[str, np.ndarray] = {}
        p["road"] = _grey(rng, 0.26, 0.55, 0.06)
        r = rng.random()
        if r < 0.45:
            p["sidewalk"] = _grey(rng, 0.38, 0.7, 0.05)
        elif r < 0.75:
            p["sidewalk"] = _jitter(rng, (0.58, 0.4, 0.35), 0.12)
        else:
            p["sidewalk"] = _jitter(rng, (0.66, 0.62, 0.52), 0.1)
        hue = rng.uniform(0.17, 0.33)
        p["veg_dark"] = _hsv(hue + rng.normal(0, 0.02), rng.uniform(0.45, 0.85), rng.uniform(0.12, 0.3))
        p["veg_light"] = _hsv(hue + rng.normal(0, 0.03), rng.uniform(0.35, 0.75), rng.uniform(0.35, 0.6))
        p["terrain"] = _hsv(rng.uniform(0.08, 0.3), rng.uniform(0.22, 0.6), rng.uniform(0.35, 0.62))
        p["terrain2"] = _hsv(rng.uniform(0.07, 0.25), rng.uniform(0.15, 0.5), rng.uniform(0.3, 0.55))
        sky = rng.random()
        if sky < 0.5:
            top, bottom = _hsv(rng.uniform(0.55, 0.62), rng.uniform(0.35, 0.65), rng.uniform(0.6, 0.9)), _hsv(rng.uniform(0.53, 0.6), rng.uniform(0.05, 0.25), rng.uniform(0.8, 0.98))
        elif sky < 0.85:
            g = rng.uniform(0.6, 0.9)
            top, bottom = _grey(rng, g - 0.1, g, 0.03), _grey(rng, g, min(g + 0.1, 0.98), 0.02)
        else:
            top, bottom = _hsv(rng.uniform(0.58, 0.66), rng.uniform(0.2, 0.5), rng.uniform(0.5, 0.8)), _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.2, 0.45), rng.uniform(0.75, 0.95))
        p["sky_top"], p["sky_bottom"] = top, bottom
        p["pole"] = _grey(rng, 0.25, 0.6, 0.05)
        p["marking"] = _jitter(rng, (0.9, 0.9, 0.88) if rng.random() < 0.85 else (0.9, 0.78, 0.25), 0.06)
        self.pal = p

    def _layout(self) -> None:
        """Lateral bands of the ground (road, curbs, sidewalks, terrain, ...) and the plane positions."""
        rng, U = self.rng, self.rng.uniform
        if self.laf:
            rl, rr = U(1.8, 4.2), U(1.8, 3.8)
        else:
            rl, rr = U(2.4, 6.0), U(1.3, 3.2)
        self.road = (-rl, rr)
        bands: list[tuple[float, float, str]] = [(-rl, rr, "road")]
        self.facade_x: dict[int, float] = {}
        self.mid_x: dict[int, float] = {}
        self.sidewalk: dict[int, tuple[float, float]] = {}
        self.outer: dict[int, tuple[float, float]] = {}
        self.guard_rail: dict[int, bool] = {}
        for side in (-1, 1):
            edge = -rl if side < 0 else rr
            strips: list[tuple[str, float]] = []
            if not self.laf and rng.random() < 0.12:
                strips.append(("parking", U(1.6, 2.4)))
            has_sidewalk = rng.random() < (0.6 if self.laf else 0.88)
            if has_sidewalk:
                strips.append(("curb", U(0.1, 0.18)))
                strips.append(("sidewalk", U(1.2, 3.6)))
            else:
                strips.append(("terrain", U(0.8, 3.0)))
            self.guard_rail[side] = (not has_sidewalk) and rng.random() < 0.5
            extra = 0.0 if (self.forced == TERRAIN and side == self.forced_side) else rng.random()
            if extra < 0.45:
                strips.append(("terrain", U(0.6, 2.5)))
            elif extra < 0.55:
                strips.append(("ground", U(0.5, 1.5)))
            pos = abs(edge)
            for kind, width in strips:
                lo, hi = pos, pos + width
                if kind == "sidewalk":
                    self.sidewalk[side] = (lo, hi)
                    self.mid_x[side] = side * hi
                bands.append((side * hi, side * lo, kind) if side < 0 else (side * lo, side * hi, kind))
                pos = hi
            self.facade_x[side] = side * pos
            self.mid_x.setdefault(side, side * (pos - 0.02))
            if side not in self.sidewalk:
                self.sidewalk[side] = (abs(edge) + 0.1, pos)
            self.outer[side] = (abs(edge) + 0.3, pos)
        outer_kinds = ["terrain", "ground", "sidewalk"]
        bands.sort(key=lambda b: b[0])
        left_kind = outer_kinds[int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        right_kind = outer_kinds[int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        self.bands = [(-np.inf, bands[0][0], left_kind)] + bands + [(bands[-1][1], np.inf, right_kind)]
        self.band_bounds = np.array([b[0] for b in self.bands[1:]], np.float32)
        # lane markings: (lateral position, width, dash period or 0 for solid, duty cycle)
        marks = []
        lane = U(2.0, 2.6)
        centre = -U(0.9, 1.4) if not self.laf else -U(0.6, 1.6)
        if centre > -rl + 0.5:
            marks.append((centre, U(0.07, 0.12), 0.0 if rng.random() < 0.35 else U(5.0, 10.0), U(0.35, 0.6)))
        pos = centre - lane
        while pos > -rl + 0.6 and rng.random() < 0.7:
            marks.append((pos, U(0.07, 0.11), U(5.0, 10.0), U(0.35, 0.55)))
            pos -= lane
        for edge, sgn in ((-rl, 1), (rr, -1)):
            if rng.random() < 0.5:
                marks.append((edge + sgn * U(0.25, 0.45), U(0.06, 0.1), 0.0, 1.0))
        self.markings = marks
        self.crosswalk = (U(6.0, 30.0), U(2.0, 3.5), U(0.5, 0.9)) if (not self.laf and rng.random() < 0.15) else None
        self.lanes = [0.0] + ([centre - lane / 2] if centre - lane / 2 > -rl + 0.7 else []) + \
                     ([centre - 1.5 * lane] if centre - 1.5 * lane > -rl + 0.7 else [])

    # -- background: sky, skyline, ground, facades, walls --------------------------------------

    def _sky(self) -> None:
        t = np.clip(self.yy / max(self.yh, 1.0), 0, 1)[..., None]
        col = self.pal["sky_top"] * (1 - t) + self.pal["sky_bottom"] * t
        clouds = np.clip(_smooth(self.rng, self.h, self.w, self.w / 8) * 0.5 + self.n_mid * 0.08 - self.rng.uniform(-0.3, 0.8), 0, 1)
        col = col * (1 - 0.5 * clouds[..., None]) + self.rng.uniform(0.75, 1.0) * 0.5 * clouds[..., None]
        self.img[:] = col
        self.ids[:] = SKY

    def _skyline(self) -> None:
        rng = self.rng
        hf = self.h * rng.uniform(0.03, 0.17)
        tops = np.empty(self.w, np.float32)
        kinds = np.empty(self.w, np.uint8)
        x = 0
        while x < self.w:
            width = int(rng.integers(2, max(3, self.w // 20)))
            tops[x:x + width] = self.yh - hf * rng.uniform(0.2, 1.0)
            kinds[x:x + width] = VEGETATION if rng.random() < 0.35 else BUILDING
            x += width
        bumps = _smooth(rng, 1, self.w, 3.0)[0]
        tops = np.where(kinds == VEGETATION, tops + bumps * hf * 0.25, tops)
        sl = self._bbox(0, self.w, float(tops.min()) - 1, self.yh + 2)
        if sl is None:
            return
        m = (self.yy[sl] >= tops[None, sl[1]]) & (self.yy[sl] <= self.yh + 2)
        haze = rng.uniform(0.25, 0.6)
        for label, base in ((BUILDING, _BUILDING_COLOURS[int(rng.integers(len(_BUILDING_COLOURS)))]), (VEGETATION, self.pal["veg_dark"])):
            mm = m & (kinds[None, sl[1]] == label)
            col = self.tex(sl, base, 0.05, 0.1, 0.05) * (1 - haze) + self.pal["sky_bottom"] * haze
            self.paint(sl, mm, col, label)

    def _ground(self) -> None:
        r0 = int(math.floor(self.yh))
        sl = (slice(r0, self.h), slice(0, self.w))
        dy = self.yy[sl] - self.yh
        valid = dy > 0.05
        dy = np.maximum(dy, 0.05)
        dep = self.f / dy
        lat = (self.xx[sl] - self.vx) / dy
        idx = np.searchsorted(self.band_bounds, lat, side="right")
        fade = np.clip(dy / (0.2 * self.h), 0, 1)
        for i, (_, _, kind) in enumerate(self.bands):
            m = valid & (idx == i)
            if m.any():
                col, label = self._ground_band(kind, sl, lat, dep, dy, fade)
                self.paint(sl, m, col, label)

    def _ground_band(self, kind: str, sl, lat, dep, dy, fade):
        rng, p = self.rng, self.pal
        if kind == "road":
            col = self.tex(sl, p["road"], 0.06, 0.03, 0.07)
            patches = np.clip((self.n_coarse[sl] - 1.0) * 2, 0, 1) * rng.uniform(0.0, 0.18)
            col *= (1 - patches)[..., None]
            wear = 0.75 + 0.25 * np.clip(self.n_mid[sl], -1, 1)
            for pos, width, period, duty in self.markings:
                # at least one pixel wide; thinner lines far away are blended by their coverage
                m = np.abs(lat - pos) < width / 2 + 0.5 / dy
                if period:
                    m &= ((dep / period) % 1.0) < duty
                alpha = (m * np.clip(width * dy, 0.25, 1.0) * wear)[..., None]
                col = col * (1 - alpha) + p["marking"] * alpha
            if self.crosswalk is not None:
                d0, depth, stripe = self.crosswalk
                m = (dep >= d0) & (dep <= d0 + depth) & (((lat / stripe) % 1.0) < 0.5)
                alpha = (m * 0.85 * fade)[..., None]
                col = col * (1 - alpha) + p["marking"] * alpha
            return col, ROAD
        if kind == "curb":
            return self.tex(sl, np.clip(p["sidewalk"] * 1.18, 0, 1), 0.04, 0.03, 0.05), SIDEWALK
        if kind == "sidewalk":
            tile = 0.35 + 0.3 * (float(p["sidewalk"][0]) % 0.1) * 10
            grout = (((lat / tile) % 1.0) < 0.08) | (((dep / tile) % 1.0) < 0.08 * np.clip(dy / 12, 0, 1))
            col = self.tex(sl, p["sidewalk"], 0.05, 0.04, 0.07) * (1 - 0.22 * grout * fade)[..., None]
            return col, SIDEWALK
        if kind == "parking":
            col = self.tex(sl, np.clip(p["road"] * 1.08, 0, 1), 0.07, 0.04, 0.06)
            m = (((dep / 2.6) % 1.0) < 0.05) * fade
            col = col * (1 - 0.8 * m[..., None]) + p["marking"] * 0.8 * m[..., None]
            return col, PARKING
        if kind == "terrain":
            t = np.clip(0.5 + 0.35 * self.n_coarse[sl] + 0.15 * self.n_mid[sl], 0, 1)[..., None]
            col = p["terrain"] * (1 - t) + p["terrain2"] * t
            return col * (1.0 + 0.12 * self.n_fine[sl] + 0.1 * self.n_mid[sl])[..., None], TERRAIN
        # 'ground': dirt / cobble
        base = _jitter(rng, (0.45, 0.4, 0.33), 0.15)
        return self.tex(sl, base, 0.1, 0.12, 0.08), GROUND

    def _facade_plane(self, side: int) -> _Plane:
        rng, U = self.rng, self.rng.uniform
        starts, ends, kinds, tops, cols = [], [], [], [], []
        wdx, floor, wfrac, hfrac, gfl, shop, wcol = [], [], [], [], [], [], []
        dep = 0.3
        p_build = 0.45 if self.laf else 0.64
        while dep < 800:
            length = U(5.0, 26.0) * (1.0 + dep / 60.0)
            r = rng.random()
            kind = 0 if r < p_build else (1 if r < p_build + 0.25 else 2)
            starts.append(dep)
            ends.append(dep + length)
            kinds.append(kind)
            tops.append(U(4.0, 20.0) if kind == 0 else U(3.5, 10.0))
            cols.append(_jitter(rng, _BUILDING_COLOURS[int(rng.integers(len(_BUILDING_COLOURS)))], 0.1))
            wdx.append(U(1.4, 3.0))
            floor.append(U(1.6, 2.3))
            wfrac.append(U(0.35, 0.65))
            hfrac.append(U(0.35, 0.6))
            gfl.append(U(1.8, 3.0))
            shop.append(float(rng.random() < 0.4))
            wcol.append(_jitter(rng, (0.12, 0.14, 0.17) if rng.random() < 0.6 else self.pal["sky_bottom"] * 0.6, 0.15))
            dep += length
        a = lambda x: np.asarray(x, np.float32)  # noqa: E731
        return _Plane(a(starts), a(ends), np.asarray(kinds), a(tops), a(cols),
                      {"wdx": a(wdx), "floor": a(floor), "wfrac": a(wfrac), "hfrac": a(hfrac),
                       "gf": a(gfl), "shop": a(shop), "wcol": a(wcol)})

    def _facades(self) -> None:
        for side in (-1, 1):
            plane = self._facade_plane(side)
            xb = self.facade_x[side]
            c0, c1 = (0, int(math.floor(self.vx))) if side < 0 else (int(math.ceil(self.vx)), self.w)
            if c1 <= c0:
                continue
            sl = (slice(0, self.h), slice(c0, c1))
            dep, hgt = self.side_plane(sl, xb)
            ok = np.isfinite(dep) & (dep > 0.3) & (hgt >= 0)
            dep = np.where(ok, dep, 1.0)
            idx = np.clip(np.searchsorted(plane.start, dep, side="right") - 1, 0, len(plane.start) - 1)
            top, kind = plane.top[idx], plane.kind[idx]
            ex = {k: v[idx] for k, v in plane.extra.items()}
            # buildings with windows, shop fronts and cornices
            bm = ok & (kind == 0) & (hgt <= top)
            if bm.any():
                col = plane.colour[idx] * (1.0 + 0.04 * self.n_fine[sl] + 0.06 * self.n_coarse[sl])[..., None]
                col *= np.where((hgt > top - 0.25)[..., None], 0.8, 1.0)
                u = dep / ex["wdx"]
                v = (hgt - ex["gf"]) / ex["floor"]
                fu, fv = u % 1.0, v % 1.0
                win = bm & (hgt > ex["gf"]) & (hgt < top - 0.5) & (np.abs(fu - 0.5) < ex["wfrac"] / 2) & (fv > 0.3) & (fv < 0.3 + ex["hfrac"])
                px_per_unit = self.f * abs(xb) / np.maximum(dep, 0.3) ** 2
                alpha = np.clip(ex["wfrac"] * ex["wdx"] * px_per_unit / 1.5, 0, 1) * win
                lit = _hash01(np.floor(u), np.floor(v), float(side)) > 0.88
                wc = ex["wcol"] * (0.75 + 0.4 * fv)[..., None]
                wc = np.where(lit[..., None], np.array([0.9, 0.8, 0.5], np.float32), wc)
                col = col * (1 - alpha[..., None]) + wc * alpha[..., None]
                shop_m = bm & (ex["shop"] > 0) & (hgt > 0.25) & (hgt < ex["gf"] - 0.3) & (((dep / 3.5) % 1.0) < 0.72)
                col = np.where(shop_m[..., None], ex["wcol"] * 0.8, col)
                self.paint(sl, bm, col, BUILDING)
            # rows of trees / hedges along the facade line
            vm = ok & (kind == 1) & (hgt <= top + 0.8 * np.sin(dep * 0.9 + side) + 0.5 * np.sin(dep * 2.3) + 0.6 * self.n_mid[sl])
            if vm.any():
                self.paint(sl, vm, self._leafy(sl), VEGETATION)

    def _leafy(self, sl, shade: np.ndarray | float = 0.0) -> np.ndarray:
        t = np.clip(0.5 + 0.3 * self.n_mid[sl] + 0.25 * self.n_fine[sl] + shade, 0, 1)[..., None]
        return self.pal["veg_dark"] * (1 - t) + self.pal["veg_light"] * t

    def _walls(self) -> None:
        rng, U = self.rng, self.rng.uniform
        for side in (-1, 1):
            forced = self.forced in (WALL, FENCE) and side == self.forced_side
            if rng.random() > (0.45 if self.laf else 0.7) and not forced:
                continue
            xm = self.mid_x[side]
            c0, c1 = (0, int(math.floor(self.vx))) if side < 0 else (int(math.ceil(self.vx)), self.w)
            if c1 <= c0:
                continue
            sl = (slice(0, self.h), slice(c0, c1))
            dep, hgt = self.side_plane(sl, xm)
            ok = np.isfinite(dep) & (hgt >= 0)
            dep = np.where(ok, dep, -1.0)
            d = U(0.5, 4.0)
            while d < 250:
                length = U(5.0, 40.0)
                kind = rng.choice(3, p=[0.45, 0.42, 0.13])
                if forced:
                    kind, forced = (0 if self.forced == WALL else 1), False
                top = U(0.4, 1.6) if kind != 0 or rng.random() < 0.8 else U(1.6, 3.0)
                m = ok & (dep >= d) & (dep <= d + length) & (hgt <= top)
                if m.any():
                    if kind == 0:
                        base = _grey(rng, 0.38, 0.75, 0.06) if rng.random() < 0.6 else _jitter(rng, _BUILDING_COLOURS[int(rng.integers(len(_BUILDING_COLOURS)))], 0.1)
                        col = self.tex(sl, base, 0.04, 0.05, 0.1)
                        joints = ((dep / U(1.5, 4.0)) % 1.0) < 0.04
                        col *= np.where((hgt > top - 0.08)[..., None], 1.15, np.where(joints[..., None], 0.85, 1.0))
                        self.paint(sl, m, col, WALL)
                    elif kind == 1:
                        base = _jitter(rng, ((0.5, 0.5, 0.5), (0.15, 0.28, 0.18), (0.5, 0.36, 0.22), (0.85, 0.85, 0.82))[int(rng.integers(4))], 0.1)
                        behind = self.img[sl] * U(0.7, 0.95)
                        if rng.random() < 0.5:
                            cell = U(0.08, 0.2)
                            bars = (((dep + hgt) / cell) % 1.0 < 0.3) | (((dep - hgt) / cell) % 1.0 < 0.3)
                        else:
                            bars = ((dep / U(0.15, 0.35)) % 1.0) < U(0.5, 0.8)
                        posts = ((dep / 2.5) % 1.0 < 0.06) | (np.abs(hgt - top + 0.05) < 0.05) | (np.abs(hgt - 0.15) < 0.04)
                        col = np.where((bars | posts)[..., None], self.tex(sl, base, 0.05, 0.03, 0.05), behind)
                        self.paint(sl, m, col, FENCE)
                    else:
                        self.paint(sl, m, self._leafy(sl), VEGETATION)
                d += length + U(1.0, 25.0)

    def _guard_rails(self) -> None:
        for side in (-1, 1):
            if not self.guard_rail.get(side):
                continue
            edge = self.road[0] if side < 0 else self.road[1]
            lat = edge + side * 0.15
            c0, c1 = (0, int(math.floor(self.vx))) if side < 0 else (int(math.ceil(self.vx)), self.w)
            if c1 <= c0:
                continue
            sl = (slice(0, self.h), slice(c0, c1))
            dep, hgt = self.side_plane(sl, lat)
            ok = np.isfinite(dep) & (dep > 0.5)
            band = ok & (hgt >= 0.32) & (hgt <= 0.52)
            posts = ok & (hgt >= 0) & (hgt < 0.4) & (((np.nan_to_num(dep) / 2.5) % 1.0) < 0.07)
            col = self.tex(sl, _grey(self.rng, 0.55, 0.8, 0.03), 0.03, 0.02, 0.04)
            col *= (1.0 - 0.3 * (np.abs(np.nan_to_num(hgt) - 0.42) > 0.06))[..., None]
            self.paint(sl, band | posts, col, GUARD_RAIL)

    # -- objects ---------------------------------------------------------------------------------

    def _ground_shadow(self, l0, l1, d0, d1, strength) -> None:
        xa, ya = self.project(l0, d0)
        xb, yb = self.project(l1, d0)
        xc, yc = self.project(l0, d1)
        xd, yd = self.project(l1, d1)
        sl = self._bbox(min(xa, xb, xc, xd), max(xa, xb, xc, xd), min(ya, yb, yc, yd), max(ya, yb, yc, yd))
        if sl is None:
            return
        dy = self.yy[sl] - self.yh
        with np.errstate(divide="ignore", invalid="ignore"):
            dep = self.f / dy
        lat = (self.xx[sl] - self.vx) / np.maximum(dy, 1e-3)
        cl, cd = (l0 + l1) / 2, (d0 + d1) / 2
        r = ((lat - cl) / ((l1 - l0) / 2)) ** 2 + ((dep - cd) / ((d1 - d0) / 2)) ** 2
        k = np.where(dy > 0, np.clip(1.2 - r, 0, 1) * strength, 0)
        self.img[sl] *= (1 - k)[..., None]

    def _vehicle(self, lc: float, d0: float, kind: str, front: bool = False) -> None:
        rng, U = self.rng, self.rng.uniform
        if kind == "car":
            width, length, body, cabin, label = U(1.1, 1.3), U(2.6, 3.2), (0.15, U(0.62, 0.75)), U(0.95, 1.08), CAR
            colour = _jitter(rng, _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))], 0.08)
        elif kind == "truck":
            width, length, body, cabin, label = U(1.5, 1.7), U(4.0, 6.5), (0.35, U(1.8, 2.5)), 0.0, TRUCK
            colour = _jitter(rng, _BIG_VEHICLE_COLOURS[int(rng.integers(len(_BIG_VEHICLE_COLOURS)))], 0.08)
        elif kind == "bus":
            width, length, body, cabin, label = U(1.6, 1.75), U(7.0, 9.0), (0.2, U(2.0, 2.3)), 0.0, BUS
            colour = _jitter(rng, _BIG_VEHICLE_COLOURS[int(rng.integers(len(_BIG_VEHICLE_COLOURS)))], 0.08)
        else:  # tram
            width, length, body, cabin, label = U(1.5, 1.7), U(14.0, 22.0), (0.3, U(2.2, 2.5)), 0.0, TRAIN
            colour = _jitter(rng, _BIG_VEHICLE_COLOURS[int(rng.integers(len(_BIG_VEHICLE_COLOURS)))], 0.08)
        hw = width / 2
        l0, l1 = lc - hw, lc + hw
        self._ground_shadow(l0 - 0.15, l1 + 0.15, d0 - 0.2, d0 + length + 0.3, U(0.35, 0.6))
        dark = np.array([0.06, 0.06, 0.07], np.float32)
        glass = _jitter(rng, self.pal["sky_bottom"] * 0.35 + 0.05, 0.1)
        # wheels under the body (rear view and side view)
        for wl in (l0 + 0.05, l1 - 0.27):
            sp = self.sprite(wl + 0.11, d0 + 0.35, 0.12, body[0] + 0.2)
            if sp is not None:
                sl, u, v, _ = sp
                self.paint(sl, (np.abs(u) <= 0.11) & (v >= 0) & (v <= body[0] + 0.2), dark, label)
        sl, faces = self.box_faces(l0, l1, d0, d0 + length, body[0], body[1])
        if sl is None:
            return
        shade = {"side": U(0.65, 0.85), "top": U(1.0, 1.15), "rear": U(0.85, 1.0)}
        for name, m, a, b in faces:
            col = self.tex(sl, colour * shade[name], 0.02, 0.02, 0.03)
            if name == "side":
                if kind in ("bus", "train"):
                    win = (b > body[1] - 1.0) & (b < body[1] - 0.3) & ((((a - d0) / 1.3) % 1.0) < 0.85)
                    col = np.where(win[..., None], glass, col)
                elif kind == "truck":
                    col = np.where((np.abs(b - body[1] + 0.25) < 0.04)[..., None], col * 0.7, col)
            elif name == "top":
                col = col * 0.9 + self.pal["sky_bottom"] * 0.1
            else:
                rel = a - lc
                if kind == "car":
                    lights = (np.abs(np.abs(rel) - hw + 0.12) < 0.09) & (np.abs(b - body[1] + 0.14) < 0.06)
                    col = np.where(lights[..., None], np.array([0.95, 0.92, 0.8] if front else [0.75, 0.05, 0.05], np.float32), col)
                    plate = (np.abs(rel) < 0.17) & (np.abs(b - 0.32) < 0.05)
                    col = np.where(plate[..., None], np.array([0.88, 0.88, 0.85], np.float32), col)
                elif kind in ("bus", "train"):
                    win = (b > body[1] - 0.95) & (b < body[1] - 0.2) & (np.abs(rel) < hw - 0.12)
                    col = np.where(win[..., None], glass, col)
                    lights = (np.abs(np.abs(rel) - hw + 0.15) < 0.08) & (np.abs(b - 0.45) < 0.06)
                    col = np.where(lights[..., None], np.array([0.8, 0.1, 0.05], np.float32), col)
                else:
                    door = np.abs(rel) < 0.02
                    col = np.where(door[..., None], col * 0.6, col)
            self.paint(sl, m, col, label)
        if kind == "car":
            inset = 0.08
            csl, cfaces = self.box_faces(l0 + inset, l1 - inset, d0 + U(0.6, 0.9), d0 + length - U(0.5, 0.8), body[1], cabin)
            if csl is not None:
                for name, m, a, b in cfaces:
                    col = self.tex(csl, colour * shade[name], 0.02, 0.02, 0.03)
                    if name == "side":
                        win = (b > body[1] + 0.04) & (b < cabin - 0.04)
                        col = np.where(win[..., None], glass * 0.9, col)
                    elif name == "rear":
                        win = (np.abs(a - lc) < hw - inset - 0.08) & (b < cabin - 0.04) & (b > body[1] + 0.03)
                        col = np.where(win[..., None], glass * (0.8 + 0.4 * np.clip(b - body[1], 0, 0.4))[..., None], col)
                    self.paint(csl, m, col, CAR)
        # side wheels in perspective
        side = l1 if l1 < 0 else (l0 if l0 > 0 else None)
        if side is not None:
            for wd in (d0 + 0.55, d0 + length - 0.6):
                xa, ya = self.project(side, wd - 0.35, 0.0)
                xb, yb = self.project(side, wd + 0.35, 0.7)
                wsl = self._bbox(min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb))
                if wsl is None:
                    continue
                dep, hgt = self.side_plane(wsl, side)
                m = np.isfinite(dep) & (((np.nan_to_num(dep) - wd) / 0.33) ** 2 + ((hgt - 0.33) / 0.33) ** 2 <= 1)
                hub = np.isfinite(dep) & (((np.nan_to_num(dep) - wd) / 0.13) ** 2 + ((hgt - 0.33) / 0.13) ** 2 <= 1)
                self.paint(wsl, m, dark, label)
                self.paint(wsl, hub, np.array([0.5, 0.5, 0.52], np.float32), label)

    def _person(self, lat: float, depth: float, label: int = PERSON, seated: bool = False) -> None:
        rng, U = self.rng, self.rng.uniform
        hgt = U(0.95, 1.3)
        lift = 0.35 if seated else 0.0
        sp = self.sprite(lat, depth, 0.32 * hgt, hgt * (0.95 if seated else 1.0) + lift)
        if sp is None:
            return
        sl, u, v, _ = sp
        u, v = u / hgt, (v - lift) / hgt
        skin = _jitter(rng, ((0.87, 0.7, 0.58), (0.65, 0.47, 0.35), (0.4, 0.27, 0.2), (0.93, 0.78, 0.68))[int(rng.integers(4))], 0.05)
        hair = _jitter(rng, ((0.1, 0.07, 0.05), (0.35, 0.22, 0.1), (0.8, 0.7, 0.45), (0.5, 0.5, 0.5))[int(rng.integers(4))], 0.1)
        dark_bias = rng.random() < 0.5
        shirt = _hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.08, 0.45) if dark_bias else rng.uniform(0.3, 0.95))
        pants = _hsv(rng.uniform(0.55, 0.7) if rng.random() < 0.5 else rng.random(), rng.uniform(0, 0.6), rng.uniform(0.06, 0.5))
        if seated:
            legs = _segment(u, v, (0.0, 0.45), (0.2, 0.25), 0.09) | _segment(u, v, (0.2, 0.25), (0.12, -0.2), 0.08)
        else:
            stride = U(-0.13, 0.13)
            legs = _segment(u, v, (-0.05, 0.47), (-0.05 + stride, 0.02), 0.085) | _segment(u, v, (0.05, 0.47), (0.05 - stride, 0.02), 0.085)
        lean = U(0.05, 0.15) if seated else 0.0
        torso = _convex(u, v, [(-0.12, 0.44), (0.12, 0.44), (0.14 + lean, 0.8), (-0.14 + lean, 0.8)])
        coat = rng.random() < 0.25 and not seated
        if coat:
            torso |= _convex(u, v, [(-0.13, 0.25), (0.13, 0.25), (0.13, 0.45), (-0.13, 0.45)])
        swing = U(-0.06, 0.06)
        arms = _segment(u, v, (-0.15 + lean, 0.77), (-0.19 + swing + (0.25 if seated else 0), 0.5 + (0.1 if seated else 0)), 0.06) | \
            _segment(u, v, (0.15 + lean, 0.77), (0.19 - swing + (0.2 if seated else 0), 0.5 + (0.1 if seated else 0)), 0.06)
        head = _ellipse(u, v, lean, 0.885, 0.065, 0.08)
        hairm = head & (v > 0.885 + U(-0.01, 0.05)) | _ellipse(u, v, lean, 0.93, 0.07, 0.04) & (rng.random() < 0.7)
        self.paint(sl, legs, self.tex(sl, pants, 0.05, 0.02, 0.0), label)
        self.paint(sl, arms, self.tex(sl, shirt * 0.9, 0.05, 0.02, 0.0), label)
        self.paint(sl, torso, self.tex(sl, shirt, 0.05, 0.03, 0.0), label)
        self.paint(sl, head, self.tex(sl, skin, 0.03, 0.0, 0.0), label)
        self.paint(sl, hairm, self.tex(sl, hair, 0.05, 0.0, 0.0), label)
        if rng.random() < 0.2 and not seated:
            bag = _convex(u, v, [(0.16, 0.42), (0.3, 0.42), (0.3, 0.6), (0.16, 0.6)])
            self.paint(sl, bag, self.tex(sl, _hsv(rng.random(), 0.4, 0.3), 0.05, 0.0, 0.0), label)

    def _two_wheeler(self, lat: float, depth: float, kind: str, rider: bool) -> None:
        rng, U = self.rng, self.rng.uniform
        label = BICYCLE if kind == "bicycle" else MOTORCYCLE
        sp = self.sprite(lat, depth, 0.75, 1.1)
        if sp is None:
            return
        sl, u, v, s = sp
        u = u * (1 if rng.random() < 0.5 else -1)
        dark = np.array([0.07, 0.07, 0.08], np.float32)
        r = 0.23 if kind == "bicycle" else 0.22
        hubs = ((-0.38, r), (0.38, r))
        frame_col = _hsv(rng.random(), U(0.2, 0.9), U(0.15, 0.8))
        tyre_w = max(0.035, 0.6 / s)
        wheels = np.zeros(u.shape, bool)
        disc = np.zeros(u.shape, bool)
        for cu, cv in hubs:
            rr = np.sqrt((u - cu) ** 2 + (v - cv) ** 2)
            disc |= rr <= r
            wheels |= (np.abs(rr - r + tyre_w / 2) <= tyre_w / 2) if kind == "bicycle" else (rr <= r)
        if kind == "bicycle":
            fw = max(0.03, 0.6 / s)
            frame = _segment(u, v, hubs[0], (0.0, r), fw) | _segment(u, v, (0.0, r), (-0.1, 0.58), fw) | \
                _segment(u, v, (-0.1, 0.58), hubs[0], fw) | _segment(u, v, (-0.1, 0.58), (0.3, 0.62), fw) | \
                _segment(u, v, (0.0, r), (0.3, 0.62), fw) | _segment(u, v, (0.3, 0.62), hubs[1], fw) | \
                _segment(u, v, (0.3, 0.62), (0.26, 0.74), fw) | _segment(u, v, (-0.16, 0.62), (-0.04, 0.62), fw * 1.5)
            # the annotation covers the whole bicycle including the spokes area; the image shows what is behind
            self.paint(sl, disc | frame, self.img[sl] * 0.92, label)
            self.paint(sl, frame, self.tex(sl, frame_col, 0.04, 0.0, 0.0), label)
            self.paint(sl, wheels, dark, label)
        else:
            body = _ellipse(u, v, 0.0, 0.45, 0.36, 0.17) | _convex(u, v, [(-0.3, 0.5), (0.05, 0.5), (0.0, 0.62), (-0.32, 0.6)])
            bars = _segment(u, v, (0.3, 0.45), (0.36, 0.8), 0.05)
            self.paint(sl, wheels, dark, label)
            self.paint(sl, body | bars, self.tex(sl, frame_col, 0.04, 0.02, 0.0), label)
        if rider:
            self._person(lat - 0.02, depth - 0.01, RIDER, seated=True)

    def _tree(self, lat: float, depth: float) -> None:
        rng, U = self.rng, self.rng.uniform
        trunk_h, cr = U(1.0, 2.6), U(0.8, 2.2)
        sp = self.sprite(lat, depth, cr * 1.5, trunk_h + 2.4 * cr)
        if sp is None:
            return
        sl, u, v, s = sp
        tw = max(U(0.05, 0.11), 0.5 / s)
        trunk = (np.abs(u) <= tw) & (v >= 0) & (v <= trunk_h + cr * 0.6)
        field_ = np.full(u.shape, -1.0, np.float32)
        for _ in range(int(rng.integers(3, 7))):
            cu, cv, rk = U(-0.6, 0.6) * cr, trunk_h + cr * U(0.6, 1.4), cr * U(0.45, 0.8)
            field_ = np.maximum(field_, 1 - ((u - cu) / rk) ** 2 - ((v - cv) / (rk * U(0.85, 1.1))) ** 2)
        crown = field_ + 0.35 * self.n_mid[sl] > 0.05
        self.paint(sl, trunk, self.tex(sl, _jitter(rng, (0.28, 0.2, 0.14), 0.2), 0.08, 0.05, 0.0), VEGETATION)
        self.paint(sl, crown, self._leafy(sl, 0.15 * np.clip((v - trunk_h - cr) / cr, -1, 1)), VEGETATION)

    def _bush(self, lat: float, depth: float) -> None:
        U = self.rng.uniform
        r = U(0.3, 0.7)
        sp = self.sprite(lat, depth, r * 1.6, r * 1.8)
        if sp is None:
            return
        sl, u, v, _ = sp
        m = (1 - (u / (1.4 * r)) ** 2 - ((v - 0.7 * r) / r) ** 2 + 0.3 * self.n_mid[sl] > 0) & (v >= 0)
        self.paint(sl, m, self._leafy(sl), VEGETATION)

    def _pole(self, lat: float, depth: float, kind: str, group: bool = False) -> None:
        rng, U = self.rng, self.rng.uniform
        hgt = U(2.0, 4.5) if kind != "lamp" else U(4.0, 6.0)
        toward = -1.0 if lat > 0 else 1.0
        sp = self.sprite(lat, depth, 1.6, hgt + 0.5)
        if sp is None:
            return
        sl, u, v, s = sp
        pw = max(U(0.045, 0.08), 0.5 / s)
        colour = _jitter(self.rng, self.pal["pole"], 0.1)
        shade = (1.0 + 0.25 * np.clip(u / pw, -1, 1))[..., None]
        offsets = (0.0,) if not group else (0.0, U(0.18, 0.3) * toward, -U(0.18, 0.3) * toward)[: int(rng.integers(2, 4))]
        for off in offsets:
            m = (np.abs(u - off) <= pw) & (v >= 0) & (v <= hgt)
            self.paint(sl, m, colour * shade, POLEGROUP if group else POLE)
        if kind == "lamp":
            reach = toward * U(0.6, 1.2)
            arm = _segment(u, v, (0.0, hgt - 0.1), (reach, hgt + 0.1), max(0.05, 0.8 / s))
            head = _ellipse(u, v, reach, hgt + 0.08, 0.22, 0.07)
            self.paint(sl, arm | head, colour * 0.9, POLE)
        elif kind == "sign":
            n_signs = 1 if rng.random() < 0.75 else 2
            cv = hgt - U(0.25, 0.35)
            for _ in range(n_signs):
                r = U(0.22, 0.4)
                self._sign(sl, u, v, cv, r)
                cv -= 2.3 * r
        elif kind == "light":
            self._traffic_light(sl, u, v, 0.0, hgt - 0.35)
            if rng.random() < 0.4:
                arm_len = toward * U(0.8, 1.6)
                self.paint(sl, _segment(u, v, (0.0, hgt - 0.05), (arm_len, hgt - 0.05), max(0.05, 0.8 / s)), colour, POLE)
                self._traffic_light(sl, u, v, arm_len, hgt - 0.45)

    def _sign(self, sl, u, v, cv: float, r: float) -> None:
        rng = self.rng
        shape = int(rng.integers(6))
        if shape == 0:
            outer = _ellipse(u, v, 0, cv, r, r)
            inner = _ellipse(u, v, 0, cv, 0.75 * r, 0.75 * r)
        elif shape == 1:
            pts = _regular(0, cv, r * 1.1, 3, np.pi / 2 if rng.random() < 0.7 else -np.pi / 2)
            outer, inner = _convex(u, v, pts), _convex(u, v, (pts - [0, cv]) * 0.62 + [0, cv])
        elif shape == 2:
            pts = _regular(0, cv, r, 8, np.pi / 8)
            outer, inner = _convex(u, v, pts), _convex(u, v, (pts - [0, cv]) * 0.82 + [0, cv])
        elif shape == 3:
            pts = _regular(0, cv, r * 1.05, 4, 0.0)
            outer, inner = _convex(u, v, pts), _convex(u, v, (pts - [0, cv]) * 0.75 + [0, cv])
        else:
            wr = r * (1.6 if shape == 4 else 1.0)
            pts = [(-wr, cv - r * 0.8), (wr, cv - r * 0.8), (wr, cv + r * 0.8), (-wr, cv + r * 0.8)]
            outer = _convex(u, v, pts)
            inner = _convex(u, v, [(x * 0.85, cv + (y - cv) * 0.8) for x, y in pts])
        schemes = (
            ((0.75, 0.08, 0.08), (0.92, 0.92, 0.9)), ((0.1, 0.25, 0.65), (0.12, 0.3, 0.72)),
            ((0.9, 0.75, 0.1), (0.95, 0.85, 0.2)), ((0.92, 0.92, 0.9), (0.1, 0.35, 0.2)),
            ((0.8, 0.1, 0.08), (0.8, 0.1, 0.08)), ((0.5, 0.5, 0.5), (0.55, 0.55, 0.55)),
        )
        rim, fill = schemes[2 if shape == 3 else (4 if shape == 2 else int(rng.integers(len(schemes))))]
        rim, fill = _jitter(rng, rim, 0.08), _jitter(rng, fill, 0.08)
        self.paint(sl, outer, self.tex(sl, rim, 0.03, 0.0, 0.0), TRAFFIC_SIGN)
        self.paint(sl, inner, self.tex(sl, fill, 0.03, 0.0, 0.0), TRAFFIC_SIGN)
        if rng.random() < 0.5:
            glyph = _convex(u, v, [(-0.12 * r, cv - 0.3 * r), (0.12 * r, cv - 0.3 * r), (0.12 * r, cv + 0.3 * r), (-0.12 * r, cv + 0.3 * r)])
            self.paint(sl, glyph & inner, np.array([0.1, 0.1, 0.1], np.float32), TRAFFIC_SIGN)

    def _traffic_light(self, sl, u, v, cu: float, top: float) -> None:
        rng = self.rng
        wh, hh = self.rng.uniform(0.12, 0.16), self.rng.uniform(0.34, 0.42)
        box = (np.abs(u - cu) <= wh) & (np.abs(v - (top - hh)) <= hh)
        housing = _jitter(rng, (0.1, 0.1, 0.1) if rng.random() < 0.7 else (0.55, 0.5, 0.2), 0.2)
        self.paint(sl, box, self.tex(sl, housing, 0.04, 0.0, 0.0), TRAFFIC_LIGHT)
        on = int(rng.integers(3))
        lamp_cols = ((0.95, 0.15, 0.1), (0.95, 0.7, 0.1), (0.2, 0.95, 0.45))
        for k in range(3):
            cv = top - hh * (0.35 + 0.65 * k)
            m = _ellipse(u, v, cu, cv, wh * 0.65, wh * 0.65)
            col = np.array(lamp_cols[k], np.float32) * (1.0 if k == on else 0.22)
            self.paint(sl, m, col, TRAFFIC_LIGHT)

    def _bin(self, lat: float, depth: float) -> None:
        rng, U = self.rng, self.rng.uniform
        big = rng.random() < 0.35
        w, d, h = (U(0.35, 0.6), U(0.2, 0.35), U(0.6, 0.9)) if big else (U(0.2, 0.35), U(0.2, 0.35), U(0.35, 0.6))
        label = STATIC if big else DYNAMIC
        colour = _jitter(rng, ((0.2, 0.3, 0.2), (0.4, 0.4, 0.42), (0.15, 0.2, 0.45), (0.6, 0.55, 0.2))[int(rng.integers(4))], 0.1)
        sl, faces = self.box_faces(lat - w / 2, lat + w / 2, depth, depth + d, 0.0, h)
        for name, m, _, _ in faces:
            self.paint(sl, m, self.tex(sl, colour * {"side": 0.75, "top": 1.1, "rear": 0.95}[name], 0.03, 0.02, 0.0), label)

    # -- LostAndFound obstacles -------------------------------------------------------------------

    def _obstacle(self, lat: float, depth: float, kind: str, size: float, laf_id: int) -> None:
        rng, U = self.rng, self.rng.uniform
        label = _LAF_MARK + laf_id
        hue = U(0.42, 1.15)  # anything but the yellow-greens of vegetation and terrain
        unusual = (_hsv(hue, U(0.75, 1.0), U(0.7, 1.0)), _hsv(hue + U(0.3, 0.6), U(0.6, 1.0), U(0.1, 0.95)))
        self._ground_shadow(lat - size * 0.6, lat + size * 0.6, depth - 0.1 * size, depth + size * 0.9, U(0.25, 0.5))
        if kind == "crate":
            w, d, h = size, size * U(0.6, 1.0), size * U(0.5, 0.9)
            cell = size * U(0.12, 0.25)
            sl, faces = self.box_faces(lat - w / 2, lat + w / 2, depth, depth + d, 0.0, h)
            for name, m, a, b in faces:
                checker = ((np.floor(a / cell) + np.floor(b / cell)) % 2).astype(bool)
                col = np.where(checker[..., None], unusual[0], unusual[1]) * {"side": 0.72, "top": 1.08, "rear": 0.95}[name]
                self.paint(sl, m, col * (1 + 0.03 * self.n_fine[sl])[..., None], label)
        elif kind == "pylon":
            h = size * U(1.1, 1.6)
            sp = self.sprite(lat, depth, size * 0.5, h)
            if sp is None:
                return
            sl, u, v, _ = sp
            plate = (np.abs(u) <= 0.45 * size) & (v >= 0) & (v <= 0.08 * size)
            cone = _convex(u, v, [(-0.33 * size, 0.08 * size), (0.33 * size, 0.08 * size), (0.05 * size, h), (-0.05 * size, h)])
            n = int(rng.integers(3, 6))
            stripes = ((np.floor(v / h * n * 2)) % 2).astype(bool)
            shade = (1.0 - 0.25 * np.clip(np.abs(u) / (0.33 * size), 0, 1))[..., None]
            self.paint(sl, plate, unusual[1] * 0.7, label)
            self.paint(sl, cone, np.where(stripes[..., None], unusual[0], unusual[1]) * shade, label)
        elif kind == "blob":
            rx, ry = size * U(0.4, 0.6), size * U(0.3, 0.5)
            sp = self.sprite(lat, depth, rx * 1.3, ry * 2.4)
            if sp is None:
                return
            sl, u, v, _ = sp
            ang = np.arctan2(v - ry, u)
            wob = 1 + 0.18 * np.sin(3 * ang + U(0, 6)) + 0.1 * np.sin(5 * ang + U(0, 6))
            m = (u / rx) ** 2 + ((v - ry) / ry) ** 2 <= wob ** 2
            cell = size * U(0.15, 0.25)
            cu, cv = np.floor(u / cell), np.floor(v / cell)
            ju, jv = _hash01(cu, cv, 1.0), _hash01(cu, cv, 2.0)
            spots = ((u / cell - cu - 0.2 - 0.6 * ju) ** 2 + (v / cell - cv - 0.2 - 0.6 * jv) ** 2) < U(0.04, 0.08)
            shade = (0.75 + 0.35 * np.clip((v - ry * 0.3) / (2 * ry), 0, 1))[..., None]
            self.paint(sl, m, np.where(spots[..., None], unusual[1], unusual[0]) * shade, label)
        else:  # lying timber or post (random non-hazards)
            w, d, h = size * U(1.2, 2.0), size * U(0.12, 0.2), size * U(0.1, 0.18)
            base = (0.78, 0.12, 0.1) if laf_id == 33 else (0.55, 0.4, 0.25)
            sl, faces = self.box_faces(lat - w / 2, lat + w / 2, depth, depth + d, 0.0, h)
            for name, m, _, _ in faces:
                col = self.tex(sl, _jitter(rng, base, 0.1) * {"side": 0.75, "top": 1.1, "rear": 0.95}[name], 0.05, 0.05, 0.0)
                self.paint(sl, m, col, label)

    def _plan_obstacles(self, bottom: float) -> list[tuple[float, Callable[[], None]]]:
        """1-3 obstacles on the road whose total area is about 0.3-3 % of the image."""
        rng, U = self.rng, self.rng.uniform
        n = int(rng.choice([1, 2, 3], p=[0.5, 0.33, 0.17]))
        total = math.exp(U(math.log(0.004), math.log(0.025))) * self.h * self.w
        plans = []
        for k in range(n):
            r = rng.random() * (0.9 if k == 0 else 1.0)
            kind = "crate" if r < 0.36 else ("pylon" if r < 0.64 else ("blob" if r < 0.9 else "timber"))
            fill = {"crate": 0.75, "pylon": 0.55, "blob": 0.8, "timber": 0.3}[kind]
            area = total / n * U(0.7, 1.3)
            ybase = U(self.yh + 0.25 * (bottom - self.yh), bottom)
            s = ybase - self.yh  # pixels per unit at that depth
            size = float(np.clip(math.sqrt(area / fill) / s, 0.12, 1.4))
            depth = self.f / s
            lo, hi = self.road[0] + 0.6 * size + 0.2, self.road[1] - 0.6 * size - 0.2
            if hi <= lo:
                continue
            lat = U(lo, hi)
            if kind == "crate":
                laf_id = int(rng.choice(_LAF_CRATE_IDS))
            elif kind == "pylon":
                laf_id = int(rng.choice(_LAF_PYLON_IDS))
            elif kind == "blob":
                laf_id = int(rng.choice(_LAF_BLOB_IDS))
            else:
                laf_id = int(rng.choice(_LAF_NON_HAZARD_IDS))
            plans.append((depth, lambda a=lat, b=depth, k=kind, sz=size, i=laf_id: self._obstacle(a, b, k, sz, i)))
        return plans

    # -- composition ----------------------------------------------------------------------------

    def _populate(self, bottom: float) -> list[tuple[float, Callable[[], None]]]:
        rng, U = self.rng, self.rng.uniform
        objs: list[tuple[float, Callable[[], None]]] = []

        def logu(lo: float, hi: float) -> float:
            return math.exp(U(math.log(lo), math.log(hi)))

        def walk(side: int, inner: float = 0.2, outer: float = 0.2) -> float:
            lo, hi = self.sidewalk[side]
            return side * U(lo + inner, max(lo + inner + 0.01, hi - outer))

        def add(depth: float, fn: Callable[[], None]) -> None:
            objs.append((depth, fn))

        laf = self.laf
        for _ in range(int(rng.poisson(1.2 if laf else 3.2))):
            side = int(rng.choice([-1, 1]))
            lo, hi = self.outer[side]
            lat, dep = side * U(lo + 0.3, max(lo + 0.31, hi + 0.5)), logu(3.5, 80)
            add(dep, lambda a=lat, b=dep: self._tree(a, b))
        for _ in range(int(rng.poisson(1.0))):
            side = int(rng.choice([-1, 1]))
            lat, dep = side * (self.outer[side][1] - U(0.2, 0.6)), logu(3, 40)
            add(dep, lambda a=lat, b=dep: self._bush(a, b))
        n_poles = int(rng.poisson(1.5 if laf else 4.0))
        for k in range(n_poles + (0 if laf else 2)):
            side = int(rng.choice([-1, 1]))
            edge = self.road[0] if side < 0 else self.road[1]
            lat = edge + side * U(0.3, 0.6)
            if k < n_poles:
                dep = logu(2.8, 70)
                kind = ("sign", "light", "lamp", "plain")[int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15]))]
            else:  # one traffic light and one sign well inside the view
                dep = self.visible_depth(lat, 5.0, 25.0)
                kind = "light" if k == n_poles else "sign"
            group = rng.random() < 0.08
            add(dep, lambda a=lat, b=dep, k=kind, g=group: self._pole(a, b, k, g))
        if self.coco:
            return objs
        if not laf:
            for _ in range(int(rng.poisson(4.0))):
                side = int(rng.choice([-1, 1]))
                lat, dep = walk(side), logu(2.2, 30)
                add(dep, lambda a=lat, b=dep: self._person(a, b))
            if rng.random() < 0.15:
                lat, dep = U(self.road[0] + 0.5, self.road[1] - 0.5), logu(4, 25)
                add(dep, lambda a=lat, b=dep: self._person(a, b))
            for _ in range(int(rng.poisson(1.8))):
                lane = float(rng.choice(self.lanes))
                dep = logu(4.5 if lane == 0 else 3.5, 70)
                add(dep, lambda a=lane + U(-0.2, 0.2), b=dep, fr=lane < 0: self._vehicle(a, b, "car", front=fr))
            for _ in range(int(rng.poisson(3.5))):
                side = int(rng.choice([-1, 1]))
                edge = self.road[0] if side < 0 else self.road[1]
                lat, dep = edge - side * U(0.65, 0.8), logu(3, 70)
                add(dep, lambda a=lat, b=dep: self._vehicle(a, b, "car"))
            for _ in range(int(rng.poisson(0.5))):
                side = int(rng.choice([-1, 1]))
                lat, dep = walk(side, 0.4, 0.6), logu(3, 30)
                add(dep, lambda a=lat, b=dep: self._bin(a, b))
            self._rare(add, logu, walk)
        else:
            for _ in range(int(rng.poisson(0.6))):
                side = int(rng.choice([-1, 1]))
                edge = self.road[0] if side < 0 else self.road[1]
                lat, dep = edge - side * U(0.65, 0.8), logu(12, 70)
                add(dep, lambda a=lat, b=dep: self._vehicle(a, b, "car"))
            if rng.random() < 0.3:
                dep = logu(30, 80)
                add(dep, lambda b=dep: self._vehicle(U(-0.3, 0.3), b, "car"))
            objs.extend(self._plan_obstacles(bottom - 2.0))
        return objs

    def visible_depth(self, lat: float, lo: float = 3.0, hi: float = 18.0) -> float:
        """A (log-uniform) depth between lo and hi at which lateral offset ``lat`` is inside the image."""
        room = (self.vx if lat < 0 else self.w - self.vx) - 0.08 * self.w
        d_min = max(lo, abs(lat) * self.f / max(room, 1.0) * 1.1)
        d_max = max(hi, 1.5 * d_min)
        return math.exp(self.rng.uniform(math.log(d_min), math.log(d_max)))

    def _rare(self, add, logu, walk) -> None:
        """Trucks, buses, trams, riders, bicycles and motorcycles: one group guaranteed per image by its index."""
        rng, U = self.rng, self.rng.uniform
        slot = self.rare_slot if self.rare_slot is not None else int(rng.integers(4))
        want = list(_RARE_GROUPS[slot % len(_RARE_GROUPS)])
        self.required = {_RARE_LABELS[k] for k in want} | {_SLOT_EXTRA[slot % len(_RARE_GROUPS)]}
        if {"cyclist", "motorcyclist"} & set(want):
            self.required.add(RIDER)
        for extra, p in (("truck", 0.12), ("bus", 0.08), ("cyclist", 0.12), ("parked_bicycle", 0.15)):
            if rng.random() < p:
                want.append(extra)
        near = self.visible_depth

        for kind in want:
            if kind in ("train", "bus", "truck"):
                lane = float(rng.choice(self.lanes)) if kind != "train" else U(self.road[0] + 1.0, min(-0.9, self.road[1] - 1.0))
                dep = logu(6.0, 28.0)
                add(dep, lambda a=lane, b=dep, k=kind: self._vehicle(a, b, k, front=a < -0.5))
            elif kind in ("cyclist", "motorcyclist"):
                side = int(rng.choice([-1, 1]))
                edge = self.road[0] if side < 0 else self.road[1]
                lat = edge - side * U(0.4, 0.9)
                dep = near(lat)
                add(dep, lambda a=lat, b=dep, k=kind: self._two_wheeler(a, b, "bicycle" if k == "cyclist" else "motorcycle", True))
            else:
                side = int(rng.choice([-1, 1]))
                lat = walk(side, 0.3, 0.3)
                dep = near(lat, 3.0, 10.0)
                add(dep, lambda a=lat, b=dep, k=kind: self._two_wheeler(a, b, "bicycle" if k == "parked_bicycle" else "motorcycle", False))

    def _ego_shape(self) -> tuple[float, float] | None:
        """Height and centre column of the ego vehicle's hood, or None for a scene without it."""
        rng = self.rng
        if not (self.force_ego or rng.random() < (0.55 if not self.laf else 0.5)):
            return None
        return self.h * rng.uniform(0.07, 0.15), self.w * rng.uniform(0.4, 0.6)

    def _ego(self, shape: tuple[float, float] | None) -> None:
        """Paint the hood (label 'ego vehicle') at the bottom, with a dim reflection of the scene."""
        if shape is None:
            return
        rng = self.rng
        bh, cx = shape
        top = self.h - bh + bh * 0.9 * ((self.xx[0] - cx) / (0.65 * self.w)) ** 2
        m = self.yy >= top[None, :]
        mirror = np.clip((2 * (self.h - bh) - self.yy).astype(np.int64), 0, self.h - 1)
        refl = np.take_along_axis(self.img, np.repeat(mirror[..., None], 3, axis=2), axis=0)
        base = _grey(rng, 0.04, 0.35, 0.08)
        grad = np.clip((self.yy - (self.h - bh)) / bh, 0, 1)[..., None]
        col = base * (1.0 - 0.4 * grad) + refl * rng.uniform(0.1, 0.3) * (1 - grad)
        self.paint((slice(None), slice(None)), m, col, EGO)

    def _borders(self) -> None:
        rng = self.rng
        if rng.random() < 0.25:
            k = int(rng.integers(1, 4))
            m = np.zeros((self.h, self.w), bool)
            m[:, :k] = m[:, -k:] = True
            m[:k, :] = True
            self.ids[m] = OUT_OF_ROI
        if rng.random() < 0.15:
            size = self.w * rng.uniform(0.03, 0.08)
            left = rng.random() < 0.5
            xx = self.xx if left else self.w - self.xx
            m = xx + (self.h - self.yy) < size
            self.img[m] = 0.0
            self.ids[m] = RECT_BORDER

    def _lighting(self) -> None:
        rng, U = self.rng, self.rng.uniform
        img = self.img
        not_sky = (self.ids != SKY)[..., None]
        if rng.random() < 0.6:
            sh = _smooth(rng, self.h, self.w, self.w / 5)
            m = np.clip((sh - U(-0.3, 1.0)) * 3, 0, 1)[..., None]
            img *= 1 - m * not_sky * U(0.25, 0.5)
        lum = img.mean(axis=2, keepdims=True)
        img = lum + (img - lum) * U(0.65, 1.25)
        img = (img - 0.45) * U(0.8, 1.2) + 0.45
        img = img * U(0.7, 1.25) * (1.0 + rng.normal(0, 0.04, 3)).astype(np.float32)
        img = np.clip(img, 0, 1) ** U(0.85, 1.2)
        r2 = ((self.xx - self.w / 2) / (self.w / 2)) ** 2 + ((self.yy - self.h / 2) / (self.h / 2)) ** 2
        img *= (1.0 - U(0.0, 0.22) * r2 / 2)[..., None]
        if rng.random() < 0.3:
            img = ndimage.gaussian_filter(img, sigma=(U(0.3, 0.8), U(0.3, 0.8), 0))
        sigma = U(0.006, 0.03)
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma + self.n_fine[..., None] * sigma * 0.5
        self.img = img.astype(np.float32)

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw the scene; returns (RGB uint8, label ids uint8; LostAndFound obstacles as 100 + id)."""
        self._sky()
        self._skyline()
        self._ground()
        self._facades()
        self._walls()
        self._guard_rails()
        ego = None if self.coco else self._ego_shape()
        objs = self._populate(self.h - ego[0] if ego is not None else float(self.h))
        objs.sort(key=lambda o: -o[0])
        for _, draw in objs:
            draw()
        self._ego(ego)
        if not (self.laf or self.coco):
            self._borders()
        self._lighting()
        return _to_uint8(self.img), self.ids



def _attempt_rng(seed: int, stream: str, index: int, attempt: int) -> np.random.Generator:
    """The generator of an image; a redraw (attempt > 0) gets an independent sub-seed."""
    return _rng(seed, stream, index) if attempt == 0 else np.random.default_rng(
        np.random.SeedSequence([int(seed), _STREAMS[stream], int(index), int(attempt)]))


def render_cityscapes(cfg: DemoConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of Cityscapes-format ``split``: (RGB uint8, official label ids uint8).

    Each image is guaranteed one group of the rarer classes (tram + bicycle + terrain, bus +
    motorcyclist + wall, truck + cyclist + fence, cyclist + motorcycle + traffic light; by
    ``index % 4``), so four consecutive images show all 19 classes; a scene in which one of them
    ended up hidden is redrawn with the next sub-seed.
    """
    for attempt in range(8):
        scene = _Street(_attempt_rng(cfg.seed, split, index, attempt), cfg.height, cfg.width, rare_slot=index % len(_RARE_GROUPS))
        img, ids = scene.render()
        if scene.required <= set(np.unique(ids).tolist()):
            break
    return img, ids


def render_lostandfound(cfg: DemoConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """LostAndFound-format image ``index``: (RGB uint8, LostAndFound label ids uint8).

    A scene whose obstacles ended up (almost) hidden is redrawn with the next sub-seed, so every
    image shows at least 0.2 % obstacle pixels.
    """
    hazard = np.array([lab.id for lab in L.LOSTANDFOUND_LABELS if lab.train_id == L.LOSTANDFOUND.train_id_out]) + _LAF_MARK
    for attempt in range(8):
        scene = _Street(_attempt_rng(cfg.seed, "lostandfound", index, attempt), cfg.height, cfg.width, mode="lostandfound")
        img, ids = scene.render()
        if np.isin(ids, hazard).sum() >= 0.002 * ids.size:
            break
    lab = np.zeros_like(ids)
    lab[ids == ROAD] = 1
    obst = ids >= _LAF_MARK
    lab[obst] = ids[obst] - _LAF_MARK
    return img, lab


# --------------------------------------------------------------------------------------------
# Fishyscapes Static: foreign objects pasted onto Cityscapes-format scenes
# --------------------------------------------------------------------------------------------


def _foreign_object(rng: np.random.Generator, h: int, w: int, cy: float, cx: float, r: float):
    """Mask (float alpha) and colours of one foreign object centred at (cy, cx) with radius ``r`` px."""
    U = rng.uniform
    y0, y1 = max(0, int(cy - 1.6 * r)), min(h, int(cy + 1.6 * r) + 1)
    x0, x1 = max(0, int(cx - 1.6 * r)), min(w, int(cx + 1.6 * r) + 1)
    if y1 <= y0 or x1 <= x0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    du, dv = (xx - cx) / r, (yy - cy) / r
    rho = np.sqrt(du ** 2 + dv ** 2)
    th = np.arctan2(dv, du)
    kind = int(rng.integers(4))
    if kind == 0:  # rainbow star / flower
        n = int(rng.integers(5, 9))
        edge = 0.6 + 0.4 * np.cos(n * th + U(0, 6))
        inside = rho <= edge
        col = _hsv_array(th / (2 * np.pi) + rho * U(0.3, 0.8) + U(0, 1), U(0.7, 1.0), U(0.75, 1.0) * (1 - 0.3 * rho))
    elif kind == 1:  # ring target
        inside = rho <= U(0.85, 1.0)
        bands = (np.floor(rho / U(0.12, 0.22)) % 2).astype(bool)
        a, b = _hsv(U(0, 1), 1.0, 1.0), _hsv(U(0, 1), U(0.6, 1.0), U(0.1, 0.9))
        col = np.where(bands[..., None], a, b)
    elif kind == 2:  # swirl blob
        edge = 0.85 + 0.15 * np.sin(3 * th + U(0, 6)) + 0.08 * np.sin(7 * th)
        inside = rho <= edge
        swirl = np.sin(th * int(rng.integers(2, 5)) + rho * U(6, 14))
        col = _hsv_array(U(0, 1) + 0.25 * swirl, 0.9, 0.6 + 0.35 * swirl)
    else:  # faceted crystal with a metallic sheen
        pts = _regular(0.0, 0.0, 1.0, int(rng.integers(5, 8)), U(0, 6))
        inside = _convex(du, dv, pts)
        facet = np.floor((th + np.pi) / (2 * np.pi) * 6)
        col = _hsv_array(np.full(du.shape, U(0, 1)) + facet * 0.03, U(0.5, 0.9), 0.45 + 0.5 * _hash01(facet, facet, 3.0))
    alpha = ndimage.gaussian_filter(inside.astype(np.float32), 0.6)
    return (slice(y0, y1), slice(x0, x1)), alpha, col.astype(np.float32)


def render_fishyscapes(cfg: DemoConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Fishyscapes-Static-format image ``index``: (RGB uint8, labels 0 in / 1 out / 255 void)."""
    rng = _rng(cfg.seed, "fishyscapes", index)
    h, w = cfg.height, cfg.width
    scene = _Street(rng, h, w, rare_slot=int(rng.integers(4)), force_ego=True)
    img_u8, ids = scene.render()
    img = img_u8.astype(np.float32) / 255.0
    lab = np.where(L.CITYSCAPES_ID_TO_TRAIN[ids] == L.VOID_ID, L.VOID_ID, 0).astype(np.uint8)
    border = max(1, round(2 * w / 256))
    lab[:border, :] = lab[-border:, :] = lab[:, :border] = lab[:, -border:] = L.VOID_ID
    ego_rows = np.flatnonzero((ids == EGO).any(axis=1))
    bottom = float(ego_rows[0]) if ego_rows.size else float(h)
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    total = rng.uniform(0.01, 0.03) * h * w
    brightness = float(np.clip(img.mean() / 0.45, 0.5, 1.4))
    for _ in range(n):
        area = total / n * rng.uniform(0.75, 1.25)
        r = math.sqrt(area / (math.pi * 0.8))
        cy = rng.uniform(max(scene.yh - 0.1 * h, r), max(bottom - r - border - 1, scene.yh))
        cx = rng.uniform(r + border, w - r - border)
        obj = _foreign_object(rng, h, w, cy, cx, r)
        if obj is None:
            continue
        sl, alpha, col = obj
        col = col * brightness + rng.normal(0, 0.01, col.shape).astype(np.float32)
        img[sl] = img[sl] * (1 - alpha[..., None]) + col * alpha[..., None]
        lab[sl][alpha > 0.5] = 1
    return _to_uint8(img), lab


# --------------------------------------------------------------------------------------------
# COCO format
# --------------------------------------------------------------------------------------------

#: The 80 COCO object categories with their official ids, names and supercategories.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"), (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"), (32, "tie", "accessory"), (33, "suitcase", "accessory"), (34, "frisbee", "sports"),
    (35, "skis", "sports"), (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"), (73, "laptop", "electronic"),
    (74, "mouse", "electronic"), (75, "remote", "electronic"), (76, "keyboard", "electronic"),
    (77, "cell phone", "electronic"), (78, "microwave", "appliance"), (79, "oven", "appliance"),
    (80, "toaster", "appliance"), (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"), (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)
_COCO_ID = {name: cid for cid, name, _ in COCO_CATEGORIES}
_EXCLUDED_SHAPES = ("person", "car", "bicycle", "motorcycle", "bus", "truck", "traffic light", "stop sign")
_PROXY_SHAPES = (
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "chair", "couch", "bed", "dining table",
    "bench", "potted plant", "tv", "laptop", "bottle", "vase", "cup", "clock", "teddy bear", "umbrella", "kite",
    "airplane", "boat", "fire hydrant", "suitcase", "sports ball", "toilet", "refrigerator",
)
_CROWD_SHAPES = ("bird", "sheep", "book", "banana", "kite", "umbrella", "donut")
_BLOB_SHAPES = ("broccoli", "teddy bear", "cake", "pizza", "potted plant", "bear", "sheep")

Poly = np.ndarray  # (n, 2) x, y in pixels


def _ell(cx, cy, rx, ry, rot=0.0, n=20) -> Poly:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(a), ry * np.sin(a)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _rect(cx, cy, w, h, rot=0.0) -> Poly:
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * pts[:, 0] - s * pts[:, 1], cy + s * pts[:, 0] + c * pts[:, 1]], axis=1)


def _pts(cx, cy, r, pts, flip=1.0) -> Poly:
    pts = np.asarray(pts, np.float64)
    return np.stack([cx + flip * r * pts[:, 0], cy + r * pts[:, 1]], axis=1)


def _shape_parts(rng: np.random.Generator, name: str, cx: float, cy: float, r: float) -> list[tuple[Poly, int]]:
    """Polygons (with a part index for colouring) of an object of category ``name``; y points down."""
    U = rng.uniform
    fl = 1.0 if rng.random() < 0.5 else -1.0
    parts: list[tuple[Poly, int]] = []
    quad = {"cat": (0.55, 0.45, 0.35, 0.3), "dog": (0.6, 0.4, 0.5, 0.32), "horse": (0.65, 0.35, 0.9, 0.28),
            "sheep": (0.6, 0.45, 0.4, 0.3), "cow": (0.7, 0.4, 0.65, 0.3), "elephant": (0.75, 0.5, 0.6, 0.36),
            "bear": (0.7, 0.5, 0.45, 0.34)}
    if name in quad:
        bl, bh, leg, head = quad[name]
        parts.append((_ell(cx, cy, r * bl, r * bh * U(0.85, 1.1), U(-0.15, 0.15)), 0))
        for lx in (-0.6, -0.3, 0.3, 0.6):
            parts.append((_rect(cx + fl * lx * r * bl, cy + r * (bh * 0.6 + leg / 2), r * 0.13, r * leg, U(-0.15, 0.15)), 1))
        hx, hy = cx + fl * r * (bl + head * 0.5), cy - r * bh * U(0.5, 1.1)
        parts.append((_ell(hx, hy, r * head, r * head * 0.85), 2))
        if name == "cat":
            parts.append((_pts(hx, hy, r * head, [(-0.7, -0.4), (-0.3, -0.6), (-0.55, -1.3)], fl), 2))
            parts.append((_pts(hx, hy, r * head, [(0.7, -0.4), (0.3, -0.6), (0.55, -1.3)], fl), 2))
        if name == "elephant":
            parts.append((_rect(hx + fl * r * head * 0.5, hy + r * head * 1.2, r * 0.12, r * head * 2.0, fl * 0.2), 2))
        parts.append((_rect(cx - fl * r * (bl + 0.1), cy - r * 0.1, r * 0.35, r * 0.07, fl * U(-0.8, 0.2)), 1))
    elif name == "bird":
        parts.append((_ell(cx, cy, r * 0.5, r * 0.28, U(-0.3, 0.3)), 0))
        parts.append((_ell(cx + fl * r * 0.48, cy - r * 0.25, r * 0.2, r * 0.18), 2))
        parts.append((_pts(cx, cy, r, [(-0.2, -0.05), (0.2, -0.1), (-0.4, -0.75)], fl), 1))
        parts.append((_pts(cx, cy, r, [(0.66, -0.3), (0.9, -0.22), (0.66, -0.18)], fl), 3))
    elif name in ("chair", "bench"):
        wdt = 0.8 if name == "chair" else 1.5
        parts.append((_rect(cx, cy, r * wdt, r * 0.12), 0))
        parts.append((_rect(cx - fl * r * wdt * 0.42, cy - r * 0.45, r * 0.12, r * 0.9, fl * 0.08), 0))
        for lx in (-0.42, 0.42):
            parts.append((_rect(cx + lx * r * wdt, cy + r * 0.38, r * 0.09, r * 0.7), 1))
    elif name in ("couch", "bed"):
        wdt = 1.6 if name == "couch" else 1.8
        parts.append((_rect(cx, cy, r * wdt, r * 0.5), 0))
        parts.append((_rect(cx, cy - r * 0.4, r * wdt * 0.95, r * 0.45), 1))
        if name == "couch":
            for lx in (-0.5, 0.5):
                parts.append((_ell(cx + lx * r * wdt, cy - r * 0.1, r * 0.15, r * 0.35), 1))
    elif name == "dining table":
        parts.append((_rect(cx, cy - r * 0.3, r * 1.7, r * 0.14), 0))
        for lx in (-0.7, 0.7):
            parts.append((_rect(cx + lx * r, cy + r * 0.15, r * 0.1, r * 0.8), 1))
    elif name == "potted plant":
        parts.append((_pts(cx, cy, r, [(-0.3, 0.2), (0.3, 0.2), (0.22, 0.75), (-0.22, 0.75)]), 1))
        for _ in range(int(rng.integers(3, 6))):
            parts.append((_ell(cx + U(-0.4, 0.4) * r, cy - U(0.0, 0.5) * r, r * U(0.18, 0.3), r * U(0.3, 0.5), U(-0.8, 0.8)), 0))
    elif name in ("tv", "laptop", "refrigerator"):
        if name == "refrigerator":
            parts.append((_rect(cx, cy, r * 0.8, r * 1.7), 0))
            parts.append((_rect(cx + r * 0.3, cy - r * 0.3, r * 0.05, r * 0.4), 3))
        else:
            sw = 1.4 if name == "tv" else 1.0
            parts.append((_rect(cx, cy - r * 0.2, r * sw, r * sw * 0.6), 0))
            parts.append((_rect(cx, cy - r * 0.2, r * sw * 0.88, r * sw * 0.5), 3))
            if name == "tv":
                parts.append((_rect(cx, cy + r * 0.25, r * 0.4, r * 0.08), 1))
            else:
                parts.append((_pts(cx, cy, r, [(-0.55, 0.12), (0.55, 0.12), (0.7, 0.3), (-0.7, 0.3)]), 1))
    elif name in ("bottle", "vase", "cup"):
        if name == "bottle":
            parts.append((_rect(cx, cy + r * 0.2, r * 0.35, r * 1.0), 0))
            parts.append((_rect(cx, cy - r * 0.5, r * 0.14, r * 0.45), 0))
            parts.append((_rect(cx, cy - r * 0.75, r * 0.16, r * 0.1), 3))
        elif name == "vase":
            t = np.linspace(0, 1, 12)
            prof = 0.18 + 0.25 * np.sin(np.pi * t * U(0.8, 1.2)) + 0.05
            left = np.stack([-prof, -0.8 + 1.6 * t], 1)
            right = np.stack([prof[::-1], (-0.8 + 1.6 * t)[::-1]], 1)
            parts.append((_pts(cx, cy, r, np.concatenate([left, right])), 0))
        else:
            parts.append((_pts(cx, cy, r, [(-0.35, -0.35), (0.35, -0.35), (0.28, 0.35), (-0.28, 0.35)]), 0))
            parts.append((_ell(cx + fl * r * 0.42, cy, r * 0.14, r * 0.18), 0))
    elif name in ("clock", "sports ball"):
        parts.append((_ell(cx, cy, r * 0.6, r * 0.6, 0.0, 28), 0))
    elif name == "teddy bear":
        parts.append((_ell(cx, cy + r * 0.2, r * 0.45, r * 0.5), 0))
        parts.append((_ell(cx, cy - r * 0.45, r * 0.32, r * 0.3), 2))
        for ex in (-0.25, 0.25):
            parts.append((_ell(cx + ex * r, cy - r * 0.72, r * 0.11, r * 0.11), 2))
            parts.append((_ell(cx + ex * r * 2, cy + r * 0.05, r * 0.14, r * 0.26, ex * 1.5), 1))
    elif name == "umbrella":
        a = np.linspace(np.pi, 2 * np.pi, 14)
        canopy = np.stack([cx + r * 0.8 * np.cos(a), cy + r * 0.45 * np.sin(a)], 1)
        parts.append((canopy, 0))
        parts.append((_rect(cx, cy + r * 0.35, r * 0.05, r * 0.7), 1))
    elif name == "kite":
        parts.append((_pts(cx, cy, r, [(0, -0.6), (0.4, -0.1), (0, 0.6), (-0.4, -0.1)]), 0))
        parts.append((_rect(cx + r * 0.1, cy + r * 0.85, r * 0.04, r * 0.55, 0.2), 1))
    elif name == "airplane":
        parts.append((_ell(cx, cy, r * 0.9, r * 0.14), 0))
        parts.append((_pts(cx, cy, r, [(-0.1, 0.0), (0.2, 0.0), (-0.25, 0.55), (-0.4, 0.55)], fl), 1))
        parts.append((_pts(cx, cy, r, [(-0.75, -0.05), (-0.6, -0.05), (-0.85, -0.45), (-0.95, -0.45)], fl), 1))
    elif name == "boat":
        parts.append((_pts(cx, cy, r, [(-0.8, 0.1), (0.8, 0.1), (0.55, 0.4), (-0.6, 0.4)], fl), 0))
        parts.append((_rect(cx, cy - r * 0.35, r * 0.04, r * 0.9), 1))
        parts.append((_pts(cx, cy, r, [(0.04, -0.75), (0.04, 0.05), (0.55, 0.05)], fl), 3))
    elif name == "fire hydrant":
        parts.append((_rect(cx, cy + r * 0.1, r * 0.4, r * 0.9), 0))
        parts.append((_ell(cx, cy - r * 0.38, r * 0.24, r * 0.16), 0))
        parts.append((_rect(cx, cy, r * 0.75, r * 0.16), 1))
    elif name == "suitcase":
        parts.append((_rect(cx, cy + r * 0.1, r * 0.9, r * 0.7), 0))
        parts.append((_rect(cx, cy - r * 0.32, r * 0.3, r * 0.12), 1))
    elif name == "toilet":
        parts.append((_ell(cx, cy, r * 0.45, r * 0.2), 0))
        parts.append((_rect(cx - fl * r * 0.35, cy - r * 0.35, r * 0.3, r * 0.55), 0))
        parts.append((_pts(cx, cy, r, [(-0.2, 0.15), (0.2, 0.15), (0.14, 0.55), (-0.14, 0.55)]), 1))
    elif name == "person":
        parts.append((_ell(cx, cy - r * 0.78, r * 0.13, r * 0.16), 2))
        parts.append((_pts(cx, cy, r, [(-0.22, -0.6), (0.22, -0.6), (0.18, 0.05), (-0.18, 0.05)]), 0))
        parts.append((_rect(cx - r * 0.1, cy + r * 0.45, r * 0.14, r * 0.8, 0.06), 1))
        parts.append((_rect(cx + r * 0.1, cy + r * 0.45, r * 0.14, r * 0.8, -0.06), 1))
    elif name in ("car", "bus", "truck"):
        ln = {"car": 1.6, "bus": 2.0, "truck": 1.8}[name]
        parts.append((_rect(cx, cy, r * ln, r * 0.45), 0))
        if name == "car":
            parts.append((_pts(cx, cy, r, [(-0.45, -0.22), (0.35, -0.22), (0.15, -0.55), (-0.3, -0.55)], fl), 3))
        else:
            parts.append((_rect(cx, cy - r * 0.45, r * ln, r * 0.5), 3 if name == "bus" else 0))
        for wx in (-0.32, 0.32):
            parts.append((_ell(cx + wx * r * ln, cy + r * 0.25, r * 0.17, r * 0.17), 1))
    elif name in ("bicycle", "motorcycle"):
        for wx in (-0.5, 0.5):
            parts.append((_ell(cx + wx * r, cy + r * 0.2, r * 0.32, r * 0.32, 0.0, 20), 1))
        parts.append((_pts(cx, cy, r, [(-0.5, 0.2), (0.0, 0.2), (0.4, -0.3), (-0.15, -0.3)]), 0))
    elif name == "traffic light":
        parts.append((_rect(cx, cy - r * 0.3, r * 0.3, r * 0.8), 0))
        parts.append((_rect(cx, cy + r * 0.45, r * 0.06, r * 0.7), 1))
    elif name == "stop sign":
        parts.append((_regular(cx, cy - r * 0.3, r * 0.45, 8, np.pi / 8), 0))
        parts.append((_rect(cx, cy + r * 0.5, r * 0.06, r * 0.9), 1))
    else:  # book and anything else: a rectangle
        parts.append((_rect(cx, cy, r * 0.6, r * 0.8, U(-0.3, 0.3)), 0))
    return parts


def _rle_uncompressed(mask: np.ndarray) -> dict:
    """Uncompressed (list) COCO RLE of a binary mask: column-major run lengths starting with zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).astype(int).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _rle_compressed(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": [int(v) for v in rle["size"]]}


def _segm_rle(segm, h: int, w: int):
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, h, w)
    return {"counts": segm["counts"].encode("ascii"), "size": segm["size"]}


# Generic object forms of the COCO-format proxies, each drawn under a category it can pass for.
_GENERIC_FORMS: dict[str, tuple[str, ...]] = {
    "blob": ("teddy bear", "backpack", "handbag", "cake", "broccoli", "orange", "apple", "sandwich", "bear", "sheep"),
    "box": ("suitcase", "book", "microwave", "oven", "refrigerator", "tv", "toaster", "laptop"),
    "elongated": ("skis", "baseball bat", "surfboard", "skateboard", "snowboard", "knife", "toothbrush", "tie"),
    "disc": ("frisbee", "clock", "sports ball", "pizza", "donut", "bowl"),
    "polygon": ("kite", "cake", "sandwich", "book", "cell phone", "remote", "vase"),
}


def _generic_parts(rng: np.random.Generator, form: str, cx: float, cy: float, r: float) -> list[tuple[Poly, int]]:
    """Polygons of a generic object (a blob, a box, an elongated object, a disc or a polygon) of radius about ``r``."""
    U = rng.uniform
    rot = U(0, 2 * np.pi)
    if form == "blob":
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        rho = np.ones_like(a)
        for k in range(2, 6):
            rho += U(0.0, 0.25 / (k - 1)) * np.sin(k * a + U(0, 2 * np.pi))
        rx, ry = r * U(0.55, 1.0), r * U(0.45, 0.9)
        x, y = rx * rho * np.cos(a), ry * rho * np.sin(a)
        c, s = math.cos(rot), math.sin(rot)
        return [(np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1), 0)]
    if form == "box":
        bw, bh = r * U(0.6, 1.8), r * U(0.5, 1.4)
        tilt = U(-0.35, 0.35)
        parts = [(_rect(cx, cy, bw, bh, tilt), 0)]
        if rng.random() < 0.6:  # a second face: the top or a side, brighter or darker
            d = r * U(0.15, 0.45)
            c, s = math.cos(tilt), math.sin(tilt)
            corners = _rect(cx, cy, bw, bh, tilt)
            if rng.random() < 0.5:
                top = np.array([corners[0], corners[1], corners[1] + [d * (c * 0.6 + s), d * (s * 0.6 - c)],
                                corners[0] + [d * (c * 0.6 + s), d * (s * 0.6 - c)]])
                parts.append((top, 2))
            else:
                side = np.array([corners[1], corners[1] + [d * c, d * s - d * 0.5], corners[2] + [d * c, d * s - d * 0.5], corners[2]])
                parts.append((side, 1))
        return parts
    if form == "elongated":
        length, width = r * U(1.2, 2.2), r * U(0.08, 0.3)
        parts = [(_rect(cx, cy, length, width, rot), 0)]
        if rng.random() < 0.5:  # a rounded or thicker end
            c, s = math.cos(rot), math.sin(rot)
            parts.append((_ell(cx + c * length / 2, cy + s * length / 2, width * U(0.6, 1.4), width * U(0.6, 1.4), rot), 1))
        return parts
    if form == "disc":
        rx = r * U(0.5, 0.9)
        ry = rx * U(0.45, 1.0)
        parts = [(_ell(cx, cy, rx, ry, rot, 28), 0)]
        if rng.random() < 0.5:
            k = U(0.3, 0.7)
            parts.append((_ell(cx, cy, rx * k, ry * k, rot, 24), 3))
        return parts
    n = int(rng.integers(3, 9))
    a = np.sort(U(0, 2 * np.pi, n))
    rho = r * U(0.5, 1.0, n)
    return [(np.stack([cx + rho * np.cos(a), cy + rho * np.sin(a)], axis=1), 0)]


def _rgb_to_hsv(rgb: np.ndarray) -> tuple[float, float, float]:
    return colorsys.rgb_to_hsv(*(float(v) for v in np.clip(rgb, 0, 1)))


def _other_colour(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """A second colour for a pattern: any hue, or a lighter/darker shade of ``base``."""
    U = rng.uniform
    if rng.random() < 0.3:
        return np.clip(base * U(0.3, 1.8), 0, 1).astype(np.float32)
    return _hsv(U(0, 1), U(0.0, 1.0), U(0.08, 1.0))


def _rotated(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates along and across a random direction."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    c, s = math.cos(ang), math.sin(ang)
    return xx * c + yy * s, -xx * s + yy * c


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo * 1.001))))


def _coco_texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray, r: float | None = None) -> np.ndarray:
    """A full-image appearance in the colour ``base`` for an object of radius about ``r`` pixels.

    Families: fur, wood grain, fabric, metallic, two-tone patches (smooth, object-like surfaces),
    and checkers, stripes, spots, coloured noise and colour gradients at random scales, angles and
    hues (patterned surfaces: the long tail of real COCO objects, packaging, clothes, toys, ...).
    """
    U = rng.uniform
    r = float(r if r is not None else max(h, w) / 4)
    kind = int(rng.integers(5)) if rng.random() < 0.35 else int(rng.integers(5, 10))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # fur: directional smooth noise + grain
        n = _smooth(rng, h, w, 2.0) * 0.12 + rng.standard_normal((h, w), dtype=np.float32) * 0.06
        k = 1 + n
    elif kind == 1:  # wood grain: warped soft bands, low contrast
        warp = _smooth(rng, h, w, max(h, w) / 4) * U(2.0, 5.0)
        k = 1 + 0.1 * np.sin((yy * U(0.2, 0.5) + xx * U(-0.1, 0.1)) + warp)
    elif kind == 2:  # fabric: fine grain
        k = 1 + rng.standard_normal((h, w), dtype=np.float32) * 0.09
    elif kind == 3:  # metallic: strong gradient with a highlight
        g = (xx * math.cos(U(0, 6)) + yy * math.sin(U(0, 6))) / max(h, w)
        k = 0.75 + 0.5 * np.abs(np.sin(g * U(2, 5)))
    elif kind == 4:  # patchy: two tones from thresholded smooth noise
        n = _smooth(rng, h, w, max(h, w) / U(6, 14))
        other = _hsv(U(0, 1), U(0.0, 0.5), U(0.1, 0.95))
        t = np.clip((n - U(-0.3, 0.6)) * 4, 0, 1)[..., None]
        return (base * (1 - t) + other * t) * (1 + 0.04 * rng.standard_normal((h, w, 1), dtype=np.float32))
    else:
        other = _other_colour(rng, base)
        if kind == 5:  # checker
            cell = _logu(rng, 1.5, max(2.0, 0.5 * r))
            u, v = _rotated(rng, h, w)
            t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
        elif kind == 6:  # stripes, straight or wavy
            period = _logu(rng, 2.5, max(3.0, 0.8 * r))
            u, _ = _rotated(rng, h, w)
            if rng.random() < 0.4:
                u = u + _smooth(rng, h, w, max(3.0, r / 2)) * period * U(0.2, 0.8)
            t = (((u / period) % 1.0) < U(0.3, 0.7)).astype(np.float32)
        elif kind == 7:  # spots on a jittered grid
            cell = _logu(rng, 3.0, max(4.0, 0.6 * r))
            u, v = _rotated(rng, h, w)
            cu, cv = np.floor(u / cell), np.floor(v / cell)
            ju, jv = _hash01(cu, cv, U(0, 9)), _hash01(cu, cv, U(10, 19))
            rad = U(0.15, 0.4)
            t = (((u / cell - cu - 0.5 - (ju - 0.5) * (1 - 2 * rad)) ** 2
                  + (v / cell - cv - 0.5 - (jv - 0.5) * (1 - 2 * rad)) ** 2) < rad ** 2).astype(np.float32)
        elif kind == 8:  # coloured noise: hue and value vary smoothly
            hue, sat, val = _rgb_to_hsv(base)
            n1 = _smooth(rng, h, w, _logu(rng, 1.5, max(2.0, r)))
            n2 = _smooth(rng, h, w, _logu(rng, 1.5, max(2.0, r)))
            img = _hsv_array(hue + U(0.05, 0.4) * n1, max(sat, U(0.2, 1.0)), np.clip(val + U(0.1, 0.3) * n2, 0.05, 1))
            return img.astype(np.float32)
        else:  # linear or radial colour gradient
            if rng.random() < 0.5:
                u, _ = _rotated(rng, h, w)
                t = (u - u.min()) / max(float(np.ptp(u)), 1.0)
                t = np.clip((t - U(0.0, 0.6)) * U(1.5, 5.0), 0, 1)
            else:
                cy, cx = U(0, h), U(0, w)
                t = np.clip(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / max(1.0, r * U(0.4, 1.5)), 0, 1)
        t = t[..., None]
        return (base * (1 - t) + other * t) * (1 + 0.03 * rng.standard_normal((h, w, 1), dtype=np.float32))
    return base * k[..., None].astype(np.float32)


#: Probabilities of the COCO-format backgrounds: street, paved ground, indoor, outdoor, abstract.
_COCO_BACKGROUND_P = (0.45, 0.15, 0.15, 0.15, 0.1)


def _coco_background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float | None]:
    """Background of a COCO-format image and, for a street scene, its horizon row (else None).

    Kinds: an empty street (the street renderer without vehicles and people: real COCO is full of
    outdoor scenes, and those without a car or a person survive the filter), paved ground seen
    from above, indoor (wall and floor), outdoor (sky over grass, sand or water) and abstract.
    """
    U = rng.uniform
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    kind = int(rng.choice(5, p=_COCO_BACKGROUND_P))
    if kind == 0:  # street
        scene = _Street(rng, h, w, mode="coco")
        img, _ = scene.render()
        return img.astype(np.float32) / 255.0, float(scene.yh)
    if kind == 1:  # asphalt, flagstones or cobbles seen from above
        base = _grey(rng, 0.25, 0.65, 0.06) if rng.random() < 0.7 else _jitter(rng, (0.55, 0.45, 0.38), 0.15)
        img = base * (1.0 + 0.06 * rng.standard_normal((h, w), dtype=np.float32) + 0.08 * _smooth(rng, h, w, max(h, w) / 6))[..., None]
        if rng.random() < 0.6:
            cell = U(12, 40)
            u, v = _rotated(rng, h, w)
            joints = (((u / cell) % 1.0) < 0.07) | (((v / (cell * U(0.5, 1.5))) % 1.0) < 0.07)
            img = img * (1 - 0.25 * joints)[..., None]
        if rng.random() < 0.4:  # a painted line
            u, _ = _rotated(rng, h, w)
            m = np.abs(u - U(u.min(), u.max())) < U(3, 10)
            img = np.where(m[..., None], _jitter(rng, (0.9, 0.9, 0.88), 0.05), img)
        return img.astype(np.float32), None
    if kind == 2:  # indoor: wall and floor
        split = h * U(0.4, 0.7)
        wall = _hsv(U(0, 1), U(0.0, 0.35), U(0.45, 0.9))
        floor = _hsv(U(0.03, 0.12), U(0.2, 0.6), U(0.25, 0.7)) if rng.random() < 0.6 else _hsv(U(0, 1), U(0.1, 0.5), U(0.2, 0.6))
        img = np.where((yy < split)[..., None], _coco_texture(rng, h, w, wall), _coco_texture(rng, h, w, floor))
    elif kind == 3:  # outdoor: sky over grass, sand or water
        split = h * U(0.3, 0.65)
        t = np.clip(yy / split, 0, 1)[..., None]
        sky = _hsv(U(0.55, 0.62), U(0.2, 0.6), U(0.7, 0.95)) * (1 - t) + _hsv(U(0.55, 0.6), U(0.0, 0.2), U(0.85, 1.0)) * t
        ground = _hsv((U(0.2, 0.35), U(0.08, 0.13), U(0.5, 0.6))[int(rng.integers(3))], U(0.3, 0.7), U(0.35, 0.75))
        img = np.where((yy < split)[..., None], sky, _coco_texture(rng, h, w, ground))
    else:  # abstract smooth colour field
        img = np.stack([0.5 + 0.18 * _smooth(rng, h, w, max(h, w) / U(2, 6)) for _ in range(3)], axis=2)
        img = img * _jitter(rng, (1.0, 1.0, 1.0), 0.3)
    return img.astype(np.float32), None


def _coco_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    U = rng.uniform
    natural = {"cat": (0.08, 0.5), "dog": (0.07, 0.55), "horse": (0.06, 0.6), "cow": (0.08, 0.2),
               "elephant": (0.0, 0.05), "bear": (0.06, 0.6), "sheep": (0.12, 0.12), "potted plant": (0.3, 0.6)}
    if name in natural and rng.random() < 0.7:
        hue, sat = natural[name]
        return _hsv(hue + rng.normal(0, 0.02), sat * U(0.5, 1.2), U(0.15, 0.85))
    return _hsv(U(0, 1), U(0.0, 1.0), U(0.15, 0.95))


def _coco_placement(rng: np.random.Generator, h: int, w: int, horizon: float | None, scale: tuple[float, float]) -> tuple[float, float, float]:
    """(cx, cy, r) of an object: on the ground in perspective for a street, anywhere otherwise."""
    U = rng.uniform
    side = min(h, w)
    if horizon is not None and rng.random() < 0.75:
        base = U(horizon + 0.12 * (h - horizon), h)
        r = float(np.clip((base - horizon) * _logu(rng, 0.06, 0.45), 3.0, 0.45 * side))
        return U(0.05, 0.95) * w, min(base - 0.6 * r, h - r), r
    return U(0.12, 0.88) * w, U(0.15, 0.85) * h, side * _logu(rng, *scale)


def render_coco(cfg: DemoConfig, index: int) -> tuple[np.ndarray, dict, list[dict]]:
    """COCO-format image ``index``: (RGB uint8, COCO image entry, annotation entries)."""
    rng = _rng(cfg.seed, "coco", index)
    U = rng.uniform
    small, excluded = _coco_flags(cfg, index)
    lo, hi = cfg.coco_size_range
    big_lo = min(max(lo, cfg.coco_min_size), hi)
    h, w = int(rng.integers(big_lo, hi + 1)), int(rng.integers(big_lo, hi + 1))
    if small:
        small_side = int(rng.integers(max(16, min(lo, cfg.coco_min_size // 2)), cfg.coco_min_size))
        if rng.random() < 0.5:
            h = small_side
        else:
            w = small_side
    img, horizon = _coco_background(rng, h, w)
    image_id = coco_image_id(index)
    plan: list[tuple[str, str, str | None]] = []  # (category name, encoding, generic form or None)
    for _ in range(int(rng.integers(1, 5) if horizon is None else rng.integers(2, 7))):
        if rng.random() < 0.5:
            form = str(rng.choice(sorted(_GENERIC_FORMS)))
            plan.append((str(rng.choice(_GENERIC_FORMS[form])), "polygon", form))
        else:
            plan.append((str(rng.choice(_PROXY_SHAPES)), "polygon", None))
    if excluded:
        plan.insert(int(rng.integers(len(plan) + 1)), (str(rng.choice(_EXCLUDED_SHAPES)), "polygon", None))
    if index % 4 == 0 or rng.random() < 0.15:
        plan.append((str(rng.choice(_CROWD_SHAPES)), "crowd", None))
    if index % 4 == 3 or rng.random() < 0.15:
        plan.append((str(rng.choice(_BLOB_SHAPES)), "rle", None))
    anns: list[dict] = []
    side = min(h, w)
    for k, (name, enc, form) in enumerate(plan):
        base = _coco_colour(rng, name)
        part_masks: list[tuple[np.ndarray, int]] = []
        if enc == "polygon":
            # the first object is at least medium-sized, the others small to medium (large ones come
            # from the compressed-RLE blobs and from objects near the camera on a street)
            cx, cy, r = _coco_placement(rng, h, w, horizon, (0.1, 0.3) if k == 0 else (0.04, 0.3))
            polys = []
            parts = _generic_parts(rng, form, cx, cy, r) if form else _shape_parts(rng, name, cx, cy, r)
            for poly, part in parts:
                poly = np.column_stack([np.clip(poly[:, 0], 0, w), np.clip(poly[:, 1], 0, h)])
                flat = [round(float(v), 2) for v in poly.ravel()]
                pm = mask_utils.decode(mask_utils.frPyObjects([flat], h, w))[..., 0].astype(bool)
                if pm.sum() >= 2:
                    polys.append(flat)
                    part_masks.append((pm, part))
            if not polys:
                continue
            segm: Any = polys
            crowd = 0
        elif enc == "crowd":
            union = np.zeros((h, w), bool)
            n = int(rng.integers(5, 14))
            cx0, cy0 = U(0.25, 0.75) * w, U(0.25, 0.75) * h
            for _ in range(n):
                r = side * U(0.04, 0.09)
                for poly, part in _shape_parts(rng, name, cx0 + rng.normal(0, 0.18) * w, cy0 + rng.normal(0, 0.12) * h, r):
                    poly = np.column_stack([np.clip(poly[:, 0], 0, w), np.clip(poly[:, 1], 0, h)])
                    pm = mask_utils.decode(mask_utils.frPyObjects([[float(v) for v in poly.ravel()]], h, w))[..., 0].astype(bool)
                    if pm.any():
                        union |= pm
                        part_masks.append((pm, part))
            if union.sum() < 4:
                continue
            segm = _rle_uncompressed(union)
            crowd = 1
        else:
            r = side * U(0.12, 0.3)
            cx, cy = U(0.25, 0.75) * w, U(0.25, 0.75) * h
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            dist = np.sqrt(((xx - cx) / r) ** 2 + ((yy - cy) / (r * U(0.7, 1.1))) ** 2)
            blob = (1 - dist + 0.35 * _smooth(rng, h, w, max(3.0, r / 3))) > 0
            lab, nlab = ndimage.label(blob)
            if nlab == 0:
                continue
            sizes = ndimage.sum(blob, lab, index=np.arange(1, nlab + 1))
            blob = lab == (1 + int(np.argmax(sizes)))
            if blob.sum() < 4:
                continue
            part_masks.append((blob, 0))
            segm = _rle_compressed(blob)
            crowd = 0
        # objects stand out from what is behind them (camouflage is rare in COCO) and are not mere
        # shades of it: redraw a colour too close to the background or of its chromaticity but darker
        covered = np.logical_or.reduce([pm for pm, _ in part_masks])
        behind = img[covered].mean(axis=0)
        for _ in range(8):
            chroma = float(np.linalg.norm(base / (base.sum() + 1e-3) - behind / (behind.sum() + 1e-3)))
            if float(np.linalg.norm(base - behind)) >= 0.25 and (chroma >= 0.06 or base.mean() > behind.mean()):
                break
            base = _hsv(U(0, 1), U(0.0, 1.0), U(0.1, 1.0))
        tex = _coco_texture(rng, h, w, base, r)
        part_tints = {0: 1.0, 1: U(0.55, 0.9), 2: U(0.9, 1.2), 3: None}
        accent = _coco_texture(rng, h, w, _hsv(U(0, 1), U(0.3, 1.0), U(0.2, 1.0)), r)
        yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
        for pm, part in part_masks:
            if not pm.any():
                continue
            tint = part_tints.get(part, 1.0)
            col = accent if tint is None else tex * tint
            shade = 1.0 + 0.15 * (0.5 - (yy - yy[pm].min()) / max(1.0, float(np.ptp(yy[pm])) + 1.0))
            img[pm] = (col * shade[..., None])[pm]
        rle = _segm_rle(segm, h, w)
        area = float(mask_utils.area(rle))
        if area < 1:
            continue
        bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
        anns.append({
            "id": image_id * 100 + len(anns) + 1,
            "image_id": image_id,
            "category_id": _COCO_ID[name],
            "segmentation": segm,
            "area": area,
            "bbox": bbox,
            "iscrowd": crowd,
        })
    # lighting and sensor noise
    img = img * U(0.75, 1.2) * (1 + rng.normal(0, 0.04, 3)).astype(np.float32)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * U(0.005, 0.025)
    entry = {
        "id": image_id,
        "file_name": f"{image_id:012d}.jpg",
        "height": h,
        "width": w,
        "license": 1,
        "coco_url": "",
        "flickr_url": "",
        "date_captured": "2017-01-01 00:00:00",
    }
    return _to_uint8(img), entry, anns


def _coco_header() -> dict:
    return {
        "info": {
            "description": "meta-ood embedded demo: synthetic COCO-format OoD proxy images",
            "url": "",
            "version": "1.0",
            "year": 2017,
            "contributor": "meta-ood",
            "date_created": "2017/09/01",
        },
        "licenses": [{"id": 1, "name": "synthetic demo data", "url": ""}],
        "categories": [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in COCO_CATEGORIES],
    }


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def planned_files(out_root: str | Path, config: DemoConfig | None = None) -> list[Path]:
    """Every file that :func:`generate` writes for ``config`` under ``out_root`` (ownership record first, marker last)."""
    cfg = config or DemoConfig()
    out = Path(out_root)
    files: list[Path] = [out / OWNER_NAME]
    cs = out / "cityscapes"
    for split, n in (("train", cfg.n_train), ("val", cfg.n_val)):
        for i in range(n):
            city, base = cityscapes_name(split, i)
            files.append(cs / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png")
            files.append(cs / "gtFine" / split / city / f"{base}_gtFine_labelIds.png")
            if split in cfg.write_train_ids:
                files.append(cs / "gtFine" / split / city / f"{base}_gtFine_labelTrainIds.png")
    files.append(out / "coco" / "annotations" / "instances_train2017.json")
    for i in range(cfg.n_coco):
        files.append(out / "coco" / "train2017" / f"{coco_image_id(i):012d}.jpg")
    for i in range(cfg.n_lostandfound):
        scene, base = lostandfound_name(i)
        files.append(out / "lostandfound" / "leftImg8bit" / "test" / scene / f"{base}_leftImg8bit.png")
        files.append(out / "lostandfound" / "gtCoarse" / "test" / scene / f"{base}_gtCoarse_labelIds.png")
    for i in range(cfg.n_fishyscapes):
        name = fishyscapes_name(i)
        files.append(out / "fishyscapes" / "Static" / f"{name}.png")
        files.append(out / "fishyscapes" / "Static" / f"{name}.jpg")
    for i in fishyscapes_lostandfound_frames(cfg):
        files.append(out / "fishyscapes" / "LostAndFound" / fishyscapes_lostandfound_name(i))
    files.append(out / MARKER_NAME)
    return files


def _recorded_config(path: Path) -> DemoConfig | None:
    """The config in an ownership record or marker written by this generator, else None."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("generator") != _GENERATOR:
            return None
        return demo_config_from_dict(data["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _claim(out: Path) -> list[DemoConfig]:
    """Check that ``out`` may be written; return the configs of earlier generations into it.

    A missing or empty folder is free; a non-empty one must hold this generator's ownership
    record or completion marker, else an InputError names it and nothing is touched.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; the demo data needs a folder of its own")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    configs = [c for c in (_recorded_config(out / OWNER_NAME), _recorded_config(out / MARKER_NAME)) if c is not None]
    if not configs:
        raise InputError(
            f"{out}: folder is not empty and was not created by the demo generator (it has no {OWNER_NAME} "
            f"or {MARKER_NAME} of the generator); refusing to write into it. Choose a new or empty folder "
            "for the demo data (config demo.root, or --out of 'meta-ood demo-data'); a demo folder written by an "
            "earlier version of meta-ood has no such record: remove it (make clean-demo) and it is written anew"
        )
    return configs


def _remove_stale(out: Path, cfg: DemoConfig, previous: list[DemoConfig]) -> int:
    """Remove the files earlier generations wrote that ``cfg`` does not produce; then the completion marker."""
    removed = 0
    keep = set(planned_files(out, cfg))
    for prev in previous:
        for path in planned_files(out, prev):
            if path not in keep and path.name not in (MARKER_NAME, OWNER_NAME) and path.is_file():
                path.unlink()
                removed += 1
    (out / MARKER_NAME).unlink(missing_ok=True)
    return removed


def _record(cfg: DemoConfig, **extra: Any) -> str:
    return json.dumps({"generator": _GENERATOR, "format_version": _FORMAT_VERSION, "config": asdict(cfg), **extra},
                      indent=2, sort_keys=True) + "\n"


def _iter_jobs(cfg: DemoConfig) -> Iterator[tuple[str, int]]:
    for split, n in (("train", cfg.n_train), ("val", cfg.n_val)):
        for i in range(n):
            yield split, i
    for i in range(cfg.n_coco):
        yield "coco", i
    for i in range(cfg.n_lostandfound):
        yield "lostandfound", i
    for i in range(cfg.n_fishyscapes):
        yield "fishyscapes", i


def generate(out_root: str | Path, config: DemoConfig | None = None, progress: bool = True) -> dict:
    """Write the demo datasets under ``out_root``; returns the dataset roots and counts.

    ``out_root`` must be new, empty, or a folder this generator wrote before (it holds
    ``DEMO_DATA.owner.json`` or ``DEMO_DATA.json``); any other folder raises an InputError and is
    left untouched. Files of an earlier generation that ``config`` does not produce are removed.

    Parameters
    ----------
    out_root
        Output folder; ``cityscapes/``, ``coco/``, ``lostandfound/``, ``fishyscapes/``,
        ``DEMO_DATA.owner.json`` (first) and ``DEMO_DATA.json`` (last) are created in it.
    config
        Sizes and options (default :class:`DemoConfig`).
    progress
        Show a tqdm progress bar.

    Returns
    -------
    dict
        ``root``, ``cityscapes``, ``coco``, ``lostandfound``, ``fishyscapes`` (folder paths as
        strings), ``marker`` (path of ``DEMO_DATA.json``) and ``counts`` (images per dataset and
        split, COCO annotations by encoding). The Fishyscapes LostAndFound set is the split
        ``LostAndFound`` of ``fishyscapes`` with its images under ``lostandfound``.
    """
    cfg = config or DemoConfig()
    if not isinstance(cfg, DemoConfig):
        raise InputError(f"generate expects a DemoConfig, got {type(cfg).__name__}")
    out = Path(out_root)
    previous = _claim(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the demo data folder ({exc})") from None
    _remove_stale(out, cfg, previous)
    write_text_atomic(out / OWNER_NAME, _record(cfg, note="written by the meta-ood demo generator, which may "
                                                         "regenerate this folder: it overwrites its own files and "
                                                         "removes those a new config does not produce"))
    roots = {name: out / name for name in ("cityscapes", "coco", "lostandfound", "fishyscapes")}
    coco = _coco_header()
    coco_images: list[dict] = []
    coco_anns: list[dict] = []
    counts: dict[str, int] = {"cityscapes_train": 0, "cityscapes_val": 0, "coco_images": 0, "coco_annotations": 0,
                              "coco_polygon": 0, "coco_rle_uncompressed": 0, "coco_rle_compressed": 0,
                              "lostandfound": 0, "fishyscapes": 0, "fishyscapes_lostandfound": 0}
    total = cfg.n_train + cfg.n_val + cfg.n_coco + cfg.n_lostandfound + cfg.n_fishyscapes
    fs_laf = set(fishyscapes_lostandfound_frames(cfg))
    with tqdm(total=total, desc="demo data", unit="img", disable=not progress) as bar:
        for kind, i in _iter_jobs(cfg):
            bar.set_postfix_str(kind, refresh=False)
            if kind in _SPLITS:
                img, ids = render_cityscapes(cfg, kind, i)
                city, base = cityscapes_name(kind, i)
                write_png(roots["cityscapes"] / "leftImg8bit" / kind / city / f"{base}_leftImg8bit.png", img)
                gt = roots["cityscapes"] / "gtFine" / kind / city
                write_png(gt / f"{base}_gtFine_labelIds.png", ids)
                if kind in cfg.write_train_ids:
                    write_png(gt / f"{base}_gtFine_labelTrainIds.png", L.CITYSCAPES_ID_TO_TRAIN[ids].astype(np.uint8))
                counts[f"cityscapes_{kind}"] += 1
            elif kind == "coco":
                img, entry, anns = render_coco(cfg, i)
                write_jpeg(roots["coco"] / "train2017" / entry["file_name"], img, quality=cfg.jpeg_quality)
                coco_images.append(entry)
                coco_anns.extend(anns)
                counts["coco_images"] += 1
                for ann in anns:
                    seg = ann["segmentation"]
                    key = "coco_polygon" if isinstance(seg, list) else ("coco_rle_uncompressed" if isinstance(seg["counts"], list) else "coco_rle_compressed")
                    counts[key] += 1
            elif kind == "lostandfound":
                img, lab = render_lostandfound(cfg, i)
                scene, base = lostandfound_name(i)
                write_png(roots["lostandfound"] / "leftImg8bit" / "test" / scene / f"{base}_leftImg8bit.png", img)
                write_png(roots["lostandfound"] / "gtCoarse" / "test" / scene / f"{base}_gtCoarse_labelIds.png", lab)
                counts["lostandfound"] += 1
                if i in fs_laf:
                    write_png(roots["fishyscapes"] / "LostAndFound" / fishyscapes_lostandfound_name(i),
                              fishyscapes_lostandfound_label(lab))
                    counts["fishyscapes_lostandfound"] += 1
            else:
                img, lab = render_fishyscapes(cfg, i)
                name = fishyscapes_name(i)
                write_png(roots["fishyscapes"] / "Static" / f"{name}.png", lab)
                write_jpeg(roots["fishyscapes"] / "Static" / f"{name}.jpg", img, quality=cfg.jpeg_quality)
                counts["fishyscapes"] += 1
            bar.update(1)
    coco["images"] = coco_images
    coco["annotations"] = coco_anns
    counts["coco_annotations"] = len(coco_anns)
    write_text_atomic(roots["coco"] / "annotations" / "instances_train2017.json", json.dumps(coco, separators=(",", ":")))
    marker = out / MARKER_NAME
    write_text_atomic(marker, _record(cfg, counts=counts, datasets={name: name for name in roots}))
    return {"root": str(out), **{name: str(path) for name, path in roots.items()}, "marker": str(marker), "counts": counts}
