"""Rule segment_features: per-segment metrics for all thresholds in one pass over a softmax store."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.stages.segments import segment_features_stage
from meta_ood.rules import run_rule

shard = snakemake.params.shard
out_dir = Path(snakemake.output[0]).parent
run_rule(
    snakemake,
    segment_features_stage,
    store_dir=Path(snakemake.input.store).parent,
    out_dir=out_dir if shard is None else out_dir.parent,
    thresholds=snakemake.params.thresholds,
    shard=None if shard is None else tuple(shard),
)
