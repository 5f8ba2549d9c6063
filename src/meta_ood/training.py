"""OoD fine-tuning with entropy maximization (paper section 3.1 and 5) and baseline training for the demo.

Each epoch mixes the whole in-distribution training set with a fresh, seeded random draw of
``ood_ratio * len(cityscapes)`` COCO proxy images (paper: 297 of 1,489 per epoch, 1:10), takes
random crops and horizontal flips, and minimizes :func:`meta_ood.losses.entropy_max_loss` with
Adam. A checkpoint is written after every epoch; a run that is interrupted resumes from the last
complete epoch. Every random choice of the data (the COCO draw, the order, the crops, the flips)
is derived from ``(seed, epoch, position)``, so it depends neither on the number of DataLoader
workers nor on where a run was resumed, and each checkpoint carries the generator states of
torch (CPU and, when CUDA is in use, every GPU) and of the AMP gradient scaler. On the CPU a
resumed run ends with bit-identical weights to an uninterrupted one; on CUDA that also needs
``deterministic=True`` (cuDNN and cuBLAS otherwise pick nondeterministic kernels).

Resuming is refused, never silently restarted: the checkpoints store the options that determine
the weights (:meth:`TrainConfig.weight_options`) and their hash, and a run with other values for
them stops with an :class:`~meta_ood.errors.InputError` listing the changes. Nothing here ever
deletes a checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from meta_ood import labels as L
from meta_ood.errors import InputError
from meta_ood.io import atomic_path, jsonable
from meta_ood.losses import entropy_max_loss
from meta_ood.options import TRAIN_RUNTIME_OPTIONS as RUNTIME_OPTIONS

log = logging.getLogger(__name__)

COCO_BACKGROUND_MODES = ("ignore", "road")
#: OoD proxies of the fine-tuning: COCO objects mixed in (the paper), or the Cityscapes void classes of
#: the training images themselves (appendix C, :data:`meta_ood.labels.CITYSCAPES_VOID_OOD_IDS`).
PROXIES = ("coco", "cityscapes_void")
#: Largest OoD id: 255 is void (``L.VOID_ID``).
MAX_OOD_ID = L.VOID_ID - 1
_EPOCH_RE = re.compile(r"epoch(\d+)\.pt$")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (paper, DeepLabV3+: λ=0.9, 4 epochs, lr 1e-5, crop 480, batch 8).

    ``coco_background``: ``"ignore"`` (default) leaves non-object COCO pixels out of the loss;
    ``"road"`` reproduces the released code, which trained them as Cityscapes 'road' (train id 0)
    with weight 1-λ. ``recreate_optimizer``: the released code built a new Adam optimizer at
    the start of every epoch (resetting its moments); off by default. ``max_steps_per_epoch``
    caps an epoch (smoke tests). ``ood_id``: the value of OoD pixels in the COCO masks
    (config ``coco_filter.ood_id``); it must not be a train id (``num_classes..254``).
    ``proxy``: ``"coco"`` (default) mixes COCO proxy images in; ``"cityscapes_void"`` applies the
    out-distribution term to the Cityscapes void pixels of :data:`~meta_ood.labels.CITYSCAPES_VOID_OOD_IDS`
    (appendix C, "void OoD training"): no COCO images, the images need their ``labelIds`` files.

    ``amp`` (float16 autocast with a gradient scaler) is used on CUDA only; on the CPU it is
    ignored and training runs in float32. ``deterministic`` selects deterministic CUDA kernels
    where torch has them (cuDNN deterministic without benchmarking, deterministic algorithms in
    warn-only mode, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless set); operations without one (torch
    documents bilinear upsampling's backward, used by every shipped network) stay nondeterministic
    and are logged. It is slower and changes nothing on the CPU.

    Every option except :data:`RUNTIME_OPTIONS` (``epochs``, ``workers``, ``device``) determines
    the weights and is recorded in each checkpoint (:meth:`weight_options`); ``amp`` and
    ``deterministic`` are among them because they change the numerics on CUDA.
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
    deterministic: bool = False
    max_steps_per_epoch: int | None = None
    ood_id: int = L.COCO_OOD_ID
    proxy: str = "coco"

    def __post_init__(self) -> None:
        if self.proxy not in PROXIES:
            raise InputError(f"proxy must be one of {PROXIES}, got {self.proxy!r}")
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
        if self.workers < 0:
            raise InputError(f"workers must be >= 0, got {self.workers}")
        ood = self.ood_id
        if isinstance(ood, bool) or not isinstance(ood, (int, np.integer)) or not self.num_classes <= ood <= MAX_OOD_ID:
            raise InputError(
                f"ood_id (coco_filter.ood_id) must be an integer in {self.num_classes}..{MAX_OOD_ID}, i.e. neither a "
                f"train id 0..{self.num_classes - 1} nor void {L.VOID_ID}; got {ood!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Build from a config mapping; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training option(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)

    def weight_options(self) -> dict[str, Any]:
        """The options that determine the weights (all but :data:`RUNTIME_OPTIONS`), as plain JSON values.

        Their :func:`~meta_ood.models.checkpoint.config_hash` identifies a run's checkpoints.
        """
        options = {k: v for k, v in asdict(self).items() if k not in RUNTIME_OPTIONS}
        if options["proxy"] == "coco":  # the default: checkpoints written before the option existed stay valid
            del options["proxy"]
        return jsonable(options)


def baseline_config(options: Mapping[str, Any]) -> TrainConfig:
    """The configuration of the demo's from-scratch baseline: ``options`` with λ = 0 and no COCO proxies."""
    return TrainConfig.from_dict({**options, "lam": 0.0, "ood_ratio": 0.0})


