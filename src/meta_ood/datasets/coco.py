"""Reader of the COCO layout (``annotations/instances_<split>.json`` + ``<split>/<id:012d>.jpg``) as OoD proxy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from meta_ood import labels as L
from meta_ood.datasets.base import Sample, SegmentationDataset, require_dir
from meta_ood.errors import InputError


class CocoImages(SegmentationDataset):
    """COCO images with OoD masks (``ood_id``, default 254, on every object of any category; 0 = background).

    With ``masks_dir`` (the output of :func:`meta_ood.coco_filter.filter_coco`), the dataset is the
    filtered selection: one item per mask file, whose values must be 0 and ``ood_id`` (the value
    the masks were written with, config ``coco_filter.ood_id``). Without it, every image of the
    json that exists on disk is listed and its mask is rasterized from the annotations on the fly
    (pycocotools) with ``ood_id``.
    """

    name = "coco"
    train_values = np.array([L.COCO_BACKGROUND_ID, L.COCO_OOD_ID])  # per instance: [0, ood_id]

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train2017",
        masks_dir: str | os.PathLike | None = None,
        ood_id: int = L.COCO_OOD_ID,
    ) -> None:
        super().__init__()
        if isinstance(ood_id, bool) or not isinstance(ood_id, (int, np.integer)) or not 1 <= ood_id <= 255:
            raise InputError(f"COCO ood_id must be an integer in 1..255, got {ood_id!r}")
        self.ood_id = int(ood_id)
        self.train_values = np.array([L.COCO_BACKGROUND_ID, self.ood_id])
        self._open(root, "COCO", split)
        self.image_dir = require_dir(self.root / split, f"COCO '{split}' images")
        self.annotation_file = self.root / "annotations" / f"instances_{split}.json"
        self._coco = None
        if masks_dir is not None:
            masks = sorted(require_dir(Path(masks_dir), "COCO OoD mask folder").glob("*.png"))
            if not masks:
                raise InputError(f"{masks_dir}: no OoD masks found (run the coco_filter step first)")
            for m in masks:
                img = self.image_dir / f"{m.stem}.jpg"
                if not img.is_file():
                    raise InputError(f"{m}: image {img} not found")
                self.samples.append(Sample(name=m.stem, image=img, train_ids=m))
        else:
            coco = self._load_coco()
            for image_id in sorted(coco.getImgIds()):
                img = self.image_dir / f"{image_id:012d}.jpg"
                if img.is_file():
                    self.samples.append(Sample(name=f"{image_id:012d}", image=img))
            if not self.samples:
                raise InputError(f"{self.image_dir}: none of the images listed in {self.annotation_file} exists")

    def _load_coco(self):
        """The annotation file, loaded on first use (not needed with ``masks_dir``)."""
        from meta_ood.coco_filter import load_coco

        if self._coco is None:
            self._coco = load_coco(self.annotation_file)
        return self._coco

    def load_label(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """The mask file when the filter wrote one, else the mask rasterized from the annotations."""
        if sample.train_ids is not None:
            return super().load_label(sample)
        from meta_ood.coco_filter import ood_mask

        return ood_mask(self._load_coco(), int(sample.name), ood_id=self.ood_id), None
