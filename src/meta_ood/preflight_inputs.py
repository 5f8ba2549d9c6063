"""Start-up checks of single inputs a run configuration names, beyond a dataset's first image/label pair.

Helpers of :mod:`meta_ood.preflight`, each returning one-line problems ``<file or config key>: <what is
wrong> (<what to do>)``:

* the COCO annotation file: its category names, read cheaply from the end of the file, or the whole file
  parsed once to count the images that pass ``coco_filter`` (the selection of :mod:`meta_ood.coco_filter`);
* the ROI masks of LostAndFound / LostAndFound-NoKnown: present, binary, of the label size;
* third-party SMIYC score files: one per labelled frame, a 2-D float16/float32 ``value`` of the frame's
  label size, read from HDF5 and image headers only;
* class counts: ``models.<name>.num_classes`` against the Cityscapes train ids, ``coco_filter.ood_id`` and
  the output layer of a checkpoint;
* values listed twice in any list of the configuration (lists of the schema, not fixed-length tuples).
"""

from __future__ import annotations

import difflib
import functools
import json
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from PIL import Image

from meta_ood import labels as L
from meta_ood.datasets.base import SegmentationDataset, require_dir
from meta_ood.datasets.lostandfound import LostAndFound
from meta_ood.datasets.smiyc import read_roi
from meta_ood.errors import InputError
from meta_ood.io import read_rgb

__all__ = [
    "check_coco_names",
    "check_coco_tree",
    "check_roi",
    "checkpoint_class_count",
    "class_count_problems",
    "coco_category_names",
    "coco_problems",
    "duplicate_problems",
    "labelled_frames",
    "smiyc_score_problems",
    "unknown_coco_names",
]

#: How many bytes at the end of a COCO annotation file are searched for its ``categories`` list.
_TAIL_BYTES = 1 << 20
#: How many valid names an unknown-name message shows; how many frame ids a missing-score message shows.
_SHOW_NAMES = 8
_SHOW_FRAMES = 5
_REDOWNLOAD = "the file is damaged or truncated: unpack the COCO annotations again"


# ------------------------------------------------------------------------------------ COCO


def _first_jpeg(folder: Path) -> Path | None:
    """The alphabetically first ``*.jpg`` directly in ``folder`` (one directory scan, no sort of paths)."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.endswith(".jpg") and e.is_file()]
    return folder / min(names) if names else None


def check_coco_tree(root: Path, split: str) -> list[str]:
    """Root, image folder, annotation file and a readable first image of a COCO tree (json not parsed)."""
    try:
        require_dir(root, "COCO root")
        images = require_dir(root / split, f"COCO '{split}' images")
    except InputError as exc:
        return [str(exc)]
    problems = []
    annotations = root / "annotations" / f"instances_{split}.json"
    if not annotations.is_file():
        problems.append(f"{annotations}: COCO annotation file not found (expected annotations/instances_<split>.json)")
    first = _first_jpeg(images)
    if first is None:
        problems.append(f"{images}: no '*.jpg' images found (expected <image_id:012d>.jpg files)")
    else:
        try:
            read_rgb(first)
        except InputError as exc:
            problems.append(str(exc))
    return problems


def _categories_from_tail(path: Path) -> list | None:
    """The top-level ``categories`` list when it is the last key of the file (as in official COCO), else None."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - _TAIL_BYTES))
        tail = fh.read().decode("utf-8", errors="replace")
    at = tail.rfind('"categories"')
    if at < 0:
        return None
    rest = tail[at + len('"categories"'):].lstrip()
    if not rest.startswith(":"):
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(rest[1:].lstrip())
    except ValueError:
        return None
    remainder = rest[1:].lstrip()[end:]
    # only the closing brace of the top-level object may follow, else the key was nested or not last
    if remainder.strip() != "}" or not isinstance(value, list):
        return None
    return value


def coco_category_names(annotation_file: str | os.PathLike) -> list[str]:
    """Category names of a COCO instances file, read cheaply.

    Official COCO files end with their ``categories`` list; it is decoded from the last MiB of the
    file, so the 450 MB ``instances_train2017.json`` costs milliseconds. Any other layout falls
    back to parsing the whole file.

    Raises
    ------
    InputError
        If the file is missing or unreadable, is not valid JSON or has no ``categories`` list of objects.
    """
    path = Path(annotation_file)
    if not path.is_file():
        raise InputError(f"{path}: COCO annotation file not found (expected an instances_<split>.json file)")
    try:
        categories = _categories_from_tail(path)
        if categories is None:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            categories = data.get("categories") if isinstance(data, dict) else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid JSON file ({exc}; {_REDOWNLOAD})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the COCO annotation file ({exc.strerror or exc}; "
                         "check its permissions)") from None
    if not isinstance(categories, list) or not all(isinstance(c, dict) and "name" in c for c in categories):
        raise InputError(f"{path}: not a COCO instances file; expected a 'categories' list of objects with a 'name'")
    return [str(c["name"]) for c in categories]


