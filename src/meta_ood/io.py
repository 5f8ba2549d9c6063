"""Small I/O helpers shared by all writers and readers: atomic writes and checked reads of images,
JSON results and parquet tables."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from meta_ood.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


# The process umask, read once (setting it is the only way to read it): finished files get the
# permissions an ordinary open() would give them, not the owner-only ones of a temporary file.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and rename it to ``path`` on success.

    An interrupted or failing writer therefore never leaves a half-written file under the final
    name, and an existing file is only replaced once the new one is complete. The finished file
    gets the usual permissions (0666 minus the umask), so colleagues on a shared file system can read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
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


def open_image(path: Path) -> Image.Image:
    """Open and decode an image file; InputError naming the file when it is missing, truncated or not an image."""
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
    return np.asarray(open_image(Path(path)).convert("RGB"), dtype=np.uint8)


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel label PNG as (H, W) uint8 without any palette/colour conversion.

    Label images must be 8-bit grey ('L') or palette ('P', indices are the labels); anything
    else (RGB, 16 bit) is rejected because its pixel values are not label ids.
    """
    path = Path(path)
    img = open_image(path)
    if img.mode not in ("L", "P"):
        raise InputError(f"{path}: expected an 8-bit single-channel label image, got PIL mode {img.mode!r}")
    return np.asarray(img, dtype=np.uint8)


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: numpy scalars and arrays become numbers and lists, tuples lists.

    Non-finite floats become None (JSON has no NaN / inf) and an infinite dict key becomes
    ``"inf"``; other keys become strings. Used for result files and for comparing options.
    """
    if isinstance(obj, dict):
        return {("inf" if isinstance(k, float) and math.isinf(k) else str(k)): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (NaN/inf become null)."""
    write_text_atomic(path, json.dumps(jsonable(data), indent=1, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON result file; one clear error if it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: result file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a DataFrame as parquet atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet table; one clear error if it is missing or unreadable."""
    import pandas as pd  # on use: the image readers and writers of this module do not need it

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: table not found")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise InputError(f"{path}: cannot read parquet table ({type(exc).__name__}: {exc})") from None
