"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _golden_dir() -> Path:
    env = os.environ.get("META_OOD_GOLDEN")
    return Path(env) if env else REPO.parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The reference input/output pairs (``../shared/golden`` next to the clone, or $META_OOD_GOLDEN)."""
    path = _golden_dir()
    if not (path / "manifest.json").is_file():
        pytest.fail(f"golden data not found at {path}; set META_OOD_GOLDEN to the folder with manifest.json")
    return path


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
