"""Readers of Fishyscapes Static and Fishyscapes LostAndFound (labels 0 = in, 1 = OoD, 255 = void)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from meta_ood import labels as L
from meta_ood.datasets.base import SegmentationDataset, label_samples, require_dir
from meta_ood.datasets.lostandfound import laf_folder
from meta_ood.errors import InputError


class _FishyscapesDataset(SegmentationDataset):
    """Labels 0 = in, 1 = OoD, 255 = void in the split folder ``<root>/<split>/`` of a Fishyscapes root."""

    train_values = L.FISHYSCAPES_TRAIN_VALUES
    convention = L.FISHYSCAPES

    def _open_folder(self, root: str | os.PathLike, split: str) -> Path:
        """Check the root and its split folder; return the folder."""
        self._open(root, "Fishyscapes", split)
        return require_dir(self.root / split, f"Fishyscapes '{split}' folder")


class FishyscapesStatic(_FishyscapesDataset):
    """Fishyscapes Static as the paper's released code lays it out: ``<root>/Static/<name>.png`` next to ``<name>.jpg``."""

    name = "fishyscapes_static"

    def __init__(self, root: str | os.PathLike, split: str = "Static") -> None:
        super().__init__()
        self.samples = label_samples(self._open_folder(root, split), "*.png", self._image_next_to)

    @staticmethod
    def _image_next_to(lab: Path) -> tuple[str, Path]:
        """(name, image) of a Static label: the ``.jpg`` next to it."""
        img = lab.with_suffix(".jpg")
        if not img.is_file():
            raise InputError(f"{lab}: image {img.name} not found next to the label")
        return lab.stem, img


_LAF_BASE = re.compile(r"(?P<base>.+_\d{6}_\d{6})$")


class FishyscapesLostAndFound(_FishyscapesDataset):
    """Fishyscapes LostAndFound: ``<root>/LostAndFound/**/<prefix?><base>_labels.png`` with LostAndFound images.

    ``<base>`` is the LostAndFound frame name ``<scene>_<seq:06d>_<frame:06d>``; an optional leading
    index (``0001_``) is allowed. The image is looked up as ``<base>_leftImg8bit.png`` anywhere under
    ``<laf_root>/leftImg8bit/`` (train and test splits).
    """

    name = "fishyscapes_lostandfound"

    def __init__(self, root: str | os.PathLike, laf_root: str | os.PathLike, split: str = "LostAndFound") -> None:
        super().__init__()
        folder = self._open_folder(root, split)
        laf_images = require_dir(laf_folder(laf_root) / "leftImg8bit", "LostAndFound images (leftImg8bit)")
        index = {p.name[: -len("_leftImg8bit.png")]: p for p in laf_images.rglob("*_leftImg8bit.png")}

        def image_of(lab: Path) -> tuple[str, Path]:
            stem = lab.name[: -len("_labels.png")]
            image = self._match(stem, index)
            if image is None:
                raise InputError(f"{lab}: no LostAndFound image '<scene>_<seq>_<frame>_leftImg8bit.png' matches it under {laf_images}")
            return stem, image

        self.samples = label_samples(folder, "*_labels.png", image_of)

    @staticmethod
    def _match(stem: str, index: dict[str, Path]) -> Path | None:
        """The LostAndFound image whose frame name ends ``stem`` (after an optional prefix), or None."""
        parts = stem.split("_")
        for k in range(len(parts)):
            cand = "_".join(parts[k:])
            if _LAF_BASE.match(cand) and cand in index:
                return index[cand]
        return None
