"""OoD fine-tuning with entropy maximization (paper section 3.1 and 5) and baseline training for the demo.

Each epoch mixes the whole in-distribution training set with a fresh, seeded random draw of
``ood_ratio * len(cityscapes)`` COCO proxy images (paper: 297 of 1,489 per epoch, 1:10), takes
random crops and horizontal flips, and minimizes :func:`meta_ood.losses.entropy_max_loss` with
Adam. A checkpoint is written after every epoch; a run that is interrupted resumes from the last
complete epoch and ends with the same weights as an uninterrupted one, because every random
choice (the COCO draw, the order, the crops, the flips) is derived from ``(seed, epoch, position)``
and the torch RNG state is saved in each checkpoint.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from meta_ood import labels as L
from meta_ood.errors import InputError
from meta_ood.io import atomic_path
from meta_ood.losses import entropy_max_loss

log = logging.getLogger(__name__)

COCO_BACKGROUND_MODES = ("ignore", "road")
_EPOCH_RE = re.compile(r"epoch(\d+)\.pt$")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (paper, DeepLabV3+: λ=0.9, 4 epochs, lr 1e-5, crop 480, batch 8).

    ``coco_background``: ``"ignore"`` (default) leaves non-object COCO pixels out of the loss;
    ``"road"`` reproduces the released code, which trained them as Cityscapes 'road' (train id 0)
    with weight 1-λ. ``recreate_optimizer``: the released code built a new Adam optimizer at
    the start of every epoch (resetting its moments); off by default. ``max_steps_per_epoch``
    caps an epoch (smoke tests).
    """

    model: str = "tiny"
    num_classes: int = L.NUM_CLASSES
    epochs: int = 4
    lam: float = 0.9
    lr: float = 1e-5
    weight_decay: float = 0.0
    batch_size: int = 8
    crop: int | tuple[int, int] = 480
    flip: bool = True
    ood_ratio: float = 0.1
    coco_background: str = "ignore"
    recreate_optimizer: bool = False
    loss_reduction: str = "reference"
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.coco_background not in COCO_BACKGROUND_MODES:
            raise InputError(f"coco_background must be one of {COCO_BACKGROUND_MODES}, got {self.coco_background!r}")
        if not 0.0 <= self.lam <= 1.0:
            raise InputError(f"lambda must be in [0, 1], got {self.lam}")
        if isinstance(self.crop, list):
            object.__setattr__(self, "crop", tuple(self.crop))
        if self.epochs < 1 or self.batch_size < 1 or min(crop_size(self.crop)) < 8:
            raise InputError(f"epochs, batch_size must be >= 1 and crop >= 8, got {self.epochs}, {self.batch_size}, {self.crop}")
        if self.ood_ratio < 0:
            raise InputError(f"ood_ratio must be >= 0, got {self.ood_ratio}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a config mapping; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training option(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)


def epoch_plan(n_in: int, n_ood: int, ood_ratio: float, seed: int, epoch: int) -> list[tuple[str, int]]:
    """The shuffled (source, index) list of one epoch: every in-distribution image plus a fresh OoD draw.

    The OoD draw is ``round(ood_ratio * n_in)`` images without replacement (all of them if fewer
    exist), seeded by ``(seed, epoch)`` so that a resumed run sees the same epochs.
    """
    rng = np.random.default_rng([seed, epoch, 0])
    k = min(int(round(ood_ratio * n_in)), n_ood) if n_ood else 0
    drawn = np.sort(rng.choice(n_ood, size=k, replace=False)) if k else np.empty(0, dtype=int)
    plan = [("in", i) for i in range(n_in)] + [("ood", int(j)) for j in drawn]
    order = rng.permutation(len(plan))
    return [plan[i] for i in order]


def crop_size(crop: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) of a crop given as one side (square, as in the paper) or as [height, width]."""
    if isinstance(crop, (int, np.integer)):
        return int(crop), int(crop)
    h, w = crop
    return int(h), int(w)


def random_crop_flip(
    image: np.ndarray, label: np.ndarray, crop: int | Sequence[int], flip: bool, rng: np.random.Generator,
    fill_label: int = L.VOID_ID,
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop window (zero image / void label padding where the image is smaller) and an optional flip."""
    ch, cw = crop_size(crop)
    h, w = label.shape
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=fill_label)
        h, w = label.shape
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    image = image[y : y + ch, x : x + cw]
    label = label[y : y + ch, x : x + cw]
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
        label = label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, scaled to [0, 1] and ImageNet-normalized."""
    from meta_ood.models import MEAN, STD

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


class MixedEpoch(Dataset):
    """One epoch of in-distribution images mixed with COCO proxies, with deterministic augmentation."""

    def __init__(self, cityscapes: Sequence, coco: Sequence | None, cfg: TrainConfig, epoch: int) -> None:
        self.cs = cityscapes
        self.coco = coco
        self.cfg = cfg
        self.epoch = epoch
        self.plan = epoch_plan(len(cityscapes), len(coco) if coco is not None else 0, cfg.ood_ratio, cfg.seed, epoch)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        source, index = self.plan[pos]
        item = (self.cs if source == "in" else self.coco)[index]
        label = item.label
        if source == "ood":
            target = np.full(label.shape, L.VOID_ID, dtype=np.uint8)
            if self.cfg.coco_background == "road":
                target[:] = 0
            target[label == L.COCO_OOD_ID] = L.COCO_OOD_ID
            label = target
        rng = np.random.default_rng([self.cfg.seed, self.epoch, 1, pos])
        image, label = random_crop_flip(item.image, label, self.cfg.crop, self.cfg.flip, rng)
        return to_tensor(image), torch.from_numpy(label.astype(np.int64))


def completed_epochs(out_dir: str | os.PathLike) -> list[int]:
    """Epoch numbers with a checkpoint in ``out_dir`` (checkpoints are written atomically, so present = complete)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    return sorted(int(m.group(1)) for p in out.iterdir() if (m := _EPOCH_RE.search(p.name)))


