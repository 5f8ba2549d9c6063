"""Start-up checks of a run configuration: every input it names is there and fits, before any job.

A missing label file, an undefined label id, a wrong COCO category name or a checkpoint with the
wrong keys would otherwise surface hours later, in the job that reads the file. The checks here
are cheap by design, so the workflow and the CLI can run them before anything is scheduled:

* the config's lists: no value given twice;
* datasets: the root and split folders exist, the reader's file listing pairs every image with
  its ground truth, and the *first* pair loads through the reader's checked loader (label values,
  sizes); ROI masks are binary and of the label size. COCO: the annotation file and the image
  folder exist and the first image is readable; the category names are read from the end of the
  annotation file, or (``parse_coco``) the file is parsed once and the usable images counted.
* checkpoints: keys and shapes match the architecture, compared on a model built on the ``meta``
  device (no memory, no initialisation) against a memory-mapped read of the file; class counts
  against the Cityscapes train ids and ``coco_filter.ood_id``.
* third-party SMIYC score files: one per labelled frame, of the label's size (headers only).
* consistency of keys that refer to each other, and the requested compute devices.

Every problem is collected; :func:`raise_problems` turns them into one
:class:`~meta_ood.errors.InputError` with one line each. The checks of single files live in
:mod:`meta_ood.preflight_inputs`. The whole-dataset check that reads every file, before the first
training or dump job, is :mod:`meta_ood.check_data_cache` (over :mod:`meta_ood.check_data`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from meta_ood.datasets import DATASET_KINDS, SegmentationDataset, open_dataset
from meta_ood.errors import InputError
from meta_ood.models import build
from meta_ood.models.checkpoint import (
    _allow_safe_globals,
    _split_container,
    compare_state_dicts,
    read_checkpoint,
)
from meta_ood.preflight_inputs import (
    check_coco_names,
    check_coco_tree,
    check_roi,
    checkpoint_class_count,
    class_count_problems,
    coco_category_names,
    coco_problems,
    duplicate_problems,
    labelled_frames,
    smiyc_score_problems,
)
from meta_ood.stages.layout import method_scores_folder, smiyc_folder

__all__ = [
    "check_checkpoint",
    "check_coco_names",
    "check_dataset",
    "check_device",
    "coco_category_names",
    "dataset_specs",
    "preflight",
    "raise_problems",
]

#: Architectures that need a trained checkpoint (training them from scratch is not the paper's setting).
SCRATCH_ARCHS = ("tiny",)


# ------------------------------------------------------------------------------------ reporting


def raise_problems(problems: Sequence[str], what: str = "preflight") -> None:
    """Raise one :class:`InputError` listing every problem (duplicates once), or return if there are none.

    Parameters
    ----------
    problems
        One message per problem, each naming the file or config key and what was expected.
    what
        What was checked; starts the message.
    """
    unique = list(dict.fromkeys(str(p) for p in problems))
    if not unique:
        return
    lines = "\n".join(f"- {p}" for p in unique)
    raise InputError(f"{what}: {len(unique)} problem(s) found:\n{lines}")


# ------------------------------------------------------------------------------------ datasets


def check_dataset(kind: str, root: str | os.PathLike | None, split: str | None = None, **kw: Any) -> list[str]:
    """Problems of one dataset found by its file listing and by loading its first image/label pair.

    The listing is the reader's own (:func:`meta_ood.datasets.open_dataset`), so every image must
    have its ground truth; only the first pair is read and validated (label values, sizes). COCO
    without ``masks_dir`` is checked without parsing its (large) annotation file: root, image
    folder, annotation file present and the first image readable.

    Parameters
    ----------
    kind
        One of :data:`meta_ood.datasets.DATASET_KINDS`.
    root, split
        Dataset root and split (``None`` = the reader's default split).
    **kw
        Reader options: ``laf_root`` (fishyscapes_lostandfound), ``masks_dir`` (coco).

    Returns
    -------
    list of str
        One message per problem, empty when the dataset looks usable.
    """
    return _open_checked(kind, root, split, kw)[0]


def _open_checked(kind: str, root: str | os.PathLike | None, split: str | None,
                  kw: dict[str, Any]) -> tuple[list[str], SegmentationDataset | None]:
    """:func:`check_dataset`'s problems and the opened reader (None for COCO without masks or on a problem)."""
    if kind not in DATASET_KINDS:
        return [f"unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}"], None
    if root is None or str(root) == "":
        return [f"dataset {kind}: no root folder given"], None
    if kind == "coco" and kw.get("masks_dir") is None:
        return check_coco_tree(Path(root), split or "train2017"), None
    try:
        dataset = open_dataset(kind, str(root), split, **kw)
        dataset[0]
    except InputError as exc:
        return [str(exc)], None
    except OSError as exc:
        return [f"{root}: cannot read the dataset folder ({exc})"], None
    return [], dataset


# ------------------------------------------------------------------------------------ checkpoints


def _meta_model(arch: str, num_classes: int) -> torch.nn.Module:
    """Build the network on the ``meta`` device (shapes only); a custom factory that fails there is built on the CPU.

    A custom factory that fails on the CPU too is reported as one problem, not a traceback.
    """
    try:
        with torch.device("meta"):
            return build(arch, num_classes)
    except Exception:  # a user's factory may do anything on the meta device (e.g. load weights)
        if ":" not in str(arch):
            raise
    try:
        return build(arch, num_classes)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"architecture {arch!r}: the factory failed with {type(exc).__name__}: {exc}") from None


