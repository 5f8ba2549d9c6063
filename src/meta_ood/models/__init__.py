"""Segmentation networks, their registry, input normalization, devices and checkpoints.

Every model maps ImageNet-normalized RGB images ``(N, 3, H, W)`` (see :func:`normalize`) to a
single tensor of logits ``(N, num_classes, H, W)`` at the input resolution.

Registered names (:func:`available_models`):

``deeplabv3plus_wrn38``
    DeepLabV3+ with a WideResNet38-A2 trunk (NVIDIA), the paper's main network.
``dualgcn_resnet50``
    DGCNet with a dilated ResNet-50 (``DualSeg_res50``), the paper's second network.
``tiny``
    A ~0.2 M parameter CNN for the CPU demo.

Any other network can be used by naming its factory as ``"package.module:factory"`` (the module
must be importable) or ``"path/to/file.py:factory"``. The factory is called as
``factory(num_classes=...)`` if it accepts that argument, else ``factory()``, and must return an
``nn.Module`` with the contract above.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from meta_ood.errors import InputError
from meta_ood.models.checkpoint import config_hash, load_checkpoint, read_checkpoint, save_checkpoint, unwrap_model
from meta_ood.models.deeplabv3plus import DeepLabV3PlusWRN38, deeplabv3plus_wrn38
from meta_ood.models.dualgcn import DualSegResNet50, dualgcn_resnet50
from meta_ood.models.tiny import TinySegNet, tiny

__all__ = [
    "MEAN",
    "STD",
    "DeepLabV3PlusWRN38",
    "DualSegResNet50",
    "TinySegNet",
    "autocast_context",
    "available_models",
    "build",
    "config_hash",
    "count_parameters",
    "denormalize",
    "load_checkpoint",
    "normalize",
    "read_checkpoint",
    "register_model",
    "save_checkpoint",
    "select_device",
    "unwrap_model",
]

log = logging.getLogger(__name__)

#: ImageNet channel means and standard deviations (RGB) used by both published networks.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "deeplabv3plus_wrn38": deeplabv3plus_wrn38,
    "dualgcn_resnet50": dualgcn_resnet50,
    "tiny": tiny,
}


# --------------------------------------------------------------------------- registry


def available_models() -> list[str]:
    """Names accepted by :func:`build` (besides ``module:factory`` references), sorted."""
    return sorted(_REGISTRY)


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``factory(num_classes=...)`` available to :func:`build` under ``name``.

    Raises ``ValueError`` for a name that is taken or contains ``':'`` (reserved for factory
    references).
    """
    if ":" in name or not name:
        raise ValueError(f"model name {name!r} must be non-empty and must not contain ':'")
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = factory


def _import_factory(reference: str) -> Callable[..., Any]:
    """Resolve ``'pkg.module:attr'`` or ``'file.py:attr'`` (``attr`` may be dotted)."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise InputError(f"model '{reference}': expected 'package.module:factory' or 'file.py:factory'")
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise InputError(f"model '{reference}': file {file} not found")
            spec = importlib.util.spec_from_file_location(f"meta_ood_user_model_{file.stem}", file)
            if spec is None or spec.loader is None:
                raise InputError(f"model '{reference}': cannot import {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except InputError:
        raise
    except BaseException as exc:  # ImportError, SyntaxError, errors raised while importing, ...
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise InputError(
            f"model '{reference}': cannot import module '{module_name}' ({type(exc).__name__}: {exc}); "
            f"it must be importable (installed or on PYTHONPATH) or be a path to a .py file"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"model '{reference}': module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"model '{reference}': '{attr}' is not callable")
    return obj


def _accepts_num_classes(factory: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return True
    return any(
        p.name == "num_classes" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or p.kind == p.VAR_KEYWORD
        for p in params
    )


def build(name: str, num_classes: int = 19) -> nn.Module:
    """Instantiate a segmentation network by registry name or ``module:factory`` reference.

    The paper's networks come back bare (not wrapped in ``nn.DataParallel``) and randomly
    initialized; use :func:`load_checkpoint` for trained weights.

    Parameters
    ----------
    name
        One of :func:`available_models`, ``"package.module:factory"`` or ``"file.py:factory"``.
    num_classes
        Number of output classes (19 Cityscapes train ids).

    Returns
    -------
    nn.Module
        A module mapping normalized images ``(N, 3, H, W)`` to logits ``(N, num_classes, H, W)``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    if name in _REGISTRY:
        return _REGISTRY[name](num_classes=num_classes)
    if ":" not in str(name):
        raise InputError(
            f"unknown model '{name}'; registered models: {', '.join(available_models())} "
            f"(or give a factory as 'package.module:factory')"
        )
    factory = _import_factory(str(name))
    try:
        model = factory(num_classes=num_classes) if _accepts_num_classes(factory) else factory()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"model '{name}': the factory raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise InputError(f"model '{name}': the factory returned a {type(model).__name__}, expected a torch.nn.Module")
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- normalization


