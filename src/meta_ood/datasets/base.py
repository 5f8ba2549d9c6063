"""Common reader machinery: samples, items and checked loading of image/label pairs.

Every reader lists its files in a deterministic (sorted) order once, at construction, and checks
each pair when it is loaded: the label file exists, is an 8-bit single-channel image, holds only
values of its label table, and has the size of its image. Any violation raises one
:class:`~meta_ood.errors.InputError` naming the file and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meta_ood import labels as L
from meta_ood.errors import InputError
from meta_ood.io import read_label, read_rgb


@dataclass(frozen=True)
class Sample:
    """File paths of one image and its ground truth (before reading)."""

    name: str
    image: Path
    train_ids: Path | None = None
    label_ids: Path | None = None


@dataclass
class Item:
    """One loaded example: RGB image, train-id label, optional label-id image and the image path.

    ``labelled`` is False for a frame whose ground truth is not distributed (a benchmark's test
    frame): its label is all void and no metric may use it.
    """

    image: np.ndarray
    label: np.ndarray
    label_ids: np.ndarray | None
    path: str
    name: str
    labelled: bool = True


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise an InputError describing ``what`` it should be."""
    if not path.is_dir():
        raise InputError(f"{path}: {what} not found (expected a directory)")
    return path


def find_root(root: Path, looks_right: Callable[[Path], bool], folders: Sequence[str], title: str, expected: str) -> Path:
    """The dataset folder: ``root`` itself or its child ``<folder>`` (the folder a download unpacks to).

    ``looks_right`` tells a dataset folder (e.g. it holds ``images/``); ``expected`` says what it
    holds, for the error that names both places looked at.
    """
    if looks_right(root):
        return root
    for folder in folders:
        if looks_right(root / folder):
            return root / folder
    where = " or ".join([str(root)] + [str(root / f) for f in folders])
    raise InputError(f"{root}: not a {title} folder: expected {expected} in {where}")


