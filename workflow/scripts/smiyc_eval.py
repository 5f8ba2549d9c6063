"""Rule smiyc_eval: both SMIYC protocols of one method's score files on one dataset."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.rules import run_rule
from meta_ood.stages.smiyc import smiyc_eval_stage

run_rule(
    snakemake,
    smiyc_eval_stage,
    scores_dir=snakemake.input.scores,
    labels_dir=snakemake.input.labels,
    dataset=snakemake.wildcards.dataset,
    out_json=snakemake.output.json,
    method=snakemake.wildcards.method,
    jobs=snakemake.threads,
    **snakemake.params.options,
)