def _resume_point(out: Path, last: int, chash: str, on_config_change: str) -> int:
    """The epoch to resume after: longest prefix 1..k of existing checkpoints (k <= last) of this configuration."""
    from meta_ood.models.checkpoint import read_checkpoint

    if on_config_change not in ("error", "restart"):
        raise ValueError(f"on_config_change must be 'error' or 'restart', got {on_config_change!r}")
    done = set(completed_epochs(out))
    start = 0
    while start + 1 <= last and start + 1 in done:
        start += 1
    if not start:
        return 0
    path = out / f"epoch{start}.pt"
    found = read_checkpoint(path)[1].get("config_hash")
    if found in (None, chash):
        return start
    if on_config_change == "error":
        raise InputError(
            f"{path}: written with another training configuration (hash {found} != {chash}); "
            f"remove {out} to start over"
        )
    log.warning("%s holds checkpoints of another training configuration; starting over", out)
    for e in sorted(done):
        (out / f"epoch{e}.pt").unlink(missing_ok=True)
    (out / "losses.csv").unlink(missing_ok=True)
    return 0


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _write_loss_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["epoch", "step", "loss", "lr"])
            writer.writeheader()
            writer.writerows(rows)


def _read_loss_csv(path: Path, up_to_epoch: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if int(r["epoch"]) <= up_to_epoch]


