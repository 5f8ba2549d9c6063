"""Writing the demo data sets: the planned files, the folder's ownership record and :func:`generate`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from meta_ood import labels as L
from meta_ood.errors import InputError
from meta_ood.io import write_jpeg, write_png, write_text_atomic
from meta_ood.datasets.demo import smiyc as demo_smiyc
from meta_ood.datasets.demo.coco import _coco_header, render_coco
from meta_ood.datasets.demo.config import SPLITS, DemoConfig, demo_config_from_dict
from meta_ood.datasets.demo.naming import cityscapes_name, coco_image_id, fishyscapes_lostandfound_frames, fishyscapes_lostandfound_name, fishyscapes_name, lostandfound_name
from meta_ood.datasets.demo.scenes import fishyscapes_lostandfound_label, render_cityscapes, render_fishyscapes, render_lostandfound


#: Name of the completion marker written last into the output root.
MARKER_NAME = "DEMO_DATA.json"
#: Name of the ownership record written first into the output root (the folder is the generator's).
OWNER_NAME = "DEMO_DATA.owner.json"
_GENERATOR = "meta_ood.datasets.demo"
_FORMAT_VERSION = 1


def planned_files(out_root: str | Path, config: DemoConfig | None = None) -> list[Path]:
    """Every file that :func:`generate` writes for ``config`` under ``out_root`` (ownership record first, marker last)."""
    cfg = config or DemoConfig()
    out = Path(out_root)
    files: list[Path] = [out / OWNER_NAME]
    cs = out / "cityscapes"
    for split, n in (("train", cfg.n_train), ("val", cfg.n_val)):
        for i in range(n):
            city, base = cityscapes_name(split, i)
            files.append(cs / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png")
            files.append(cs / "gtFine" / split / city / f"{base}_gtFine_labelIds.png")
            if split in cfg.write_train_ids:
                files.append(cs / "gtFine" / split / city / f"{base}_gtFine_labelTrainIds.png")
    files.append(out / "coco" / "annotations" / "instances_train2017.json")
    for i in range(cfg.n_coco):
        files.append(out / "coco" / "train2017" / f"{coco_image_id(i):012d}.jpg")
    for i in range(cfg.n_lostandfound):
        scene, base = lostandfound_name(i)
        files.append(out / "lostandfound" / "leftImg8bit" / "test" / scene / f"{base}_leftImg8bit.png")
        files.append(out / "lostandfound" / "gtCoarse" / "test" / scene / f"{base}_gtCoarse_labelIds.png")
    for i in range(cfg.n_fishyscapes):
        name = fishyscapes_name(i)
        files.append(out / "fishyscapes" / "Static" / f"{name}.png")
        files.append(out / "fishyscapes" / "Static" / f"{name}.jpg")
    for i in fishyscapes_lostandfound_frames(cfg):
        files.append(out / "fishyscapes" / "LostAndFound" / fishyscapes_lostandfound_name(i))
    files += demo_smiyc.planned(out, cfg)
    files.append(out / MARKER_NAME)
    return files


def _recorded_config(path: Path) -> DemoConfig | None:
    """The config in an ownership record or marker written by this generator, else None."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("generator") != _GENERATOR:
            return None
        return demo_config_from_dict(data["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _claim(out: Path) -> list[DemoConfig]:
    """Check that ``out`` may be written; return the configs of earlier generations into it.

    A missing or empty folder is free; a non-empty one must hold this generator's ownership
    record or completion marker, else an InputError names it and nothing is touched.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; the demo data needs a folder of its own")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    configs = [c for c in (_recorded_config(out / OWNER_NAME), _recorded_config(out / MARKER_NAME)) if c is not None]
    if not configs:
        raise InputError(
            f"{out}: folder is not empty and was not created by the demo generator (it has no {OWNER_NAME} "
            f"or {MARKER_NAME} of the generator); refusing to write into it. Choose a new or empty folder "
            "for the demo data (config demo.root, or --out of 'meta-ood demo-data'); a demo folder written by an "
            "earlier version of meta-ood has no such record: remove it (make clean-demo) and it is written anew"
        )
    return configs


def _remove_stale(out: Path, cfg: DemoConfig, previous: list[DemoConfig]) -> int:
    """Remove the files earlier generations wrote that ``cfg`` does not produce; then the completion marker."""
    removed = 0
    keep = set(planned_files(out, cfg))
    for prev in previous:
        for path in planned_files(out, prev):
            if path not in keep and path.name not in (MARKER_NAME, OWNER_NAME) and path.is_file():
                path.unlink()
                removed += 1
    (out / MARKER_NAME).unlink(missing_ok=True)
    return removed


def _record(cfg: DemoConfig, **extra: Any) -> str:
    """The JSON text of an ownership record or marker: generator, format version, config and ``extra``."""
    return json.dumps({"generator": _GENERATOR, "format_version": _FORMAT_VERSION, "config": asdict(cfg), **extra},
                      indent=2, sort_keys=True) + "\n"


def _iter_jobs(cfg: DemoConfig) -> Iterator[tuple[str, int]]:
    """(kind, index) of every image in the order they are written."""
    for split, n in (("train", cfg.n_train), ("val", cfg.n_val)):
        for i in range(n):
            yield split, i
    for i in range(cfg.n_coco):
        yield "coco", i
    for i in range(cfg.n_lostandfound):
        yield "lostandfound", i
    for i in range(cfg.n_fishyscapes):
        yield "fishyscapes", i


def generate(out_root: str | Path, config: DemoConfig | None = None, progress: bool = True) -> dict:
    """Write the demo datasets under ``out_root``; returns the dataset roots and counts.

    ``out_root`` must be new, empty, or a folder this generator wrote before (it holds
    ``DEMO_DATA.owner.json`` or ``DEMO_DATA.json``); any other folder raises an InputError and is
    left untouched. Files of an earlier generation that ``config`` does not produce are removed.

    Parameters
    ----------
    out_root
        Output folder; ``cityscapes/``, ``coco/``, ``lostandfound/``, ``fishyscapes/``, ``smiyc/``,
        ``lostandfound_noknown/``, ``road_anomaly/``, ``DEMO_DATA.owner.json`` (first) and
        ``DEMO_DATA.json`` (last) are created in it.
    config
        Sizes and options (default :class:`DemoConfig`).
    progress
        Show a tqdm progress bar.

    Returns
    -------
    dict
        ``root``, ``cityscapes``, ``coco``, ``lostandfound``, ``fishyscapes``, ``smiyc``,
        ``lostandfound_noknown``, ``road_anomaly`` (folder paths as strings), ``marker`` (path of
        ``DEMO_DATA.json``) and ``counts`` (images per dataset and split, COCO annotations by
        encoding). The Fishyscapes LostAndFound set is the split ``LostAndFound`` of
        ``fishyscapes`` with its images under ``lostandfound``.
    """
    cfg = config or DemoConfig()
    if not isinstance(cfg, DemoConfig):
        raise InputError(f"generate expects a DemoConfig, got {type(cfg).__name__}")
    out = Path(out_root)
    previous = _claim(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the demo data folder ({exc})") from None
    _remove_stale(out, cfg, previous)
    write_text_atomic(out / OWNER_NAME, _record(cfg, note="written by the meta-ood demo generator, which may "
                                                         "regenerate this folder: it overwrites its own files and "
                                                         "removes those a new config does not produce"))
    roots = {name: out / name for name in ("cityscapes", "coco", "lostandfound", "fishyscapes", *demo_smiyc.ROOTS)}
    coco = _coco_header()
    coco_images: list[dict] = []
    coco_anns: list[dict] = []
    counts: dict[str, int] = {"cityscapes_train": 0, "cityscapes_val": 0, "coco_images": 0, "coco_annotations": 0,
                              "coco_polygon": 0, "coco_rle_uncompressed": 0, "coco_rle_compressed": 0,
                              "lostandfound": 0, "fishyscapes": 0, "fishyscapes_lostandfound": 0,
                              **dict.fromkeys(demo_smiyc.sizes(cfg), 0)}
    total = cfg.n_train + cfg.n_val + cfg.n_coco + cfg.n_lostandfound + cfg.n_fishyscapes
    total += sum(demo_smiyc.sizes(cfg).values())
    fs_laf = set(fishyscapes_lostandfound_frames(cfg))
    with tqdm(total=total, desc="demo data", unit="img", disable=not progress) as bar:
        for kind, i in _iter_jobs(cfg):
            bar.set_postfix_str(kind, refresh=False)
            if kind in SPLITS:
                img, ids = render_cityscapes(cfg, kind, i)
                city, base = cityscapes_name(kind, i)
                write_png(roots["cityscapes"] / "leftImg8bit" / kind / city / f"{base}_leftImg8bit.png", img)
                gt = roots["cityscapes"] / "gtFine" / kind / city
                write_png(gt / f"{base}_gtFine_labelIds.png", ids)
                if kind in cfg.write_train_ids:
                    write_png(gt / f"{base}_gtFine_labelTrainIds.png", L.CITYSCAPES_ID_TO_TRAIN[ids].astype(np.uint8))
                counts[f"cityscapes_{kind}"] += 1
            elif kind == "coco":
                img, entry, anns = render_coco(cfg, i)
                write_jpeg(roots["coco"] / "train2017" / entry["file_name"], img, quality=cfg.jpeg_quality)
                coco_images.append(entry)
                coco_anns.extend(anns)
                counts["coco_images"] += 1
                for ann in anns:
                    seg = ann["segmentation"]
                    key = "coco_polygon" if isinstance(seg, list) else ("coco_rle_uncompressed" if isinstance(seg["counts"], list) else "coco_rle_compressed")
                    counts[key] += 1
            elif kind == "lostandfound":
                img, lab = render_lostandfound(cfg, i)
                scene, base = lostandfound_name(i)
                write_png(roots["lostandfound"] / "leftImg8bit" / "test" / scene / f"{base}_leftImg8bit.png", img)
                write_png(roots["lostandfound"] / "gtCoarse" / "test" / scene / f"{base}_gtCoarse_labelIds.png", lab)
                counts["lostandfound"] += 1
                if i in fs_laf:
                    write_png(roots["fishyscapes"] / "LostAndFound" / fishyscapes_lostandfound_name(i),
                              fishyscapes_lostandfound_label(lab))
                    counts["fishyscapes_lostandfound"] += 1
            else:
                img, lab = render_fishyscapes(cfg, i)
                name = fishyscapes_name(i)
                write_png(roots["fishyscapes"] / "Static" / f"{name}.png", lab)
                write_jpeg(roots["fishyscapes"] / "Static" / f"{name}.jpg", img, quality=cfg.jpeg_quality)
                counts["fishyscapes"] += 1
            bar.update(1)
        for kind, i in demo_smiyc.jobs(cfg):
            bar.set_postfix_str(kind, refresh=False)
            demo_smiyc.write_frame(out, cfg, kind, i)
            counts[kind] += 1
            bar.update(1)
    demo_smiyc.write_frame_list(out, cfg)
    coco["images"] = coco_images
    coco["annotations"] = coco_anns
    counts["coco_annotations"] = len(coco_anns)
    write_text_atomic(roots["coco"] / "annotations" / "instances_train2017.json", json.dumps(coco, separators=(",", ":")))
    marker = out / MARKER_NAME
    write_text_atomic(marker, _record(cfg, counts=counts, datasets={name: name for name in roots}))
    return {"root": str(out), **{name: str(path) for name, path in roots.items()}, "marker": str(marker), "counts": counts}
