"""Rule summary: the run's headline numbers (pixel metrics and detection errors) as Markdown."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.report.summary import summary_stage
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    summary_stage,
    out_md=snakemake.output.md,
    pixel_entries=list(snakemake.params.pixel_entries),
    miou_entries=list(snakemake.params.miou_entries),
    error_entries=list(snakemake.params.error_entries),
    run=snakemake.params.run,
    void_models=list(snakemake.params.void_models),
    n_boot=snakemake.params.n_boot,
    seed=snakemake.params.seed,
)