def normalize(
    images: np.ndarray | torch.Tensor,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Turn RGB images into the network input: scale to [0, 1], subtract :data:`MEAN`, divide by :data:`STD`.

    This is torchvision's ``ToTensor`` + ``Normalize(MEAN, STD)``, used in training and at
    inference alike.

    Parameters
    ----------
    images
        ``uint8`` images in [0, 255], or floating-point images already scaled to [0, 1]; numpy
        array or tensor, one image ``(H, W, 3)`` / ``(3, H, W)`` or a batch ``(N, H, W, 3)`` /
        ``(N, 3, H, W)``. The channel axis is where the size-3 axis is; if both ends have size
        3, ``uint8`` input is read as channels-last and float input as channels-first.
    device
        Where the result lives (the conversion runs there; ``uint8`` is moved before scaling).
    dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor
        Contiguous ``(N, 3, H, W)`` tensor.
    """
    if isinstance(images, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(images))
    else:
        tensor = torch.as_tensor(images)
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise InputError(f"normalize: expected images of shape (N, H, W, 3) or (N, 3, H, W), got {tuple(tensor.shape)}")
    is_uint8 = tensor.dtype == torch.uint8
    if not is_uint8 and not tensor.is_floating_point():
        raise InputError(f"normalize: expected uint8 images in [0, 255] or float images in [0, 1], got {tensor.dtype}")
    last, first = tensor.shape[-1] == 3, tensor.shape[1] == 3
    if last and (is_uint8 or not first):
        tensor = tensor.permute(0, 3, 1, 2)
    elif not first:
        raise InputError(f"normalize: expected 3 RGB channels first or last, got shape {tuple(tensor.shape)}")
    if device is not None:
        tensor = tensor.to(device)
    if is_uint8:
        tensor = tensor.to(dtype) / 255.0
    else:
        tensor = tensor.to(dtype)
        if tensor.numel():
            lo, hi = torch.aminmax(tensor)
            if lo < -1e-3 or hi > 1 + 1e-3:
                raise InputError(
                    f"normalize: float images must be in [0, 1], got values in [{lo.item():.4g}, {hi.item():.4g}] "
                    f"(pass uint8 images, or divide by 255; do not normalize twice)"
                )
    mean = torch.tensor(MEAN, dtype=dtype, device=tensor.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=dtype, device=tensor.device).view(1, 3, 1, 1)
    return ((tensor - mean) / std).contiguous()


def denormalize(tensor: torch.Tensor) -> np.ndarray:
    """Invert :func:`normalize` for display: ``(N, 3, H, W)`` network input -> ``uint8 (N, H, W, 3)``."""
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise InputError(f"denormalize: expected a (N, 3, H, W) tensor, got {tuple(tensor.shape)}")
    t = tensor.detach().to("cpu", torch.float32)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    rgb = (t * std + mean).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return rgb.permute(0, 2, 3, 1).contiguous().numpy()


# --------------------------------------------------------------------------- devices


def select_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Pick the compute device from ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    ``"auto"`` means CUDA if available, else the CPU.

    A requested accelerator that is not available falls back to the CPU with a logged warning,
    so a configuration written for a GPU cluster still runs (slowly) on a laptop.
    """
    pref = "auto" if preference is None else str(preference).strip().lower()
    if pref == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        try:
            device = torch.device(pref)
        except RuntimeError:
            raise InputError(f"device '{preference}': expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
        if not torch.cuda.is_available():
            log.warning("device '%s' requested but CUDA is not available; running on the CPU", preference)
            return torch.device("cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device '{preference}': only {torch.cuda.device_count()} CUDA device(s) visible")
        return device
    if pref == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        log.warning("device 'mps' requested but not available; running on the CPU")
        return torch.device("cpu")
    raise InputError(f"device '{preference}': expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


_AMP_DTYPES = {
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def autocast_context(
    device: torch.device | str, enabled: bool = True, dtype: str | torch.dtype = "float16"
) -> contextlib.AbstractContextManager:
    """Mixed-precision context for a forward pass: ``torch.autocast`` on CUDA, a no-op elsewhere.

    On the CPU autocast would only slow the small demo down and change its numbers, so it is
    never used there; results on CPU are plain float32.

    Parameters
    ----------
    device
        The device the model runs on.
    enabled
        Turn mixed precision off without changing the calling code.
    dtype
        ``"float16"`` (default; pair with a gradient scaler when training) or ``"bfloat16"``.
    """
    device = torch.device(device)
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    if isinstance(dtype, str):
        if dtype.lower() not in _AMP_DTYPES:
            raise InputError(f"autocast dtype '{dtype}': expected one of {', '.join(_AMP_DTYPES)}")
        dtype = _AMP_DTYPES[dtype.lower()]
    if dtype not in (torch.float16, torch.bfloat16):
        raise InputError(f"autocast dtype {dtype}: expected torch.float16 or torch.bfloat16")
    return torch.autocast(device_type="cuda", dtype=dtype)