def unknown_coco_names(valid: list[str], names: Iterable[str], source: str | os.PathLike) -> list[str]:
    """One problem (or none) if any of ``names`` is not among the ``valid`` category names of ``source``.

    The message lists the unknown names, the closest valid names and a few others.
    """
    known = set(valid)
    unknown = [n for n in names if n not in known]
    if not unknown:
        return []
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), valid, n=2)
        hints.append(f"{name!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
    shown = ", ".join(repr(v) for v in valid[:_SHOW_NAMES]) + (", ..." if len(valid) > _SHOW_NAMES else "")
    return [f"{source}: {', '.join(hints)} not among the {len(valid)} category names of this file "
            f"(valid names: {shown})"]


def check_coco_names(annotation_file: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Problems if the COCO annotation file cannot be read or any of ``names`` is not one of its category names."""
    try:
        valid = coco_category_names(annotation_file)
    except InputError as exc:
        return [str(exc)]
    return unknown_coco_names(valid, names, annotation_file)


def coco_problems(root: str | os.PathLike, split: str, options: Mapping[str, Any], parse: bool) -> list[str]:
    """Problems of a COCO tree's annotation file under the ``coco_filter`` options of a run.

    Without ``parse`` only the ``exclude`` names are looked up (in the file's tail). With it, the
    file is parsed once (:func:`meta_ood.coco_filter.load_coco`: seconds and a few GB for the
    450 MB ``instances_train2017.json``) and the images passing ``min_size`` and ``exclude`` are
    counted with :func:`meta_ood.coco_filter.usable_images`, the selection ``coco_filter`` makes;
    the count is printed on stderr. A missing file is left to :func:`check_coco_tree`.
    """
    annotations = Path(root) / "annotations" / f"instances_{split}.json"
    if not annotations.is_file():
        return []
    exclude = list(options.get("exclude") or [])
    if not parse:
        if not exclude:
            return []
        try:
            valid = coco_category_names(annotations)
        except InputError as exc:
            return [f"datasets.coco: {exc}"]
        return [f"coco_filter.exclude: {p}" for p in unknown_coco_names(valid, exclude, annotations)]
    from meta_ood.coco_filter import DEFAULT_MIN_SIZE

    # parsed in a child process: the gigabytes of the parse are returned to the system when it ends,
    # not kept by the long-running Snakemake process that calls the start-up checks
    min_size = options.get("min_size", DEFAULT_MIN_SIZE)
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            problems, count = pool.submit(_parsed_coco_problems, str(annotations), str(Path(root) / split), exclude,
                                          min_size).result()
    except BrokenProcessPool:
        return [f"datasets.coco: {annotations}: parsing it ended the checking process (out of memory? it needs a few "
                "GB for instances_train2017.json; free memory and run again)"]
    if count:
        print(count, file=sys.stderr)
    return problems


def _parsed_coco_problems(annotations: str, images: str, exclude: list[str], min_size: int) -> tuple[list[str], str]:
    """:func:`coco_problems` with the file parsed: (unknown names, no usable image or damaged file; the count line)."""
    from meta_ood.coco_filter import load_coco, usable_images

    try:
        coco = load_coco(annotations)
    except InputError as exc:
        return [f"datasets.coco: {exc}"], ""
    valid = [str(c.get("name")) for c in coco.cats.values()]
    unknown = unknown_coco_names(valid, exclude, annotations)
    if unknown:
        return [f"coco_filter.exclude: {p}" for p in unknown], ""
    try:
        selection = usable_images(coco, Path(images), exclude, min_size, annotations)
    except InputError as exc:
        return [f"datasets.coco: {exc}"], ""
    return [], (f"meta-ood: {annotations}: {len(selection.ids)} of {selection.n_on_disk} COCO images on disk pass "
                f"coco_filter (min_size {min_size}, {len(exclude)} excluded classes)")


# ------------------------------------------------------------------------------------ ROI masks


def _first_label(root: str | os.PathLike, split: str | None) -> Path | None:
    """The label file of the first LostAndFound frame of ``split`` (listing only), or None if it cannot be listed."""
    try:
        first = LostAndFound(root, split).samples[0]
    except (InputError, OSError, IndexError):
        return None  # the dataset check reports it (or the demo writes it later)
    return first.label_ids or first.train_ids


def check_roi(key: str, roi: str | os.PathLike, root: str | os.PathLike, split: str | None) -> list[str]:
    """Problems of a LostAndFound ROI mask: missing, unreadable, not binary, or not the size of the first label.

    ``key`` is the config key named in the message (``datasets.lostandfound.roi``); the label size is
    read from the header of the first frame's label of the LostAndFound tree at ``root``.
    """
    path = Path(roi)
    fix = "give a binary mask image of the label size, 0 outside and 1 or 255 inside, or null for none"
    if not path.is_file():
        return [f"{key}: {path}: ROI mask file not found ({fix})"]
    try:
        mask = read_roi(path)
    except InputError as exc:
        return [f"{key}: {exc} ({fix})"]
    label = _first_label(root, split)
    if label is None:
        return []
    try:
        with Image.open(label) as img:
            width, height = img.size
    except OSError:
        return []  # an unreadable first label is the dataset check's problem
    if mask.shape != (height, width):
        return [f"{key}: {path}: ROI mask size {mask.shape[1]}x{mask.shape[0]} does not match the label size "
                f"{width}x{height} of {label} (width x height) (give a mask of the label size)"]
    return []


# ------------------------------------------------------------------------------------ SMIYC score files


def labelled_frames(dataset: SegmentationDataset) -> dict[str, Path]:
    """Frame id -> label file of every labelled frame of a reader (``labelled_names`` of the SMIYC tracks)."""
    names = set(getattr(dataset, "labelled_names", [s.name for s in dataset.samples]))
    return {s.name: s.train_ids or s.label_ids for s in dataset.samples
            if s.name in names and (s.train_ids or s.label_ids) is not None}


def _score_header(path: Path) -> tuple[tuple[int, ...], str] | str:
    """(shape, dtype name) of a score file's ``value`` dataset read from its header, or why it cannot be read."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            value = fh.get("value")
            if not isinstance(value, h5py.Dataset):
                return f"no dataset 'value' (found {sorted(fh.keys())})"
            return tuple(value.shape), value.dtype.name
    except OSError as exc:
        return f"cannot read as HDF5 ({exc})"


def _label_shape(path: Path) -> tuple[int, int] | None:
    """(height, width) of a label image from its header, or None if it cannot be opened."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except OSError:
        return None


def smiyc_score_problems(key: str, folder: Path, dataset: str, frames: Mapping[str, Path]) -> list[str]:
    """Problems of a third-party method's score folder against the labelled frames of a dataset.

    Every frame of ``frames`` (frame id -> label file) needs ``<fid>.hdf5`` in ``folder`` holding a 2-D
    float16/float32 dataset ``value`` of the label's size; only HDF5 and image headers are read. One
    line per kind of problem: the first offending file and how many more.
    """
    from meta_ood.smiyc.scorefiles import SCORE_DTYPES, SCORE_SUFFIX

    present = {p.name[: -len(SCORE_SUFFIX)]: p for p in folder.glob(f"*{SCORE_SUFFIX}")}
    missing = sorted(fid for fid in frames if fid not in present)
    bad: dict[str, list[tuple[Path, str]]] = {"read": [], "type": [], "size": []}
    for fid in sorted(set(frames) & set(present)):
        header = _score_header(present[fid])
        if isinstance(header, str):
            bad["read"].append((present[fid], header))
            continue
        shape, dtype = header
        if len(shape) != 2 or dtype not in SCORE_DTYPES:
            bad["type"].append((present[fid], f"'value' is {dtype} of shape {shape}, expected a 2-D "
                                              f"{' or '.join(SCORE_DTYPES)} map"))
            continue
        expected = _label_shape(frames[fid])
        if expected is not None and shape != expected:
            bad["size"].append((present[fid], f"'value' has shape {shape}, but the label {frames[fid]} of frame "
                                              f"{fid!r} has shape {expected} (height, width)"))
    problems = []
    if missing:
        shown = ", ".join(missing[:_SHOW_FRAMES]) + (", ..." if len(missing) > _SHOW_FRAMES else "")
        problems.append(f"{key}: {folder}: no score file for {len(missing)} of the {len(frames)} labelled frames of "
                        f"{dataset}: {shown} (write <fid>{SCORE_SUFFIX} for every labelled frame, <fid> being "
                        "its image name without extension)")
    fixes = {"read": "write each score map as the HDF5 dataset 'value', as the benchmark's tooling does",
             "type": "store each score map as a 2-D float16 or float32 array",
             "size": "write score maps at the frame's full resolution"}
    checked = len(set(frames) & set(present))
    for kind, rows in bad.items():
        if rows:
            (first, why), more = rows[0], len(rows) - 1
            also = f"; so do {more} more of the {checked} score files of {dataset}" if more else ""
            problems.append(f"{key}: {first}: {why}{also} ({fixes[kind]})")
    return problems


# ------------------------------------------------------------------------------------ class counts


def class_count_problems(config: Mapping) -> list[str]:
    """Problems of ``models.<name>.num_classes``: fewer classes than the Cityscapes train ids every model is
    fine-tuned and evaluated on, or a class id that collides with ``coco_filter.ood_id``."""
    needed = int(max(v for v in L.CITYSCAPES_TRAIN_VALUES if v != L.VOID_ID)) + 1
    ood_id = (config.get("coco_filter") or {}).get("ood_id")
    problems = []
    for name, model in (config.get("models") or {}).items():
        n = int(model.get("num_classes", L.NUM_CLASSES))
        if n < needed:
            problems.append(f"models.{name}.num_classes={n}: the Cityscapes labels the model is fine-tuned and "
                            f"evaluated on have train ids 0..{needed - 1} (set models.{name}.num_classes to {needed})")
        if ood_id is not None and int(ood_id) < n:
            fix = (f"set coco_filter.ood_id to one of {n}..254" if n <= 254
                   else f"lower models.{name}.num_classes to at most 254")
            problems.append(f"coco_filter.ood_id={ood_id} is a class id of models.{name} (num_classes {n}): the "
                            f"OoD pixels of the proxies need an id that is no class ({fix})")
    return problems


def checkpoint_class_count(model_sd: Mapping[str, Any], ckpt_sd: Mapping[str, Any], num_classes: int) -> int | None:
    """The class count a checkpoint's output layer suggests when its tensors differ from the model's only there.

    A candidate: the checkpoint tensors whose name (wrapper prefixes aside) is a model tensor with
    ``num_classes`` rows agree on another row count. The caller confirms it by comparing the
    checkpoint with the network built for that many classes.
    """
    from meta_ood.models.checkpoint import _common_prefix

    def bare(keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        cut = len(_common_prefix(keys))  # wrapper prefixes such as module.
        return {k[cut:]: k for k in keys}

    model_keys, ckpt_keys = bare(model_sd), bare(ckpt_sd)
    found = set()
    for name, key in ckpt_keys.items():
        target = model_keys.get(name)
        if target is None:
            continue
        m, c = tuple(model_sd[target].shape), tuple(ckpt_sd[key].shape)
        if m != c and len(m) == len(c) >= 1 and m[0] == num_classes and m[1:] == c[1:]:
            found.add(int(c[0]))
    return found.pop() if len(found) == 1 else None


# ------------------------------------------------------------------------------------ lists


@functools.cache
def _schema() -> dict:
    from meta_ood.config import load_schema

    return load_schema()


def _types(schema: Mapping) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _code(item: Any) -> str:
    """A list item as comparable text: numbers by value (``1`` and ``1.0`` alike), anything else as JSON."""
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return repr(float(item))
    return json.dumps(item, sort_keys=True)


def _repeated(value: Any, schema: Mapping, path: tuple[str, ...]) -> Iterator[tuple[str, Any, int]]:
    """(dotted key, value, count) of every value listed more than once in a list of ``value`` the schema calls
    an array; fixed-length arrays (``minItems == maxItems``: crops, size filters, windows) are tuples, not lists."""
    if isinstance(value, Mapping):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, sub in value.items():
            below = props.get(key, extra if isinstance(extra, Mapping) else None)
            if below is not None:
                yield from _repeated(sub, below, (*path, str(key)))
    elif isinstance(value, list):
        options = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
        array = next((s for s in options if "array" in _types(s)), None)
        if array is None or (array.get("minItems") is not None and array.get("minItems") == array.get("maxItems")):
            return
        counts = Counter(_code(v) for v in value)
        seen = set()
        for item in value:
            code = _code(item)
            if counts[code] > 1 and code not in seen:
                seen.add(code)
                yield ".".join(path), item, counts[code]


def duplicate_problems(config: Mapping, schema: Mapping | None = None) -> list[str]:
    """One problem per value listed more than once in a list-valued key of ``config`` (walked along the schema)."""
    return [f"{key}: {item!r} is listed {count} times (list each value once)"
            for key, item, count in _repeated(config, schema or _schema(), ())]
