"""Command line interface: ``meta-ood <stage> ...`` runs the same library functions as the Snakemake rules."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meta_ood import __version__
from meta_ood.errors import InputError
from meta_ood.labels import COCO_OOD_ID, ENTROPY_THRESHOLDS, NUM_CLASSES
from meta_ood.memory import keep_freed_memory
from meta_ood.rules import quiet_library_loggers

#: Defaults of the training options (:class:`meta_ood.training.TrainConfig`), shown in the help
#: without importing torch.
TRAIN_DEFAULTS = {"epochs": 4, "lam": 0.9, "lr": 1e-5, "batch_size": 8, "crop": 480, "ood_ratio": 0.1,
                  "workers": 0, "device": "auto", "seed": 0, "coco_background": "ignore", "deterministic": False}
#: The report functions by kind, with the keys of their ``--entries`` file (as the report rules pass them).
RENDER_TARGETS = {
    "table1": ("table", "pixel_entries: [{model, label, dataset, path}] (pixel-eval JSONs of OoD datasets), "
                        "miou_entries: [{model, label, path}] (pixel-eval JSONs of Cityscapes val)"),
    "table2": ("table", "entries: [{label, path}] (segment-eval JSONs); optional acceptable_from"),
    "table3": ("table", "entries: [{label, tag, path}] (meta-classify JSONs, tag 't0.3'); optional acceptable_from"),
    "table_components": ("table", "entries: [{label, path}] (segment-eval JSONs); optional acceptable_from"),
    "figure3": ("figure", "entries: [{model, label, dataset, path}] (pixel-eval JSONs of OoD datasets); "
                          "optional balanced_accuracy"),
    "figure4": ("figure", "entries: [{model, label, dataset, path}] (pixel-eval JSONs of OoD datasets)"),
    "figure5": ("figure", "miou_entries: [{model, label, path}] (pixel-eval JSONs of Cityscapes val); "
                          "optional acceptable_loss"),
    "figure7": ("figure", "entries: [{label, path}] (segment-eval JSONs); optional thresholds"),
    "figure14": ("figure", "entries: [{epoch, miou_path, pixel_path}] (pixel-eval JSONs per epoch, 0 = baseline); "
                           "optional reported_epoch"),
    "examples": ("figure", "entries: {baseline_store, ood_store, ood_meta, baseline_meta} (softmax store folders, "
                           "meta-classify parquet tables); optional threshold, n_examples, meta_threshold"),
    "figure1": ("figure", "entries: {baseline_store, ood_store}; optional n_images, images"),
    "figure2": ("figure", "entries: {baseline_store, ood_store}; optional threshold, n_images, images"),
    "figure6": ("figure", "entries: {ood_store, ood_meta}; optional threshold, meta_threshold, n_images, images"),
    "figure10": ("figure", "entries: [{dataset, baseline_store, ood_store}]; optional images (one per entry)"),
    "figure13": ("figure", "entries: {baseline_store, ood_store}; optional n_images, images"),
    "figure15": ("figure", "entries: {baseline_store, ood_store, baseline_meta, ood_meta}; optional threshold, "
                           "meta_threshold, images"),
    "figure16": ("figure", "entries: {ood_store, ood_meta}; optional threshold, meta_threshold, n_images, images"),
    "table_smiyc": ("table", "entries: [{method, dataset, path}] (smiyc-eval JSONs)"),
    "table_smiyc_scenes": ("table", "entries: [{method, dataset, path}] (smiyc-eval JSONs of smiyc_obstacle)"),
    "figure_smiyc_curves": ("figure", "entries: [{method, dataset, path}] (smiyc-eval JSONs)"),
    "table_paired": ("table", "entries: [{dataset, model, label, a, b}] (pixel-eval .npz histograms of two variants "
                              "on one dataset); optional n_boot, seed, alpha"),
    "table_definitions": ("table", "entries: [{model, label, dataset, path}] (pixel-eval JSONs of OoD datasets, "
                                   "their .npz beside them)"),
}
_OUT_EXTENSIONS = {"table": ("csv", "md", "tex"), "figure": ("png", "pdf")}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows the default of every option; required ones say so, None-defaults explain themselves."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or "required" in text:
            return text
        if action.required:
            return f"{text} (required)"
        default = action.default
        if default is None or default is argparse.SUPPRESS:
            return text
        if isinstance(default, bool):
            shown = "on" if default else "off"
        elif isinstance(default, (list, tuple)):
            shown = " ".join(str(v) for v in default)
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})"


class _CropAction(argparse.Action):
    """``--crop H [W]``: one side gives a square crop, two give [height, width]; anything else is a usage error."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if len(values) not in (1, 2):
            parser.error(f"argument {option_string}: expected one or two integers (SIDE, or H W), got {len(values)}")
        setattr(namespace, self.dest, values[0] if len(values) == 1 else list(values))


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def _load_mapping(path: str | None, what: str) -> dict[str, Any]:
    """A YAML/JSON file holding a mapping (``what`` names it in errors), or {} for None.

    Read as config files are (``meta_ood.config.read_yaml``): duplicated keys and syntax errors name the line,
    ``lr: 1e-5`` is a number.
    """
    if path is None:
        return {}
    from meta_ood.config import read_yaml

    p = Path(path)
    data = read_yaml(p, what)[0] or {}
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a mapping of {what}, got {type(data).__name__}")
    return data


