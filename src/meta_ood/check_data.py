"""Whole-dataset check: read every image and label file once and report every problem.

The readers of :mod:`meta_ood.datasets` stop at the first bad file, when a job reaches it. This
check (run by itself before a run's first training or dump job, see :mod:`meta_ood.check_data_cache`,
and as the ``check_data`` report) lists the files the way the readers do, but goes on past problems, and collects one
row per problem: an image that cannot be decoded (missing, truncated, not an image), a missing
label file, label values outside the label table (which values, how many pixels), an image and
label of different sizes, a label of another size than the dataset's ROI mask. Every kind of
:data:`meta_ood.datasets.DATASET_KINDS` is listed as its reader lists it (LostAndFound-NoKnown:
the LostAndFound frames of the sequences it keeps, those without annotation included). :func:`format_report` turns the result into Markdown;
:func:`check_data_stage` is the entry point of the workflow rule ``check_data``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from meta_ood import labels as L
from meta_ood.datasets import (
    DATASET_KINDS,
    Cityscapes,
    CityscapesVoid,
    CocoImages,
    FishyscapesLostAndFound,
    FishyscapesStatic,
    LostAndFound,
    LostAndFoundNoKnown,
    RoadAnomaly,
    Sample,
    SegmentationDataset,
    SmiycAnomalyTrack,
    SmiycObstacleTrack,
    open_dataset,
)
from meta_ood.datasets.smiyc import NOKNOWN_EXCLUDED, read_roi
from meta_ood.datasets.lostandfound import laf_folder
from meta_ood.errors import InputError
from meta_ood.io import read_label, read_rgb, write_text_atomic

__all__ = ["DataProblem", "DataReport", "check_data", "check_data_stage", "format_report", "write_report"]

_READERS: dict[str, type[SegmentationDataset]] = {
    "cityscapes": Cityscapes,
    "cityscapes_void": CityscapesVoid,
    "lostandfound": LostAndFound,
    "fishyscapes_static": FishyscapesStatic,
    "fishyscapes_lostandfound": FishyscapesLostAndFound,
    "coco": CocoImages,
    "smiyc_anomaly": SmiycAnomalyTrack,
    "smiyc_obstacle": SmiycObstacleTrack,
    "lostandfound_noknown": LostAndFoundNoKnown,
    "road_anomaly": RoadAnomaly,
}
# Kinds whose reader's own listing is used (their layouts need no per-file listing problems beyond it).
_LISTED_BY_READER = ("smiyc_anomaly", "smiyc_obstacle", "road_anomaly")
# Kinds that take a region-of-interest mask (``roi``): every label must have its size.
_ROI_KINDS = ("lostandfound", "lostandfound_noknown")
_DEFAULT_SPLITS = {
    "cityscapes": "val",
    "cityscapes_void": "val",
    "lostandfound": "test",
    "fishyscapes_static": "Static",
    "fishyscapes_lostandfound": "LostAndFound",
    "coco": "train2017",
    "smiyc_anomaly": "all",
    "smiyc_obstacle": "all",
    "lostandfound_noknown": "test",
    "road_anomaly": "all",
}
# (annotation folder, label suffixes) of the layouts that pair <base>_leftImg8bit.png with label files; the void-as-OoD
# evaluation reads the label ids only (the train-id files merge the void classes), LostAndFound-NoKnown is LostAndFound
_PAIRED = {
    "cityscapes": ("gtFine", {"train_ids": "_gtFine_labelTrainIds.png", "label_ids": "_gtFine_labelIds.png"}),
    "cityscapes_void": ("gtFine", {"label_ids": "_gtFine_labelIds.png"}),
    "lostandfound": ("gtCoarse", {"train_ids": "_gtCoarse_labelTrainIds.png", "label_ids": "_gtCoarse_labelIds.png"}),
    "lostandfound_noknown": ("gtCoarse", {"train_ids": "_gtCoarse_labelTrainIds.png",
                                          "label_ids": "_gtCoarse_labelIds.png"}),
}
_IMAGE_SUFFIX = "_leftImg8bit.png"
_ROOT_WHAT = {
    "cityscapes": "Cityscapes root",
    "cityscapes_void": "Cityscapes root",
    "lostandfound": "LostAndFound root",
    "fishyscapes_static": "Fishyscapes root",
    "fishyscapes_lostandfound": "Fishyscapes root",
    "coco": "COCO root",
    "smiyc_anomaly": "SMIYC AnomalyTrack root",
    "smiyc_obstacle": "SMIYC ObstacleTrack root",
    "lostandfound_noknown": "LostAndFound root",
    "road_anomaly": "Road Anomaly root",
}
#: How many problems the error of :func:`check_data_stage` shows.
_SHOW = 10

Rows = list[tuple[str, str]]  # (file, problem)


@dataclass(frozen=True)
class DataProblem:
    """One problem of one file: the dataset name of the spec, the file path and what is wrong."""

    dataset: str
    file: str
    problem: str


@dataclass
class DataReport:
    """Result of :func:`check_data`: the problems (one row each) and per dataset the files read."""

    problems: list[DataProblem] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def files_checked(self) -> int:
        """Image and label files read, all datasets together."""
        return sum(self.images.values()) + sum(self.labels.values())

    @property
    def files_with_problems(self) -> int:
        """Distinct (dataset, file) pairs with at least one problem."""
        return len({(p.dataset, p.file) for p in self.problems})


@dataclass
class _Listing:
    samples: list[Sample] = field(default_factory=list)
    problems: Rows = field(default_factory=list)
    coco: Any = None
    roi: np.ndarray | None = None
    roi_path: Path | None = None


def _message(exc: InputError, path: object) -> str:
    """The error text without its leading ``<path>: `` (the report has the file in its own column)."""
    text, prefix = str(exc), f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _list_paired(kind: str, root: Path, split: str, out: _Listing) -> None:
    folder, suffixes = _PAIRED[kind]
    name = "Cityscapes" if kind.startswith("cityscapes") else "LostAndFound"
    if name == "LostAndFound":  # the unpacked archive's folder, as the reader
        root = laf_folder(root)
    image_dir, label_dir = root / "leftImg8bit" / split, root / folder / split
    for path, what in ((image_dir, "images"), (label_dir, "annotations")):
        if not path.is_dir():
            out.problems.append((str(path), f"{name} split '{split}' {what} not found (expected a directory)"))
    if not (image_dir.is_dir() and label_dir.is_dir()):
        return
    images = sorted(image_dir.rglob(f"*{_IMAGE_SUFFIX}"))
    if not images:
        out.problems.append((str(image_dir), f"no '*{_IMAGE_SUFFIX}' images found"))
    for img in images:
        rel, base = img.relative_to(image_dir), img.name[: -len(_IMAGE_SUFFIX)]
        paths = {f: label_dir / rel.parent / f"{base}{s}" for f, s in suffixes.items()}
        if not any(p.is_file() for p in paths.values()):
            out.problems.append((str(img), f"label not found (expected {' or '.join(str(p) for p in paths.values())})"))
        out.samples.append(Sample(name=base, image=img, **{f: (p if p.is_file() else None) for f, p in paths.items()}))


def _noknown_excluded(name: str) -> bool:
    """Whether LostAndFound-NoKnown leaves the frame out for its sequence (:data:`NOKNOWN_EXCLUDED`, as its reader)."""
    return any(name == prefix or name.startswith(prefix + "_") for prefix in NOKNOWN_EXCLUDED)


def _list_roi(roi: Any, out: _Listing) -> None:
    """Read a dataset's ROI mask once; every label is compared with its size (a bad mask is a listing problem)."""
    try:
        out.roi, out.roi_path = read_roi(roi), Path(roi)
    except InputError as exc:
        out.problems.append((str(roi), _message(exc, roi)))


