"""Small I/O helpers shared by all writers and readers: atomic writes and checked image reads."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from meta_ood.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and rename it to ``path`` on success.

    An interrupted or failing writer therefore never leaves a half-written file under the final
    name, and an existing file is only replaced once the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array (H, W) or (H, W, 3) as a lossless PNG, atomically."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8, got {array.dtype} for {path}")
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_jpeg(path: str | os.PathLike, array: np.ndarray, quality: int = 92) -> None:
    """Write an RGB uint8 array as JPEG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(tmp, format="JPEG", quality=quality)


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None
    return img


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB; one clear error if it is missing or unreadable."""
    return np.asarray(_open(Path(path)).convert("RGB"), dtype=np.uint8)


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel label PNG as (H, W) uint8 without any palette/colour conversion.

    Label images must be 8-bit grey ('L') or palette ('P', indices are the labels); anything
    else (RGB, 16 bit) is rejected because its pixel values are not label ids.
    """
    path = Path(path)
    img = _open(path)
    if img.mode not in ("L", "P"):
        raise InputError(f"{path}: expected an 8-bit single-channel label image, got PIL mode {img.mode!r}")
    return np.asarray(img, dtype=np.uint8)
