"""Segment stage: per-segment tables of a softmax store for every threshold, and the merge of image shards."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from meta_ood.errors import InputError
from meta_ood.io import read_json, read_parquet, write_json, write_parquet
from meta_ood.segment_eval import ComponentMetrics, overlap_table
from meta_ood.segments import segment_metrics_multi
from meta_ood.stages.layout import (
    SEGMENT_COMPONENTS, SEGMENT_IMAGES, SEGMENT_TABLE_SUFFIXES, segment_tables, threshold_tag,
)
from meta_ood.store import StoreReader, shard_range


def segment_features_stage(
    store_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    thresholds: Sequence[float],
    shard: tuple[int, int] | None = None,
    component_metrics: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Per-segment metrics of every image of a store for all thresholds in one pass over the store.

    Writes per threshold t (``tag`` = ``t<t>``): ``<tag>.parquet`` (one row per predicted OoD
    segment: the reference metrics plus ``image``, ``name``, ``segment`` and ``n_gt_in``, the number
    of its pixels annotated in-distribution, for the road miss rate), ``<tag>.gt.parquet`` (one row
    per ground-truth OoD component) and ``<tag>.overlaps.parquet`` (pixel overlaps of predicted and
    ground-truth segments, for FN counting after meta classification); plus ``images.parquet``
    (per image: in/OoD pixel counts) and ``components.json`` (SegmentMeIfYouCan component metrics
    per threshold). Only the labelled images are used (``image`` is the store position, so
    unlabelled test frames leave gaps). With ``shard=(i, n)`` only that image range is processed and the files go to
    ``out_dir/shard-<i>-of-<n>/``; :func:`merge_segment_shards` combines them.
    """
    reader = StoreReader(store_dir)
    conv = reader.convention
    if conv is None:
        raise InputError(f"{store_dir}: segment features need an OoD dataset (LostAndFound, Fishyscapes); this store has no in/out convention")
    thresholds = sorted({float(t) for t in thresholds})
    labelled = reader.labelled_or_raise()  # unlabelled test frames enter no table
    indices = labelled if shard is None else [labelled[k] for k in shard_range(len(labelled), *shard)]
    out = Path(out_dir) if shard is None else Path(out_dir) / f"shard-{shard[0]}-of-{shard[1]}"
    parts: dict[float, tuple[list[pd.DataFrame], ...]] = {t: ([], [], []) for t in thresholds}
    comps = {t: ([], []) for t in thresholds} if component_metrics else {}
    cm_probe = ComponentMetrics()
    images = []
    for i in tqdm(indices, desc="segments", disable=not progress, mininterval=1.0):
        img = reader.read(i, probs=True, logits=False)
        label = img.label
        in_mask = label == conv.train_id_in
        images.append({"image": i, "name": img.name, "height": label.shape[0], "width": label.shape[1],
                       "n_gt_in": int(in_mask.sum()), "n_gt_out": int((label == conv.train_id_out).sum())})
        per_t = segment_metrics_multi(img.probs, label, thresholds, ood_id=conv.train_id_out, void_id=conv.void_id)
        for t, (pred_df, pred_comp, gt_df, gt_comp) in per_t.items():
            n_pred = len(pred_df)
            seg = np.abs(pred_comp)
            n_gt_in = np.bincount(seg[in_mask].ravel(), minlength=n_pred + 1)[1:] if n_pred else np.zeros(0, int)
            pred_df = pred_df.assign(image=i, name=img.name, segment=np.arange(1, n_pred + 1), n_gt_in=n_gt_in)
            gt_df = gt_df.assign(image=i, name=img.name, segment=np.arange(1, len(gt_df) + 1))
            for table, rows in zip(parts[t], (pred_df, gt_df, overlap_table(pred_comp, gt_comp, image=i))):
                table.append(rows)
            if component_metrics:
                siou, ppv = cm_probe.update(seg > 0, label, conv.train_id_in, conv.train_id_out)
                comps[t][0].extend(np.asarray(siou, dtype=float).tolist())
                comps[t][1].extend(np.asarray(ppv, dtype=float).tolist())
    written = []
    for t in thresholds:
        tag = threshold_tag(t)
        for suffix, tables in zip(SEGMENT_TABLE_SUFFIXES, parts[t]):
            df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
            write_parquet(out / f"{tag}{suffix}", df)
            written.append(out / f"{tag}{suffix}")
    write_parquet(out / SEGMENT_IMAGES, pd.DataFrame(images))
    write_json(out / SEGMENT_COMPONENTS, {threshold_tag(t): _component_summary(*comps[t]) for t in comps})
    return written


def _component_summary(siou: Sequence[float], ppv: Sequence[float]) -> dict[str, Any]:
    """SegmentMeIfYouCan component metrics from per-component values (kept so that shards pool exactly)."""
    out: dict[str, Any] = {"siou_values": list(map(float, siou)), "ppv_values": list(map(float, ppv))}
    if len(siou) == 0:
        out.update({"n_gt": 0, "n_pred": len(ppv), "siou": None, "ppv": None, "f1_mean": None})
        return out
    r = ComponentMetrics.from_values(siou, ppv).result()
    out.update({"thresholds": r["thresholds"], "tp": r["tp"], "fn": r["fn"], "fp": r["fp"], "f1": r["f1"],
                "f1_mean": r["f1_mean"], "siou": r["siou_gt"], "ppv": r["ppv"], "n_gt": r["n_gt"], "n_pred": r["n_pred"]})
    return out


def merge_segment_shards(out_dir: str | os.PathLike, n_shards: int, thresholds: Sequence[float]) -> None:
    """Concatenate the per-shard segment tables of :func:`segment_features_stage` in image order."""
    out = Path(out_dir)
    shards = [out / f"shard-{i}-of-{n_shards}" for i in range(n_shards)]
    missing = [str(s) for s in shards if not (s / SEGMENT_IMAGES).is_file()]
    if missing:
        raise InputError(f"segment shards missing: {', '.join(missing)}")
    for name in segment_tables(sorted({float(x) for x in thresholds})):
        tables = [read_parquet(s / name) for s in shards]
        tables = [p for p in tables if len(p)]
        write_parquet(out / name, pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())
    values: dict[str, tuple[list[float], list[float]]] = {}
    for s in shards:
        for tag, summary in read_json(s / SEGMENT_COMPONENTS).items():
            acc = values.setdefault(tag, ([], []))
            acc[0].extend(summary["siou_values"])
            acc[1].extend(summary["ppv_values"])
    write_json(out / SEGMENT_COMPONENTS, {tag: _component_summary(*v) for tag, v in values.items()})