def train(
    cfg: TrainConfig,
    cityscapes: Sequence,
    coco: Sequence | None,
    out_dir: str | os.PathLike,
    init_checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    on_config_change: str = "error",
) -> list[Path]:
    """Train ``cfg.model`` and write ``out_dir/epoch<N>.pt`` for N = 1..epochs plus ``out_dir/losses.csv``.

    ``init_checkpoint`` holds the starting weights (the baseline model for OoD fine-tuning; None
    trains from scratch, as for the demo's baseline). With ``resume`` the run continues after the
    last complete epoch found in ``out_dir``. ``stop_after`` ends the run after that epoch (the
    workflow runs one job per epoch, each resuming from the previous checkpoint). Resuming
    starts after the longest run of consecutive checkpoints 1..k (k < ``stop_after``'s epoch + 1);
    if those were written with another configuration, ``on_config_change="error"`` stops with a
    message and ``"restart"`` deletes them and trains from the start (the workflow's choice, since
    Snakemake reruns a job exactly when its parameters changed).

    Returns
    -------
    The checkpoint paths of the epochs trained so far (1..last), in order.
    """
    from tqdm.auto import tqdm

    from meta_ood.models import autocast_context, build, select_device
    from meta_ood.models.checkpoint import config_hash, load_checkpoint, save_checkpoint

    if len(cityscapes) == 0:
        raise InputError("the in-distribution training set is empty")
    if cfg.lam > 0 and cfg.ood_ratio > 0 and (coco is None or len(coco) == 0):
        raise InputError("OoD training (lambda > 0) needs COCO proxy images, but the selection is empty")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chash = config_hash(asdict(cfg))
    device = select_device(cfg.device)
    use_amp = cfg.amp and device.type == "cuda"
    torch.manual_seed(cfg.seed)
    model = build(cfg.model, num_classes=cfg.num_classes)
    if init_checkpoint is not None:
        load_checkpoint(model, init_checkpoint)
    model.to(device)
    optimizer = _make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    start = _resume_point(out, last, chash, on_config_change) if resume else 0
    if start:
        state = load_checkpoint(model, out / f"epoch{start}.pt", optimizer=optimizer)
        rng_state = state.get("extra", {}).get("torch_rng_state")
        if rng_state is not None:
            torch.set_rng_state(rng_state)
        log.info("resuming after epoch %d from %s", start, out)
    rows = _read_loss_csv(out / "losses.csv", start)

    g = torch.Generator()
    g.manual_seed(cfg.seed)
    for epoch in range(start + 1, last + 1):
        if cfg.recreate_optimizer and epoch > 1:
            optimizer = _make_optimizer(model, cfg)
        data = MixedEpoch(cityscapes, coco, cfg, epoch)
        loader = DataLoader(
            data,
            batch_size=cfg.batch_size,
            shuffle=False,  # the order is already a seeded permutation (epoch_plan)
            num_workers=cfg.workers,
            drop_last=len(data) >= cfg.batch_size,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        model.train()
        steps = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, mininterval=1.0)
        running = math.nan
        for step, (images, targets) in enumerate(loader):
            if step >= steps:
                break
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(device, use_amp):
                logits = model(images)
            loss = entropy_max_loss(
                logits.float(), targets, cfg.lam, num_classes=cfg.num_classes, ood_id=L.COCO_OOD_ID,
                void_id=L.VOID_ID, reduction=cfg.loss_reduction,
            )
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss became {loss.item()} at epoch {epoch}, step {step}; lower the learning rate")
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            value = float(loss.item())
            running = value if math.isnan(running) else 0.9 * running + 0.1 * value
            rows.append({"epoch": epoch, "step": step, "loss": value, "lr": optimizer.param_groups[0]["lr"]})
            bar.set_postfix(loss=f"{running:.4f}")
            bar.update(1)
        bar.close()
        save_checkpoint(
            out / f"epoch{epoch}.pt", model, optimizer=optimizer, epoch=epoch, config_hash=chash,
            extra={"torch_rng_state": torch.get_rng_state(), "train_config": asdict(cfg)},
        )
        _write_loss_csv(out / "losses.csv", rows)
        log.info("epoch %d: mean loss %.5f", epoch, np.mean([r["loss"] for r in rows if int(r["epoch"]) == epoch]))
    return [out / f"epoch{e}.pt" for e in range(1, max(last, start) + 1)]