def _list_fishyscapes_static(root: Path, split: str, out: _Listing) -> None:
    folder = root / split
    if not folder.is_dir():
        out.problems.append((str(folder), f"Fishyscapes '{split}' folder not found (expected a directory)"))
        return
    labels = sorted(folder.rglob("*.png"))
    if not labels:
        out.problems.append((str(folder), "no '*.png' label files found"))
    for lab in labels:
        img = lab.with_suffix(".jpg")
        if not img.is_file():
            out.problems.append((str(lab), f"image {img.name} not found next to the label"))
        else:
            out.samples.append(Sample(name=lab.stem, image=img, train_ids=lab))
    for img in sorted(folder.rglob("*.jpg")):
        if not img.with_suffix(".png").is_file():
            expected = img.with_suffix(".png").name
            out.problems.append((str(img), f"label not found (expected {expected} next to the image)"))
            out.samples.append(Sample(name=img.stem, image=img))


def _list_fishyscapes_laf(root: Path, split: str, laf_root: Any, out: _Listing) -> None:
    folder = root / split
    if not folder.is_dir():
        out.problems.append((str(folder), f"Fishyscapes '{split}' folder not found (expected a directory)"))
        return
    if not laf_root:
        out.problems.append((str(root), "laf_root not given (the LostAndFound root whose leftImg8bit/ has the images)"))
        return
    laf_images = laf_folder(laf_root) / "leftImg8bit"
    if not laf_images.is_dir():
        out.problems.append((str(laf_images), "LostAndFound images (leftImg8bit) not found (expected a directory)"))
        return
    index = {p.name[: -len(_IMAGE_SUFFIX)]: p for p in laf_images.rglob(f"*{_IMAGE_SUFFIX}")}
    labels = sorted(folder.rglob("*_labels.png"))
    if not labels:
        out.problems.append((str(folder), "no '*_labels.png' label files found"))
    for lab in labels:
        stem = lab.name[: -len("_labels.png")]
        image = FishyscapesLostAndFound._match(stem, index)
        if image is None:
            wanted = f"<scene>_<seq>_<frame>{_IMAGE_SUFFIX}"
            out.problems.append((str(lab), f"image not found (no '{wanted}' under {laf_images} matches)"))
        else:
            out.samples.append(Sample(name=stem, image=image, train_ids=lab))