def baseline_work_dir(out_checkpoint: str | os.PathLike) -> Path:
    """Folder of the per-epoch checkpoints of a baseline saved as ``out_checkpoint``: ``<stem>_epochs/`` beside it."""
    out_checkpoint = Path(out_checkpoint)
    return out_checkpoint.with_name(out_checkpoint.stem + "_epochs")


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

    image = np.ascontiguousarray(image)
    if not image.flags.writeable:  # a read-only decoded image (torch warns about wrapping those)
        image = image.copy()
    x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


class MixedEpoch(Dataset):
    """One epoch of in-distribution images mixed with COCO proxies, with deterministic augmentation.

    Item ``pos`` depends only on ``(seed, epoch, pos)``, never on the process that loads it, so
    any number of DataLoader workers gives the same batches.
    """

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
        if self.cfg.proxy == "cityscapes_void" and self.cfg.lam > 0:
            label = void_target(label, item.label_ids, self.cfg.ood_id, item.name)
        if source == "ood":
            target = np.full(label.shape, L.VOID_ID, dtype=np.uint8)
            if self.cfg.coco_background == "road":
                target[:] = 0
            target[label == self.cfg.ood_id] = self.cfg.ood_id
            label = target
        rng = np.random.default_rng([self.cfg.seed, self.epoch, 1, pos])
        image, label = random_crop_flip(item.image, label, self.cfg.crop, self.cfg.flip, rng)
        return to_tensor(image), torch.from_numpy(label.astype(np.int64))


def void_target(label: np.ndarray, label_ids: np.ndarray | None, ood_id: int, name: str) -> np.ndarray:
    """The training target of void OoD training: ``label`` with its pixels of a void class of
    :data:`~meta_ood.labels.CITYSCAPES_VOID_OOD_IDS` set to ``ood_id``; the other void pixels stay ignored."""
    if label_ids is None:
        raise InputError(f"{name}: void OoD training (finetune.proxy: cityscapes_void) needs the Cityscapes label ids "
                         "(*_gtFine_labelIds.png); the labelTrainIds file merges every void class into 255")
    target = np.array(label, dtype=np.uint8)
    target[np.isin(label_ids, L.CITYSCAPES_VOID_OOD_IDS)] = ood_id
    return target


def completed_epochs(out_dir: str | os.PathLike) -> list[int]:
    """Epoch numbers with a checkpoint in ``out_dir`` (checkpoints are written atomically, so present = complete)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    return sorted(int(m.group(1)) for p in out.iterdir() if (m := _EPOCH_RE.search(p.name)))


# ------------------------------------------------------------------------------ resume checks


def _stored_options(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The weight options a checkpoint records; from its full config for files of older versions."""
    extra = meta.get("extra") or {}
    stored = extra.get("train_options")
    if stored is None and isinstance(extra.get("train_config"), Mapping):
        stored = {k: v for k, v in extra["train_config"].items() if k not in RUNTIME_OPTIONS}
    return None if stored is None else jsonable(dict(stored))


