"""Entropy-maximization loss: parity with the released implementation's values, closed forms, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from meta_ood.losses import entropy_max_loss


@pytest.mark.parametrize("seed", [11, 12])
def test_matches_reference_loss(golden_dir, seed):
    g = np.load(golden_dir / f"loss_seed{seed}.npz")
    logits = torch.from_numpy(g["in_logits"])
    for k, alpha in enumerate(g["in_pareto_alpha"]):
        target = torch.from_numpy(g["in_targets"].copy())
        before = target.clone()
        loss = entropy_max_loss(logits, target, float(alpha), num_classes=int(g["in_num_classes"]),
                                ood_id=int(g["in_ood_ind"]))
        assert loss.item() == pytest.approx(float(g["pred_loss"][k]), rel=1e-6, abs=0)
        assert torch.equal(target, before)  # the caller's target is left alone


def test_matches_encoded_target_formulation(golden_dir):
    """Same value as mean(encoded_target * -log_softmax) with the reference's encoded targets."""
    g = np.load(golden_dir / "loss_seed11.npz")
    logits = torch.from_numpy(g["in_logits"])
    logp = torch.log_softmax(logits, 1)
    for k, alpha in enumerate(g["in_pareto_alpha"]):
        enc = torch.from_numpy(g["pred_target_encoded"][k]).float()
        expected = (enc * -logp).mean().item()
        got = entropy_max_loss(logits, torch.from_numpy(g["in_targets"]), float(alpha)).item()
        assert got == pytest.approx(expected, rel=1e-12)


def test_uniform_logits_closed_form():
    n, c, h, w = 2, 19, 5, 7
    logits = torch.zeros(n, c, h, w, dtype=torch.float64)
    target = torch.zeros(n, h, w, dtype=torch.long)
    target[0, :2] = 254
    target[1, 0, :3] = 255
    target[1, 1, :1] = -1
    n_ood = int((target == 254).sum())
    n_in = int(((target >= 0) & (target < c)).sum())
    lam = 0.25
    got = entropy_max_loss(logits, target, lam, reduction="mean").item()
    expected = ((1 - lam) * n_in * math.log(c) + lam * n_ood * math.log(c)) / (n_in + n_ood)
    assert got == pytest.approx(expected, rel=1e-6)
    ref = entropy_max_loss(logits, target, lam).item()
    assert ref == pytest.approx(expected * (n_in + n_ood) / (n * c * h * w), rel=1e-6)


def test_gradient_equals_one_hot_formulation():
    torch.manual_seed(0)
    logits = torch.randn(3, 19, 6, 8, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 19, (3, 6, 8))
    target[0, 2:4, 2:5] = 254
    target[2, :, :2] = 255
    lam = 0.9
    entropy_max_loss(logits, target, lam).backward()
    g1 = logits.grad.clone()
    logits.grad = None
    enc = torch.zeros(3, 19, 6, 8, dtype=torch.float64)
    inside = (target < 19)
    enc.scatter_(1, torch.where(inside, target, 0).unsqueeze(1), 1.0)
    enc *= inside.unsqueeze(1)
    enc *= float(np.float32(1 - lam))
    enc += (target == 254).unsqueeze(1) * float(np.float32(lam / 19))
    (enc * -torch.log_softmax(logits, 1)).mean().backward()
    torch.testing.assert_close(g1, logits.grad, rtol=1e-9, atol=1e-11)


def test_lambda_extremes_and_bad_values():
    torch.manual_seed(1)
    logits = torch.randn(1, 19, 4, 4)
    target = torch.full((1, 4, 4), 254)
    assert entropy_max_loss(logits, target, 0.0).item() == 0.0
    target = torch.randint(0, 19, (1, 4, 4))
    assert entropy_max_loss(logits, target, 1.0).item() == 0.0
    target[0, 0, 0] = 77
    with pytest.raises(ValueError, match=r"\[77\]"):
        entropy_max_loss(logits, target, 0.5)
    with pytest.raises(ValueError, match="reduction"):
        entropy_max_loss(logits, target, 0.5, reduction="sum")


def test_half_precision_logits_accumulate_in_float32():
    torch.manual_seed(2)
    logits = torch.randn(2, 19, 8, 8)
    target = torch.randint(0, 19, (2, 8, 8))
    target[1, :4] = 254
    half = logits.half().requires_grad_(True)
    loss = entropy_max_loss(half, target, 0.9)
    loss.backward()
    ref = entropy_max_loss(half.detach().float(), target, 0.9)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert half.grad.dtype == torch.float16


def test_single_backward_only():
    logits = torch.randn(1, 19, 3, 3, requires_grad=True)
    loss = entropy_max_loss(logits, torch.zeros(1, 3, 3, dtype=torch.long), 0.5)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="single backward"):
        loss.backward()


def test_large_logits_use_the_shifted_path_and_agree():
    torch.manual_seed(3)
    target = torch.randint(0, 19, (2, 5, 5))
    target[0, :2] = 254
    small = torch.randn(2, 19, 5, 5, dtype=torch.float64) * 5
    for offset in (0.0, 500.0, -500.0):  # 0: direct exp; +-500: per-pixel max shift
        logits = (small + offset).requires_grad_(True)
        loss = entropy_max_loss(logits, target, 0.9)
        loss.backward()
        ref = small.clone().requires_grad_(True)
        expected = entropy_max_loss(ref, target, 0.9)
        expected.backward()
        assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item(), rel=1e-9)
        torch.testing.assert_close(logits.grad, ref.grad, rtol=1e-7, atol=1e-12)
