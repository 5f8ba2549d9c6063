"""Readers of the SegmentMeIfYouCan benchmark: AnomalyTrack, ObstacleTrack and LostAndFound-NoKnown.

The two tracks are read in the layout the benchmark distributes: the root is the folder an
archive unpacks to (``dataset_AnomalyTrack/``, ``dataset_ObstacleTrack/``) or the folder holding
it (the benchmark's ``DIR_DATASETS``)::

    dataset_AnomalyTrack/images/<fid>.jpg
    dataset_AnomalyTrack/labels_masks/<fid>_labels_semantic.png    (0 not anomaly, 1 anomaly, 255 void)
    dataset_ObstacleTrack/images/<fid>.webp
    dataset_ObstacleTrack/labels_masks/<fid>_labels_semantic.png   (0 road, 1 obstacle, 255 void off the road)

Only the labels of the ``validation`` frames are distributed. ``all`` (the benchmark's
``AnomalyTrack-all`` / ``ObstacleTrack-all``, what a submission needs) lists every frame: the
validation frames with their labels, the others unlabelled; ``test`` lists the test frames only.
An unlabelled frame's item carries an all-void label and ``labelled=False`` (its score map is
dumped for the submission, no metric uses it); asking for its label raises an InputError.
Colour renderings next to the labels (``<fid>_labels_semantic_color.png``) are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from meta_ood import labels as L
from meta_ood.datasets.base import Item, Sample, SegmentationDataset, find_root
from meta_ood.datasets.lostandfound import LostAndFound
from meta_ood.errors import InputError
from meta_ood.io import open_image, read_rgb

#: Splits of both tracks: the labelled validation frames, the benchmark's test frames, every frame.
SMIYC_SPLITS = ("validation", "test", "all")
#: Suffix of the label files in ``labels_masks/`` (the benchmark's ``semantic_class_gt`` channel).
LABEL_SUFFIX = "_labels_semantic.png"
#: Scenes of the benchmark's ``ObstacleTrack-test`` (road-anomaly-benchmark,
#: ``road_anomaly_benchmark/datasets/tracks.py``): every scene but the validation frames, the
#: snowstorms (``snowstorm1``, ``snowstorm2``) and the night scene (``driveway``).
OBSTACLE_TEST_SCENES = frozenset({
    "curvy-street", "one-way-street", "gravel", "greyasphalt", "motorway", "paving", "darkasphalt", "darkasphalt2",
})
#: LostAndFound-test frame-name prefixes that the benchmark's ``LostAndFound-testNoKnown`` excludes
#: because they show Cityscapes classes (road-anomaly-benchmark, ``road_anomaly_benchmark/datasets/tracks.py``):
#: the children of scene 15 and the bicycles of three sequences. With the frames without any
#: annotation, 1,043 of the 1,203 test frames remain.
NOKNOWN_EXCLUDED = (
    "15_Rechbergstr_Deckenpfronn",  # children
    "01_Hanns_Klemm_Str_45_000006",  # bicycle
    "01_Hanns_Klemm_Str_45_000007",  # bicycle
    "10_Schlossberg_9_000004",  # bicycle
)


class _SmiycTrack(SegmentationDataset):
    """One track below ``<root>/<folder>/``: images ``images/<fid><image_ext>``, labels ``labels_masks/<fid>_labels_semantic.png``."""

    title: str = "SMIYC track"
    folder: str = ""
    image_ext: str = ""
    train_values = L.FISHYSCAPES_TRAIN_VALUES
    convention = L.FISHYSCAPES

    def __init__(self, root: str | os.PathLike, split: str = "all") -> None:
        super().__init__()
        if split not in SMIYC_SPLITS:
            raise InputError(f"{root}: {self.title} has no split {split!r}; expected one of {', '.join(SMIYC_SPLITS)}")
        self._open(root, self.title, split)
        track = find_root(self.root, lambda p: (p / "images").is_dir(), (self.folder,), self.title,
                          f"the unpacked archive's images/ (and labels_masks/), i.e. {self.folder}/images/")
        image_dir = track / "images"
        images = sorted(image_dir.glob(f"*{self.image_ext}"))
        if not images:
            raise InputError(f"{image_dir}: no '*{self.image_ext}' images found")
        label_dir = track / "labels_masks"
        labels = {p.name[: -len(LABEL_SUFFIX)]: p for p in sorted(label_dir.glob(f"*{LABEL_SUFFIX}"))}
        orphans = sorted(set(labels) - {img.stem for img in images})
        if orphans:
            raise InputError(f"{labels[orphans[0]]}: label without its image {image_dir / (orphans[0] + self.image_ext)}")
        if split == "validation":
            images = [img for img in images if img.stem in labels]
            if not images:
                raise InputError(f"{label_dir}: no '*{LABEL_SUFFIX}' label files found (the validation frames are "
                                 "those whose labels are distributed)")
        elif split == "test":
            images = self._test_images(images, labels)
            if not images:
                raise InputError(f"{image_dir}: no image of the {self.title} test split found")
        self.samples = [Sample(name=img.stem, image=img, train_ids=labels.get(img.stem)) for img in images]
        #: Whether any frame of the split is labelled (else it cannot be evaluated).
        self.has_labels = any(s.train_ids is not None for s in self.samples)

    @property
    def labelled_names(self) -> list[str]:
        """Names of the frames with a label, in order: the frames every metric uses."""
        return [s.name for s in self.samples if s.train_ids is not None]

    def _test_images(self, images: list[Path], labels: dict[str, Path]) -> list[Path]:
        """The test frames among ``images``: those whose labels are not distributed."""
        return [img for img in images if img.stem not in labels]

    def __getitem__(self, index: int) -> Item:  # type: ignore[override]
        """Item ``index``; an unlabelled frame's label is all void and ``labelled`` False (scores only)."""
        if isinstance(index, slice) or self.samples[index].train_ids is not None:
            return super().__getitem__(index)
        sample = self.samples[index]
        image = read_rgb(sample.image)
        void = np.full(image.shape[:2], L.VOID_ID, np.uint8)
        return Item(image=image, label=void, label_ids=None, path=str(sample.image), name=sample.name, labelled=False)

    def load_label(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """The checked label of a validation frame; for an unlabelled frame an InputError: no label is distributed."""
        if sample.train_ids is None:
            raise InputError(
                f"{sample.image}: {self.title} frame {sample.name!r} has no label (the benchmark distributes only "
                "those of the validation frames); it gets a score file but cannot be evaluated"
            )
        return super().load_label(sample)


class SmiycAnomalyTrack(_SmiycTrack):
    """SegmentMeIfYouCan AnomalyTrack (RoadAnomaly21): JPEG images, labels 0 in, 1 anomaly, 255 void.

    ``test`` is every frame whose label is not distributed (the benchmark's ``AnomalyTrack-test``).
    """

    name = "smiyc_anomaly"
    title = "SMIYC AnomalyTrack"
    folder = "dataset_AnomalyTrack"
    image_ext = ".jpg"


class SmiycObstacleTrack(_SmiycTrack):
    """SegmentMeIfYouCan ObstacleTrack (RoadObstacle21): WebP images, labels 0 road, 1 obstacle, 255 void.

    A frame's scene is the part of its fid before the first ``_`` (``scenes`` maps frame names to
    scenes, for per-scene results); ``test`` is the frames of :data:`OBSTACLE_TEST_SCENES`.
    """

    name = "smiyc_obstacle"
    title = "SMIYC ObstacleTrack"
    folder = "dataset_ObstacleTrack"
    image_ext = ".webp"

    def __init__(self, root: str | os.PathLike, split: str = "all") -> None:
        super().__init__(root, split)
        #: Scene of every frame, by frame name.
        self.scenes: dict[str, str] = {s.name: scene_of(s.name) for s in self.samples}

    def _test_images(self, images: list[Path], labels: dict[str, Path]) -> list[Path]:
        """The frames of the benchmark's test scenes."""
        return [img for img in images if scene_of(img.stem) in OBSTACLE_TEST_SCENES]


def scene_of(fid: str) -> str:
    """Scene of an ObstacleTrack frame: its fid up to the first ``_``."""
    return fid.split("_", 1)[0]


def read_roi(path: str | os.PathLike) -> np.ndarray:
    """A binary region-of-interest image (1-bit, grey or palette; values 0 and one of 1 / 255) as a bool mask."""
    img = open_image(Path(path))
    if img.mode not in ("1", "L", "P"):
        raise InputError(f"{path}: the ROI mask must be a single-channel binary image, got PIL mode {img.mode!r}")
    mask = np.asarray(img.convert("L") if img.mode == "1" else img, dtype=np.uint8)
    values = set(np.unique(mask).tolist())
    if not (values <= {0, 1} or values <= {0, 255}):
        raise InputError(f"{path}: the ROI mask must hold 0 (outside) and 1 or 255 (inside), got values {sorted(values)}")
    return mask > 0


class LostAndFoundROI(LostAndFound):
    """LostAndFound whose pixels outside a region of interest are void.

    ``roi`` is a binary image of the label size (see :func:`read_roi`); without it the labels are
    those of :class:`~meta_ood.datasets.lostandfound.LostAndFound`.
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, roi: str | os.PathLike | None = None) -> None:
        super().__init__(root, split)
        self.roi_path = Path(roi) if roi is not None else None
        self.roi = read_roi(self.roi_path) if self.roi_path is not None else None

    def load_label(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """The LostAndFound train ids, void outside the ROI."""
        train, label_ids = super().load_label(sample)
        if self.roi is None:
            return train, label_ids
        if self.roi.shape != train.shape:
            raise InputError(
                f"{self.roi_path}: ROI mask size {self.roi.shape[1]}x{self.roi.shape[0]} does not match label "
                f"{sample.label_ids or sample.train_ids} size {train.shape[1]}x{train.shape[0]} (width x height)"
            )
        return np.where(self.roi, train, L.VOID_ID).astype(np.uint8), label_ids


class LostAndFoundNoKnown(LostAndFoundROI):
    """LostAndFound-NoKnown: the LostAndFound test split without the frames that show known classes.

    As the benchmark's ``LostAndFound-testNoKnown``: the frames whose name starts with one of
    ``exclude`` (default :data:`NOKNOWN_EXCLUDED`, a whole scene or ``<scene>_<seq>``) are left
    out, and so are the frames without any annotation (the label holds void only). ``excluded``
    and ``unannotated`` count them. Every remaining label is read once here for that check.
    """

    name = "lostandfound_noknown"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "test",
        roi: str | os.PathLike | None = None,
        exclude: Iterable[str] = NOKNOWN_EXCLUDED,
    ) -> None:
        super().__init__(root, split, roi)
        prefixes = tuple(exclude)
        kept = [s for s in self.samples if not any(s.name == p or s.name.startswith(p + "_") for p in prefixes)]
        annotated = [s for s in kept if (LostAndFound.load_label(self, s)[0] != L.VOID_ID).any()]
        self.excluded = len(self.samples) - len(kept)
        self.unannotated = len(kept) - len(annotated)
        if not annotated:
            raise InputError(f"{self.root}: no LostAndFound-NoKnown frame left in split '{split}' ({self.excluded} "
                             f"frames of excluded sequences, {self.unannotated} without annotation)")
        self.samples = annotated
