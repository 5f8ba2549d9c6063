"""Run configuration: JSON-schema validation with defaults, shared by Snakemake and the CLI."""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from meta_ood.errors import InputError
from meta_ood.io import write_text_atomic

#: The config JSON schema (YAML), package data of the library; the workflow validates against the same file.
SCHEMA = resources.files("meta_ood") / "config.schema.yaml"


def load_schema() -> dict:
    """Read the config JSON schema (YAML) shipped with the library (:data:`SCHEMA`)."""
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def _defaults_validator(schema: dict):
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    set_props = base.VALIDATORS["properties"]

    def properties(validator, props, instance, sub):
        if isinstance(instance, dict):
            for name, prop in props.items():
                if "default" in prop and name not in instance:
                    instance[name] = copy.deepcopy(prop["default"])
        yield from set_props(validator, props, instance, sub)

    return jsonschema.validators.extend(base, {"properties": properties})


def validate_config(config: dict[str, Any], schema: dict | None = None) -> dict[str, Any]:
    """Return a copy of ``config`` with schema defaults filled in; InputError naming the bad key otherwise."""
    schema = schema or load_schema()
    cfg = copy.deepcopy(config)
    validator = _defaults_validator(schema)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
        raise InputError(f"config error at '{where}': {err.message}")
    return cfg


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Load a YAML config file and validate it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh) or {}
    try:
        return validate_config(cfg)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def write_config(config: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the resolved configuration of a run (defaults filled) as YAML, for provenance."""
    text = "# The configuration this run used, with the schema's defaults filled in.\n"
    write_text_atomic(path, text + yaml.safe_dump(copy.deepcopy(config), sort_keys=False))
