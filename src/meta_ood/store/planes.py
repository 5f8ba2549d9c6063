"""What a store keeps of one image besides its ground truth: score planes, argmax, probabilities.

The pixel evaluation and the mIoU read only the per-pixel score planes and the argmax, so a dump
computes them once, where the logits are (:mod:`meta_ood.device_planes`, in the same pass as
the softmax), and stores them as their own small datasets. Full probabilities are kept only
where later stages read them (segment metrics, meta classification).

Score planes hold the 16-bit codes of the pixel evaluation's histogram
(:func:`meta_ood.pixel_eval.encoding.quantize`): ``floor(clip(s, 0, 1) * 65535 + 0.5)`` for the
scores in [0, 1] ("unit"), the order-preserving float16 code for the unbounded logit scorers
("float16"). A histogram bins the stored code directly, so evaluating from the store equals
evaluating the float32 score map of the dump.

:func:`planes_from_probs` computes the same planes on the CPU from float probabilities (and
logits): the writer uses it when it is handed probabilities instead of finished planes, and the
reader when a file predates the score planes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np

from meta_ood.errors import InputError
from meta_ood.pixel_eval.encoding import dequantize, quantize, score_encoding
from meta_ood.scores import LOGIT_SCORERS, SCORERS, top2

__all__ = ["ImagePlanes", "check_scorers", "decode_scores", "index_dtype", "planes_from_probs"]


@dataclasses.dataclass
class ImagePlanes:
    """One image's planes in their stored representation.

    ``scores`` maps a scorer of :data:`meta_ood.scores.SCORERS` to its (H, W) uint16 codes;
    ``argmax`` is the (H, W) predicted class (uint8, uint16 beyond 256 classes); ``probs`` the
    (C, H, W) probabilities in the store's encoding (None when not kept); ``logits`` (C, H, W)
    float16 / float32 or None; see ``shuffled``.
    """

    scores: dict[str, np.ndarray]
    argmax: np.ndarray
    probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    #: ``probs`` holds the HDF5-shuffled bytes of the stored encoding, (C, itemsize, H, W) uint8:
    #: a dump shuffles on the device, so the host only compresses.
    shuffled: bool = False


def index_dtype(num_classes: int) -> np.dtype:
    """The dtype of an argmax plane: uint8 up to 256 classes, else uint16."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


def check_scorers(scorers: Iterable[str]) -> tuple[str, ...]:
    """Sorted unique scorer names, each one of :data:`~meta_ood.scores.SCORERS`; ``entropy`` is always included.

    The normalized entropy is the paper's score and the input of the mIoU curve, so every store has it.
    """
    names = {"entropy", *scorers}
    unknown = sorted(n for n in names if n not in SCORERS)
    if unknown:
        raise InputError(f"unknown scorer(s) {unknown}; expected names of {sorted(SCORERS)}")
    return tuple(sorted(names))


def score_codes(scores: np.ndarray, scorer: str) -> np.ndarray:
    """The stored uint16 codes of a float score map of ``scorer`` (the histogram's 16-bit bins)."""
    return quantize(scores, 16, score_encoding(scorer)).astype(np.uint16, copy=False)


def decode_scores(codes: np.ndarray, scorer: str) -> np.ndarray:
    """Score values (float64) of stored codes: the grid value ``k / 65535`` or the float16 value."""
    return dequantize(codes, 16, score_encoding(scorer))


def planes_from_probs(
    probs: np.ndarray,
    scorers: Iterable[str],
    logits: np.ndarray | None = None,
    where: str = "image",
) -> ImagePlanes:
    """Score codes and argmax of float (C, H, W) probabilities (and logits for the logit scorers), on the CPU.

    ``probs`` and ``logits`` are returned unchanged in the result (not yet in a stored encoding).
    """
    scores: dict[str, np.ndarray] = {}
    for name in check_scorers(scorers):
        src = logits if name in LOGIT_SCORERS else probs
        if src is None:
            raise InputError(f"{where}: scorer {name!r} is computed from logits, but none were given")
        scores[name] = score_codes(SCORERS[name](src), name)
    _, _, amax = top2(probs)
    return ImagePlanes(scores=scores, argmax=amax.astype(index_dtype(probs.shape[0]), copy=False),
                       probs=probs, logits=logits)


def check_planes(planes: ImagePlanes, scorers: Iterable[str], hw: tuple[int, int], where: str) -> None:
    """InputError unless ``planes`` holds a (H, W) uint16 code plane per scorer and an integer argmax."""
    missing = [s for s in scorers if s not in planes.scores]
    if missing:
        raise InputError(f"{where}: score planes {missing} are missing; expected {sorted(scorers)}")
    bad: Mapping[str, np.ndarray] = {
        **{f"scores/{k}": v for k, v in planes.scores.items() if v.shape != hw or v.dtype != np.uint16},
        **({"argmax": planes.argmax} if planes.argmax.shape != hw or planes.argmax.dtype.kind != "u" else {}),
    }
    if bad:
        what = ", ".join(f"{k} {v.dtype}{tuple(v.shape)}" for k, v in bad.items())
        raise InputError(f"{where}: {what}; expected uint16 score codes and an unsigned argmax of shape {hw}")
