"""Score planes computed where the logits are: softmax, scores, argmax and stored encodings in torch.

:func:`device_planes` turns a batch of logits into what the softmax store keeps
(:class:`~meta_ood.store.planes.ImagePlanes`) on the network's device -- on a GPU the softmax,
every score map, their 16-bit codes and the fixed-point probabilities cost a few milliseconds
-- and moves only the finished integer planes to the host, which then just compresses and
writes them. The formulas and codes are those of :mod:`meta_ood.scores` and
:mod:`meta_ood.pixel_eval.encoding` (the tests compare both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from meta_ood.errors import InputError
from meta_ood.scores import LOGIT_SCORERS, UNIT_INTERVAL_SCORERS
from meta_ood.store.codec import FIXED_SCALE
from meta_ood.store.planes import ImagePlanes, check_scorers, index_dtype

__all__ = ["device_planes", "torch_scores"]

_F16_SIGN = 0x8000


#: Values per block of rows on the CPU (about 1 MiB of float32: the block stays in the cache).
_CPU_BLOCK_VALUES = 1 << 18


def _block_planes(z: torch.Tensor, names: frozenset[str], keep_probs: bool) -> dict[str, torch.Tensor]:
    """Score maps (float32), argmax and probabilities of a block of float32 logits (N, C, h, W).

    One exp per logit: with ``e = exp(z - max z)`` and ``s = sum e``, the softmax is ``e / s``,
    the entropy ``log s - sum(e (z - max z)) / s``, the MSP ``1 / s``, the free energy
    ``-(max z + log s)``. Higher = more anomalous, as in :data:`meta_ood.scores.SCORERS`.
    """
    m, amax = z.max(1, keepdim=True)
    zc = z - m
    e = torch.exp(zc)
    s = e.sum(1)
    out: dict[str, torch.Tensor] = {"argmax": amax[:, 0], "finite": torch.isfinite(m).all()}
    if "entropy" in names:
        out["entropy"] = (torch.log(s) - zc.mul_(e).sum(1) / s) / math.log(z.shape[1])
    if names & {"variation_ratio", "msp", "margin"}:
        p1 = 1.0 / s.double()
        vr = (1.0 - p1).float()
        out.update({k: vr for k in ("variation_ratio", "msp") if k in names})
        if "margin" in names:
            p2 = torch.exp(z.topk(2, dim=1).values[:, 1] - m[:, 0]) / s
            out["margin"] = (1.0 - p1 + p2.double()).float()
    if "max_logit" in names:
        out["max_logit"] = -m[:, 0]
    if "energy" in names:
        out["energy"] = -(m[:, 0] + torch.log(s))
    if keep_probs:
        out["probs"] = e.div_(s.unsqueeze(1))
    return out


def torch_scores(probs: torch.Tensor, logits: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Float32 score maps (N, H, W) of ``names`` from float32 ``probs`` and ``logits`` (N, C, H, W).

    The scorers of :data:`meta_ood.scores.SCORERS` in torch, from probabilities the caller already
    has: normalized entropy (after renormalizing each pixel), ``1 - max p`` (variation ratio and
    ``msp``), ``1 - p_(1) + p_(2)`` (margin), ``-max logit`` and ``-logsumexp(logits)``.
    """
    out: dict[str, torch.Tensor] = {}
    c = probs.shape[1]
    if "entropy" in names:
        q = probs / probs.sum(1, keepdim=True)
        out["entropy"] = torch.special.entr(q).sum(1) / math.log(c)
    if {"variation_ratio", "msp", "margin"} & set(names):
        top = torch.topk(probs, 2, dim=1).values.double()
        vr = (1.0 - top[:, 0]).float()
        out.update({k: vr for k in ("variation_ratio", "msp") if k in names})
        if "margin" in names:
            out["margin"] = (1.0 - top[:, 0] + top[:, 1]).float()
    if "max_logit" in names:
        out["max_logit"] = -logits.amax(1)
    if "energy" in names:
        out["energy"] = -torch.logsumexp(logits, 1)
    return out


def _unit_codes(s: torch.Tensor) -> torch.Tensor:
    """``floor(clip(s, 0, 1) * 65535 + 0.5)`` computed in float64, as uint16 (the "unit" encoding)."""
    return torch.floor(s.double().clamp(0.0, 1.0) * 65535.0 + 0.5).to(torch.int32).to(torch.uint16)