def _train_options(args: argparse.Namespace) -> dict:
    opts = _load_mapping(args.options, "training options")
    for key in TRAIN_DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    opts["model"] = args.arch
    return opts


# ------------------------------------------------------------------------------- commands


def _cmd_coco_filter(args: argparse.Namespace) -> None:
    from meta_ood.coco_filter import DEFAULT_EXCLUDE, DEFAULT_MIN_SIZE, filter_coco
    from meta_ood.preflight import check_coco_names, raise_problems

    exclude = args.exclude or DEFAULT_EXCLUDE
    raise_problems(check_coco_names(args.annotations, exclude), what="coco-filter")
    df = filter_coco(
        annotation_file=args.annotations,
        images_dir=args.images,
        out_dir=args.out,
        exclude_names=exclude,
        min_size=DEFAULT_MIN_SIZE if args.min_size is None else args.min_size,
        ood_id=args.ood_id,
        progress=_progress(args),
    )
    print(f"kept {len(df)} images -> {args.out}/selected.csv, {args.out}/masks/")


def _cmd_demo_data(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from meta_ood.datasets.demo import DemoConfig, generate

    cfg = DemoConfig(**{f.name: getattr(args, f.name) for f in fields(DemoConfig) if hasattr(args, f.name)})
    info = generate(args.out, cfg, progress=_progress(args))
    print(f"demo data written to {args.out}: {info['counts']}")


def _cmd_train_baseline(args: argparse.Namespace) -> None:
    from meta_ood.stages.training import train_baseline_stage
    from meta_ood.preflight import check_dataset, raise_problems

    opts = _train_options(args)
    raise_problems(check_dataset("cityscapes", args.cityscapes, args.split), what="train-baseline")
    path = train_baseline_stage(args.cityscapes, args.split, args.out, opts, progress=_progress(args),
                                device_key="--device")
    print(f"baseline checkpoint: {path}")


def _cmd_finetune(args: argparse.Namespace) -> None:
    from meta_ood.stages.training import finetune_stage
    from meta_ood.preflight import check_checkpoint, check_dataset, raise_problems

    opts = _train_options(args)
    problems = check_dataset("cityscapes", args.cityscapes, args.split)
    problems += check_dataset("coco", args.coco, args.coco_split, masks_dir=args.coco_masks, ood_id=args.ood_id)
    if args.init is not None:
        problems += check_checkpoint(args.arch, int(opts.get("num_classes", NUM_CLASSES)), args.init)
    raise_problems(problems, what="finetune")
    paths = finetune_stage(
        args.cityscapes, args.split, args.coco, args.coco_split, args.coco_masks, args.init, args.out,
        opts, progress=_progress(args), ood_id=args.ood_id, device_key="--device",
    )
    print(f"checkpoints: {', '.join(str(p) for p in paths)}")


def _cmd_dump_softmax(args: argparse.Namespace) -> None:
    from meta_ood.inference import run_dump_stage
    from meta_ood.preflight import check_checkpoint, check_dataset, raise_problems
    from meta_ood.store import parse_shard

    shard = parse_shard(args.shard)
    dataset = {"kind": args.dataset, "root": args.root, "split": args.split}
    if args.dataset == "fishyscapes_lostandfound":
        if not args.laf_root:
            raise InputError("--dataset fishyscapes_lostandfound needs --laf-root, the LostAndFound root whose "
                             "leftImg8bit/ holds the images")
        dataset["laf_root"] = args.laf_root
    elif args.laf_root:
        raise InputError(f"--laf-root is only used with --dataset fishyscapes_lostandfound, not {args.dataset}")
    problems = check_dataset(**dataset)
    if args.checkpoint is not None:
        problems += check_checkpoint(args.arch, args.num_classes, args.checkpoint)
    raise_problems(problems, what="dump-softmax")
    options = {"batch_size": args.batch_size, "dtype": args.dtype, "store_logits": args.store_logits,
               "device": args.device, "amp": not args.no_amp, "workers": args.workers,
               "sliding_window": args.sliding_window, "codec": args.codec, "store_probs": not args.no_probs,
               "scorers": args.scorer or []}
    res = run_dump_stage(args.arch, args.num_classes, args.checkpoint, dataset, args.out, options, shard=shard,
                         model_name=args.arch, progress=_progress(args), device_key="--device")
    print(f"{res.written} images written, {res.skipped} reused -> {args.out}")


def _cmd_merge_store(args: argparse.Namespace) -> None:
    from meta_ood.store import merge_index

    print(f"merged shard indices -> {merge_index(args.store)}")


def _segment_shards(out: Path, n_shards: int | None = None) -> tuple[int, list[float]]:
    """(shard count, thresholds) of the ``shard-<i>-of-<n>`` folders written by ``segments --shard``.

    ``n_shards`` picks the ``shard-*-of-<n_shards>`` folders when folders of other counts are there too.
    """
    if not out.is_dir():
        raise InputError(f"{out}: segments folder not found")
    counts = {int(m.group(2)) for p in out.iterdir() if (m := re.fullmatch(r"shard-(\d+)-of-(\d+)", p.name)) and p.is_dir()}
    if n_shards is not None:
        counts &= {n_shards}
    if not counts:
        raise InputError(f"{out}: no shard folders (shard-<i>-of-<n>) found; run 'segments --shard i/n' first")
    if len(counts) > 1:
        raise InputError(f"{out}: shard folders of different shard counts ({', '.join(f'of-{n}' for n in sorted(counts))}); "
                         "delete the stale ones of an earlier run or pass --shards")
    n = counts.pop()
    tables = (out / f"shard-0-of-{n}").glob("t*.parquet")
    thresholds = sorted({float(m.group(1)) for p in tables if (m := re.fullmatch(r"t([0-9.eE+-]+)\.parquet", p.name))})
    return n, thresholds


def _cmd_merge_segments(args: argparse.Namespace) -> None:
    from meta_ood.stages.segments import merge_segment_shards

    out = Path(args.segments)
    n, found = _segment_shards(out, args.shards) if args.shards is None or args.thresholds is None else (None, None)
    n_shards = args.shards if args.shards is not None else n
    thresholds = args.thresholds if args.thresholds is not None else found
    if not thresholds:
        raise InputError(f"{out}/shard-0-of-{n_shards}: no segment tables t<t>.parquet found; pass --thresholds")
    merge_segment_shards(out, n_shards=n_shards, thresholds=thresholds)
    print(f"merged {n_shards} shards ({len(thresholds)} thresholds) -> {out}")


def _cmd_pixel_eval(args: argparse.Namespace) -> None:
    from meta_ood.stages.pixel_eval import pixel_eval_stage

    r = pixel_eval_stage(args.store, args.out_json, args.out_npz, n_boot=args.n_boot, seed=args.seed,
                         scorer=args.scorer, progress=_progress(args))
    if r["kind"] == "ood":
        print(f"AUROC {r['auroc']:.4f}  FPR95 {r['fpr95']:.4f}  AUPRC {r['auprc']:.4f}")
    else:
        print(f"mIoU {r['miou']['inf']:.4f}")


def _cmd_segments(args: argparse.Namespace) -> None:
    from meta_ood.stages.segments import segment_features_stage
    from meta_ood.store import parse_shard

    shard = parse_shard(args.shard) if args.shard else None
    written = segment_features_stage(args.store, args.out, args.thresholds, shard=shard, progress=_progress(args))
    print(f"{len(written)} tables written to {args.out}")


def _cmd_meta_classify(args: argparse.Namespace) -> None:
    from meta_ood.stages.meta import meta_classify_stage

    r = meta_classify_stage(args.segments, args.out_parquet, args.out_json, features=args.features,
                            protocols=args.protocols, C=args.C, penalize_intercept=not args.free_intercept,
                            standardize=args.standardize)
    for name, m in r["protocols"].items():
        print(f"{name}: AUROC {m.get('auroc')}  AUPRC {m.get('auprc')}  (MSP AUROC {m.get('msp_auroc')})")


def _cmd_segment_eval(args: argparse.Namespace) -> None:
    from meta_ood.stages.segment_eval import segment_eval_stage

    r = segment_eval_stage(args.segments, args.meta, args.thresholds, args.out, meta_threshold=args.meta_threshold,
                           reference_fp_after=args.reference_fp_after)
    for tag, d in r["thresholds"].items():
        print(f"{tag}: FP {d['fp_before']} FN {d['fn_before']} -> FP {d.get('fp_after')} FN {d.get('fn_after')}")


def render_outputs(name: str, out: str) -> dict[str, Path]:
    """Output paths of report ``name`` for ``--out``: a prefix, or a folder (existing, or ending in '/')."""
    kind = RENDER_TARGETS[name][0]
    prefix = Path(out) / name if out.endswith(("/", "\\")) or Path(out).is_dir() else Path(out)
    return {f"out_{ext}": prefix.with_name(f"{prefix.name}.{ext}") for ext in _OUT_EXTENSIONS[kind]}


def _cmd_render(args: argparse.Namespace) -> None:
    import inspect

    from meta_ood import report

    func = getattr(report, args.name)
    kwargs = _load_mapping(args.entries, f"{args.name} arguments")
    params = {n: p for n, p in inspect.signature(func).parameters.items() if not n.startswith("out_")}
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise InputError(f"{args.entries}: unknown key(s) {', '.join(map(repr, unknown))} for {args.name}; "
                         f"expected some of {', '.join(params)}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise InputError(f"{args.entries}: {args.name} needs {', '.join(map(repr, missing))} "
                         f"({RENDER_TARGETS[args.name][1]})")
    outputs = render_outputs(args.name, args.out)
    next(iter(outputs.values())).parent.mkdir(parents=True, exist_ok=True)
    func(**kwargs, **outputs)
    print(f"{args.name}: {', '.join(str(p) for p in outputs.values())}")


def _cmd_convert_checkpoint(args: argparse.Namespace) -> None:
    from meta_ood.models.checkpoint import convert_trusted_checkpoint

    out = convert_trusted_checkpoint(args.checkpoint, args.out)
    print(f"{args.checkpoint}: weights written to {out}; configure that file as the checkpoint")


def _cmd_check_data(args: argparse.Namespace) -> int:
    from meta_ood.check_data import check_data, format_report, write_report

    if len(args.root) != len(args.dataset):
        raise InputError(f"check-data: {len(args.dataset)} --dataset but {len(args.root)} --root; give one root per dataset")
    if args.split is not None and len(args.split) != len(args.dataset):
        raise InputError(f"check-data: {len(args.split)} --split for {len(args.dataset)} --dataset; give none or one per dataset")
    specs: dict[str, dict[str, Any]] = {}
    for k, (kind, root) in enumerate(zip(args.dataset, args.root)):
        spec = {"kind": kind, "root": root, "split": args.split[k] if args.split else None}
        if kind == "fishyscapes_lostandfound":
            if not args.laf_root:
                raise InputError("check-data: --dataset fishyscapes_lostandfound needs --laf-root, the LostAndFound "
                                 "root whose leftImg8bit/ holds the images")
            spec["laf_root"] = args.laf_root
        if kind == "coco":
            spec["ood_id"] = args.ood_id
            if args.masks_dir:
                spec["masks_dir"] = args.masks_dir
        specs[kind if kind not in specs else f"{kind}_{k + 1}"] = spec
    report = check_data(specs, progress=_progress(args))
    if args.out:
        write_report(report, args.out)
        print(f"{len(report.problems)} problem(s) in {report.files_with_problems} file(s), "
              f"{report.files_checked} files read; report -> {args.out}")
    else:
        print(format_report(report))
    if not report.ok:
        print(f"meta-ood: error: check-data found {len(report.problems)} problem(s)", file=sys.stderr)
        return 2
    return 0


# -------------------------------------------------------------------------------- parser


def _add_train_args(p: argparse.ArgumentParser) -> None:
    d = TRAIN_DEFAULTS
    p.add_argument("--cityscapes", required=True, help="Cityscapes root (leftImg8bit/, gtFine/)")
    p.add_argument("--split", default="train", help="Cityscapes split to train on")
    p.add_argument("--arch", default="tiny", help="registered architecture or module.path:factory")
    p.add_argument("--out", required=True, help="output checkpoint (train-baseline) or folder (finetune)")
    p.add_argument("--options", help="YAML file with training options, a models.<name>.finetune block "
                                     "(default: none; the options below override it)")
    p.add_argument("--epochs", type=int, help=f"epochs (default: --options value, else {d['epochs']})")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default: --options value, else {d['lr']:g})")
    p.add_argument("--batch-size", dest="batch_size", type=int,
                   help=f"images per step (default: --options value, else {d['batch_size']})")
    p.add_argument("--crop", type=int, nargs="+", action=_CropAction, metavar=("H", "W"),
                   help=f"random crop: one side (square) or height and width (default: --options value, else {d['crop']})")
    p.add_argument("--workers", type=int, help=f"data loader processes (default: --options value, else {d['workers']})")
    p.add_argument("--device", help=f"auto, cpu, cuda, cuda:N or mps (default: --options value, else {d['device']})")
    p.add_argument("--seed", type=int, help=f"seed of the crops, flips and draws (default: --options value, else {d['seed']})")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic cuDNN/torch algorithms on CUDA, for bit-identical resumes "
                        f"(default: --options value, else {d['deterministic']})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per pipeline stage (``-q`` before or after the sub-command)."""
    from meta_ood.datasets import DATASET_KINDS
    from meta_ood.datasets.demo import DemoConfig
    from meta_ood.scores import SCORERS
    from meta_ood.store import CODECS, DEFAULT_CODEC

    parser = argparse.ArgumentParser(prog="meta-ood", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"meta-ood {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bars (also accepted before the sub-command; default: off)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")

    def add(name: str, text: str, func, epilog: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, epilog=epilog, parents=[quiet],
                           formatter_class=_HelpFormatter)
        p.set_defaults(func=func)
        return p

    add("run", "check the configuration, then run the workflow with Snakemake (meta-ood run --help)", None)
    p = add("coco-filter", "select COCO OoD proxies and write their masks", _cmd_coco_filter)
    p.add_argument("--annotations", required=True, help="COCO instances_<split>.json")
    p.add_argument("--images", required=True, help="folder with <id:012d>.jpg")
    p.add_argument("--out", required=True, help="output folder (masks/ and selected.csv)")
    p.add_argument("--min-size", type=int, default=None, help="minimum height and width (default: 480)")
    p.add_argument("--exclude", nargs="+", metavar="NAME",
                   help="category names to exclude (default: those Cityscapes also has, "
                        "meta_ood.coco_filter.DEFAULT_EXCLUDE)")
    p.add_argument("--ood-id", type=int, default=COCO_OOD_ID, help="mask value of OoD pixels")

    demo = DemoConfig()
    p = add("demo-data", "write the embedded demo datasets in the real on-disk formats", _cmd_demo_data)
    p.add_argument("--out", required=True, help="output root (cityscapes/, coco/, lostandfound/, fishyscapes/); "
                                                "must be new, empty or an earlier demo-data output")
    for name, text in (("seed", "master seed"), ("height", "image height of the street scenes"),
                       ("width", "image width of the street scenes"), ("n_train", "Cityscapes-format train images"),
                       ("n_val", "Cityscapes-format val images"), ("n_coco", "COCO-format images"),
                       ("n_lostandfound", "LostAndFound-format test images"),
                       ("n_fishyscapes", "Fishyscapes-Static-format images"),
                       ("n_fishyscapes_lostandfound", "Fishyscapes-LostAndFound-format labels (at most --n-lostandfound)")):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, dest=name, type=int, default=getattr(demo, name), help=text)

    p = add("train-baseline", "train a network from scratch on Cityscapes train (the demo's baseline)", _cmd_train_baseline)
    _add_train_args(p)

    p = add("finetune", "OoD fine-tuning with entropy maximization (checkpoint per epoch, resumable)", _cmd_finetune)
    _add_train_args(p)
    p.add_argument("--coco", required=True, help="COCO root")
    p.add_argument("--coco-split", default="train2017", help="COCO image folder / annotation split")
    p.add_argument("--coco-masks", required=True, help="masks/ folder written by coco-filter")
    p.add_argument("--init", help="baseline checkpoint to start from (default: none, the architecture's initial weights)")
    p.add_argument("--lam", type=float, help=f"loss weight of the OoD term (default: --options value, else {TRAIN_DEFAULTS['lam']})")
    p.add_argument("--ood-ratio", dest="ood_ratio", type=float,
                   help=f"COCO images per Cityscapes image (default: --options value, else {TRAIN_DEFAULTS['ood_ratio']})")
    p.add_argument("--coco-background", dest="coco_background", choices=["ignore", "road"],
                   help=f"non-object COCO pixels (default: --options value, else {TRAIN_DEFAULTS['coco_background']})")
    p.add_argument("--ood-id", dest="ood_id", type=int, default=COCO_OOD_ID,
                   help="value of OoD pixels in the coco-filter masks (coco-filter --ood-id)")

    p = add("dump-softmax", "run a checkpoint over a dataset and store softmax + ground truth", _cmd_dump_softmax)
    p.add_argument("--arch", required=True, help="registered architecture or module.path:factory")
    p.add_argument("--checkpoint", help="checkpoint file (default: none, the architecture's initial weights)")
    p.add_argument("--num-classes", type=int, default=NUM_CLASSES, help="output classes of the network")
    p.add_argument("--dataset", required=True, choices=[k for k in DATASET_KINDS if k != "coco"], help="dataset kind")
    p.add_argument("--root", required=True, help="dataset root in its official layout")
    p.add_argument("--laf-root", help="LostAndFound root whose leftImg8bit/ holds the images "
                                      "(required with --dataset fishyscapes_lostandfound)")
    p.add_argument("--split", help="split (default: val, test, Static or LostAndFound by dataset)")
    p.add_argument("--out", required=True, help="store folder")
    p.add_argument("--shard", default="0/1", help="i/n: the i-th of n image ranges (0-based)")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    p.add_argument("--dtype", default="fixed16", choices=["fixed16", "float16", "float32"], help="storage type of the softmax")
    p.add_argument("--store-logits", action="store_true", help="store the logits too")
    p.add_argument("--codec", default=DEFAULT_CODEC, choices=CODECS, help="plane compression (zlib: the earlier default)")
    p.add_argument("--no-probs", action="store_true",
                   help="keep only the score planes and the argmax, not the probabilities (no segment metrics then; default: keep them)")
    p.add_argument("--scorer", action="append", choices=sorted(SCORERS),
                   help="store this scorer's plane too (repeatable; default: entropy only, which is always stored)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on GPUs")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--sliding-window", type=int, nargs=3, metavar=("TILE_H", "TILE_W", "STRIDE"),
                   help="tiled inference (default: whole images)")

    p = add("merge-store", "merge the shard indices of a sharded softmax store into index.json", _cmd_merge_store)
    p.add_argument("--store", required=True, help="store folder written by dump-softmax --shard i/n runs")

    p = add("pixel-eval", "pixel-level AUROC / FPR95 / AUPRC (or mIoU) of a softmax store", _cmd_pixel_eval)
    p.add_argument("--store", required=True, help="store folder")
    p.add_argument("--out-json", required=True, help="metrics and curves")
    p.add_argument("--out-npz", required=True, help="pooled histogram or confusion matrices")
    p.add_argument("--n-boot", type=int, default=1000, help="image-bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--scorer", default="entropy", choices=sorted(SCORERS), help="anomaly score")

    p = add("segments", "per-segment metrics for all thresholds in one pass over a store", _cmd_segments)
    p.add_argument("--store", required=True, help="store folder of an OoD dataset")
    p.add_argument("--out", required=True, help="output folder (shard-<i>-of-<n>/ inside it with --shard)")
    p.add_argument("--thresholds", type=float, nargs="+", default=ENTROPY_THRESHOLDS, help="entropy thresholds")
    p.add_argument("--shard", help="i/n: process only the i-th of n image ranges (default: all images)")

    p = add("merge-segments", "merge the segment tables of 'segments --shard' runs in image order", _cmd_merge_segments)
    p.add_argument("--segments", required=True, help="the --out folder of the sharded 'segments' runs")
    p.add_argument("--shards", type=int, help="number of shards (default: from the shard-<i>-of-<n> folders)")
    p.add_argument("--thresholds", type=float, nargs="+",
                   help="thresholds to merge (default: those of the tables in shard-0-of-<n>/)")

    p = add("meta-classify", "leave-one-out meta classification of the segments of one threshold", _cmd_meta_classify)
    p.add_argument("--segments", required=True, help="t<t>.parquet from 'segments'")
    p.add_argument("--out-parquet", required=True, help="segments with their held-out FP probability")
    p.add_argument("--out-json", required=True, help="AUROC / AUPRC / accuracy per protocol")
    p.add_argument("--features", default="paper", choices=["paper", "released"], help="feature set")
    p.add_argument("--protocols", nargs="+", default=["loo", "logo"], choices=["loo", "logo"],
                   help="leave-one-out, leave-one-image-out")
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 regularization strength")
    p.add_argument("--free-intercept", action="store_true", help="do not penalize the intercept")
    p.add_argument("--standardize", default="global", choices=["global", "fold"], help="feature standardization")

    p = add("segment-eval", "FP / FN / road miss rate before and after meta classification", _cmd_segment_eval)
    p.add_argument("--segments", required=True, help="folder written by 'segments'")
    p.add_argument("--meta", required=True, help="folder with the meta-classify t<t>.parquet files")
    p.add_argument("--thresholds", type=float, nargs="+", default=ENTROPY_THRESHOLDS, help="entropy thresholds")
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument("--meta-threshold", type=float, default=0.5, help="FP probability above which a segment is removed")
    p.add_argument("--reference-fp-after", action="store_true",
                   help="count FP after meta classification as the released code did (removed true positives)")

    from meta_ood.smiyc.cli import add_compare_args, add_smiyc_eval_args, cmd_compare, cmd_smiyc_eval

    add_smiyc_eval_args(add("smiyc-eval", "SegmentMeIfYouCan metrics of <fid>.hdf5 score maps: official protocol "
                                          "and exact pooled metrics", cmd_smiyc_eval))
    add_compare_args(add("compare", "two methods' score maps on the same frames: each metric's difference with its "
                                    "paired bootstrap interval and p-value", cmd_compare))

    lines = [textwrap.fill(f"{kind}: {keys}", width=96, initial_indent=f"  {name:<17} ", subsequent_indent=" " * 20)
             for name, (kind, keys) in RENDER_TARGETS.items()]
    p = add("render", "render one paper table or figure from result files", _cmd_render,
            epilog="--entries holds the function's arguments as the report rules pass them:\n" + "\n".join(lines)
            + "\nRelative paths are relative to the current folder.")
    p.add_argument("name", choices=list(RENDER_TARGETS), help="table or figure")
    p.add_argument("--entries", required=True, help="YAML/JSON file with the arguments (see below)")
    p.add_argument("--out", required=True, help="output prefix: <out>.csv/.md/.tex (tables), <out>.png/.pdf "
                                                "(figures); a folder (existing, or ending in /) gets <name>.<ext>")

    p = add("check-data", "read every image and label of datasets and report each problem (exit code 2 if any)",
            _cmd_check_data)
    p.add_argument("--dataset", required=True, action="append", choices=list(DATASET_KINDS),
                   help="dataset kind; repeat together with --root for several datasets")
    p.add_argument("--root", required=True, action="append", help="dataset root, one per --dataset")
    p.add_argument("--split", action="append", help="split, none or one per --dataset (default: the dataset's usual split)")
    p.add_argument("--laf-root", help="LostAndFound root (required with fishyscapes_lostandfound)")
    p.add_argument("--masks-dir", help="coco: masks/ folder of coco-filter, to check the selection only "
                                       "(default: every image of the annotation file)")
    p.add_argument("--ood-id", dest="ood_id", type=int, default=COCO_OOD_ID,
                   help="coco: value of OoD pixels in those masks (coco-filter --ood-id)")
    p.add_argument("--out", help="write the report (Markdown) here (default: print it)")

    p = add("convert-checkpoint", "rewrite a trusted checkpoint that only full unpickling reads (a pickled model, "
            "foreign Python objects) as plain weights that load safely", _cmd_convert_checkpoint)
    p.add_argument("checkpoint", help="the checkpoint; only for files from a source you trust: reading it this way "
                                      "can execute code")
    p.add_argument("--out", required=True, help="the plain state dict to write (a .pt file)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``meta-ood`` console script; bad input gives one message on stderr and exit code 2.
    As the command (``argv`` None: a process of its own) it keeps freed memory for reuse
    (:func:`~meta_ood.memory.keep_freed_memory`)."""
    if argv is None:
        keep_freed_memory()
    argv = list(sys.argv[1:] if argv is None else argv)
    lead = next((i for i, arg in enumerate(argv) if arg not in ("-q", "--quiet")), len(argv))
    if argv[lead:lead + 1] == ["run"]:  # everything after it belongs to Snakemake, options first included
        from meta_ood.runner import run

        return run(argv[lead + 1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_loggers()
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"meta-ood: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
