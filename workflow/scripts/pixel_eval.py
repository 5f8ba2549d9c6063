"""Rule pixel_eval: pixel-level OoD metrics (or mIoU with OoD class on Cityscapes) of one softmax store."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.stages.pixel_eval import pixel_eval_stage
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    pixel_eval_stage,
    store_dir=Path(snakemake.input.store).parent,
    out_json=snakemake.output.json,
    out_npz=snakemake.output.npz,
    **snakemake.params.options,
)
