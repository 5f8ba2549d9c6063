"""Rule smiyc_zip: the submission zip of the own methods' score folders of the benchmark's inference splits."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.rules import run_rule
from meta_ood.smiyc import write_submission_zip

run_rule(snakemake, write_submission_zip, root=Path(snakemake.output.zip).parent, out=snakemake.output.zip,
         folders=list(snakemake.input.folders))