def _list_coco(root: Path, split: str, masks_dir: Any, out: _Listing) -> None:
    image_dir = root / split
    if not image_dir.is_dir():
        out.problems.append((str(image_dir), f"COCO '{split}' images not found (expected a directory)"))
        return
    if masks_dir is not None:
        masks_dir = Path(masks_dir)
        if not masks_dir.is_dir():
            out.problems.append((str(masks_dir), "COCO OoD mask folder not found (run the coco_filter step first)"))
            return
        for mask in sorted(masks_dir.glob("*.png")):
            img = image_dir / f"{mask.stem}.jpg"
            if not img.is_file():
                out.problems.append((str(mask), f"image {img} not found"))
            else:
                out.samples.append(Sample(name=mask.stem, image=img, train_ids=mask))
        return
    from meta_ood.coco_filter import load_coco

    annotations = root / "annotations" / f"instances_{split}.json"
    try:
        out.coco = load_coco(annotations)
    except InputError as exc:
        out.problems.append((str(annotations), _message(exc, annotations)))
        return
    on_disk = {e.name for e in os.scandir(image_dir) if e.is_file()}
    for image_id in sorted(out.coco.getImgIds()):
        name = f"{int(image_id):012d}"
        if f"{name}.jpg" in on_disk:
            out.samples.append(Sample(name=name, image=image_dir / f"{name}.jpg"))


