"""Rule ood_finetune: one epoch of OoD fine-tuning, resuming from the previous epoch's checkpoint.

The rule's params hold the options that determine the weights; the runtime-only ones (epochs,
workers, device) come from the config, so that changing them reruns nothing.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.options import TRAIN_RUNTIME_OPTIONS
from meta_ood.stages.training import finetune_stage
from meta_ood.rules import run_rule

model = snakemake.wildcards.model
finetune = snakemake.config["models"][model]["finetune"]

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
    train_options={**snakemake.params.options, **{k: finetune[k] for k in TRAIN_RUNTIME_OPTIONS}},
    stop_after=int(snakemake.wildcards.epoch),
    ood_id=int(snakemake.params.ood_id),
    device_key=f"models.{model}.finetune.device",
)
