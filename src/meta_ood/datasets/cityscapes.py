"""Reader of the Cityscapes layout (``leftImg8bit/<split>/<city>/`` + ``gtFine/<split>/<city>/``)."""

from __future__ import annotations

import dataclasses
import os

from meta_ood import labels as L
from meta_ood.datasets.base import PairedDataset
from meta_ood.errors import InputError


class Cityscapes(PairedDataset):
    """Cityscapes fine annotations, train ids 0..18 and void 255.

    Uses ``*_gtFine_labelTrainIds.png`` when present; otherwise train ids are derived on the fly
    from ``*_gtFine_labelIds.png`` with the official table, so the cityscapesScripts conversion
    step is optional.
    """

    name = "cityscapes"
    train_values = L.CITYSCAPES_TRAIN_VALUES
    id_to_train = L.CITYSCAPES_ID_TO_TRAIN
    title = "Cityscapes"
    label_folder = "gtFine"
    default_split = "train"


class CityscapesVoid(Cityscapes):
    """Cityscapes with its void classes as OoD (appendix C, figure 8): 0 train-class pixel, 1 void
    pixel of :data:`~meta_ood.labels.CITYSCAPES_VOID_OOD_IDS`, 255 ignored; Fishyscapes' convention.

    Needs the ``*_gtFine_labelIds.png`` files: the train-id files merge every void class into 255.
    """

    name = "cityscapes_void"
    train_values = L.FISHYSCAPES_TRAIN_VALUES
    id_to_train = L.CITYSCAPES_VOID_ID_TO_TRAIN
    convention = L.FISHYSCAPES
    title = "Cityscapes (void as OoD)"
    default_split = "val"

    def __init__(self, root: str | os.PathLike, split: str | None = None) -> None:
        super().__init__(root, split)
        missing = [s for s in self.samples if s.label_ids is None]
        if missing:
            raise InputError(
                f"{missing[0].train_ids}: the void-as-OoD evaluation needs the label ids "
                f"({missing[0].name}_gtFine_labelIds.png; {len(missing)} of {len(self.samples)} images lack them): "
                "the labelTrainIds files merge every void class into 255"
            )
        self.samples = [dataclasses.replace(s, train_ids=None) for s in self.samples]
