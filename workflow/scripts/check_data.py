"""Rule check_data: read every image and label of the run's datasets once and report each problem."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.check_data import check_data_stage
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    check_data_stage,
    datasets={name: dict(spec) for name, spec in snakemake.params.datasets.items()},
    out_md=snakemake.output.md,
)