def option_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``'key: old → new'`` for every weight option that differs (an option a file lacks counts as its default)."""
    defaults = jsonable(asdict(TrainConfig()))  # proxy included: "coco" where a file does not record it
    old, new = jsonable(dict(old)), jsonable(dict(new))
    changes = []
    for key in sorted((set(old) | set(new)) - set(RUNTIME_OPTIONS)):
        a, b = old.get(key, defaults.get(key)), new.get(key, defaults.get(key))
        if a != b:
            changes.append(f"{key}: {a!r} → {b!r}")
    return changes


def _verify_checkpoint(path: Path, meta: Mapping[str, Any], cfg: TrainConfig, out: Path) -> None:
    """Raise an InputError if the checkpoint ``path`` was trained with other weight options than ``cfg``."""
    from meta_ood.models.checkpoint import config_hash

    found = meta.get("config_hash")
    current = cfg.weight_options()
    if found is None or found == config_hash(current):  # None: a checkpoint from elsewhere, nothing recorded
        return
    stored = _stored_options(meta)
    changes = option_changes(stored, current) if stored is not None else None
    if changes == []:  # same options, hashed by an older version together with the runtime ones
        return
    what = "; ".join(changes) if changes else f"configuration hash {found}, now {config_hash(current)}"
    raise InputError(
        f"{path}: these checkpoints were trained with other options ({what}). Nothing was changed or "
        f"deleted. To train with the new options, delete {out} or choose a new `run:` name; to continue "
        f"the existing training, set the old values again"
    )


def check_resume(out_dir: str | os.PathLike, options: TrainConfig | Mapping[str, Any]) -> None:
    """Stop with an InputError if ``out_dir`` holds epoch checkpoints trained with other weight options.

    Meant for start-up (the workflow calls it for every model before any job runs): it reads only
    the metadata of each ``epoch<N>.pt`` (memory-mapped), so it takes milliseconds per file.
    ``options`` are the training options (a :class:`TrainConfig` or its mapping); those in
    :data:`RUNTIME_OPTIONS` may differ freely. A missing or empty folder passes.
    """
    from meta_ood.models.checkpoint import read_checkpoint_metadata

    cfg = options if isinstance(options, TrainConfig) else TrainConfig.from_dict(options)
    out = Path(out_dir)
    for epoch in completed_epochs(out):
        path = out / f"epoch{epoch}.pt"
        _verify_checkpoint(path, read_checkpoint_metadata(path), cfg, out)


def _resume_point(out: Path, last: int) -> int:
    """The epoch to resume after: longest prefix 1..k of existing checkpoints (k <= last)."""
    done = set(completed_epochs(out))
    start = 0
    while start + 1 <= last and start + 1 in done:
        start += 1
    return start


# ------------------------------------------------------------------------------ devices and numerics


def require_device(preference: str | torch.device | None, key: str = "device") -> torch.device:
    """The torch device for ``preference`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``); never a silent fallback.

    ``auto`` is CUDA when available, else the CPU. An accelerator that was asked for by name but
    is not usable here is an :class:`InputError` naming the config ``key`` and what torch reports,
    so a GPU job on a node without a working GPU stops instead of running for days on the CPU.
    """
    from meta_ood.models import select_device

    text = "auto" if preference is None else str(preference).strip().lower()
    if text == "cuda" or text.startswith("cuda:"):
        index = text[5:]
        if text != "cuda" and not index.isdigit():
            raise InputError(f"{key}: '{preference}' is not a device; expected auto, cpu, cuda, cuda:N or mps")
        available, count = torch.cuda.is_available(), torch.cuda.device_count()
        if not available:
            raise InputError(
                f"{key}: '{preference}' asks for a GPU, but torch.cuda.is_available() is False here "
                f"(torch.cuda.device_count() = {count}, torch {torch.__version__}, CUDA build "
                f"{torch.version.cuda or 'none'}); use 'auto' or 'cpu' to run on the CPU, or run on a GPU node"
            )
        if index and int(index) >= count:
            raise InputError(
                f"{key}: '{preference}' asks for GPU {index}, but torch.cuda.device_count() = {count} "
                f"(cuda:0 .. cuda:{count - 1}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
            )
    elif text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(
                f"{key}: 'mps' asks for Apple's Metal backend, but torch.backends.mps.is_available() is False here"
            )
    return select_device(text)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Run the block with deterministic CUDA kernels (``enabled``) and restore torch's settings afterwards.

    Sets ``torch.backends.cudnn.deterministic = True``, ``torch.backends.cudnn.benchmark = False``,
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` and, if unset,
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (which cuBLAS reads when it starts, so it stays set for the
    rest of the process). Warn-only: an operation without a deterministic CUDA kernel (e.g. the
    backward of bilinear upsampling) logs a warning instead of ending a job that waited in a queue.
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn.deterministic, cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = before[0], before[1]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])


