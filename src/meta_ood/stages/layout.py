"""Names of the files the stages write, shared by the stages and the workflow.

Free of third-party imports, so that Snakemake can read it while parsing the workflow.
"""

from __future__ import annotations

from collections.abc import Iterable

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
