"""Rule merge_softmax_shards: combine the shard indices of a softmax store into index.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from meta_ood.rules import run_rule
from meta_ood.store import merge_index

run_rule(snakemake, merge_index, Path(snakemake.output.index).parent)
