"""Rule segment_eval: FP, FN and road miss rate before and after meta classification."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.stages.segment_eval import segment_eval_stage
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    segment_eval_stage,
    segments_dir=Path(snakemake.input.segments[0]).parent,
    meta_dir=Path(snakemake.input.meta[0]).parent,
    thresholds=snakemake.params.thresholds,
    out_json=snakemake.output.json,
    meta_threshold=snakemake.params.meta_threshold,
    reference_fp_after=snakemake.params.reference_fp_after,
)
