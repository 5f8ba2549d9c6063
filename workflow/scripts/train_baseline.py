"""Rule train_baseline: train the demo's in-distribution network from scratch.

The rule's params hold the options that determine the weights (and epochs); the runtime-only ones
come from the config: workers from the model's baseline_training block, the device from its
finetune block.
Snakemake runs this rule again only when something it depends on changed, so a finished training
in the work folder is not reused (an interrupted one resumes).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.stages.training import train_baseline_stage
from meta_ood.rules import run_rule

model = snakemake.wildcards.model
spec = snakemake.config["models"][model]

run_rule(
    snakemake,
    train_baseline_stage,
    cityscapes_root=snakemake.params.cityscapes,
    split=snakemake.params.split,
    out_checkpoint=snakemake.output.checkpoint,
    train_options={
        **snakemake.params.options,
        "workers": spec["baseline_training"]["workers"],
        "device": spec["finetune"]["device"],
    },
    device_key=f"models.{model}.finetune.device",
    retrain_finished=True,
)
