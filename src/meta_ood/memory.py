"""The allocator setting of the pipeline's own processes: freed memory is kept for reuse.

glibc's malloc serves blocks above an adaptive threshold with fresh mappings and unmaps them on
free, and returns free memory at the top of its heaps to the system; the next allocation of the
same size then faults every page in again (zeroed by the kernel). The evaluations allocate
per-image buffers of several MiB, so on the SMIYC obstacle set those page faults took 0.15-0.3 s
of system time per 24 frames (50,000-70,000 faults), a third of the run. Keeping freed blocks
for reuse removes them and leaves the peak memory unchanged (it is set by the live buffers).

Only the ``meta-ood`` command and the workflow's rule scripts, processes of their own, call
:func:`keep_freed_memory`; the library functions never change process-wide settings.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

#: Blocks up to this size come from the heaps and are reused after free (glibc's largest allowed value).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of a heap is returned to the system only beyond this size.
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters of glibc's malloc.h
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to :data:`MMAP_THRESHOLD` and its trim threshold to
    :data:`TRIM_THRESHOLD` for this process. Returns whether it did: not off Linux / glibc, and
    not when the environment sets malloc's thresholds or tunables itself (those win)."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no mallopt thresholds)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