def _list(kind: str, spec: Mapping[str, Any]) -> _Listing:
    """The samples of a dataset spec as its reader pairs them, and the listing problems (not stopping at them)."""
    out = _Listing()
    root = spec.get("root")
    if not root:
        out.problems.append(("", "no dataset root given"))
        return out
    root, split = Path(root), spec.get("split") or _DEFAULT_SPLITS[kind]
    if not root.is_dir():
        out.problems.append((str(root), f"{_ROOT_WHAT[kind]} not found (expected a directory)"))
        return out
    if kind in _ROI_KINDS and spec.get("roi"):
        _list_roi(spec["roi"], out)
    if kind in _PAIRED:
        _list_paired(kind, root, split, out)
        if kind == "lostandfound_noknown":  # its frames without annotation are checked too: they are files of it
            out.samples = [s for s in out.samples if not _noknown_excluded(s.name)]
    elif kind == "fishyscapes_static":
        _list_fishyscapes_static(root, split, out)
    elif kind == "fishyscapes_lostandfound":
        _list_fishyscapes_laf(root, split, spec.get("laf_root"), out)
    elif kind in _LISTED_BY_READER:
        try:
            out.samples = open_dataset(kind, str(root), split).samples
        except InputError as exc:
            out.problems.append((str(root), str(exc)))
    elif kind == "coco":
        _list_coco(root, split, spec.get("masks_dir"), out)
    else:  # a kind of DATASET_KINDS without a listing here
        out.problems.append((str(root), f"dataset kind {kind!r} cannot be checked file by file yet"))
    return out


def _undefined(values: np.ndarray, allowed: np.ndarray) -> str:
    """``'77 (120 px), 99 (5 px)'`` for the values of ``values`` not allowed by the 256-entry mask, or ''."""
    counts = np.bincount(values.ravel(), minlength=256)
    bad = np.flatnonzero((counts > 0) & ~allowed)
    return ", ".join(f"{int(v)} ({int(counts[v])} px)" for v in bad)


def _size(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]}"


def _label_problem(reader: type[SegmentationDataset], label: np.ndarray, is_ids: bool,
                   train_values: np.ndarray) -> str | None:
    """What is wrong with the values of a label-id (``is_ids``) or train-id image, or None."""
    if is_ids:
        if reader.id_to_train is None:
            return None
        bad = _undefined(label, reader.id_to_train >= 0)
        return f"undefined label ids {bad}: not in the {reader.name} label table" if bad else None
    bad = _undefined(label, np.isin(np.arange(256), train_values))
    allowed = sorted(int(v) for v in train_values)
    return f"undefined train ids {bad}: expected values in {allowed}" if bad else None


def _check_sample(reader: type[SegmentationDataset], sample: Sample, listing: _Listing,
                  train_values: np.ndarray) -> tuple[Rows, int]:
    """Problems (file, problem) of one image and its labels (values, sizes, the ROI mask's size), and the number
    of label files read."""
    coco = listing.coco
    problems: Rows = []
    try:
        image = read_rgb(sample.image)
    except InputError as exc:
        problems.append((str(sample.image), _message(exc, sample.image)))
        image = None
    labels: list[tuple[Path, np.ndarray]] = []
    n_labels = 0
    for path, is_ids in ((sample.label_ids, True), (sample.train_ids, False)):
        if path is None:
            continue
        n_labels += 1
        try:
            label = read_label(path)
        except InputError as exc:
            problems.append((str(path), _message(exc, path)))
            continue
        labels.append((path, label))
        problem = _label_problem(reader, label, is_ids, train_values)
        if problem:
            problems.append((str(path), problem))
    if coco is not None and n_labels == 0:
        from meta_ood.coco_filter import ood_mask

        try:
            labels.append((sample.image, ood_mask(coco, int(sample.name))))
        except InputError as exc:
            problems.append((str(sample.image), f"annotations: {exc}"))
    if listing.roi is not None:
        roi = listing.roi
        problems += [(str(path), f"label size {_size(label)} does not match the ROI mask {listing.roi_path} size "
                                 f"{_size(roi)} (width x height)") for path, label in labels if label.shape != roi.shape]
    if image is not None:
        for path, label in labels:
            if label.shape != image.shape[:2]:
                what = "mask from the annotations" if path == sample.image else "label"
                problems.append((str(path), f"{what} size {_size(label)} does not match image "
                                            f"{sample.image.name} size {_size(image)} (width x height)"))
    elif len(labels) == 2 and labels[0][1].shape != labels[1][1].shape:
        (first, a), (second, b) = labels
        problems.append((str(second), f"size {_size(b)} differs from {first.name} {_size(a)}"))
    return problems, n_labels


