"""Rule dump_softmax: run a model variant over an evaluation dataset and store the softmax."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.inference import run_dump_stage
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    run_dump_stage,
    arch=snakemake.params.arch,
    num_classes=snakemake.params.num_classes,
    checkpoint=snakemake.input.checkpoint,
    dataset=dict(snakemake.params.dataset),
    out_folder=Path(snakemake.output.index).parent,
    options=dict(snakemake.params.options),
    shard=tuple(snakemake.params.shard),
    model_name=snakemake.wildcards.model,
)
