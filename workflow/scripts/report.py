"""Report rules: render one paper table or figure from result files (function named in params)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood import report
from meta_ood.rules import run_rule

# a table's html is written next to its md by the same call
outputs = {f"out_{key}": value for key, value in snakemake.output.items() if key != "html"}
run_rule(snakemake, getattr(report, snakemake.params.function), **dict(snakemake.params.args), **outputs)
