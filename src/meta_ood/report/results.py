"""Reading and checking the result files the report is drawn from.

Every number of the report is read from the files the pipeline stages wrote
(:func:`meta_ood.stages.pixel_eval_stage`, :func:`~meta_ood.stages.meta_classify_stage`,
:func:`~meta_ood.stages.segment_eval_stage`); nothing is recomputed. A missing or malformed
file raises :class:`~meta_ood.errors.InputError` naming it, and so does a malformed list of
entries (the arguments of a table or figure).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.io import read_json

__all__ = [
    "ACCEPTABLE_FROM",
    "DATASET_NAMES",
    "check_entries",
    "component_values",
    "dataset_title",
    "finite_float",
    "finite_int",
    "load_result",
    "load_segment_eval",
    "parse_tag",
    "per_image_errors",
    "require",
    "slug",
    "unique_labels",
]

DATASET_NAMES = {
    "lostandfound": "LostAndFound",
    "fishyscapes_static": "Fishyscapes Static",
    "fishyscapes": "Fishyscapes",
    "fishyscapes_lostandfound": "Fishyscapes LostAndFound",
    "lostandfound_noknown": "LostAndFound-NoKnown",
    "smiyc_anomaly": "SMIYC AnomalyTrack",
    "smiyc_obstacle": "SMIYC ObstacleTrack",
    "road_anomaly": "Road Anomaly",
    "cityscapes_val": "Cityscapes val",
    "cityscapes_void": "Cityscapes val (void as OoD)",
    "cityscapes": "Cityscapes",
}
ACCEPTABLE_FROM = 0.3  # paper section 6.3: thresholds t >= 0.3 cost an acceptable loss of mIoU


def dataset_title(name: str | None) -> str:
    """Display name of a dataset key ("lostandfound" -> "LostAndFound")."""
    if name is None:
        return ""
    return DATASET_NAMES.get(str(name), str(name))


def slug(label: str) -> str:
    """CSV column prefix of a row/column label: "OoD training" -> "ood_training"."""
    s = re.sub(r"[^0-9a-z]+", "_", str(label).lower()).strip("_")
    return s or "x"


def load_result(path: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """Read one result JSON; InputError naming the file when it is missing, broken or of another kind.

    ``kind``: the expected ``kind`` field of a pixel-evaluation JSON ("ood" or "miou").
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if kind is not None and data.get("kind") != kind:
        what = {"ood": "the pixel evaluation of an OoD dataset (LostAndFound, Fishyscapes)",
                "miou": "the pixel evaluation of Cityscapes val (mIoU)"}.get(kind, kind)
        raise InputError(f"{path}: expected {what} with kind {kind!r}, got kind {data.get('kind')!r}")
    return data


def require(data: Mapping[str, Any], key: str, path: str | os.PathLike, what: str = "") -> Any:
    """``data[key]``; InputError naming the file (and what the key holds) when it is absent."""
    if key not in data:
        raise InputError(f"{path}: lacks {key!r}{' ' + what if what else ''}")
    return data[key]


def parse_tag(tag: str, where: str = "") -> float:
    """Threshold of a file tag: "t0.3" -> 0.3."""
    m = re.fullmatch(r"t([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", str(tag))
    if not m:
        raise InputError(f"{where + ': ' if where else ''}threshold tag {tag!r}: expected 't<threshold>' such as 't0.3'")
    return float(m.group(1))


def check_entries(entries: Any, keys: Sequence[str], what: str, allow_empty: bool = False) -> list[dict[str, Any]]:
    """The entries of a table or figure as a list of dicts, each with ``keys``; InputError otherwise."""
    if isinstance(entries, Mapping):
        entries = [entries]
    if entries is None:
        entries = []
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise InputError(f"{what} #{i}: expected a mapping with keys {list(keys)}, got {type(e).__name__}")
        missing = [k for k in keys if k not in e]
        if missing:
            raise InputError(f"{what} #{i} ({dict(e)!r}) lacks {', '.join(map(repr, missing))}")
        out.append(dict(e))
    if not out and not allow_empty:
        raise InputError(f"no {what}s given: nothing to report")
    return out


def unique_labels(entries: Sequence[Mapping[str, Any]], what: str) -> None:
    """InputError when two entries of table ``what`` share a label (their CSV columns would collide)."""
    seen = set()
    for e in entries:
        if str(e["label"]) in seen:
            raise InputError(f"{what}: label {e['label']!r} appears twice ({e['path']})")
        seen.add(str(e["label"]))


