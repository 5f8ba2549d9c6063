"""Reader of the LostAndFound layout (``leftImg8bit/<split>/<scene>/`` + ``gtCoarse/<split>/<scene>/``)."""

from __future__ import annotations

import os
from pathlib import Path

from meta_ood import labels as L
from meta_ood.datasets.base import SegmentationDataset, pair_files, require_dir


class LostAndFound(SegmentationDataset):
    """LostAndFound with train ids 1 = free road (in), 2 = obstacle (OoD), 0 = random non-hazard, 255 = void.

    The official archive ships ``*_gtCoarse_labelIds.png`` only; train ids are derived with
    :data:`meta_ood.labels.LOSTANDFOUND_ID_TO_TRAIN`. A ``*_gtCoarse_labelTrainIds.png`` next to it
    (as produced by the released code's conversion) is used when present.
    """

    name = "lostandfound"
    train_values = L.LOSTANDFOUND_TRAIN_VALUES
    id_to_train = L.LOSTANDFOUND_ID_TO_TRAIN
    convention = L.LOSTANDFOUND

    def __init__(self, root: str | os.PathLike, split: str = "test") -> None:
        super().__init__()
        self.root = require_dir(Path(root), "LostAndFound root")
        self.split = split
        image_dir = require_dir(self.root / "leftImg8bit" / split, f"LostAndFound split '{split}' images")
        label_dir = require_dir(self.root / "gtCoarse" / split, f"LostAndFound split '{split}' annotations")
        self.samples = pair_files(
            image_dir,
            "_leftImg8bit.png",
            label_dir,
            {"train_ids": "_gtCoarse_labelTrainIds.png", "label_ids": "_gtCoarse_labelIds.png"},
        )