def _float16_codes(s: torch.Tensor) -> torch.Tensor:
    """Order-preserving uint16 code of ``float16(s)``: ``~u`` for negative values, ``u | 0x8000`` otherwise."""
    u = s.to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF
    u = torch.where(u == _F16_SIGN, torch.zeros_like(u), u)  # -0 -> +0
    code = torch.where(u >= _F16_SIGN, (~u) & 0xFFFF, u | _F16_SIGN)
    return code.to(torch.uint16)


#: The torch dtype of each probability encoding.
STORED_TORCH = {"fixed16": torch.uint16, "float16": torch.float16, "float32": torch.float32}


def _encode_probs(probs: torch.Tensor, dtype: str) -> torch.Tensor:
    """Probabilities in the store's encoding: fixed16 ``rint(p * 65535)`` (float32, ties to even), float16, float32."""
    if dtype == "fixed16":
        return torch.round(probs * float(FIXED_SCALE)).clamp_(0, FIXED_SCALE).to(torch.int32).to(torch.uint16)
    return probs.to(torch.float16 if dtype == "float16" else torch.float32)


def _shuffled_bytes(x: torch.Tensor) -> torch.Tensor:
    """HDF5 shuffle of every (H, W) plane of ``x`` (N, C, H, W): (N, C, itemsize, H, W) uint8, byte k of
    every element together (the layout of HDF5's shuffle filter on a little-endian machine)."""
    n, c, h, w = x.shape
    size = x.element_size()
    return x.contiguous().view(torch.uint8).reshape(n, c, h * w, size).transpose(2, 3).contiguous().reshape(n, c, size, h, w)


def device_planes(
    logits: torch.Tensor,
    scorers: Sequence[str],
    dtype: str,
    keep_probs: bool = True,
    keep_logits: bool = False,
    where: str = "batch",
    shuffle: bool = False,
) -> list[ImagePlanes]:
    """The stored planes of every image of a batch of logits (N, C, H, W), computed on their device.

    ``dtype`` is the store's probability encoding (logits are kept as float16, float32 with
    ``dtype="float32"``). Logits with NaN/inf are an InputError. Returns one
    :class:`ImagePlanes` per image with host (numpy) arrays; ``where`` names the images in errors.
    On the CPU the work goes block by block of rows, so that each block stays in the cache
    (3-4x faster than whole-tensor operations); a GPU takes the batch at once. With ``shuffle``
    the probabilities come as HDF5-shuffled bytes (``ImagePlanes.shuffled``), so that the host
    only compresses them.
    """
    names = frozenset(check_scorers(scorers))
    logits = logits.float()
    n, c, h, w = logits.shape
    dev = logits.device
    rows = h if dev.type != "cpu" else max(1, min(h, _CPU_BLOCK_VALUES // max(1, n * c * w)))
    maps = {k: torch.empty((n, h, w), dtype=torch.float32, device=dev) for k in names}
    amax = torch.empty((n, h, w), dtype=torch.int64, device=dev)
    probs = torch.empty((n, c, h, w), dtype=STORED_TORCH[dtype], device=dev) if keep_probs else None
    finite = torch.ones((), dtype=torch.bool, device=dev)
    for r0 in range(0, h, rows):
        r = slice(r0, min(h, r0 + rows))
        block = _block_planes(logits[:, :, r], names, keep_probs)
        finite &= block["finite"]
        amax[:, r] = block["argmax"]
        for k in names:
            maps[k][:, r] = block[k]
        if probs is not None:
            probs[:, :, r] = _encode_probs(block["probs"], dtype)
    if not bool(finite):
        raise InputError(f"{where}: the model returned NaN or inf logits; expected finite values")
    codes = {k: (_unit_codes(v) if k in UNIT_INTERVAL_SCORERS else _float16_codes(v)) for k, v in maps.items()}
    assert not (names - UNIT_INTERVAL_SCORERS - LOGIT_SCORERS)
    argmax_np = amax.to(torch.int32).cpu().numpy().astype(index_dtype(c), copy=False)
    host = {
        "scores": {k: v.cpu().numpy() for k, v in codes.items()},
        "probs": None if probs is None else (_shuffled_bytes(probs) if shuffle else probs).cpu().numpy(),
        "logits": logits.to(torch.float32 if dtype == "float32" else torch.float16).cpu().numpy() if keep_logits else None,
    }
    return [
        ImagePlanes(
            scores={k: v[b] for k, v in host["scores"].items()},
            argmax=argmax_np[b],
            probs=None if host["probs"] is None else host["probs"][b],
            shuffled=shuffle and probs is not None,
            logits=None if host["logits"] is None else host["logits"][b],
        )
        for b in range(n)
    ]
