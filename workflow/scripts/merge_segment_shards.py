"""Rule merge_segment_shards: concatenate per-shard segment tables in image order."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.stages.segments import merge_segment_shards
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    merge_segment_shards,
    Path(snakemake.output[0]).parent,
    n_shards=snakemake.params.n_shards,
    thresholds=snakemake.params.thresholds,
)