class SegmentationDataset(Sequence[Item]):
    """Base class: a sorted list of :class:`Sample` and the rules to turn a label file into train ids.

    Subclasses fill ``self.samples`` and set ``train_values`` (the allowed train ids) and, when
    the dataset ships label ids, ``id_to_train`` (a 256-entry lookup table). ``convention``
    names the in-distribution / OoD train ids of evaluation datasets (None for training sets).
    """

    name: str = "dataset"
    train_values: np.ndarray = L.CITYSCAPES_TRAIN_VALUES
    id_to_train: np.ndarray | None = None
    convention: L.EvalConvention | None = None

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def _open(self, root: str | os.PathLike, title: str, split: str) -> None:
        """Record the dataset ``root`` (checked: ``<title> root`` names it in the error) and the ``split``."""
        self.root = require_dir(Path(root), f"{title} root")
        self.split = split

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.samples)

    def __iter__(self) -> Iterator[Item]:
        """Load the items in order."""
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> Item:  # type: ignore[override]
        """Load item ``index``: the image and its train-id label, checked to have the same size."""
        if isinstance(index, slice):
            raise TypeError("slicing a dataset is not supported; index single items")
        sample = self.samples[index]
        image = read_rgb(sample.image)
        label, label_ids = self.load_label(sample)
        if label.shape != image.shape[:2]:
            src = sample.train_ids or sample.label_ids
            raise InputError(
                f"{src}: label size {label.shape[1]}x{label.shape[0]} does not match image "
                f"{sample.image} size {image.shape[1]}x{image.shape[0]} (width x height)"
            )
        return Item(image=image, label=label, label_ids=label_ids, path=str(sample.image), name=sample.name)

    def load_label(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """Read the train-id label of ``sample`` (deriving it from label ids when needed) and check its values."""
        label_ids = read_label(sample.label_ids) if sample.label_ids is not None else None
        if label_ids is not None and self.id_to_train is not None:
            self._check(label_ids, np.flatnonzero(self.id_to_train >= 0), sample.label_ids, "label ids")
        if sample.train_ids is not None:
            train = read_label(sample.train_ids)
            self._check(train, self.train_values, sample.train_ids, "train ids")
            if label_ids is not None and label_ids.shape != train.shape:
                raise InputError(
                    f"{sample.label_ids}: size {label_ids.shape} differs from {sample.train_ids} {train.shape}"
                )
        elif label_ids is not None and self.id_to_train is not None:
            train = L.label_ids_to_train_ids(label_ids, self.id_to_train)
        else:
            raise InputError(f"{sample.image}: no ground truth found")
        return train, label_ids

    @staticmethod
    def _check(label: np.ndarray, allowed: np.ndarray, path: Path | None, what: str) -> None:
        """Raise an InputError naming ``path`` if ``label`` holds a value outside ``allowed``."""
        try:
            L.check_values(label, allowed)
        except ValueError as exc:
            raise InputError(f"{path}: {exc} [{what}]") from None

    def __repr__(self) -> str:
        """Class name and number of images."""
        return f"{type(self).__name__}({len(self)} images)"


class PairedDataset(SegmentationDataset):
    """Template of the layouts ``<root>/leftImg8bit/<split>/<sub>/`` + ``<root>/<label_folder>/<split>/<sub>/``.

    Subclasses name the dataset (``title``, used in the error messages), the label folder and the
    default split; each image ``<base>_leftImg8bit.png`` is paired by :func:`pair_files` with
    ``<base>_<label_folder>_labelTrainIds.png`` and/or ``<base>_<label_folder>_labelIds.png``.
    """

    title: str = "dataset"
    label_folder: str = ""
    default_split: str = ""
    #: Folders below the root that are accepted as the dataset folder (the one a download unpacks to).
    archive_folders: tuple[str, ...] = ()

    def __init__(self, root: str | os.PathLike, split: str | None = None) -> None:
        super().__init__()
        split = split or self.default_split
        self._open(root, self.title, split)
        if self.archive_folders:
            self.root = find_root(self.root, lambda p: (p / "leftImg8bit").is_dir(), self.archive_folders, self.title,
                                  f"leftImg8bit/ and {self.label_folder}/")
        image_dir = require_dir(self.root / "leftImg8bit" / split, f"{self.title} split '{split}' images")
        label_dir = require_dir(self.root / self.label_folder / split, f"{self.title} split '{split}' annotations")
        suffixes = {"train_ids": f"_{self.label_folder}_labelTrainIds.png",
                    "label_ids": f"_{self.label_folder}_labelIds.png"}
        self.samples = pair_files(image_dir, "_leftImg8bit.png", label_dir, suffixes)


def pair_files(
    image_dir: Path,
    image_suffix: str,
    label_dir: Path,
    label_suffixes: dict[str, str],
) -> list[Sample]:
    """Pair ``<image_dir>/<sub>/<base><image_suffix>`` with ``<label_dir>/<sub>/<base><suffix>``.

    ``label_suffixes`` maps the Sample field ("train_ids", "label_ids") to the file suffix. At
    least one of the label files must exist for every image, else an InputError names the image
    and the files that were looked for.
    """
    images = sorted(image_dir.rglob(f"*{image_suffix}"))
    if not images:
        raise InputError(f"{image_dir}: no '*{image_suffix}' images found")
    samples = []
    for img in images:
        rel = img.relative_to(image_dir)
        base = img.name[: -len(image_suffix)]
        paths = {field: label_dir / rel.parent / f"{base}{suffix}" for field, suffix in label_suffixes.items()}
        if not any(p.is_file() for p in paths.values()):
            wanted = " or ".join(str(p) for p in paths.values())
            raise InputError(f"{img}: no ground truth found (expected {wanted})")
        kw = {field: (p if p.is_file() else None) for field, p in paths.items()}
        samples.append(Sample(name=base, image=img, **kw))
    return samples


def label_samples(folder: Path, pattern: str, image_of: Callable[[Path], tuple[str, Path]]) -> list[Sample]:
    """One :class:`Sample` per label file ``<folder>/**/<pattern>`` (sorted), with the (name, image) of ``image_of``.

    ``image_of`` raises an InputError for a label without its image; a folder without any label
    file raises one naming the folder and the pattern.
    """
    labels = sorted(folder.rglob(pattern))
    if not labels:
        raise InputError(f"{folder}: no '{pattern}' label files found")
    samples = []
    for lab in labels:
        name, image = image_of(lab)
        samples.append(Sample(name=name, image=image, train_ids=lab))
    return samples
