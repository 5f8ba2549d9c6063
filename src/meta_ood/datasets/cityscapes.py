"""Reader of the Cityscapes layout (``leftImg8bit/<split>/<city>/`` + ``gtFine/<split>/<city>/``)."""

from __future__ import annotations

import os
from pathlib import Path

from meta_ood import labels as L
from meta_ood.datasets.base import SegmentationDataset, pair_files, require_dir


class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations, train ids 0..18 and void 255.

    Uses ``*_gtFine_labelTrainIds.png`` when present; otherwise train ids are derived on the fly
    from ``*_gtFine_labelIds.png`` with the official table, so the cityscapesScripts conversion
    step is optional.
    """

    name = "cityscapes"
    train_values = L.CITYSCAPES_TRAIN_VALUES
    id_to_train = L.CITYSCAPES_ID_TO_TRAIN

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        super().__init__()
        self.root = require_dir(Path(root), "Cityscapes root")
        self.split = split
        image_dir = require_dir(self.root / "leftImg8bit" / split, f"Cityscapes split '{split}' images")
        label_dir = require_dir(self.root / "gtFine" / split, f"Cityscapes split '{split}' annotations")
        self.samples = pair_files(
            image_dir,
            "_leftImg8bit.png",
            label_dir,
            {"train_ids": "_gtFine_labelTrainIds.png", "label_ids": "_gtFine_labelIds.png"},
        )
