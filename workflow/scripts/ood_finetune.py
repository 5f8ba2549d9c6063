"""Rule ood_finetune: one epoch of OoD fine-tuning, resuming from the previous epoch's checkpoint."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.pipeline import finetune_stage
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    finetune_stage,
    cityscapes_root=snakemake.params.cityscapes,
    cityscapes_split=snakemake.params.split,
    coco_root=snakemake.params.coco_root,
    coco_split=snakemake.params.coco_split,
    coco_masks=snakemake.params.coco_masks,
    init_checkpoint=snakemake.params.baseline,
    out_dir=Path(snakemake.output.checkpoint).parent,
    train_options=dict(snakemake.params.options),
    stop_after=int(snakemake.wildcards.epoch),
)