def check_data(datasets: Mapping[str, Mapping[str, Any]], progress: bool = True, workers: int = 1) -> DataReport:
    """Read every image and label file of the given datasets once; collect every problem, do not stop.

    Parameters
    ----------
    datasets
        ``{name: {"kind": ..., "root": ..., "split": ...}}`` with ``kind`` one of
        :data:`meta_ood.datasets.DATASET_KINDS` and the reader options ``laf_root``
        (fishyscapes_lostandfound), ``roi`` (lostandfound, lostandfound_noknown: the mask is read
        once and every label must have its size) and ``masks_dir`` (coco: the filtered selection;
        without it every image of the annotation file is checked against the mask rasterised from it).
    progress
        Show a tqdm progress bar over the files.
    workers
        Processes reading the files (decoding dominates; the report is the same for any number).

    Returns
    -------
    DataReport
        One :class:`DataProblem` per problem (listing problems first, then per file in reading
        order) and the numbers of image and label files read per dataset.
    """
    return check_listings(datasets, list_datasets(datasets), progress, workers)


def list_datasets(datasets: Mapping[str, Mapping[str, Any]]) -> dict[str, _Listing]:
    """The listing of every dataset spec (its samples as the reader pairs them, and the listing problems)."""
    listings: dict[str, _Listing] = {}
    for name, spec in datasets.items():
        kind = spec.get("kind")
        if kind not in DATASET_KINDS:
            known = ", ".join(DATASET_KINDS)
            listings[name] = _Listing(problems=[("", f"unknown dataset kind {kind!r}; expected one of {known}")])
            continue
        try:
            listings[name] = _list(kind, spec)
        except OSError as exc:
            listings[name] = _Listing(problems=[(str(spec.get("root")), f"cannot list the dataset folder ({exc})")])
    return listings


#: What the worker processes of :func:`check_listings` check: dataset name -> (reader, listing, label values).
_WORK: dict[str, tuple[type[SegmentationDataset], _Listing, np.ndarray]] = {}
#: Samples per task of a worker process.
_CHUNK = 8


def _check_range(name: str, start: int, stop: int) -> list[tuple[Rows, int]]:
    """:func:`_check_sample` of samples ``start:stop`` of dataset ``name`` (in a worker process)."""
    reader, listing, values = _WORK[name]
    return [_check_sample(reader, sample, listing, values) for sample in listing.samples[start:stop]]


