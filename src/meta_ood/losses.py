"""Entropy-maximization training loss (paper eq. 2-4), computed from log-softmax without one-hot targets."""

from __future__ import annotations

import numpy as np
import torch

REDUCTIONS = ("reference", "mean")
# |logit| bound under which float32 exp neither overflows (sum of C terms) nor underflows to zero
_EXP_SAFE = 60.0


def entropy_max_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    lam: float,
    num_classes: int = 19,
    ood_id: int = 254,
    void_id: int = 255,
    reduction: str = "reference",
) -> torch.Tensor:
    """``(1-λ)·CE`` on in-distribution pixels plus ``λ·mean_j(-log p_j)`` on OoD pixels; void pixels add nothing.

    Parameters
    ----------
    logits : (N, C, H, W) tensor of pre-softmax scores.
    target : (N, H, W) integer tensor: train ids ``0..C-1``, ``ood_id`` for OoD proxy pixels,
        ``void_id`` or ``-1`` (Cityscapes 'license plate') for ignored pixels.
    lam : weight λ of the OoD term (paper: 0.9 for DeepLabV3+, 0.25 for DualGCNNet).
    reduction : ``"reference"`` divides the sum by ``N·C·H·W`` and rounds the weights ``1-λ`` and
        ``λ/C`` to float32, exactly as the paper's released code (its target encoding is cast to
        float32 and averaged over every element, void pixels and the class axis included), so
        values equal the released loss. ``"mean"`` divides by the number of non-void pixels,
        i.e. the empirical expectation of eq. (2).

    Returns
    -------
    Scalar tensor, differentiable w.r.t. ``logits``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.dim() != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"logits must be (N, {num_classes}, H, W), got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    target = target.long()
    in_mask = (target >= 0) & (target < num_classes)
    ood_mask = target == ood_id
    void_mask = (target == void_id) | (target == -1)
    if not bool((in_mask | ood_mask | void_mask).all()):
        bad = torch.unique(target[~(in_mask | ood_mask | void_mask)]).tolist()
        raise ValueError(f"target has values {bad}; expected 0..{num_classes - 1}, {ood_id} (OoD) or {void_id}/-1 (void)")

    w_in = float(np.float32(1.0 - lam))
    w_out = float(np.float32(lam / num_classes))
    if reduction == "reference":
        denom = float(logits.numel())
    else:
        denom = float(max(int(in_mask.sum() + ood_mask.sum()), 1))
    return _EntropyMaxLoss.apply(logits, target, in_mask, ood_mask, w_in, w_out, denom)


class _EntropyMaxLoss(torch.autograd.Function):
    """Fused loss and analytic gradient with a single (N, C, H, W) buffer.

    With ``lse = log Σ_j exp z_j``: an in-distribution pixel of class y costs ``w_in·(lse - z_y)``,
    gradient ``w_in·(softmax - onehot_y)``; an OoD pixel costs ``w_out·(C·lse - Σ_j z_j)`` (that is
    ``λ·mean_j(-log p_j)``), gradient ``w_out·(C·softmax - 1)``. The softmax computed in the
    forward pass is kept and turned into the gradient in place, so no other full-size temporary is
    allocated (the gradient needs that memory anyway). The graph can therefore be backpropagated once.
    """

    @staticmethod
    def forward(ctx, logits, target, in_mask, ood_mask, w_in, w_out, denom):  # noqa: D102
        ctx.input_dtype = logits.dtype
        if logits.dtype in (torch.float16, torch.bfloat16):  # mixed precision: accumulate in float32
            logits = logits.float()
        num_classes = logits.shape[1]
        lo, hi = torch.aminmax(logits)
        if max(-float(lo), float(hi)) <= _EXP_SAFE:
            # exp cannot overflow or underflow to zero here: skip the per-pixel max shift (one pass less)
            soft = torch.exp(logits)
            total = soft.sum(dim=1)
            lse = total.log()
        else:
            zmax = logits.amax(dim=1, keepdim=True)
            soft = torch.sub(logits, zmax)
            soft.exp_()
            total = soft.sum(dim=1)
            lse = total.log() + zmax.squeeze(1)
        z_y = logits.gather(1, torch.where(in_mask, target, 0).unsqueeze(1)).squeeze(1)
        in_term = torch.where(in_mask, lse - z_y, 0).sum()
        ood_term = torch.where(ood_mask, num_classes * lse - logits.sum(dim=1), 0).sum()
        ctx.save_for_backward(soft, total, target, in_mask, ood_mask)
        ctx.weights = (w_in, w_out, denom)
        ctx.used = False
        return (w_in * in_term + w_out * ood_term) / denom

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        if ctx.used:
            raise RuntimeError("entropy_max_loss supports a single backward pass per forward (retain_graph is not supported)")
        ctx.used = True
        grad, total, target, in_mask, ood_mask = ctx.saved_tensors  # grad holds exp(z - max) here
        w_in, w_out, denom = ctx.weights
        num_classes = grad.shape[1]
        scale = grad_out / denom
        dtype = grad.dtype
        coef = (in_mask * w_in + ood_mask * (w_out * num_classes)).to(dtype) * scale / total
        grad.mul_(coef.unsqueeze(1))  # now coefficient * softmax
        if bool(ood_mask.any()):
            n_idx, y_idx, x_idx = torch.nonzero(ood_mask, as_tuple=True)
            grad[n_idx, :, y_idx, x_idx] -= w_out * scale
        in_idx = torch.where(in_mask, target, 0).unsqueeze(1)
        grad.scatter_add_(1, in_idx, -((in_mask * w_in).to(dtype) * scale).unsqueeze(1))
        return grad.to(ctx.input_dtype), None, None, None, None, None, None
