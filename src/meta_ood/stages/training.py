"""Training stages: the demo's from-scratch baseline and OoD fine-tuning, from dataset folders to checkpoints."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from meta_ood.datasets import Cityscapes, CocoImages
from meta_ood.io import atomic_path
from meta_ood.training import TrainConfig, baseline_config, baseline_work_dir, completed_epochs, train

log = logging.getLogger(__name__)


def train_baseline_stage(
    cityscapes_root: str, split: str, out_checkpoint: str | os.PathLike, train_options: dict[str, Any], progress: bool = True,
    device_key: str = "device", retrain_finished: bool = False,
) -> Path:
    """Train the demo's in-distribution network from scratch (λ = 0, no COCO) and save it as ``out_checkpoint``.

    The per-epoch checkpoints go to ``<out_checkpoint stem>_epochs/`` so an interrupted run resumes
    (and one with other weight options stops, see :func:`meta_ood.training.check_resume`).
    ``device_key`` names the config key of the device in error messages. ``retrain_finished``
    (the workflow's choice): a finished training in that folder is not reused but moved to
    ``<stem>_epochs.previous/`` and the network trained anew, since the workflow reruns this step
    only when something it depends on changed (data, code, options); an interrupted one resumes.
    """
    cfg = baseline_config(train_options)
    out_checkpoint = Path(out_checkpoint)
    work = baseline_work_dir(out_checkpoint)
    done = completed_epochs(work)
    if retrain_finished and done and max(done) >= cfg.epochs:
        previous = work.with_name(work.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        work.rename(previous)
        log.info("%s: a finished training is not reused for a rerun; moved to %s, training anew", work, previous)
    paths = train(cfg, Cityscapes(cityscapes_root, split), None, work, progress=progress, device_key=device_key)
    with atomic_path(out_checkpoint) as tmp:
        shutil.copyfile(paths[-1], tmp)
    return out_checkpoint


def finetune_stage(
    cityscapes_root: str,
    cityscapes_split: str,
    coco_root: str,
    coco_split: str,
    coco_masks: str | os.PathLike,
    init_checkpoint: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    train_options: dict[str, Any],
    progress: bool = True,
    stop_after: int | None = None,
    ood_id: int | None = None,
    device_key: str = "device",
) -> list[Path]:
    """OoD fine-tuning with entropy maximization: Cityscapes train mixed with the selected COCO proxies
    (``train_options['proxy']`` "coco"), or with its own void pixels as the proxy ("cityscapes_void";
    the COCO arguments are then not read).

    ``stop_after`` ends after that epoch; a later call with a larger value resumes from its checkpoint.
    ``ood_id`` is the value of the OoD pixels in the masks (config ``coco_filter.ood_id``; None:
    ``train_options['ood_id']``, else 254); the masks are read and the loss computed with it.
    ``device_key`` names the config key of the device in error messages.
    """
    options = dict(train_options) if ood_id is None else {**train_options, "ood_id": ood_id}
    cfg = TrainConfig.from_dict(options)
    cs = Cityscapes(cityscapes_root, cityscapes_split)
    coco = None if cfg.proxy == "cityscapes_void" else CocoImages(coco_root, coco_split, masks_dir=coco_masks,
                                                                   ood_id=cfg.ood_id)
    return train(cfg, cs, coco, out_dir, init_checkpoint=init_checkpoint, progress=progress, stop_after=stop_after,
                 device_key=device_key)
