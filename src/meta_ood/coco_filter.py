"""COCO out-of-distribution proxies: select images and write their OoD masks.

The paper fine-tunes the segmentation network on Cityscapes mixed with COCO images that show none
of the Cityscapes object classes. This module implements that selection and the masks used as
training targets (paper section 4; ``preparation/prepare_coco_segmentation.py`` of the released
code):

* an image is kept if none of its annotations (crowd or not) belongs to an excluded category
  (by default the eight COCO classes that Cityscapes also has) and if its height and width, as
  listed in the annotation file, are both at least ``min_size`` (480 by default);
* its mask is ``COCO_BACKGROUND_ID`` (0) everywhere except on the pixels of any annotation of the
  image (every category, crowd regions included), which carry the OoD id (254 by default).

Outputs of :func:`filter_coco` (``results/<run>/coco/``)::

    masks/<image_id:012d>.png   one 8-bit mask per kept image, same size as the image
    selected.csv                image_id, file_name, height, width, n_annotations

Only the documented :class:`pycocotools.coco.COCO` indexing API is used (constructor, ``imgs``,
``cats``, ``imgToAnns``, ``annToMask``); nothing depends on the optional ``info`` / ``licenses``
entries of the annotation file or on ``COCO.loadRes``.
"""

from __future__ import annotations

import contextlib
import io as _stdio
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from tqdm import tqdm

from meta_ood.errors import InputError
from meta_ood.io import atomic_path, write_png
from meta_ood.labels import COCO_BACKGROUND_ID, COCO_OOD_ID

logger = logging.getLogger(__name__)

#: COCO categories that are also Cityscapes classes; images showing any of them are dropped.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "bus",
    "truck",
    "traffic light",
    "stop sign",
)
#: Minimum image height and width (pixels) of a kept image.
DEFAULT_MIN_SIZE: int = 480

#: Names of the mask files this module writes (and may delete again on a rerun).
MASK_NAME_RE = re.compile(r"\d{12}\.png")

CSV_COLUMNS = ("image_id", "file_name", "height", "width", "n_annotations")


def image_file_name(image_id: int) -> str:
    """File name of a COCO image in its split folder, e.g. ``000000028118.jpg``."""
    return f"{int(image_id):012d}.jpg"


def mask_file_name(image_id: int) -> str:
    """File name of the OoD mask written for a COCO image, e.g. ``000000028118.png``."""
    return f"{int(image_id):012d}.png"


def load_coco(annotation_file: str | os.PathLike) -> COCO:
    """Load a COCO instances file into a :class:`pycocotools.coco.COCO` index.

    Parameters
    ----------
    annotation_file
        Path of ``instances_<split>.json``.

    Returns
    -------
    COCO
        The indexed annotation file. pycocotools' progress prints are suppressed; one log line
        with the numbers of images, annotations and categories is emitted instead.

    Raises
    ------
    InputError
        If the file does not exist, is not valid JSON, or lacks the ``images``,
        ``annotations`` or ``categories`` lists of a COCO instances file.
    """
    path = Path(annotation_file)
    if not path.is_file():
        raise InputError(f"{path}: COCO annotation file not found (expected an instances_<split>.json file)")
    try:
        with open(path, encoding="utf-8") as fh:
            dataset = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid JSON file ({exc}; the file is damaged or truncated: "
                         "unpack the COCO annotations again)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the COCO annotation file ({exc.strerror or exc}; "
                         "check its permissions)") from None
    if not isinstance(dataset, dict):
        raise InputError(f"{path}: expected a COCO instances JSON object, got a {type(dataset).__name__}")
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(dataset.get(key), list)]
    if missing:
        raise InputError(
            f"{path}: not a COCO instances file; the list(s) {', '.join(repr(k) for k in missing)} are missing"
        )
    coco = COCO()
    coco.dataset = dataset
    try:
        with contextlib.redirect_stdout(_stdio.StringIO()):
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: malformed COCO entry (missing or invalid field {exc})") from None
    logger.info(
        "%s: %d images, %d annotations, %d categories",
        path,
        len(coco.imgs),
        len(coco.anns),
        len(coco.cats),
    )
    return coco


@dataclass(frozen=True)
class Selection:
    """The images that pass the filters (``ids``), of ``n_in_json`` listed and ``n_on_disk`` of those with a file."""

    ids: list[int]
    n_in_json: int
    n_on_disk: int


