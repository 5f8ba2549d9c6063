"""Rule train_baseline: train the demo's in-distribution network from scratch."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.pipeline import train_baseline_stage
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    train_baseline_stage,
    cityscapes_root=snakemake.params.cityscapes,
    split=snakemake.params.split,
    out_checkpoint=snakemake.output.checkpoint,
    train_options=dict(snakemake.params.options),
)