def finite_float(value: Any) -> float | None:
    """A finite float, or None for null / NaN / non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def finite_int(value: Any) -> int | None:
    """The nearest integer of a finite number, or None (as :func:`finite_float`)."""
    v = finite_float(value)
    return None if v is None else int(round(v))


def _thresholds_of(data: Mapping[str, Any], path: Any) -> dict[float, dict[str, Any]]:
    per_t = require(data, "thresholds", path, "(per-threshold results of segment_eval)")
    if not isinstance(per_t, Mapping):
        raise InputError(f"{path}: 'thresholds' must map tags such as 't0.3' to results")
    out = {}
    for tag, value in per_t.items():
        if not isinstance(value, Mapping):
            raise InputError(f"{path}: thresholds[{tag!r}] must be an object")
        out[parse_tag(tag, str(path))] = dict(value)
    return out


def load_segment_eval(entries: Sequence[Mapping[str, Any]]) -> tuple[list[dict[float, dict[str, Any]]], list[float]]:
    """Per entry the segment_eval results by threshold, and all thresholds of the entries in order."""
    per_entry = [_thresholds_of(load_result(e["path"]), e["path"]) for e in entries]
    thresholds = sorted({t for d in per_entry for t in d})
    if not thresholds:
        raise InputError(f"{entries[0]['path']}: no thresholds evaluated")
    return per_entry, thresholds


def component_values(comp: Any) -> dict[str, Any]:
    """sIoU (mean over ground-truth components), PPV (mean over predicted components), mean F1,
    n_gt, n_pred of one ``components`` entry of a segment_eval JSON (None where unknown).

    Accepts the single-pass summary (``siou`` as the per-component values or their mean, or
    ``siou_gt``) and the merged per-shard form ``{"per_shard": [...]}``: sIoU and PPV are pooled
    exactly (component counts as weights), mean F1 only when the shards carry their TP/FN/FP
    counts or there is a single shard.
    """
    empty = {"siou": None, "ppv": None, "f1_mean": None, "n_gt": None, "n_pred": None}
    if not isinstance(comp, Mapping):
        return empty
    if "per_shard" in comp:
        shards = [s for s in comp["per_shard"] if isinstance(s, Mapping)]
        if not shards:
            return empty
        if len(shards) == 1:
            return component_values(shards[0])
        vals = [component_values(s) for s in shards]
        n_gt = sum(v["n_gt"] or 0 for v in vals)
        n_pred = sum(v["n_pred"] or 0 for v in vals)
        siou = _weighted([(v["siou"], v["n_gt"]) for v in vals])
        ppv = _weighted([(v["ppv"], v["n_pred"]) for v in vals])
        f1_mean = None
        if all(all(k in s for k in ("tp", "fn", "fp")) for s in shards):
            tp = np.sum([np.asarray(s["tp"], float) for s in shards], axis=0)
            fn = np.sum([np.asarray(s["fn"], float) for s in shards], axis=0)
            fp = np.sum([np.asarray(s["fp"], float) for s in shards], axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                f1_mean = finite_float(np.mean(2 * tp / (2 * tp + fn + fp)))
        return {"siou": siou, "ppv": ppv, "f1_mean": f1_mean, "n_gt": n_gt, "n_pred": n_pred}
    if "siou_gt" in comp:
        siou = finite_float(comp["siou_gt"])
    elif isinstance(comp.get("siou"), (list, tuple)):
        arr = np.asarray([np.nan if x is None else x for x in comp["siou"]], dtype=float)
        siou = finite_float(np.nanmean(arr)) if np.isfinite(arr).any() else None
    else:
        siou = finite_float(comp.get("siou"))
    return {"siou": siou, "ppv": finite_float(comp.get("ppv")), "f1_mean": finite_float(comp.get("f1_mean")),
            "n_gt": finite_int(comp.get("n_gt")), "n_pred": finite_int(comp.get("n_pred"))}


def _weighted(pairs: Sequence[tuple[float | None, int | None]]) -> float | None:
    num = den = 0.0
    for v, w in pairs:
        if v is not None and w:
            num += v * w
            den += w
    return num / den if den > 0 else None


def unique(seq: Iterable[Any]) -> list[Any]:
    """The items of ``seq`` without repeats, in order of first appearance (unhashable items too)."""
    out = []
    for x in seq:
        if x not in out:
            out.append(x)
    return out


def per_image_errors(r: Mapping[str, Any], when: str) -> list[int] | None:
    """FP + FN per image of one threshold's segment_eval result, ``when`` "before" / "after" (None when the
    result has no per-image counts)."""
    counts = r.get("per_image") or {}
    fp, fn = counts.get(f"fp_{when}"), counts.get(f"fn_{when}")
    if fp is None or fn is None:
        return None
    return [int(a) + int(b) for a, b in zip(fp, fn)]
