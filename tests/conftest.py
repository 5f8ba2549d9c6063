"""Shared pytest fixtures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Reference data kept in the repository (see tests/data/README.md).
GOLDEN_DIR = REPO / "tests" / "data" / "golden"
MODELS_DIR = REPO / "tests" / "data" / "models"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The reference input/output pairs of the released implementation (``tests/data/golden``)."""
    return GOLDEN_DIR


@pytest.fixture
def torch_one_thread():
    """Run a test with one torch thread: tiny convolutions are fastest so and do not fight other processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def make_real_tree(root: Path, **sizes) -> dict[str, Path]:
    """A small dataset tree in the real on-disk layouts (Cityscapes, COCO, LostAndFound, Fishyscapes), as a user has it.

    Written by the demo generator, then stripped of the generator's markers, so nothing in it says it is synthetic.
    Returns the dataset roots (Fishyscapes LostAndFound labels are under ``fishyscapes/LostAndFound``).
    """
    from meta_ood.datasets.demo import DemoConfig, generate

    cfg = DemoConfig(**{"height": 64, "width": 128, "n_train": 4, "n_val": 2, "n_coco": 12, "n_lostandfound": 4,
                        "n_fishyscapes": 2, **sizes})
    info = generate(root, cfg, progress=False)
    for marker in Path(root).glob("DEMO_DATA*.json"):
        marker.unlink()
    return {name: Path(info[name]) for name in ("cityscapes", "coco", "lostandfound", "fishyscapes")}


def checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root`` (relative path -> digest), plus the set of folders."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def placeholder_checkpoint(arch: str, path: Path, num_classes: int = 19) -> Path:
    """A checkpoint with the architecture's exact keys, shapes and dtypes, each tensor one stored value (kilobytes).

    Enough for start-up checks and dry runs of the paper networks without hundreds of MB of weights.
    """
    import torch

    from meta_ood.models import build

    with torch.device("meta"):
        model = build(arch, num_classes)
    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in model.state_dict().items()}
    torch.save(state, path)
    return path


def run_snakemake(workdir: Path, *args: str, config: dict | None = None, cores: int = 2,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    """Run this repository's workflow in ``workdir``; ``config`` (a dict) is written there and given as --configfile."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", str(cores), *args]
    if config is not None:
        path = workdir / "my.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=timeout)


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from Snakemake's 'Job stats' table (of a dry run or a run)."""
    out = proc.stdout + proc.stderr
    stats = out.split("Job stats:")[1] if "Job stats:" in out else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m.group(1) != "total"}


@pytest.fixture
def fishyscapes(tmp_path):
    """``<root>/Static/<name>.png`` (labels 0/1/255) next to ``<name>.jpg``; five images, two sizes."""
    import numpy as np

    from meta_ood.datasets import FishyscapesStatic
    from meta_ood.io import write_jpeg, write_png

    root = tmp_path / "fs"
    rng = np.random.default_rng(0)
    for k in range(5):
        h, w = (24, 32) if k != 3 else (20, 28)
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 7 + k * 30) % 256, (yy * 9) % 256, rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
        label = np.zeros((h, w), np.uint8)
        label[h // 3 : h // 2, w // 4 : w // 2] = 1
        label[:2] = 255
        write_jpeg(root / "Static" / f"img{k}.jpg", img)
        write_png(root / "Static" / f"img{k}.png", label)
    return FishyscapesStatic(root)


@pytest.fixture
def no_text_layout_problems():
    """Fails the test when a figure it saved has text that leaves the canvas or overlaps other text."""
    from meta_ood.report import figures_style

    figures_style.LAYOUT_PROBLEMS.clear()
    yield
    bad = {path: problems for path, problems in figures_style.LAYOUT_PROBLEMS.items() if problems}
    assert not bad, f"text leaves the canvas or overlaps other text: {bad}"
