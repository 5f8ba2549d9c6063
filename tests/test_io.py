"""Atomic writes: nothing half-written under the final name, and ordinary permissions on the finished file."""

from __future__ import annotations

import os
import stat

import pytest

from meta_ood.io import atomic_path, read_json, write_json


def test_finished_file_has_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        import importlib

        import meta_ood.io as io

        importlib.reload(io)  # the module reads the umask once, at import
        io.write_json(tmp_path / "a.json", {"x": 1})
        mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    finally:
        os.umask(old)
        importlib.reload(io)
    assert mode == 0o640  # 0666 minus the umask 027, not the 0600 of a temporary file


def test_failed_writer_leaves_nothing(tmp_path):
    write_json(tmp_path / "r.json", {"kept": True})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "r.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert read_json(tmp_path / "r.json") == {"kept": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
