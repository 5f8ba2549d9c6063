"""SegmentMeIfYouCan-, LostAndFound-NoKnown- and Road-Anomaly-format demo sets: names, files, writing.

Layouts (``V`` = the first ``n_smiyc_validation`` frames of a track, the only ones with labels)::

    <out>/smiyc/dataset_AnomalyTrack/images/<fid>.jpg
    <out>/smiyc/dataset_AnomalyTrack/labels_masks/<fid>_labels_semantic.png         (V; 0 / 1 / 255)
    <out>/smiyc/dataset_AnomalyTrack/labels_masks/<fid>_labels_semantic_color.png   (V; a rendering)
    <out>/smiyc/dataset_ObstacleTrack/images/<fid>.webp              (+ the same label files for V)
    <out>/lostandfound_noknown/leftImg8bit/test/<scene>/<base>_leftImg8bit.png
    <out>/lostandfound_noknown/gtCoarse/test/<scene>/<base>_gtCoarse_labelIds.png
    <out>/road_anomaly/frame_list.json
    <out>/road_anomaly/frames/<name>.jpg | .webp      (alternating)
    <out>/road_anomaly/frames/<name>.labels/labels_semantic.png      (0 / 2 anomaly / 255)

Content: AnomalyTrack and Road Anomaly frames are drawn by the Fishyscapes-Static renderer
(street scenes with pasted foreign objects), ObstacleTrack and NoKnown frames by the LostAndFound
renderer (obstacles on the road; ObstacleTrack labels: 0 road, 1 obstacle, 255 off the road).
ObstacleTrack validation frames are named ``validation_<i>``, the others ``<scene>_demo_<i>`` with
the benchmark's test scenes ``gravel`` and ``motorway`` and the snowstorm scene that only ``all``
lists. The NoKnown demo is a LostAndFound-format test split of its own whose frames cycle through
the demo scene ``01_Demo_Ring_1`` (kept), the excluded scene ``15_Rechbergstr_Deckenpfronn`` and
sequences 3 (kept) and 4 (excluded) of ``10_Schlossberg_9``, so the NoKnown filter has frames to
remove. Every image is drawn from a seed of its own, derived from ``(seed, set, index)``: the
other demo sets do not change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from meta_ood import labels as L
from meta_ood.datasets.demo.config import DemoConfig
from meta_ood.datasets.demo.scenes import fishyscapes_lostandfound_label, render_fishyscapes, render_lostandfound
from meta_ood.io import atomic_path, write_jpeg, write_png, write_text_atomic

#: Dataset roots below the demo folder.
ROOTS = ("smiyc", "lostandfound_noknown", "road_anomaly")
#: The sets, in the order they are written, with the stream id of their per-image seeds.
_STREAMS = {"smiyc_anomaly": 51, "smiyc_obstacle": 61, "lostandfound_noknown": 71, "road_anomaly": 81}
_OBSTACLE_SCENES = ("gravel", "motorway", "snowstorm1")
_ROAD_ANOMALY_LABEL = 2
_COLOURS = np.zeros((256, 3), dtype=np.uint8)
_COLOURS[L.FISHYSCAPES.train_id_in] = (90, 90, 90)
_COLOURS[L.FISHYSCAPES.train_id_out] = (255, 120, 0)


def sizes(cfg: DemoConfig) -> dict[str, int]:
    """Number of images of each set."""
    return {"smiyc_anomaly": cfg.n_smiyc_anomaly, "smiyc_obstacle": cfg.n_smiyc_obstacle,
            "lostandfound_noknown": cfg.n_lostandfound_noknown, "road_anomaly": cfg.n_road_anomaly}


def jobs(cfg: DemoConfig) -> Iterator[tuple[str, int]]:
    """(set, index) of every image, in the order they are written."""
    for kind, n in sizes(cfg).items():
        for i in range(n):
            yield kind, i


def noknown_name(index: int) -> tuple[str, str]:
    """(scene, frame base name) of NoKnown-demo frame ``index``: kept, excluded scene, kept or excluded sequence."""
    slot, k = index % 3, index // 3
    scene, seq = (("01_Demo_Ring_1", k), ("15_Rechbergstr_Deckenpfronn", k), ("10_Schlossberg_9", 3 + k % 2))[slot]
    return scene, f"{scene}_{seq:06d}_{30 + 10 * index:06d}"


def road_anomaly_file(index: int) -> str:
    """Image file name of Road-Anomaly-format frame ``index`` (JPEG and WebP in turn)."""
    return f"anomaly{index:02d}_demo_road.{'jpg' if index % 2 == 0 else 'webp'}"


def frame_files(out: Path, cfg: DemoConfig, kind: str, index: int) -> dict[str, Path]:
    """The files of one image: ``image`` and, where written, ``label`` and its ``color`` rendering."""
    if kind in ("smiyc_anomaly", "smiyc_obstacle"):
        labelled = index < cfg.n_smiyc_validation
        if kind == "smiyc_anomaly":
            track, ext = out / "smiyc" / "dataset_AnomalyTrack", "jpg"
            fid = f"{'validation' if labelled else 'anomaly'}{index:04d}"
        else:
            track, ext = out / "smiyc" / "dataset_ObstacleTrack", "webp"
            scene = _OBSTACLE_SCENES[(index - cfg.n_smiyc_validation) % len(_OBSTACLE_SCENES)]
            fid = f"validation_{index}" if labelled else f"{scene}_demo_{index}"
        files = {"image": track / "images" / f"{fid}.{ext}"}
        if labelled:
            files["label"] = track / "labels_masks" / f"{fid}_labels_semantic.png"
            files["color"] = track / "labels_masks" / f"{fid}_labels_semantic_color.png"
        return files
    if kind == "lostandfound_noknown":
        scene, base = noknown_name(index)
        root = out / "lostandfound_noknown"
        return {"image": root / "leftImg8bit" / "test" / scene / f"{base}_leftImg8bit.png",
                "label": root / "gtCoarse" / "test" / scene / f"{base}_gtCoarse_labelIds.png"}
    name = road_anomaly_file(index)
    frames = out / "road_anomaly" / "frames"
    return {"image": frames / name, "label": frames / f"{Path(name).stem}.labels" / "labels_semantic.png"}


def planned(out: Path, cfg: DemoConfig) -> list[Path]:
    """Every file these sets write under ``out``."""
    files = [path for kind, i in jobs(cfg) for path in frame_files(out, cfg, kind, i).values()]
    return files + [out / "road_anomaly" / "frame_list.json"]


def _own_config(cfg: DemoConfig, kind: str, index: int) -> DemoConfig:
    """``cfg`` with the seed of image ``index`` of ``kind``: the renderers draw its image 0 from it."""
    seed = int(np.random.SeedSequence([cfg.seed, _STREAMS[kind], index]).generate_state(1)[0])
    return dataclasses.replace(cfg, seed=seed)


def _write_image(path: Path, img: np.ndarray, quality: int) -> None:
    """Write an RGB image as PNG, JPEG or WebP (by the file suffix), atomically."""
    if path.suffix == ".png":
        write_png(path, img)
    elif path.suffix == ".jpg":
        write_jpeg(path, img, quality=quality)
    else:
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="WEBP", quality=quality)


def write_frame(out: Path, cfg: DemoConfig, kind: str, index: int) -> None:
    """Render image ``index`` of ``kind`` and write its files."""
    own = _own_config(cfg, kind, index)
    if kind in ("smiyc_obstacle", "lostandfound_noknown"):
        img, lab = render_lostandfound(own, 0)
        if kind == "smiyc_obstacle":
            lab = fishyscapes_lostandfound_label(lab)
    else:
        img, lab = render_fishyscapes(own, 0)
        if kind == "road_anomaly":
            lab = np.where(lab == L.FISHYSCAPES.train_id_out, _ROAD_ANOMALY_LABEL, lab).astype(np.uint8)
    files = frame_files(out, cfg, kind, index)
    _write_image(files["image"], img, cfg.jpeg_quality)
    if "label" in files:
        write_png(files["label"], lab)
    if "color" in files:
        write_png(files["color"], _COLOURS[lab])


def write_frame_list(out: Path, cfg: DemoConfig) -> None:
    """Write the Road Anomaly ``frame_list.json``: the image file names."""
    names = [road_anomaly_file(i) for i in range(cfg.n_road_anomaly)]
    write_text_atomic(out / "road_anomaly" / "frame_list.json", json.dumps(names, indent=1) + "\n")
