"""Readers of the real on-disk dataset layouts and the generator of the embedded demo data."""

from __future__ import annotations

from meta_ood import labels as L
from meta_ood.datasets.base import Item, Sample, SegmentationDataset
from meta_ood.datasets.cityscapes import Cityscapes
from meta_ood.datasets.coco import CocoImages
from meta_ood.datasets.fishyscapes import FishyscapesLostAndFound, FishyscapesStatic
from meta_ood.datasets.lostandfound import LostAndFound
from meta_ood.errors import InputError

__all__ = [
    "Item",
    "Sample",
    "SegmentationDataset",
    "Cityscapes",
    "CocoImages",
    "FishyscapesLostAndFound",
    "FishyscapesStatic",
    "LostAndFound",
    "open_dataset",
    "DATASET_KINDS",
]

DATASET_KINDS = ("cityscapes", "lostandfound", "fishyscapes_static", "fishyscapes_lostandfound", "coco")


def open_dataset(kind: str, root: str, split: str | None = None, **kwargs) -> SegmentationDataset:
    """Open a dataset by kind name (as used in the config): one of :data:`DATASET_KINDS`.

    ``fishyscapes_lostandfound`` needs ``laf_root`` (the LostAndFound root whose ``leftImg8bit/``
    holds its images); ``coco`` takes an optional ``masks_dir`` (the COCO filter's masks).
    """
    if kind == "cityscapes":
        return Cityscapes(root, split or "val")
    if kind == "lostandfound":
        return LostAndFound(root, split or "test")
    if kind == "fishyscapes_static":
        return FishyscapesStatic(root, split or "Static")
    if kind == "fishyscapes_lostandfound":
        if not kwargs.get("laf_root"):
            raise InputError(
                f"{root}: dataset fishyscapes_lostandfound needs laf_root, the LostAndFound root whose "
                "leftImg8bit/ holds its images"
            )
        return FishyscapesLostAndFound(root, kwargs["laf_root"], split or "LostAndFound")
    if kind == "coco":
        return CocoImages(root, split or "train2017", kwargs.get("masks_dir"), kwargs.get("ood_id", L.COCO_OOD_ID))
    raise InputError(f"unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}")