def _state_dict_shapes(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict, memory-mapped when possible so that only its metadata is read."""
    try:
        with _allow_safe_globals():
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy (non-zip) files, objects beyond tensors, damage: the loader's own messages
        return read_checkpoint(path)[0]
    return _split_container(obj, path)[0]


def check_checkpoint(arch: str, num_classes: int, path: str | os.PathLike,
                     classes_key: str = "num_classes") -> list[str]:
    """Problems if the checkpoint file is missing, unreadable, or its keys/shapes do not fit ``arch``.

    The comparison is the one :func:`meta_ood.models.load_checkpoint` makes (wrapper prefixes such
    as ``module.`` removed on either side, ``num_batches_tracked`` optional), against a model
    built on the ``meta`` device, so even the 137M-parameter DeepLabV3+ costs no memory. The
    tensor values are not read (non-finite weights are found when the checkpoint is loaded). When
    the file fits the network with another class count, the message says so and names
    ``classes_key`` (the config key of the class count).
    """
    path = Path(path)
    if not path.is_file():
        return [f"{path}: checkpoint file not found"]
    try:
        model = _meta_model(arch, num_classes)
        ckpt = _state_dict_shapes(path)
    except InputError as exc:
        return [str(exc)]
    model_sd = model.state_dict()
    _, parts = compare_state_dicts(model_sd, ckpt)
    if not parts:
        return []
    return [
        f"{path}: checkpoint does not match the model {type(model).__name__} (arch {arch!r}, "
        f"{num_classes} classes; {len(model_sd)} keys in the model, {len(ckpt)} in the file): " + "; ".join(parts)
        + _class_count_hint(arch, num_classes, model_sd, ckpt, classes_key)
    ]


def _class_count_hint(arch: str, num_classes: int, model_sd: Mapping[str, torch.Tensor],
                      ckpt: Mapping[str, torch.Tensor], classes_key: str) -> str:
    """`` (... set <classes_key> to N ...)`` when the checkpoint is exactly the network with N classes, else ''."""
    other = checkpoint_class_count(model_sd, ckpt, num_classes)
    if other is None:
        return ""
    try:
        fits = not compare_state_dicts(_meta_model(arch, other).state_dict(), ckpt)[1]
    except InputError:
        fits = False
    return (f" (its output layer has {other} classes: set {classes_key} to {other}, or give a checkpoint "
            f"with {num_classes} classes)") if fits else ""


# ------------------------------------------------------------------------------------ devices


def check_device(preference: Any) -> str | None:
    """Why the device ``preference`` cannot be used on this machine, or None if it can.

    ``auto`` and ``cpu`` always work; ``cuda`` / ``cuda:N`` need CUDA (and N below the number of
    visible GPUs), ``mps`` needs Apple's Metal backend.
    """
    text = str(preference).strip().lower()
    if text in ("auto", "cpu"):
        return None
    if text == "cuda" or text.startswith("cuda:"):
        index = text[5:]
        if text != "cuda" and not index.isdigit():
            return f"{preference!r} is not a device; expected auto, cpu, cuda or cuda:N"
        if not torch.cuda.is_available():
            return (
                f"{preference!r} asks for a GPU, but CUDA is not available here (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda or 'none'}); use 'auto' or 'cpu', or run on a GPU machine"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            return f"{preference!r}: only {count} CUDA device(s) visible (cuda:0 .. cuda:{count - 1})"
        return None
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        return None if mps is not None and mps.is_available() else "'mps' is not available on this machine"
    return f"{preference!r} is not a device; expected auto, cpu, cuda or cuda:N"


# ------------------------------------------------------------------------------------ the config


def _trains_here(config: Mapping) -> bool:
    """True if some model is trained or fine-tuned by this run (every model is fine-tuned for >= 1 epoch)."""
    models = config.get("models") or {}
    return any(m.get("checkpoint") is None or (m.get("finetune") or {}).get("epochs", 1) >= 1 for m in models.values())


def dataset_specs(config: Mapping) -> dict[str, dict[str, Any]]:
    """The datasets a validated config uses, as reader specs ``{name: {kind, root, split[, laf_root]}}``.

    Cityscapes train and COCO when a model is trained or fine-tuned here, Cityscapes val for the
    mIoU, and every dataset of ``evaluation.ood_datasets`` / ``segment_datasets`` / ``smiyc_datasets``. Names are
    ``cityscapes_train``, ``cityscapes_val``, ``coco`` and the evaluation dataset names. A null
    ``laf_root`` of fishyscapes_lostandfound means the LostAndFound root.
    """
    ds = config.get("datasets") or {}
    ev = config.get("evaluation") or {}
    specs: dict[str, dict[str, Any]] = {}
    cs = ds.get("cityscapes") or {}
    if _trains_here(config):
        split = cs.get("train_split", "train")
        specs["cityscapes_train"] = {"kind": "cityscapes", "root": cs.get("root"), "split": split}
    if ev.get("miou", True):
        specs["cityscapes_val"] = {"kind": "cityscapes", "root": cs.get("root"), "split": cs.get("val_split", "val")}
    if _trains_here(config) and any(((m or {}).get("finetune") or {}).get("proxy", "coco") == "coco"
                                    for m in (config.get("models") or {}).values()):
        coco = ds.get("coco") or {}
        specs["coco"] = {"kind": "coco", "root": coco.get("root"), "split": coco.get("split", "train2017")}
    used = list(ev.get("ood_datasets") or []) + list(ev.get("segment_datasets") or []) + list(ev.get("smiyc_datasets") or [])
    for name in dict.fromkeys(used):
        block = ds.get(name) or {}
        if name == "cityscapes_void":  # Cityscapes val, its void classes as OoD
            block = {"root": cs.get("root"), "split": cs.get("val_split", "val")}
        spec = {"kind": name, "root": block.get("root"), "split": block.get("split")}
        if name == "fishyscapes_lostandfound":
            spec["laf_root"] = block.get("laf_root") or (ds.get("lostandfound") or {}).get("root")
        if block.get("roi"):
            spec["roi"] = block["roi"]
        specs[name] = spec
    return specs


def _inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def _dataset_problems(config: Mapping, opened: dict[str, SegmentationDataset], parse_coco: bool = False) -> list[str]:
    """Problems of every dataset the run uses; the readers opened without problem go into ``opened`` by name."""
    demo = config.get("demo") or {}
    demo_on = bool(demo.get("enabled"))
    demo_root = demo.get("root", "data/demo")
    problems: list[str] = []
    for name, spec in dataset_specs(config).items():
        block = "cityscapes" if spec["kind"].startswith("cityscapes") else spec["kind"]
        key = f"datasets.{block}"  # e.g. datasets.cityscapes for cityscapes_val and cityscapes_void
        paths = {k: spec[k] for k in ("root", "laf_root") if k in spec}
        unset = [k for k, v in paths.items() if v is None or str(v) == ""]
        if unset:
            problems += [f"{key}.{k} is not set, but the run uses dataset {name}; give the folder" for k in unset]
            continue
        if spec.get("roi"):  # the user's file, also in a demo run (its size once the demo data exists)
            problems += check_roi(f"{key}.roi", spec["roi"], spec["root"], spec["split"])
        if demo_on:
            problems += [
                f"demo.enabled is true but {key}.{k}={v} is outside demo.root={demo_root}: "
                f"the demo only writes into its own folder"
                for k, v in paths.items()
                if not _inside(v, demo_root)
            ]
            continue  # the demo rule writes these files later
        kw = {"laf_root": spec["laf_root"]} if "laf_root" in spec else {}
        split_of_root = spec["kind"] == "cityscapes" and Path(spec["root"]).is_dir()  # a missing root once
        where = f"{key} ({spec['split']} split)" if split_of_root else key
        found, dataset = _open_checked(spec["kind"], spec["root"], spec["split"], kw)
        problems += [f"{where}: {p}" for p in found]
        if dataset is not None:
            opened[name] = dataset
        if name == "coco":
            problems += coco_problems(spec["root"], spec["split"], config.get("coco_filter") or {}, parse_coco)
    return problems


def _explicit_baseline_training(raw_config: Mapping | None, name: str) -> bool:
    if raw_config is None:
        return False
    model = (raw_config.get("models") or {}).get(name)
    return isinstance(model, Mapping) and "baseline_training" in model


def _model_problems(config: Mapping, raw_config: Mapping | None) -> list[str]:
    problems: list[str] = []
    ood_epoch = (config.get("evaluation") or {}).get("ood_epoch")
    models = config.get("models") or {}
    for name, model in models.items():
        key = f"models.{name}"
        arch, classes, ckpt = model.get("arch", "tiny"), model.get("num_classes", 19), model.get("checkpoint")
        source = model.get("baseline_from")
        if source is not None:
            other = models.get(source)
            if other is None or source == name or other.get("baseline_from") is not None:
                problems.append(f"{key}.baseline_from={source!r}: expected another model of the run with its own "
                                f"baseline (one of {sorted(m for m in models if m != name and not models[m].get('baseline_from'))})")
            elif (other.get("arch", "tiny"), other.get("num_classes", 19)) != (arch, classes):
                problems.append(f"{key}.baseline_from={source!r}: that model is {other.get('arch', 'tiny')!r} with "
                                f"{other.get('num_classes', 19)} classes, this one {arch!r} with {classes}; expected the same network")
            if ckpt is not None:
                problems.append(f"{key}: give either checkpoint or baseline_from, not both")
        elif ckpt is None:
            try:
                _meta_model(arch, classes)
            except InputError as exc:
                problems.append(f"{key}.arch: {exc}")
            if arch not in SCRATCH_ARCHS and not _explicit_baseline_training(raw_config, name):
                problems.append(
                    f"{key}.checkpoint is null for architecture {arch!r}: give the trained in-distribution "
                    f"checkpoint ({key}.checkpoint: /path/to/weights.pth), or set {key}.baseline_training "
                    f"explicitly to train it from scratch here"
                )
        else:
            problems += [f"{key}.checkpoint: {p}" for p in check_checkpoint(arch, classes, ckpt, f"{key}.num_classes")]
        epochs = (model.get("finetune") or {}).get("epochs")
        if ood_epoch is not None and epochs is not None and ood_epoch > epochs:
            problems.append(
                f"evaluation.ood_epoch={ood_epoch} is larger than {key}.finetune.epochs={epochs}: "
                f"the reported OoD epoch must be one of the fine-tuning epochs"
            )
    return problems


def _consistency_problems(config: Mapping) -> list[str]:
    problems: list[str] = []
    report = config.get("report") or {}
    models = config.get("models") or {}
    thresholds = (config.get("evaluation") or {}).get("thresholds") or []
    if report.get("example_threshold") is not None:
        t = float(report["example_threshold"])
        if f"{t:g}" not in {f"{float(x):g}" for x in thresholds}:
            problems.append(
                f"report.example_threshold={t:g} is not one of evaluation.thresholds "
                f"{[float(x) for x in thresholds]}: the example figure shows the segments of one of those thresholds"
            )
    main = report.get("main_model")
    if main is not None and main not in models:
        problems.append(f"report.main_model={main!r} is not one of the configured models {sorted(models)}")
    ev, ds = config.get("evaluation") or {}, config.get("datasets") or {}
    for key in ("ood_datasets", "segment_datasets"):
        for name in ev.get(key) or []:
            split = (ds.get(name) or {}).get("split")
            if name in ("smiyc_anomaly", "smiyc_obstacle") and split == "test":
                problems.append(f"evaluation.{key} has {name} with split 'test', which has no labels: set "
                                f"datasets.{name}.split to 'all' (every frame gets a score file, the labelled "
                                "validation frames are evaluated) or 'validation'")
    return problems


def _smiyc_method_problems(config: Mapping, opened: Mapping[str, SegmentationDataset]) -> list[str]:
    """Third-party SMIYC methods: a folder with score files for every SMIYC dataset of the run, in the folder
    the benchmark reads them from (``AnomalyTrack-all/`` ..., :func:`~meta_ood.stages.layout.smiyc_folder`) or in
    ``<dataset>/``; for a dataset whose reader ``opened`` holds, one readable score file of the label size per
    labelled frame (:func:`~meta_ood.preflight_inputs.smiyc_score_problems`)."""
    datasets = (config.get("evaluation") or {}).get("smiyc_datasets") or []
    blocks = config.get("datasets") or {}
    problems = []
    for method, folder in ((config.get("smiyc") or {}).get("methods") or {}).items():
        for ds in datasets:
            split = (blocks.get(ds) or {}).get("split")
            official, sub = Path(folder) / smiyc_folder(ds, split), Path(method_scores_folder(str(folder), ds, split))
            if not sub.is_dir() or not any(sub.glob("*.hdf5")):
                problems.append(f"smiyc.methods.{method}: {official}: no <fid>.hdf5 score files (expected one per "
                                f"frame of {ds}, in the benchmark's folder {official.name}/ or in {ds}/)")
            elif ds in opened:  # else the dataset check reported it, or the demo writes it later
                problems += smiyc_score_problems(f"smiyc.methods.{method}", sub, ds, labelled_frames(opened[ds]))
    return problems


def _device_problems(config: Mapping, training: bool = True, inference: bool = True) -> list[str]:
    wanted = []
    if training:
        wanted += [(f"models.{n}.finetune.device", (m.get("finetune") or {}).get("device", "auto"))
                   for n, m in (config.get("models") or {}).items()]
    if inference:
        wanted.append(("inference.device", (config.get("inference") or {}).get("device", "auto")))
    problems = []
    for key, value in wanted:
        why = check_device(value)
        if why:
            problems.append(f"{key}: {why}")
    return problems


def check_device_config(config: Mapping, training: bool = True, inference: bool = True) -> None:
    """Raise one :class:`InputError` when a configured ``cuda``/``cuda:N`` device is not on this machine.

    ``training`` / ``inference``: check the models' fine-tuning devices / ``inference.device``
    (the workflow checks only those of the jobs it is about to run here).
    """
    raise_problems(_device_problems(config, training, inference), "device check")


def preflight(config: Mapping, raw_config: Mapping | None = None, *, check_devices: bool = True,
              parse_coco: bool = False) -> None:
    """Check a validated run configuration in seconds; one :class:`InputError` listing every problem.

    Checks values listed twice in the config's lists, the datasets the run uses (folders,
    image/label pairing, the first pair, ROI masks; skipped for roots inside ``demo.root`` while
    the demo is enabled, since the demo writes them), the COCO annotation file, every configured
    checkpoint against its architecture and class count, the class counts against the Cityscapes
    train ids and ``coco_filter.ood_id``, the keys that refer to each other
    (``report.example_threshold``, ``report.main_model``, ``evaluation.ood_epoch``), a paper
    architecture without checkpoint, third-party SMIYC score files (headers of every file), and
    the requested compute devices.

    Parameters
    ----------
    config
        The configuration with the schema's defaults filled in.
    raw_config
        The user's configuration before defaults; with it, a model without checkpoint whose
        ``baseline_training`` block the user wrote is trained here instead of being an error.
    check_devices
        Check that ``cuda``/``cuda:N`` devices exist on this machine. Turn off where the jobs
        run on other machines (e.g. submitted to a cluster from a login node without GPU).
    parse_coco
        Parse the whole COCO annotation file and count the images that pass ``coco_filter``
        (printed on stderr; none is a problem). Seconds and a few GB for the 450 MB
        ``instances_train2017.json``: the workflow asks for it while the selection is still to be
        made. Without it only the ``exclude`` names are looked up, in the file's last MiB.

    Raises
    ------
    InputError
        Listing every problem found, one line each.
    """
    opened: dict[str, SegmentationDataset] = {}
    problems = duplicate_problems(config)
    problems += _dataset_problems(config, opened, parse_coco)
    problems += _model_problems(config, raw_config)
    problems += class_count_problems(config)
    problems += _consistency_problems(config)
    problems += _smiyc_method_problems(config, opened)
    if check_devices:
        problems += _device_problems(config)
    raise_problems(problems, "preflight")
