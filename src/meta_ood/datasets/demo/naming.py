"""File names, image ids, per-image seeds and index-driven choices of the demo data.

Every image is drawn with its own :class:`numpy.random.Generator` seeded from
``(seed, dataset, index)``, so the same config writes byte-identical files and changing a count
does not change the images that are generated anyway.
"""

from __future__ import annotations

import numpy as np

from meta_ood.datasets.demo.config import DemoConfig


_TRAIN_CITIES = ("ashbury", "demotown", "pixelburg")
_VAL_CITIES = ("quellstadt", "synthberg")
_LAF_SCENES = ("01_Demo_Ring_1", "02_Pixel_Weg_7", "03_Synth_Allee_12", "04_Muster_Str_3")
_STREAMS = {"train": 11, "val": 12, "coco": 21, "lostandfound": 31, "fishyscapes": 41}


def _rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of ``stream``, seeded from ``(seed, stream, index)``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _STREAMS[stream], int(index)]))


def _attempt_rng(seed: int, stream: str, index: int, attempt: int) -> np.random.Generator:
    """The generator of an image; a redraw (attempt > 0) gets an independent sub-seed."""
    return _rng(seed, stream, index) if attempt == 0 else np.random.default_rng(
        np.random.SeedSequence([int(seed), _STREAMS[stream], int(index), int(attempt)]))


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
    """Base name of Fishyscapes-Static-format image ``index``."""
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


def coco_image_id(index: int) -> int:
    """COCO image id of COCO-format image ``index`` (sparse, like the real ids)."""
    return 1009 + 7919 * index


def _low_discrepancy(index: int, phase: float, step: float) -> float:
    """A value in [0, 1) per index; any run of consecutive indices covers [0, 1) evenly."""
    return (index * step + phase) % 1.0


def _coco_flags(cfg: DemoConfig, index: int) -> tuple[bool, bool]:
    """Whether COCO-format image ``index`` is too small and whether it shows a Cityscapes class."""
    small = cfg.coco_min_size > 16 and _low_discrepancy(index, 0.31, 0.6180339887) < cfg.coco_small_fraction
    excluded = _low_discrepancy(index, 0.17, 0.7548776662) < cfg.coco_excluded_fraction
    return small, excluded
