"""Rule meta_classify: leave-one-out meta classification (TP vs FP) of the segments of one threshold."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.stages.meta import meta_classify_stage
from meta_ood.rules import run_rule

opts = snakemake.params.options
run_rule(
    snakemake,
    meta_classify_stage,
    segments_parquet=snakemake.input.segments,
    out_parquet=snakemake.output.table,
    out_json=snakemake.output.json,
    features=opts["features"],
    protocols=list(opts["protocols"]),
    C=opts["C"],
    penalize_intercept=opts["penalize_intercept"],
    standardize=opts["standardize"],
)
