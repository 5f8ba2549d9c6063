"""Readers of the real on-disk dataset layouts and the generator of the embedded demo data."""

from __future__ import annotations

from meta_ood import labels as L
from meta_ood.datasets.base import Item, Sample, SegmentationDataset
from meta_ood.datasets.cityscapes import Cityscapes, CityscapesVoid
from meta_ood.datasets.coco import CocoImages
from meta_ood.datasets.fishyscapes import FishyscapesLostAndFound, FishyscapesStatic
from meta_ood.datasets.lostandfound import LostAndFound
from meta_ood.datasets.road_anomaly import RoadAnomaly
from meta_ood.datasets.smiyc import LostAndFoundNoKnown, LostAndFoundROI, SmiycAnomalyTrack, SmiycObstacleTrack
from meta_ood.errors import InputError

__all__ = [
    "Item",
    "Sample",
    "SegmentationDataset",
    "Cityscapes",
    "CityscapesVoid",
    "CocoImages",
    "FishyscapesLostAndFound",
    "FishyscapesStatic",
    "LostAndFound",
    "LostAndFoundNoKnown",
    "LostAndFoundROI",
    "RoadAnomaly",
    "SmiycAnomalyTrack",
    "SmiycObstacleTrack",
    "open_dataset",
    "DATASET_KINDS",
]

DATASET_KINDS = ("cityscapes", "cityscapes_void", "lostandfound", "fishyscapes_static", "fishyscapes_lostandfound", "coco",
                 "smiyc_anomaly", "smiyc_obstacle", "lostandfound_noknown", "road_anomaly")


def open_dataset(kind: str, root: str, split: str | None = None, **kwargs) -> SegmentationDataset:
    """Open a dataset by kind name (as used in the config): one of :data:`DATASET_KINDS`.

    ``fishyscapes_lostandfound`` needs ``laf_root`` (the LostAndFound root whose ``leftImg8bit/``
    holds its images); ``coco`` takes an optional ``masks_dir`` (the COCO filter's masks);
    ``lostandfound`` and ``lostandfound_noknown`` take an optional ``roi`` (a binary mask image:
    pixels outside it are void). The SegmentMeIfYouCan tracks default to ``all``, every frame
    (the labelled validation frames among them).
    """
    if kind == "cityscapes":
        return Cityscapes(root, split or "val")
    if kind == "cityscapes_void":
        return CityscapesVoid(root, split or "val")
    if kind == "lostandfound":
        if kwargs.get("roi"):
            return LostAndFoundROI(root, split or "test", kwargs["roi"])
        return LostAndFound(root, split or "test")
    if kind == "lostandfound_noknown":
        return LostAndFoundNoKnown(root, split or "test", kwargs.get("roi") or None)
    if kind == "smiyc_anomaly":
        return SmiycAnomalyTrack(root, split or "all")
    if kind == "smiyc_obstacle":
        return SmiycObstacleTrack(root, split or "all")
    if kind == "road_anomaly":
        return RoadAnomaly(root, split or "all")
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
