"""Rule run_config: write the resolved configuration of the run (schema defaults filled in)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.config import write_config
from meta_ood.rules import run_rule

run_rule(snakemake, write_config, dict(snakemake.params.config), snakemake.output.config)
