"""Sizes and options of the demo data, checked on construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from meta_ood.errors import InputError

#: The Cityscapes-format splits of the demo data.
SPLITS = ("train", "val")


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
    n_smiyc_anomaly, n_smiyc_obstacle
        SegmentMeIfYouCan AnomalyTrack- and ObstacleTrack-format images.
    n_smiyc_validation
        Images of each SegmentMeIfYouCan track whose labels are written (the first ones: the
        validation split); the others have no label, like the benchmark's test frames.
    n_lostandfound_noknown, n_road_anomaly
        LostAndFound-NoKnown-demo (LostAndFound-format) and Road-Anomaly-format images.
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
    n_smiyc_anomaly: int = 6
    n_smiyc_obstacle: int = 6
    n_smiyc_validation: int = 3
    n_lostandfound_noknown: int = 6
    n_road_anomaly: int = 6
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
        for name in ("n_train", "n_val", "n_coco", "n_lostandfound", "n_fishyscapes", "n_fishyscapes_lostandfound",
                     "n_smiyc_anomaly", "n_smiyc_obstacle", "n_smiyc_validation", "n_lostandfound_noknown",
                     "n_road_anomaly"):
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
            splits = SPLITS if splits else ()
        elif isinstance(splits, str):
            splits = (splits,)
        splits = tuple(splits)
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise InputError(f"demo config: write_train_ids names unknown split(s) {bad}; expected a subset of {list(SPLITS)}")
        object.__setattr__(self, "write_train_ids", tuple(s for s in SPLITS if s in splits))


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
