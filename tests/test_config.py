"""Config schema: defaults, rejection of typos and wrong types, in the library and in Snakemake."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from meta_ood.config import SCHEMA, load_config, load_schema, validate_config
from meta_ood.errors import InputError
from meta_ood.labels import ENTROPY_THRESHOLDS, MIOU_THRESHOLDS


def test_defaults_fill_nested_blocks():
    cfg = validate_config({})
    schema = load_schema()
    assert cfg["run"] == schema["properties"]["run"]["default"]
    cf = schema["properties"]["coco_filter"]["properties"]
    assert cfg["coco_filter"]["min_size"] == cf["min_size"]["default"] == 480
    assert cfg["coco_filter"]["exclude"] == cf["exclude"]["default"]
    assert len(cfg["coco_filter"]["exclude"]) == 8
    assert cfg["datasets"]["lostandfound"]["split"] == "test"


def test_schema_threshold_defaults_are_the_library_defaults():
    """The CLI and the stages default to the library's thresholds; the workflow to the schema's: the same values."""
    evaluation = load_schema()["properties"]["evaluation"]["properties"]
    assert tuple(evaluation["thresholds"]["default"]) == ENTROPY_THRESHOLDS
    assert tuple(evaluation["miou_thresholds"]["default"]) == MIOU_THRESHOLDS
    from meta_ood.report.definitions import DEFINITIONS

    keys = [d[0] for d in DEFINITIONS]  # table_definitions' columns: every one by default, the enum in its order
    assert evaluation["definitions"]["default"] == evaluation["definitions"]["items"]["enum"] == keys


def test_workflow_validates_against_the_packaged_schema():
    """One schema file: the library's package data, which the workflow reads through `meta_ood.config` (no second reader)."""
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert "from meta_ood.config import resolve_config" in common and "resolve_config(files" in common
    assert not re.search(r"\bvalidate\(config", common) and "snakemake.utils import validate" not in common
    assert Path(str(SCHEMA)).resolve() == REPO / "src" / "meta_ood" / "config.schema.yaml"
    copies = sorted(p.relative_to(REPO) for d in ("src", "workflow") for p in (REPO / d).rglob("*.schema.yaml"))
    assert copies == [Path("src/meta_ood/config.schema.yaml")]
    assert "config.schema.yaml" in (REPO / "pyproject.toml").read_text()


def test_every_property_is_documented():
    def walk(node, path):
        for name, prop in node.get("properties", {}).items():
            assert "default" in prop, f"{path}{name} has no default"
            assert prop.get("description") or path, f"{name} has no description"
            if prop.get("type") == "object":
                extra = prop.get("additionalProperties")
                if isinstance(extra, dict) and extra.get("type") != "object":  # user-chosen names -> plain values
                    assert extra.get("type") in ("string", "number", "integer", "boolean"), f"{path}{name}.*"
                elif isinstance(extra, dict):  # a mapping of user-chosen names to blocks (models)
                    assert extra.get("additionalProperties") is False, f"{path}{name}.* accepts unknown keys"
                    walk(extra, f"{path}{name}.*.")
                else:
                    assert extra is False, f"{path}{name} accepts unknown keys"
                    walk(prop, f"{path}{name}.")

    walk(load_schema(), "")


def test_demo_config_is_valid():
    cfg = load_config(REPO / "config.yaml")
    assert cfg["demo"]["enabled"] is True
    assert cfg["coco_filter"]["min_size"] == 128


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"coco_filter": {"min_sise": 3}}, "min_sise"),
        ({"sed": 1}, "sed"),
        ({"seed": "zero"}, "seed"),
        ({"demo": {"height": 12.5}}, "demo.height"),
        ({"run": "my run/"}, "run"),
    ],
)
def test_rejects_typos_and_types(bad, needle):
    with pytest.raises(InputError, match=needle.split("/")[-1]) as info:
        validate_config(bad)
    assert needle in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


def test_snakemake_rejects_misspelled_key(tmp_path):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["coco_filter"]["min_sise"] = cfg["coco_filter"].pop("min_size")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory", str(tmp_path),
         "--snakefile", str(REPO / "Snakefile")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "coco_filter.min_sise: unknown key (did you mean 'min_size'?" in out