def _generator_states(scaler: torch.amp.GradScaler) -> dict[str, Any]:
    """What a resumed run needs to continue exactly: torch's CPU and CUDA generators and the AMP scaler.

    The CUDA states (one per visible GPU) are saved when CUDA is in use in this process. The
    loop draws nothing from numpy's or Python's global generators, so they are not saved.
    """
    state: dict[str, Any] = {"torch_rng_state": torch.get_rng_state(), "grad_scaler": scaler.state_dict()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng_states"] = list(torch.cuda.get_rng_state_all())
    return state


def _restore_generator_states(extra: Mapping[str, Any], scaler: torch.amp.GradScaler, path: Path) -> None:
    """Restore what :func:`_generator_states` saved (call after the model is on its device)."""
    cpu = extra.get("torch_rng_state")
    if cpu is not None:
        torch.set_rng_state(cpu)
    cuda = extra.get("cuda_rng_states")
    if cuda:
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            if len(cuda) != count:
                log.warning("%s: saved with %d GPU(s), resuming with %d; the GPU generators differ from an "
                            "uninterrupted run", path, len(cuda), count)
            if not torch.cuda.is_initialized():
                torch.cuda.init()  # else the states would be queued behind the lazy manual_seed and overwritten
            torch.cuda.set_rng_state_all(list(cuda)[:count])
        else:
            log.warning("%s: written on a GPU, resuming on the CPU; its CUDA generator states are not used", path)
    scaler_state = extra.get("grad_scaler")
    if scaler_state:
        scaler.load_state_dict(scaler_state)  # a no-op when AMP is off (CPU)
    elif scaler.is_enabled():
        log.warning("%s: no gradient-scaler state (written without AMP on CUDA); starting from the default scale", path)


# ------------------------------------------------------------------------------ the loop


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _loader_generator(seed: int, epoch: int) -> torch.Generator:
    """The DataLoader's own generator (it seeds the workers), so loading never draws from torch's global one."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch, 2]).generate_state(1)[0]))


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
    device_key: str = "device",
) -> list[Path]:
    """Train ``cfg.model`` and write ``out_dir/epoch<N>.pt`` for N = 1..epochs plus ``out_dir/losses.csv``.

    ``init_checkpoint`` holds the starting weights (the baseline model for OoD fine-tuning; None
    trains from scratch, as for the demo's baseline). With ``resume`` the run continues after the
    longest run of consecutive checkpoints 1..k in ``out_dir`` (k <= ``stop_after``).
    ``stop_after`` ends the run after that epoch (the workflow runs one job per epoch, each
    resuming from the previous checkpoint). If any checkpoint in ``out_dir`` was trained with
    other weight options, the run stops with an InputError naming the changes (see
    :func:`check_resume`); nothing is deleted. ``device_key`` names the config key of
    ``cfg.device`` in error messages.

    Returns
    -------
    The checkpoint paths of the epochs trained so far (1..last), in order.
    """
    from tqdm.auto import tqdm

    from meta_ood.models import autocast_context, build
    from meta_ood.models.checkpoint import config_hash, load_checkpoint, save_checkpoint

    if len(cityscapes) == 0:
        raise InputError("the in-distribution training set is empty")
    if cfg.proxy == "coco" and cfg.lam > 0 and cfg.ood_ratio > 0 and (coco is None or len(coco) == 0):
        raise InputError("OoD training (lambda > 0) needs COCO proxy images, but the selection is empty")
    if cfg.proxy == "cityscapes_void":
        coco = None  # the void pixels of the Cityscapes images are the proxy
    out = Path(out_dir)
    check_resume(out, cfg)  # also without resume: never overwrite checkpoints of other options
    device = require_device(cfg.device, device_key)
    out.mkdir(parents=True, exist_ok=True)
    options = cfg.weight_options()
    chash = config_hash(options)
    use_amp = cfg.amp and device.type == "cuda"
    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    start = _resume_point(out, last) if resume else 0
    with deterministic_algorithms(cfg.deterministic):
        torch.manual_seed(cfg.seed)
        model = build(cfg.model, num_classes=cfg.num_classes)
        if init_checkpoint is not None:
            load_checkpoint(model, init_checkpoint)
        model.to(device)
        optimizer = _make_optimizer(model, cfg)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        if start:
            state = load_checkpoint(model, out / f"epoch{start}.pt", optimizer=optimizer)
            _restore_generator_states(state.get("extra") or {}, scaler, out / f"epoch{start}.pt")
            log.info("resuming after epoch %d from %s", start, out)
        rows = _read_loss_csv(out / "losses.csv", start)

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
                generator=_loader_generator(cfg.seed, epoch),
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
                    logits.float(), targets, cfg.lam, num_classes=cfg.num_classes, ood_id=cfg.ood_id,
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
                extra={**_generator_states(scaler), "train_options": options, "train_config": asdict(cfg)},
            )
            _write_loss_csv(out / "losses.csv", rows)
            log.info("epoch %d: mean loss %.5f", epoch, np.mean([r["loss"] for r in rows if int(r["epoch"]) == epoch]))
    return [out / f"epoch{e}.pt" for e in range(1, max(last, start) + 1)]
