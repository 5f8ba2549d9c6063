"""The conda env specs mirror the tested pins of requirements.txt."""

from __future__ import annotations

import re

import yaml

from conftest import REPO


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
        assert m, f"not an exact pin: {line!r}"
        pins[m.group(1).lower()] = m.group(2)
    return pins


def test_env_specs_match_requirements():
    req = _pins((REPO / "requirements.txt").read_text().splitlines())
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert {p.stem for p in envs} >= {"torch", "analysis"}
    for path in envs:
        spec = yaml.safe_load(path.read_text())
        deps = spec["dependencies"]
        assert "python=3.11" in deps, path
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        pins = _pins(pip)
        for name, version in pins.items():
            assert req.get(name) == version, f"{path.name}: {name}=={version} but requirements.txt has {req.get(name)}"
        # every runtime dependency of the library is in each env (torch only where models run)
        needed = set(req) - {"snakemake", "snakemake-executor-plugin-slurm", "pytest"}
        if path.stem != "torch":
            needed -= {"torch"}
        assert needed <= set(pins), f"{path.name} lacks {sorted(needed - set(pins))}"


def test_every_rule_uses_an_existing_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: env {env} not found"


def test_pyproject_dependencies_cover_pins():
    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    names = {re.match(r'\s*"([A-Za-z0-9_.\-]+)', d).group(1).lower() for d in deps.split(",") if d.strip()}
    req = _pins((REPO / "requirements.txt").read_text().splitlines())
    assert names <= set(req), f"pyproject dependencies without a pin: {sorted(names - set(req))}"


def test_snakemake_is_the_workflow_extra_and_the_library_never_imports_it():
    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    assert "snakemake" not in deps
    assert re.search(r'^workflow = \["snakemake>=', text, re.M)
    for path in (REPO / "src" / "meta_ood").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+snakemake\b", path.read_text(), re.M), path