def check_listings(datasets: Mapping[str, Mapping[str, Any]], listings: Mapping[str, _Listing],
                   progress: bool = True, workers: int = 1) -> DataReport:
    """Check every sample of ``listings`` (from :func:`list_datasets`), in ``workers`` processes; the report."""
    report = DataReport(specs={name: dict(datasets[name]) for name in listings})
    _WORK.clear()
    for name, listing in listings.items():
        reader = _READERS.get(datasets[name].get("kind"), SegmentationDataset)  # unknown kinds list nothing
        values = reader.train_values
        if datasets[name].get("kind") == "coco":  # masks hold background and the configured OoD id
            values = np.array([L.COCO_BACKGROUND_ID, int(datasets[name].get("ood_id", L.COCO_OOD_ID))])
        _WORK[name] = (reader, listing, values)
    tasks = [(name, start, min(start + _CHUNK, len(listing.samples)))
             for name, listing in listings.items() for start in range(0, len(listing.samples), _CHUNK)]
    total = sum(len(listing.samples) for listing in listings.values())
    parallel = workers > 1 and len(tasks) > 1 and "fork" in multiprocessing.get_all_start_methods()
    with tqdm(total=total, desc="check data", unit="img", disable=not progress) as bar:
        if parallel:  # forked workers see _WORK (and a COCO index) without pickling it
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
            results = (f.result() for f in [pool.submit(_check_range, *task) for task in tasks])
        else:
            pool, results = None, (_check_range(*task) for task in tasks)
        try:
            done = iter(zip(tasks, results))  # in dataset order: each dataset's listing problems, then its files
            for name, listing in listings.items():
                report.problems += [DataProblem(name, f, p) for f, p in listing.problems]
                report.images[name] = report.labels[name] = 0
                for _ in range(0, len(listing.samples), _CHUNK):
                    (_, start, stop), rows = next(done)
                    for problems, n_labels in rows:
                        report.problems += [DataProblem(name, f, p) for f, p in problems]
                        report.labels[name] += n_labels
                    report.images[name] += stop - start
                    bar.update(stop - start)
        except BrokenProcessPool:
            raise InputError(f"the data check's {workers} worker processes ended unexpectedly (out of memory?): run "
                             "with fewer --cores, or skip the check with --config skip_data_check=true") from None
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            _WORK.clear()
    return report


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def format_report(report: DataReport) -> str:
    """The report as Markdown: a summary table per dataset and a table of every problem."""
    lines = [
        "# Data check",
        "",
        f"{len(report.problems)} problem(s) in {report.files_with_problems} file(s); "
        f"{sum(report.images.values())} images and {sum(report.labels.values())} label files read.",
        "",
        "| dataset | kind | root | split | images | label files | problems |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for name, spec in report.specs.items():
        n = sum(1 for p in report.problems if p.dataset == name)
        lines.append(
            f"| {_cell(name)} | {_cell(spec.get('kind'))} | {_cell(spec.get('root'))} "
            f"| {_cell(spec.get('split') or '')} | {report.images.get(name, 0)} | {report.labels.get(name, 0)} | {n} |"
        )
    lines += ["", "## Problems", ""]
    if report.ok:
        lines.append("No problems found.")
    else:
        lines += ["| dataset | file | problem |", "| --- | --- | --- |"]
        lines += [f"| {_cell(p.dataset)} | {_cell(p.file)} | {_cell(p.problem)} |" for p in report.problems]
    return "\n".join(lines) + "\n"


def write_report(report: DataReport, path: str | os.PathLike) -> None:
    """Write :func:`format_report` to ``path`` atomically (parent folders are created)."""
    write_text_atomic(path, format_report(report))


def check_data_stage(
    datasets: Mapping[str, Mapping[str, Any]], out_md: str | os.PathLike, progress: bool = True
) -> DataReport:
    """Check every file of ``datasets``, write the Markdown report to ``out_md`` and fail if anything is wrong.

    The report is always written (and printed, so a Snakemake job has it in its log); when it
    lists problems, an :class:`InputError` with their count and the first few follows, so the run
    ends non-zero and the user sees it. (Snakemake removes the outputs of a failed job, so in the
    workflow the full report of a failed check is the one in ``logs/<run>/check_data.log``.)

    Returns
    -------
    DataReport
        The report, when no problem was found.
    """
    report = check_data(datasets, progress=progress)
    write_report(report, out_md)
    print(format_report(report))
    if not report.ok:
        shown = "\n".join(f"- {p.dataset}: {p.file}: {p.problem}" for p in report.problems[:_SHOW])
        more = f"\n- ... ({len(report.problems) - _SHOW} more)" if len(report.problems) > _SHOW else ""
        raise InputError(
            f"check_data: {len(report.problems)} problem(s) in {report.files_with_problems} file(s); the full "
            f"report went to {out_md} and to the log (Snakemake keeps only the log of a failed job):\n{shown}{more}"
        )
    return report
