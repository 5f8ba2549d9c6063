"""Rule smiyc_labels: the SMIYC label masks of one dataset, from a softmax store's labels."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.rules import run_rule
from meta_ood.stages.smiyc import smiyc_labels_stage

run_rule(snakemake, smiyc_labels_stage, store_dir=Path(snakemake.input.store).parent, out_dir=snakemake.output.folder)
