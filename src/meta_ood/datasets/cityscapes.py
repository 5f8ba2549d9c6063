"""Reader of the Cityscapes layout (``leftImg8bit/<split>/<city>/`` + ``gtFine/<split>/<city>/``)."""

from __future__ import annotations

from meta_ood import labels as L
from meta_ood.datasets.base import PairedDataset


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
