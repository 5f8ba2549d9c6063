"""Reading and writing model checkpoints in the formats the paper's models were published in.

Accepted containers (whatever ``torch.save`` wrote):

* meta-ood's format: ``{'state_dict', 'optimizer_state_dict', 'epoch', 'loss'}``, and what
  :func:`save_checkpoint` writes (``state_dict``, ``optimizer_state_dict``, ``epoch``,
  ``config_hash``, ``extra`` and two descriptive entries);
* a dict holding the weights under ``'model'`` (or ``'model_state_dict'``, ``'net'``,
  ``'network'``), as many training frameworks write;
* a bare state dict (the upstream DGCNet ``DualSeg_res50_final.pth``);
* a whole pickled ``nn.Module`` (only with ``trusted=True``, see below).

Parameter names may carry wrapper prefixes: ``module.`` (``nn.DataParallel`` /
``DistributedDataParallel``; the published DeepLabV3+ WRN38 checkpoint has it) and
``_orig_mod.`` (``torch.compile``). A prefix shared by *every* key of one side is removed, so a
checkpoint with ``module.`` loads into a bare model and vice versa.

Loading is strict by default: missing, unexpected and mis-shaped keys are collected and reported
in one :class:`~meta_ood.errors.InputError` (the released code loaded with ``strict=False`` and
silently ignored them). The one exception is ``num_batches_tracked``: checkpoints from old torch
versions lack it and it never affects evaluation, so a missing one keeps the model's value.

Safety: files are read with ``torch.load(weights_only=True)``, which cannot execute code. Real
checkpoints often also contain numpy scalars (e.g. a logged mIoU) or an ``argparse.Namespace``
with the training command line; these few harmless types are allow-listed. Anything else makes
the load fail with an :class:`InputError` that names the offending types, unless the caller
passes ``trusted=True``, which falls back to full unpickling (``weights_only=False``). Only do
that for files from a source you trust: unpickling can run arbitrary code.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from meta_ood.errors import InputError
from meta_ood.io import atomic_path

__all__ = [
    "convert_trusted_checkpoint", "load_checkpoint", "read_checkpoint", "read_checkpoint_metadata", "save_checkpoint",
    "config_hash", "unwrap_model",
]

log = logging.getLogger(__name__)

#: Wrapper prefixes removed from (or added to) parameter names when the two sides disagree.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Container keys that may hold the weights, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")
#: How many names of each kind of mismatch the error message lists.
_SHOW = 5


def _safe_globals() -> list:
    """Harmless non-tensor types that published checkpoints contain, for ``weights_only`` loading."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    entries: list = [np.dtype, np.ndarray, argparse.Namespace]
    # files written under numpy 1.x and 2.x name the reconstruction helpers differently
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries.append((multiarray.scalar, f"{module}.scalar"))
        entries.append((multiarray._reconstruct, f"{module}._reconstruct"))
    entries.extend({type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"})
    return entries


def _allow_safe_globals() -> contextlib.AbstractContextManager:
    """Context allow-listing :func:`_safe_globals` (a no-op on torch versions without the API)."""
    if not hasattr(torch.serialization, "safe_globals"):
        return contextlib.nullcontext()
    try:
        return torch.serialization.safe_globals(_safe_globals())
    except (TypeError, ValueError):  # torch without (callable, name) entries
        return torch.serialization.safe_globals([e for e in _safe_globals() if not isinstance(e, tuple)])


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside ``nn.DataParallel`` / ``DistributedDataParallel`` / ``torch.compile``."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _torch_load(path: Path, trusted: bool, mmap: bool = False) -> Any:
    """``torch.load`` on CPU, safely; every failure becomes an InputError naming the file.

    ``mmap`` maps the tensors from the file instead of reading them (zip-format files only).
    """
    try:
        with _allow_safe_globals():
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise InputError(
                f"{path}: cannot read checkpoint, the file is corrupt or not a torch file ({exc})"
            ) from None
        restricted = exc
    except Exception as exc:  # torch raises RuntimeError / EOFError / ... for damaged archives
        raise InputError(
            f"{path}: cannot read checkpoint, the file is corrupt or not a torch file "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not trusted:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            unsafe = [name for name in unsafe if not name.startswith(("numpy.", "argparse."))]
        except Exception:  # legacy (non-zip) files cannot be inspected
            unsafe = []
        what = f" ({', '.join(unsafe[:_SHOW])})" if unsafe else ""
        detail = str(restricted).strip().splitlines()[-1] if str(restricted).strip() else ""
        raise InputError(
            f"{path}: the checkpoint contains Python objects beyond tensors{what}, or is corrupt, "
            f"so it cannot be loaded safely with weights_only=True. If the file comes from a source you trust, "
            f"convert it once to plain weights and configure the new file: meta-ood convert-checkpoint {path} "
            f"--out {path.with_suffix('')}.weights.pt (that reads it with full unpickling, which can execute "
            f"code). [{detail[:300]}]"
        ) from None
    log.warning("%s: loading with weights_only=False because trusted=True was given", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as exc:
        raise InputError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _split_container(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Find the state dict inside whatever was saved; return it and the remaining entries."""
    if isinstance(obj, nn.Module):
        return dict(unwrap_model(obj).state_dict()), {}
    if _is_state_dict(obj):
        return dict(obj), {}
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if key not in obj:
                continue
            value = obj[key]
            if isinstance(value, nn.Module):
                value = unwrap_model(value).state_dict()
            if _is_state_dict(value):
                meta = {k: v for k, v in obj.items() if k != key}
                return dict(value), meta
        shown = ", ".join(repr(k) for k in list(obj)[:10])
        raise InputError(
            f"{path}: no model weights found in the checkpoint; expected a dict with one of "
            f"{', '.join(repr(k) for k in STATE_DICT_KEYS)} holding a state dict, or a bare state dict "
            f"(top-level keys: {shown})"
        )
    raise InputError(f"{path}: no model weights found in the checkpoint (it holds a {type(obj).__name__})")


def read_checkpoint(path: str | os.PathLike, trusted: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint file into ``(state_dict, metadata)`` on the CPU without touching a model.

    Parameters
    ----------
    path
        The checkpoint file.
    trusted
        Fall back to full unpickling when the file holds objects that ``weights_only`` refuses.

    Returns
    -------
    tuple
        The state dict as saved (prefixes untouched) and every other entry of the container
        (``epoch``, ``optimizer_state_dict``, ``loss``, ``config_hash``, ...; empty for a bare
        state dict).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found")
    return _split_container(_torch_load(path, trusted), path)


def convert_trusted_checkpoint(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the weights of a checkpoint that only full unpickling reads (a pickled module, foreign objects) as a
    plain state dict that loads safely; for files from a source the user trusts (unpickling can execute code)."""
    state, _ = read_checkpoint(path, trusted=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    return out


def read_checkpoint_metadata(path: str | os.PathLike, trusted: bool = False) -> dict[str, Any]:
    """Everything in a checkpoint but the weights and the optimizer state, without reading the tensors.

    Zip-format files (what ``torch.save`` writes) are memory-mapped, so only the small pickled
    structure is read: milliseconds even for checkpoints of several hundred megabytes. Used to
    check ``config_hash`` / ``extra`` of training checkpoints at start-up.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found")
    obj = _torch_load(path, trusted, mmap=zipfile.is_zipfile(path))
    _, meta = _split_container(obj, path)
    meta.pop("optimizer_state_dict", None)
    return meta


def _common_prefix(keys: list[str]) -> str:
    """The wrapper prefixes shared by every key, e.g. ``'module.'`` or ``''``."""
    prefix = ""
    while keys:
        for candidate in WRAPPER_PREFIXES:
            if all(k.startswith(prefix + candidate) for k in keys):
                prefix += candidate
                break
        else:
            break
    return prefix


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _match_keys(
    model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str], list[str], list[str]]:
    """Map checkpoint names onto the model's; return (matched, missing, unexpected, mis-shaped)."""
    model_prefix = _common_prefix(list(model_sd))
    ckpt_prefix = _common_prefix(list(ckpt_sd))
    model_by_bare = {k[len(model_prefix):]: k for k in model_sd}
    matched: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    misshaped: list[str] = []
    for key, value in ckpt_sd.items():
        bare = key[len(ckpt_prefix):]
        target = model_by_bare.get(bare)
        if target is None:
            unexpected.append(key)
        elif _shape(value) != _shape(model_sd[target]):
            misshaped.append(f"{key}: checkpoint {_shape(value)} vs model {_shape(model_sd[target])}")
        else:
            matched[target] = value
    seen = {key[len(ckpt_prefix):] for key in ckpt_sd}
    missing = [k for bare, k in model_by_bare.items() if bare not in seen and not k.endswith("num_batches_tracked")]
    return matched, missing, unexpected, misshaped


def _describe(kind: str, names: list[str]) -> str:
    more = f", ... ({len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return f"{len(names)} {kind} ({', '.join(names[:_SHOW])}{more})"


def compare_state_dicts(
    model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The checkpoint tensors matched to the model's names, and one phrase per kind of mismatch (empty if none)."""
    matched, missing, unexpected, misshaped = _match_keys(model_sd, ckpt_sd)
    problems = [
        _describe(kind, names)
        for kind, names in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped))
        if names
    ]
    return matched, problems


def load_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    strict: bool = True,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    trusted: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint file into ``model`` (in place) and return the container's other entries.

    Parameters
    ----------
    model
        The network; may be wrapped in ``nn.DataParallel`` / DDP. Its device and dtype are kept
        (the file is read on the CPU and copied into the model's tensors).
    path
        A checkpoint in any of the formats listed in the module docstring.
    strict
        If true (default), any missing, unexpected or mis-shaped parameter raises one
        :class:`InputError` listing counts and the first names of each kind. If false, only the
        matching entries are loaded and the rest is logged as a warning.
    optimizer
        If given and the file has ``optimizer_state_dict``, restore it too (for resuming).
    trusted
        Allow full unpickling for files that ``weights_only`` loading refuses (see module docs).

    Returns
    -------
    dict
        Everything in the container except the weights, e.g. ``epoch``, ``loss``,
        ``optimizer_state_dict``, ``config_hash``; empty for a bare state dict.
    """
    path = Path(path)
    ckpt_sd, meta = read_checkpoint(path, trusted=trusted)
    target = unwrap_model(model)
    model_sd = target.state_dict()
    matched, problems = compare_state_dicts(model_sd, ckpt_sd)
    if problems:
        message = (
            f"{path}: checkpoint does not match the model {type(target).__name__} "
            f"({len(model_sd)} keys in the model, {len(ckpt_sd)} in the file): " + "; ".join(problems)
        )
        if strict:
            raise InputError(message)
        log.warning("%s; loading the %d matching keys (strict=False)", message, len(matched))
    bad = [k for k, v in matched.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InputError(f"{path}: checkpoint holds non-finite values (NaN/inf) in {_describe('tensors', bad)}")
    target.load_state_dict(matched, strict=False)
    if optimizer is not None and meta.get("optimizer_state_dict") is not None:
        try:
            optimizer.load_state_dict(meta["optimizer_state_dict"])
        except (ValueError, KeyError) as exc:
            raise InputError(f"{path}: optimizer state does not fit the optimizer ({exc})") from None
    return meta


def _to_cpu(obj: Any) -> Any:
    """Copy every tensor in a nested dict/list structure to the CPU, so files load anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        out = type(obj)((k, _to_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # state dicts carry per-module versions used when loading
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int | None = None,
    config_hash: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (and optionally its optimizer) to ``path`` atomically, in meta-ood's format.

    The file holds ``{'state_dict', 'optimizer_state_dict', 'epoch', 'config_hash', 'model_class',
    'torch_version', 'extra'}``. Weights are stored without wrapper prefixes and on the CPU, so
    the file loads anywhere, also with the released code (it reads ``'state_dict'``). Caller
    entries live under ``'extra'`` so they can never clash with the fixed keys. An interrupted
    write leaves no file behind (an existing file is only replaced once the new one is complete).

    Parameters
    ----------
    path
        Destination; parent folders are created.
    model
        The network (wrappers are removed before saving).
    optimizer
        Saved as ``optimizer_state_dict`` for resuming, or ``None``.
    epoch
        Epoch number stored for bookkeeping.
    config_hash
        The :func:`config_hash` of the configuration that produced the weights.
    extra
        Further entries stored as ``'extra'``, e.g. ``{'loss': 0.31, 'torch_rng_state': ...}``;
        keep them to plain Python values and tensors so that the file stays loadable with
        ``weights_only=True``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    target = unwrap_model(model)
    container: dict[str, Any] = {
        "state_dict": _to_cpu(target.state_dict()),
        "optimizer_state_dict": _to_cpu(optimizer.state_dict()) if optimizer is not None else None,
        "epoch": None if epoch is None else int(epoch),
        "config_hash": config_hash,
        "model_class": f"{type(target).__module__}.{type(target).__qualname__}",
        "torch_version": str(torch.__version__),
        "extra": _to_cpu(dict(extra or {})),
    }
    with atomic_path(path) as tmp:
        torch.save(container, tmp)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    raise TypeError(f"config value of type {type(obj).__name__} cannot be hashed: {obj!r}")


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Fingerprint of a configuration: the first 16 hex digits of sha256 of its canonical JSON.

    Canonical JSON sorts keys, uses compact separators and UTF-8, so the hash depends only on
    the content (not on key order or formatting). Paths, numpy scalars/arrays and sets are
    converted to their JSON equivalents; non-finite floats are rejected.
    """
    text = json.dumps(
        cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

