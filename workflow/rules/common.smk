# Helpers shared by the workflow: config validation and output paths.
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

RUN = config["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCH = f"benchmarks/{RUN}"
DEMO = config["demo"]
DEMO_MARKER = f"{DEMO['root']}/DEMO_DATA.json"
COCO = config["datasets"]["coco"]
COCO_ANNOTATIONS = f"{COCO['root']}/annotations/instances_{COCO['split']}.json"


def demo_inputs(wildcards=None):
    """The demo data marker when the run generates its data, nothing otherwise."""
    return {"demo": DEMO_MARKER} if DEMO["enabled"] else {}


def demo_params():
    """Arguments of the demo generator: the demo block without its switches, plus seed and COCO size filter."""
    params = {k: v for k, v in DEMO.items() if k not in ("enabled", "root")}
    params["seed"] = config["seed"]
    params["coco_min_size"] = config["coco_filter"]["min_size"]
    return params


def all_targets():
    """Everything `snakemake` builds by default."""
    return [f"{RESULTS}/coco/selected.csv"]
