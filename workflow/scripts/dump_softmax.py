"""Rule dump_softmax: run a model variant over an evaluation dataset and store the softmax.

The rule's params hold the inference options that change the stored values; device and workers
come from the config (inference block), so that changing them reruns nothing.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.inference import run_dump_stage
from meta_ood.options import INFERENCE_RUNTIME_OPTIONS
from meta_ood.rules import run_rule

runtime = {k: v for k, v in snakemake.config["inference"].items() if k in INFERENCE_RUNTIME_OPTIONS}

run_rule(
    snakemake,
    run_dump_stage,
    arch=snakemake.params.arch,
    num_classes=snakemake.params.num_classes,
    checkpoint=snakemake.input.checkpoint,
    dataset=dict(snakemake.params.dataset),
    out_folder=Path(snakemake.output.index).parent,
    options={**snakemake.params.options, **runtime},
    shard=tuple(snakemake.params.shard),
    model_name=snakemake.wildcards.model,
)
