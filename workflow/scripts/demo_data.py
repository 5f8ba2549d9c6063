"""Rule demo_data: write the embedded demo datasets in the real on-disk formats."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.datasets.demo import demo_config_from_dict, generate
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    generate,
    Path(snakemake.output.marker).parent,
    demo_config_from_dict(dict(snakemake.params.generator)),
)
