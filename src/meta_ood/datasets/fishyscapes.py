"""Readers of Fishyscapes Static and Fishyscapes LostAndFound (labels 0 = in, 1 = OoD, 255 = void)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from meta_ood import labels as L
from meta_ood.datasets.base import Sample, SegmentationDataset, require_dir
from meta_ood.errors import InputError


class FishyscapesStatic(SegmentationDataset):
    """Fishyscapes Static as the paper's released code lays it out: ``<root>/Static/<name>.png`` next to ``<name>.jpg``."""

    name = "fishyscapes_static"
    train_values = L.FISHYSCAPES_TRAIN_VALUES
    convention = L.FISHYSCAPES

    def __init__(self, root: str | os.PathLike, split: str = "Static") -> None:
        super().__init__()
        self.root = require_dir(Path(root), "Fishyscapes root")
        folder = require_dir(self.root / split, f"Fishyscapes '{split}' folder")
        labels = sorted(folder.rglob("*.png"))
        if not labels:
            raise InputError(f"{folder}: no '*.png' label files found")
        for lab in labels:
            img = lab.with_suffix(".jpg")
            if not img.is_file():
                raise InputError(f"{lab}: image {img.name} not found next to the label")
            self.samples.append(Sample(name=lab.stem, image=img, train_ids=lab))


_LAF_BASE = re.compile(r"(?P<base>.+_\d{6}_\d{6})$")


class FishyscapesLostAndFound(SegmentationDataset):
    """Fishyscapes LostAndFound: ``<root>/LostAndFound/**/<prefix?><base>_labels.png`` with LostAndFound images.

    ``<base>`` is the LostAndFound frame name ``<scene>_<seq:06d>_<frame:06d>``; an optional leading
    index (``0001_``) is allowed. The image is looked up as ``<base>_leftImg8bit.png`` anywhere under
    ``<laf_root>/leftImg8bit/`` (train and test splits).
    """

    name = "fishyscapes_lostandfound"
    train_values = L.FISHYSCAPES_TRAIN_VALUES
    convention = L.FISHYSCAPES

    def __init__(self, root: str | os.PathLike, laf_root: str | os.PathLike, split: str = "LostAndFound") -> None:
        super().__init__()
        self.root = require_dir(Path(root), "Fishyscapes root")
        folder = require_dir(self.root / split, f"Fishyscapes '{split}' folder")
        laf_images = require_dir(Path(laf_root) / "leftImg8bit", "LostAndFound images (leftImg8bit)")
        index = {p.name[: -len("_leftImg8bit.png")]: p for p in laf_images.rglob("*_leftImg8bit.png")}
        labels = sorted(folder.rglob("*_labels.png"))
        if not labels:
            raise InputError(f"{folder}: no '*_labels.png' label files found")
        for lab in labels:
            stem = lab.name[: -len("_labels.png")]
            image = self._match(stem, index)
            if image is None:
                raise InputError(f"{lab}: no LostAndFound image '<scene>_<seq>_<frame>_leftImg8bit.png' matches it under {laf_images}")
            self.samples.append(Sample(name=stem, image=image, train_ids=lab))

    @staticmethod
    def _match(stem: str, index: dict[str, Path]) -> Path | None:
        parts = stem.split("_")
        for k in range(len(parts)):
            cand = "_".join(parts[k:])
            if _LAF_BASE.match(cand) and cand in index:
                return index[cand]
        return None