def _normalize_exclude(exclude_names: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(exclude_names, str):
        return (exclude_names,)
    names = tuple(exclude_names)
    for name in names:
        if not isinstance(name, str):
            raise InputError(f"exclude class names must be strings, got {name!r}")
    return names


def _check_min_size(min_size: int) -> int:
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise InputError(f"min_size must be a non-negative integer (pixels), got {min_size!r}")
    return int(min_size)


def _check_ood_id(ood_id: int) -> None:
    if isinstance(ood_id, bool) or not isinstance(ood_id, (int, np.integer)) or not 1 <= ood_id <= 255:
        raise InputError(f"ood_id must be an integer in 1..255, got {ood_id!r}")


def _image_size(coco: COCO, image_id: int, source: str) -> tuple[int, int]:
    info = coco.imgs[image_id]
    try:
        height, width = int(info["height"]), int(info["width"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{source}: image {image_id} has no valid integer 'height' and 'width'") from None
    return height, width


def _select(
    coco: COCO,
    images_dir: Path,
    exclude_names: tuple[str, ...],
    min_size: int,
    source: str,
) -> Selection:
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: COCO image folder not found (expected <image_id:012d>.jpg files)")

    by_name: dict[str, list[int]] = {}
    for cat in coco.cats.values():
        by_name.setdefault(str(cat.get("name")), []).append(cat["id"])
    unknown = [name for name in exclude_names if name not in by_name]
    if unknown:
        raise InputError(
            f"{source}: exclude class name(s) {', '.join(repr(n) for n in unknown)} are not categories of this "
            f"file; available names: {', '.join(sorted(by_name))}"
        )
    excluded_cats = {cat_id for name in exclude_names for cat_id in by_name[name]}

    on_disk = {entry.name for entry in os.scandir(images_dir) if entry.is_file()}
    json_ids = sorted(coco.imgs)
    missing = [i for i in json_ids if image_file_name(i) not in on_disk]
    if missing:
        logger.warning(
            "%d of %d images listed in %s have no file in %s and are skipped (first: %s)",
            len(missing),
            len(json_ids),
            source,
            images_dir,
            ", ".join(image_file_name(i) for i in missing[:5]),
        )
    missing_set = set(missing)

    kept: list[int] = []
    for image_id in json_ids:
        if image_id in missing_set:
            continue
        height, width = _image_size(coco, image_id, source)
        if height < min_size or width < min_size:
            continue
        if any(ann["category_id"] in excluded_cats for ann in coco.imgToAnns.get(image_id, ())):
            continue
        kept.append(int(image_id))
    logger.info(
        "kept %d of %d images on disk (exclude: %s; min size %d)",
        len(kept),
        len(json_ids) - len(missing),
        ", ".join(exclude_names) or "none",
        min_size,
    )
    return Selection(ids=kept, n_in_json=len(json_ids), n_on_disk=len(json_ids) - len(missing))


def usable_images(
    coco: COCO,
    images_dir: str | os.PathLike,
    exclude_names: Sequence[str] = DEFAULT_EXCLUDE,
    min_size: int = DEFAULT_MIN_SIZE,
    source: str = "COCO annotation file",
) -> Selection:
    """The selection of :func:`filter_coco` on a loaded annotation index; the start-up checks count it the same way.

    Raises
    ------
    InputError
        For the reasons of :func:`select_images`, or when no image passes the filters (the message
        names ``source``, the filters and how many images were considered).
    """
    names = _normalize_exclude(exclude_names)
    size = _check_min_size(min_size)
    selection = _select(coco, Path(images_dir), names, size, source)
    if not selection.ids:
        raise InputError(
            f"{source}: no COCO image passes the filters (exclude classes: "
            f"{', '.join(names) or 'none'}; min size {size} px for height and width; "
            f"{selection.n_on_disk} image(s) considered, i.e. listed in the file with a file in {images_dir}, "
            f"of {selection.n_in_json} listed; lower coco_filter.min_size, exclude fewer classes or check the "
            "image folder)"
        )
    return selection


def select_images(
    annotation_file: str | os.PathLike,
    images_dir: str | os.PathLike,
    exclude_names: Sequence[str] = DEFAULT_EXCLUDE,
    min_size: int = DEFAULT_MIN_SIZE,
) -> list[int]:
    """Ids of the COCO images usable as OoD proxies.

    An image is kept if

    1. it is listed in the annotation file and ``images_dir/<image_id:012d>.jpg`` exists;
    2. none of its annotations, crowd annotations included, belongs to a category named in
       ``exclude_names``;
    3. its height and width as given in the annotation file are both ``>= min_size``.

    The annotation file is the source of truth: candidates are the images it lists, and their
    sizes are read from it (image files are only checked for existence, never opened). Files in
    ``images_dir`` that the annotation file does not list are ignored. (The released reference
    code took its candidates from the folder listing instead; on a consistent COCO download both
    give the same result.) Listed images without a file are skipped with one logged warning that
    counts them.

    Parameters
    ----------
    annotation_file
        COCO ``instances_<split>.json``.
    images_dir
        Folder with the split's images (``train2017/``).
    exclude_names
        Category names whose presence drops an image; each must be a category of the file.
    min_size
        Minimum height and width in pixels.

    Returns
    -------
    list of int
        The kept image ids, sorted ascending (possibly empty).

    Raises
    ------
    InputError
        If the annotation file or image folder is missing, the file is not a COCO instances
        file, an exclude name is not one of its categories, or ``min_size`` is invalid.
    """
    names = _normalize_exclude(exclude_names)
    size = _check_min_size(min_size)
    coco = load_coco(annotation_file)
    return _select(coco, Path(images_dir), names, size, str(annotation_file)).ids


def ood_mask(coco: COCO, image_id: int, ood_id: int = COCO_OOD_ID) -> np.ndarray:
    """OoD mask of one COCO image: ``ood_id`` on every annotated pixel, background elsewhere.

    All annotations of the image are painted, whatever their category and crowd flag, in any
    of COCO's segmentation formats (polygons, uncompressed RLE, compressed RLE), via
    :meth:`COCO.annToMask`. Pixels outside every annotation are ``COCO_BACKGROUND_ID`` (0).

    Parameters
    ----------
    coco
        Annotation index, e.g. from :func:`load_coco`.
    image_id
        Id of an image listed in ``coco``.
    ood_id
        Value of the annotated pixels, 1..255.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape (height, width) with the size listed in the annotation file;
        an image without annotations gives an all-background mask.

    Raises
    ------
    InputError
        If the image is not listed, ``ood_id`` is out of range, or an annotation decodes to a
        size other than the image's.
    """
    _check_ood_id(ood_id)
    image_id = int(image_id)
    if image_id not in coco.imgs:
        raise InputError(f"image id {image_id} is not listed in the COCO annotation file")
    height, width = _image_size(coco, image_id, "COCO annotation file")
    mask = np.full((height, width), COCO_BACKGROUND_ID, dtype=np.uint8)
    for ann in coco.imgToAnns.get(image_id, ()):
        region = coco.annToMask(ann)
        if region.shape != mask.shape:
            raise InputError(
                f"annotation {ann.get('id')} of image {image_id}: segmentation decodes to size "
                f"{region.shape[0]}x{region.shape[1]}, expected the image size {height}x{width}"
            )
        mask[region.astype(bool)] = ood_id
    return mask


def _remove_stale_masks(masks_dir: Path, keep: set[str]) -> int:
    removed = 0
    for entry in os.scandir(masks_dir):
        if entry.is_file() and MASK_NAME_RE.fullmatch(entry.name) and entry.name not in keep:
            os.unlink(entry.path)
            removed += 1
    if removed:
        logger.info("removed %d mask(s) in %s from an earlier selection", removed, masks_dir)
    return removed


def filter_coco(
    annotation_file: str | os.PathLike,
    images_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    exclude_names: Sequence[str] = DEFAULT_EXCLUDE,
    min_size: int = DEFAULT_MIN_SIZE,
    ood_id: int = COCO_OOD_ID,
    progress: bool = True,
) -> pd.DataFrame:
    """Select COCO OoD proxies and write their masks and the selection table.

    Runs :func:`select_images`, then writes ``out_dir/masks/<image_id:012d>.png`` (8-bit, from
    :func:`ood_mask`) for every kept image and finally ``out_dir/selected.csv``. Every file is
    written under a temporary name and renamed when complete, and the CSV is written last, so it
    only exists once all masks are in place. Mask files from an earlier run (names matching
    ``\\d{12}\\.png``) that are not part of the current selection are deleted, so a rerun with
    other filters leaves a folder consistent with the CSV; other files are left alone.

    Parameters
    ----------
    annotation_file
        COCO ``instances_<split>.json``.
    images_dir
        Folder with the split's images (``<image_id:012d>.jpg``).
    out_dir
        Output folder (created if needed).
    exclude_names
        Category names whose presence drops an image.
    min_size
        Minimum height and width in pixels.
    ood_id
        Mask value of annotated pixels.
    progress
        Show a progress bar while writing masks.

    Returns
    -------
    pandas.DataFrame
        One row per kept image, sorted by id, with columns ``image_id``, ``file_name``,
        ``height``, ``width`` (from the annotation file) and ``n_annotations`` (all annotations
        of the image, crowd included); the content of ``selected.csv``.

    Raises
    ------
    InputError
        For the reasons of :func:`select_images`, if no image passes the filters (nothing is
        written or deleted then), or for an invalid ``ood_id``.
    """
    names = _normalize_exclude(exclude_names)
    size = _check_min_size(min_size)
    _check_ood_id(ood_id)
    coco = load_coco(annotation_file)
    selection = usable_images(coco, images_dir, names, size, str(annotation_file))

    out = Path(out_dir)
    masks_dir = out / "masks"
    masks_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id in tqdm(selection.ids, desc="COCO OoD masks", unit="img", disable=not progress):
        mask = ood_mask(coco, image_id, ood_id=ood_id)
        write_png(masks_dir / mask_file_name(image_id), mask)
        rows.append(
            {
                "image_id": image_id,
                "file_name": image_file_name(image_id),
                "height": mask.shape[0],
                "width": mask.shape[1],
                "n_annotations": len(coco.imgToAnns.get(image_id, ())),
            }
        )
    _remove_stale_masks(masks_dir, {mask_file_name(i) for i in selection.ids})

    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    with atomic_path(out / "selected.csv") as tmp:
        table.to_csv(tmp, index=False)
    logger.info("wrote %d masks to %s and %s", len(table), masks_dir, out / "selected.csv")
    return table
