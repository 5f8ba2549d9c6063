"""Names of the files the stages write, shared by the stages and the workflow.

Free of third-party imports, so that Snakemake can read it while parsing the workflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: Per-threshold tables of a segments folder, ``<tag><suffix>``: predicted segments, ground-truth
#: segments and their pixel overlaps.
SEGMENT_TABLE_SUFFIXES = (".parquet", ".gt.parquet", ".overlaps.parquet")
#: Per-image pixel counts of a segments folder.
SEGMENT_IMAGES = "images.parquet"
#: SegmentMeIfYouCan component metrics of a segments folder, per threshold tag.
SEGMENT_COMPONENTS = "components.json"


def threshold_tag(t: float) -> str:
    """File-name tag of a threshold: 0.3 -> 't0.3' (shortest round-trip form)."""
    return f"t{float(t):g}"


def segment_tables(thresholds: Iterable[float]) -> list[str]:
    """File names of the tables of a segments folder: those of each threshold, in the given order, then the image table."""
    return [f"{threshold_tag(t)}{suffix}" for t in thresholds for suffix in SEGMENT_TABLE_SUFFIXES] + [SEGMENT_IMAGES]


#: The benchmark folder of each SegmentMeIfYouCan dataset's score files, ``anomaly_p/<method>/<folder>/<fid>.hdf5``:
#: where the official code (road-anomaly-benchmark) reads a frame's scores, the ``name_for_persistence`` of the
#: dataset the frame comes from. AnomalyTrack-validation / -test frames are read from ``AnomalyTrack-all`` (their
#: frames are those of AnomalyTrack-all), ObstacleTrack-validation / -test from ``ObstacleTrack-all`` and
#: LostAndFound-testNoKnown from ``LostAndFound-test``; Road Anomaly is no benchmark split, its folder is ours.
SMIYC_FOLDERS = {"smiyc_anomaly": "AnomalyTrack-all", "smiyc_obstacle": "ObstacleTrack-all",
                 "lostandfound_noknown": "LostAndFound-{split}", "road_anomaly": "RoadAnomaly"}
#: Benchmark folders a participant submits (the benchmark README's inference splits); others stay out of the zip.
SUBMISSION_FOLDERS = ("AnomalyTrack-all", "ObstacleTrack-all", "LostAndFound-test", "LostAndFound-train")


def smiyc_folder(dataset: str, split: str | None = None) -> str:
    """The benchmark folder of a SegmentMeIfYouCan dataset's score files (see :data:`SMIYC_FOLDERS`)."""
    try:
        return SMIYC_FOLDERS[dataset].format(split=split or "test")
    except KeyError:
        raise KeyError(f"dataset {dataset!r} has no SegmentMeIfYouCan folder; expected one of {sorted(SMIYC_FOLDERS)}") from None


def method_scores_folder(method_folder: str, dataset: str, split: str | None = None) -> str:
    """The score folder of a dataset in a third-party method's folder: the benchmark's (``AnomalyTrack-all/`` ...)
    when it exists, else ``<dataset>/``."""
    official = f"{method_folder}/{smiyc_folder(dataset, split)}"
    return official if Path(official).is_dir() else f"{method_folder}/{dataset}"
