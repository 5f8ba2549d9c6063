"""Reader of the LostAndFound layout (``leftImg8bit/<split>/<scene>/`` + ``gtCoarse/<split>/<scene>/``)."""

from __future__ import annotations

import os
from pathlib import Path

from meta_ood import labels as L
from meta_ood.datasets.base import PairedDataset


class LostAndFound(PairedDataset):
    """LostAndFound with train ids 1 = free road (in), 2 = obstacle (OoD), 0 = random non-hazard, 255 = void.

    The official archive ships ``*_gtCoarse_labelIds.png`` only; train ids are derived with
    :data:`meta_ood.labels.LOSTANDFOUND_ID_TO_TRAIN`. A ``*_gtCoarse_labelTrainIds.png`` next to it
    (as produced by the released code's conversion) is used when present.
    """

    name = "lostandfound"
    train_values = L.LOSTANDFOUND_TRAIN_VALUES
    id_to_train = L.LOSTANDFOUND_ID_TO_TRAIN
    convention = L.LOSTANDFOUND
    title = "LostAndFound"
    label_folder = "gtCoarse"
    default_split = "test"
    archive_folders = ("dataset_LostAndFound",)  # the folder name SegmentMeIfYouCan's code expects


def laf_folder(root: str | os.PathLike) -> Path:
    """The LostAndFound folder of ``root``: itself when it holds ``leftImg8bit/``, else its ``dataset_LostAndFound/``
    holding it (``root`` itself when neither does, so that the caller's message names it)."""
    root = Path(root)
    if (root / "leftImg8bit").is_dir():
        return root
    return next((root / f for f in LostAndFound.archive_folders if (root / f / "leftImg8bit").is_dir()), root)
