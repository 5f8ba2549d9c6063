"""Rule coco_filter: select COCO OoD-proxy images and write their masks."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.coco_filter import filter_coco
from meta_ood.rules import run_rule

run_rule(
    snakemake,
    filter_coco,
    annotation_file=snakemake.params.annotations,
    images_dir=snakemake.params.images,
    out_dir=Path(snakemake.output.csv).parent,
    exclude_names=snakemake.params.exclude,
    min_size=snakemake.params.min_size,
    ood_id=snakemake.params.ood_id,
)
