"""A user's own config through Snakemake: layering on schema defaults, read-only data, start-up checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import checksums, make_real_tree, planned_jobs, run_snakemake
from meta_ood.config import load_schema

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, config: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, config=config, timeout=timeout)


@pytest.fixture(scope="module")
def user_tree(tmp_path_factory):
    """A read-only-by-contract dataset tree in the real layouts and a trained `tiny` checkpoint outside it."""
    base = tmp_path_factory.mktemp("user")
    roots = make_real_tree(base / "datasets", coco_min_size=480, coco_size_range=(96, 640))  # images the default min_size keeps
    from meta_ood.stages.training import train_baseline_stage

    torch.set_num_threads(1)
    ckpt = train_baseline_stage(str(roots["cityscapes"]), "train", base / "models" / "mynet.pt",
                                {"model": "tiny", "epochs": 4, "lr": 0.003, "batch_size": 4, "crop": [64, 128],
                                 "workers": 0, "seed": 0}, progress=False)
    return base, roots, ckpt


def minimal_config(roots: dict[str, Path], ckpt: Path, **extra) -> dict:
    """What a user writes: a run name, the dataset roots, one model with its checkpoint; no `demo:` key."""
    cfg = {
        "run": "mine",
        "datasets": {
            "cityscapes": {"root": str(roots["cityscapes"])},
            "coco": {"root": str(roots["coco"])},
            "lostandfound": {"root": str(roots["lostandfound"])},
            "fishyscapes_static": {"root": str(roots["fishyscapes"])},
        },
        "models": {"mynet": {"arch": "tiny", "checkpoint": str(ckpt)}},
    }
    for key, value in extra.items():
        cfg[key] = value
    return cfg


def small_run_config(roots, ckpt) -> dict:
    """The minimal config plus the few keys that tiny images need (crop, COCO size filter, few thresholds)."""
    cfg = minimal_config(
        roots, ckpt,
        coco_filter={"min_size": 64},
        evaluation={"thresholds": [0.3, 0.5], "miou_thresholds": [0.5, 1.0], "n_boot": 10},
        inference={"workers": 0, "batch_size": 2},
        report={"example_threshold": 0.5, "examples": 1},
    )
    cfg["models"]["mynet"]["finetune"] = {"epochs": 2, "lr": 0.001, "batch_size": 4, "crop": [64, 128],
                                          "ood_ratio": 0.5, "workers": 0}
    return cfg


def _defaults_agree(schema: dict, user: object, resolved: object, where: str, seen: list[str]) -> None:
    """Every key the user left out holds the schema default; recurse into objects the user gave."""
    if not isinstance(resolved, dict):
        return
    props = schema.get("properties", {})
    for name, sub in props.items():
        here = f"{where}.{name}" if where else name
        given = isinstance(user, dict) and name in user
        if not given and "default" in sub and not isinstance(sub["default"], dict):
            assert resolved[name] == sub["default"], f"{here}: {resolved[name]!r} is not the default {sub['default']!r}"
            seen.append(here)
        _defaults_agree(sub, user.get(name) if given else {}, resolved.get(name), here, seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and isinstance(user, dict):
        for name in set(resolved) - set(props):
            _defaults_agree(extra, user.get(name, {}), resolved[name], f"{where}.{name}", seen)


def test_minimal_user_config_resolves_every_omitted_key_to_the_schema_default(user_tree):
    base, roots, ckpt = user_tree
    work = base / "defaults"
    work.mkdir()
    user = minimal_config(roots, ckpt)
    proc = snakemake(work, "results/mine/config.yaml", config=user)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    resolved = yaml.safe_load((work / "results/mine/config.yaml").read_text())
    seen: list[str] = []
    _defaults_agree(load_schema(), user, resolved, "", seen)
    assert len(seen) > 60, seen  # the walk reached the nested blocks (finetune, evaluation, meta, ...)
    # nothing of the demo config leaked in
    assert list(resolved["models"]) == ["mynet"]
    assert resolved["demo"]["enabled"] is False
    assert resolved["coco_filter"]["min_size"] == 480
    assert resolved["evaluation"]["n_boot"] == 1000
    assert resolved["models"]["mynet"]["finetune"]["lam"] == 0.9


def test_no_configfile_runs_the_demo(tmp_path):
    proc = snakemake(tmp_path, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "demo_data" in out and "train_baseline" in out and "results/demo/" in out


def test_user_run_touches_nothing_in_the_dataset_tree(user_tree):
    """A whole run on a user's tree: only the user's model, tables 1-3 and the summary, the tree byte-identical."""
    base, roots, ckpt = user_tree
    tree = base / "datasets"
    before = checksums(tree)
    work = base / "run"
    work.mkdir()
    cfg = small_run_config(roots, ckpt)
    proc = snakemake(work, config=cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert checksums(tree) == before
    res = work / "results" / "mine"
    assert sorted(p.name for p in (res / "models").iterdir()) == ["mynet"]
    assert not (res / "models" / "mynet" / "baseline.pt").exists()  # the given checkpoint is used, not retrained
    assert "demo_data" not in out and "train_baseline" not in out and "tiny" not in out.replace("arch: tiny", "")
    table1 = (res / "tables" / "table1.csv").read_text()
    assert "mynet" in table1
    for name in ("table1", "table2", "table3"):
        assert (res / "tables" / f"{name}.md").stat().st_size > 0
    assert "mynet" in (res / "summary.md").read_text()
    # only the stores whose segments are computed keep the probabilities (LostAndFound, baseline and the
    # reported epoch 2, not epoch 1 of figure 14); every store has the score planes
    stores = sorted((res / "softmax" / "mynet").glob("*/*/index.json"))
    kept = [p.parent.relative_to(res / "softmax" / "mynet").as_posix() for p in stores
            if json.loads(p.read_text())["has_probs"]]
    # 3 variants x {cityscapes_val, lostandfound} (figure 14) + the 2 reported ones x fishyscapes_static
    assert len(stores) == 8 and kept == ["baseline/lostandfound", "epoch2/lostandfound"]
    for index in stores:
        meta = json.loads(index.read_text())
        assert sorted(meta["scores"]) == ["entropy"] and meta["codec"] == "lz4", index
    n_stores = len(stores)
    # inference.probabilities: all re-dumps exactly the stores that had no probabilities; the codec every store
    proc = snakemake(work, "-n", config={**cfg, "inference": {**cfg["inference"], "probabilities": "all"}})
    assert planned_jobs(proc).get("dump_softmax") == n_stores - len(kept), (proc.stdout + proc.stderr)[-3000:]
    proc = snakemake(work, "-n", config={**cfg, "inference": {**cfg["inference"], "codec": "zlib"}})
    assert planned_jobs(proc).get("dump_softmax") == n_stores, (proc.stdout + proc.stderr)[-3000:]

    # Runtime-only options rerun nothing but the provenance file; a weight option stops the run at
    # start-up, naming the change, and no checkpoint is deleted.
    cfg["models"]["mynet"]["finetune"]["workers"] = 1
    cfg["inference"]["workers"] = 1
    proc = snakemake(work, "-n", config=cfg)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert planned_jobs(proc) == {"run_config": 1, "all": 1}
    models = checksums(res / "models")
    cfg["models"]["mynet"]["finetune"]["lr"] = 0.002
    proc = snakemake(work, config=cfg, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "lr: 0.001 → 0.002" in out, out[-3000:]
    assert checksums(res / "models") == models


def _break_missing_label(roots, ckpt, tmp):
    label = sorted(roots["lostandfound"].rglob("*_gtCoarse_labelIds.png"))[0]
    label.unlink()
    return {}, label.name


def _break_checkpoint_keys(roots, ckpt, tmp):
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state
    key = sorted(state)[0]
    state[key + "_renamed"] = state.pop(key)
    bad = tmp / "bad.pt"
    torch.save(state, bad)
    return {"models": {"mynet": {"arch": "tiny", "checkpoint": str(bad)}}}, "bad.pt"


def _break_coco_name(roots, ckpt, tmp):
    return {"coco_filter": {"exclude": ["person", "zebra crossing"]}}, "zebra crossing"


@pytest.mark.parametrize("breakage", [_break_missing_label, _break_checkpoint_keys, _break_coco_name],
                         ids=["missing-label", "checkpoint-keys", "coco-name"])
def test_bad_input_stops_the_run_before_any_job(user_tree, tmp_path, breakage):
    base, roots, ckpt = user_tree
    tree = tmp_path / "datasets"
    shutil.copytree(base / "datasets", tree)
    mine = {k: tree / v.relative_to(base / "datasets") for k, v in roots.items()}
    override, named = breakage(mine, ckpt, tmp_path)
    cfg = minimal_config(mine, ckpt)
    cfg.update(override)
    work = tmp_path / "work"
    work.mkdir()
    start = time.perf_counter()
    proc = snakemake(work, config=cfg, timeout=120)
    elapsed = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert named in out, out[-3000:]
    assert not (work / "results").exists() and "Job stats" not in out  # stopped before scheduling anything
    print(f"{breakage.__name__}: stopped after {elapsed:.1f} s")


def test_demo_never_writes_into_a_users_tree(user_tree, tmp_path):
    """demo.enabled with dataset roots outside demo.root stops at start-up and leaves the tree as it was."""
    base, roots, ckpt = user_tree
    tree = base / "datasets"
    before = checksums(tree)
    cfg = minimal_config(roots, ckpt, demo={"enabled": True, "root": str(tmp_path / "demo")})
    proc = snakemake(tmp_path, config=cfg, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "demo.root" in out, out[-3000:]
    assert checksums(tree) == before and not (tmp_path / "demo").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_without_a_gpu_stops_before_the_gpu_jobs(user_tree, tmp_path):
    """`device: cuda` where there is none: jobs that need no GPU still run; the GPU jobs never start."""
    base, roots, ckpt = user_tree
    cfg = minimal_config(roots, ckpt)
    cfg["models"]["mynet"]["finetune"] = {"device": "cuda"}
    proc = snakemake(tmp_path, "results/mine/config.yaml", config=cfg, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    proc = snakemake(tmp_path, config=cfg, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "models.mynet.finetune.device" in out, out[-3000:]
    assert not (tmp_path / "results" / "mine" / "coco").exists()  # nothing beyond the finished target ran


def test_smiyc_test_split_gives_score_files_for_a_submission_only(user_tree, tmp_path):
    """A SMIYC split without labels: dumps, score files and the zip are planned; no evaluation or table."""
    base, roots, ckpt = user_tree
    cfg = minimal_config(roots, ckpt)
    cfg["datasets"]["smiyc_anomaly"] = {"root": str(roots["lostandfound"].parent / "smiyc"), "split": "test"}
    cfg["evaluation"] = {"smiyc_datasets": ["smiyc_anomaly"]}
    proc = snakemake(tmp_path, "-n", config=cfg, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs = planned_jobs(proc)
    assert jobs["smiyc_scores"] == 2 and jobs["smiyc_zip"] == 1  # mynet-plain and mynet-ood
    assert "smiyc_eval" not in jobs and "smiyc_labels" not in jobs and "table_smiyc" not in jobs
