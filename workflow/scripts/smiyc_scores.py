"""Rule smiyc_scores: the SMIYC score files of one method in one benchmark folder, from its dataset's softmax store."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.rules import run_rule
from meta_ood.stages.smiyc import smiyc_scores_stage

run_rule(
    snakemake,
    smiyc_scores_stage,
    store_dir=Path(snakemake.input.store).parent,
    out_dir=snakemake.output.folder,
    meta_table=snakemake.input.get("meta"),
    segments_table=snakemake.input.get("segments"),
    **snakemake.params.options,
)
