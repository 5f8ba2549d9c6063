"""Reader of the Road Anomaly dataset (Lis et al., ICCV 2019) in its distributed layout::

    <root>/frame_list.json                              (the image file names)
    <root>/frames/<name>.jpg | <name>.webp
    <root>/frames/<name>.labels/labels_semantic.png     (0 usual, 2 and above anomaly, 255 void)

``<root>`` is the folder the archive unpacks to (``RoadAnomaly_jpg/``) or the folder holding it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from meta_ood import labels as L
from meta_ood.datasets.base import Sample, SegmentationDataset, find_root, require_dir
from meta_ood.errors import InputError
from meta_ood.io import read_label


#: Folders below the root accepted as the dataset folder: what the archives RoadAnomaly_jpg.zip / RoadAnomaly.zip unpack to.
ARCHIVE_FOLDERS = ("RoadAnomaly_jpg", "RoadAnomaly")


class RoadAnomaly(SegmentationDataset):
    """Road Anomaly read with the Fishyscapes convention: 0 in, 1 anomaly (label 2 and above), 255 void.

    The frames are those of ``frame_list.json``, in sorted order; each needs its image in
    ``frames/`` and its label ``frames/<stem>.labels/labels_semantic.png``. The dataset has one
    split, ``all``.
    """

    name = "road_anomaly"
    train_values = L.FISHYSCAPES_TRAIN_VALUES
    id_to_train = L.ROAD_ANOMALY_ID_TO_TRAIN
    convention = L.FISHYSCAPES

    def __init__(self, root: str | os.PathLike, split: str = "all") -> None:
        super().__init__()
        if split != "all":
            raise InputError(f"{root}: Road Anomaly has one split, 'all'; got {split!r}")
        self._open(root, "Road Anomaly", split)
        self.root = find_root(self.root, lambda p: (p / "frame_list.json").is_file(), ARCHIVE_FOLDERS, "Road Anomaly",
                              "frame_list.json and frames/")
        frames = require_dir(self.root / "frames", "Road Anomaly frames folder")
        listing = self.root / "frame_list.json"
        for name in sorted(_frame_list(listing)):
            image = frames / name
            if not image.is_file():
                raise InputError(f"{listing}: frame {name!r} is listed but {image} does not exist")
            label = frames / f"{image.stem}.labels" / "labels_semantic.png"
            if not label.is_file():
                raise InputError(f"{image}: no ground truth found (expected {label})")
            self.samples.append(Sample(name=image.stem, image=image, label_ids=label))

    def load_label(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """Train ids 0 / 1 / 255 of a label; label value 1 (not in the table) raises an InputError naming the file."""
        label_ids = read_label(sample.label_ids)
        if (label_ids == 1).any():
            raise InputError(f"{sample.label_ids}: unexpected label value 1 (expected 0 = usual, 2..254 = anomaly, 255 = void)")
        return L.label_ids_to_train_ids(label_ids, self.id_to_train), label_ids


def _frame_list(path: Path) -> list[str]:
    """The image file names of ``frame_list.json``: a JSON list of distinct plain file names."""
    if not path.is_file():
        raise InputError(f"{path}: Road Anomaly frame list not found")
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the frame list ({exc})") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n and Path(n).name == n for n in names):
        raise InputError(f"{path}: expected a non-empty JSON list of image file names")
    if len(set(names)) != len(names):
        raise InputError(f"{path}: frame list names an image more than once")
    return names
