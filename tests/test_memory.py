"""keep_freed_memory: blocks of several MiB come from malloc's heaps (reused after free), not fresh mappings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")

# In a fresh process: optionally some setup, then how many bytes a 16 MiB malloc maps (glibc's mallinfo2).
_PROBE = textwrap.dedent("""
    import ctypes, sys
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    {setup}
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(16 << 20)
    print(libc.mallinfo2().hblkhd - before)
    libc.free(block)
""")


def _mapped_bytes(setup: str, env: dict[str, str] | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    out = subprocess.run([sys.executable, "-c", _PROBE.format(setup=setup)], capture_output=True, text=True, env=env,
                         timeout=120)
    if out.returncode and "mallinfo2" in out.stderr:
        pytest.skip("this C library has no mallinfo2 (glibc < 2.33)")
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_keep_freed_memory_serves_large_blocks_from_the_heap():
    """By default glibc maps a 16 MiB block of its own (above its 128 KiB initial threshold); after
    keep_freed_memory none is mapped, and the meta-ood command applies it; the user's MALLOC_ settings win."""
    assert _mapped_bytes("pass") >= 16 << 20
    assert _mapped_bytes("from meta_ood.memory import keep_freed_memory; assert keep_freed_memory()") == 0
    command = ("from meta_ood.cli import main; sys.argv = ['meta-ood', 'smiyc-eval', '--help']\n"
               "try:\n    main()\nexcept SystemExit:\n    pass")
    assert _mapped_bytes(command) == 0
    user = "from meta_ood.memory import keep_freed_memory; assert not keep_freed_memory()"
    assert _mapped_bytes(user, {"MALLOC_MMAP_THRESHOLD_": "131072"}) >= 16 << 20
