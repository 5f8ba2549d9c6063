"""Command line interface: ``meta-ood <stage> ...`` runs the same library functions as the Snakemake rules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from meta_ood import __version__
from meta_ood.errors import InputError


def _cmd_coco_filter(args: argparse.Namespace) -> None:
    from meta_ood.coco_filter import DEFAULT_EXCLUDE, DEFAULT_MIN_SIZE, filter_coco

    df = filter_coco(
        annotation_file=args.annotations,
        images_dir=args.images,
        out_dir=args.out,
        exclude_names=args.exclude or DEFAULT_EXCLUDE,
        min_size=DEFAULT_MIN_SIZE if args.min_size is None else args.min_size,
        ood_id=args.ood_id,
        progress=not args.quiet,
    )
    print(f"kept {len(df)} images -> {args.out}/selected.csv, {args.out}/masks/")


def _cmd_demo_data(args: argparse.Namespace) -> None:
    from meta_ood.datasets.demo import DemoConfig, generate
    from dataclasses import fields, replace

    cfg = DemoConfig()
    overrides = {f.name: getattr(args, f.name) for f in fields(DemoConfig) if getattr(args, f.name, None) is not None}
    cfg = replace(cfg, **overrides)
    info = generate(args.out, cfg, progress=not args.quiet)
    print(f"demo data written to {args.out}: {info}")


def _load_options(path: str | None) -> dict:
    """Training options from a YAML/JSON file (the config's models.<name>.finetune block), or {}."""
    if path is None:
        return {}
    import yaml

    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: options file not found")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a mapping of training options")
    return data


def _train_options(args: argparse.Namespace) -> dict:
    opts = _load_options(args.options)
    for key in ("epochs", "lam", "lr", "batch_size", "crop", "ood_ratio", "workers", "device", "seed", "coco_background"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    opts["model"] = args.arch
    return opts


def _cmd_train_baseline(args: argparse.Namespace) -> None:
    from meta_ood.pipeline import train_baseline_stage

    path = train_baseline_stage(args.cityscapes, args.split, args.out, _train_options(args), progress=not args.quiet)
    print(f"baseline checkpoint: {path}")


def _cmd_finetune(args: argparse.Namespace) -> None:
    from meta_ood.pipeline import finetune_stage

    paths = finetune_stage(
        args.cityscapes, args.split, args.coco, args.coco_split, args.coco_masks, args.init, args.out,
        _train_options(args), progress=not args.quiet,
    )
    print(f"checkpoints: {', '.join(str(p) for p in paths)}")


def _cmd_dump_softmax(args: argparse.Namespace) -> None:
    from meta_ood.inference import run_dump_stage
    from meta_ood.store import parse_shard

    options = {"batch_size": args.batch_size, "dtype": args.dtype, "store_logits": args.store_logits,
               "device": args.device, "amp": not args.no_amp, "workers": args.workers,
               "sliding_window": args.sliding_window}
    res = run_dump_stage(
        args.arch, args.num_classes, args.checkpoint, {"kind": args.dataset, "root": args.root, "split": args.split},
        args.out, options, shard=parse_shard(args.shard), model_name=args.arch, progress=not args.quiet,
    )
    print(f"{res.written} images written, {res.skipped} reused -> {args.out}")


def _cmd_pixel_eval(args: argparse.Namespace) -> None:
    from meta_ood.pipeline import pixel_eval_stage

    r = pixel_eval_stage(args.store, args.out_json, args.out_npz, n_boot=args.n_boot, seed=args.seed,
                         scorer=args.scorer, progress=not args.quiet)
    if r["kind"] == "ood":
        print(f"AUROC {r['auroc']:.4f}  FPR95 {r['fpr95']:.4f}  AUPRC {r['auprc']:.4f}")
    else:
        print(f"mIoU {r['miou']['inf']:.4f}")


def _cmd_segments(args: argparse.Namespace) -> None:
    from meta_ood.pipeline import segment_features_stage
    from meta_ood.store import parse_shard

    shard = parse_shard(args.shard) if args.shard else None
    written = segment_features_stage(args.store, args.out, args.thresholds, shard=shard, progress=not args.quiet)
    print(f"{len(written)} tables written to {args.out}")


def _cmd_meta_classify(args: argparse.Namespace) -> None:
    from meta_ood.pipeline import meta_classify_stage

    r = meta_classify_stage(args.segments, args.out_parquet, args.out_json, features=args.features,
                            protocols=args.protocols, C=args.C, penalize_intercept=not args.free_intercept,
                            standardize=args.standardize)
    for name, m in r["protocols"].items():
        print(f"{name}: AUROC {m.get('auroc')}  AUPRC {m.get('auprc')}  (MSP AUROC {m.get('msp_auroc')})")


def _cmd_segment_eval(args: argparse.Namespace) -> None:
    from meta_ood.pipeline import segment_eval_stage

    r = segment_eval_stage(args.segments, args.meta, args.thresholds, args.out, meta_threshold=args.meta_threshold,
                           reference_fp_after=args.reference_fp_after)
    for tag, d in r["thresholds"].items():
        print(f"{tag}: FP {d['fp_before']} FN {d['fn_before']} -> FP {d.get('fp_after')} FN {d.get('fn_after')}")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cityscapes", required=True, help="Cityscapes root (leftImg8bit/, gtFine/)")
    p.add_argument("--split", default="train")
    p.add_argument("--arch", default="tiny", help="registered architecture or module.path:factory")
    p.add_argument("--out", required=True)
    p.add_argument("--options", help="YAML file with training options (a models.<name>.finetune block)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--crop", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--device")
    p.add_argument("--seed", type=int)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per pipeline stage."""
    parser = argparse.ArgumentParser(prog="meta-ood", description=__doc__)
    parser.add_argument("--version", action="version", version=f"meta-ood {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")

    p = sub.add_parser("coco-filter", help="select COCO OoD proxies and write their masks")
    p.add_argument("--annotations", required=True, help="COCO instances_<split>.json")
    p.add_argument("--images", required=True, help="folder with <id:012d>.jpg")
    p.add_argument("--out", required=True, help="output folder (masks/ and selected.csv)")
    p.add_argument("--min-size", type=int, default=None, help="minimum height and width (default 480)")
    p.add_argument("--exclude", nargs="+", metavar="NAME", help="category names to exclude (default: the Cityscapes-overlapping ones)")
    p.add_argument("--ood-id", type=int, default=254, help="mask value of OoD pixels (default 254)")
    p.set_defaults(func=_cmd_coco_filter)

    p = sub.add_parser("demo-data", help="write the embedded demo datasets in the real on-disk formats")
    p.add_argument("--out", required=True, help="output root (cityscapes/, coco/, lostandfound/, fishyscapes/)")
    p.add_argument("--seed", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--n-train", dest="n_train", type=int)
    p.add_argument("--n-val", dest="n_val", type=int)
    p.add_argument("--n-coco", dest="n_coco", type=int)
    p.add_argument("--n-lostandfound", dest="n_lostandfound", type=int)
    p.add_argument("--n-fishyscapes", dest="n_fishyscapes", type=int)
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("train-baseline", help="train a network from scratch on Cityscapes train (the demo's baseline)")
    _add_train_args(p)
    p.set_defaults(func=_cmd_train_baseline)

    p = sub.add_parser("finetune", help="OoD fine-tuning with entropy maximization (checkpoint per epoch, resumable)")
    _add_train_args(p)
    p.add_argument("--coco", required=True, help="COCO root")
    p.add_argument("--coco-split", default="train2017")
    p.add_argument("--coco-masks", required=True, help="masks/ folder written by coco-filter")
    p.add_argument("--init", help="baseline checkpoint to start from")
    p.add_argument("--lam", type=float, help="loss weight of the OoD term")
    p.add_argument("--ood-ratio", dest="ood_ratio", type=float)
    p.add_argument("--coco-background", dest="coco_background", choices=["ignore", "road"])
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("dump-softmax", help="run a checkpoint over a dataset and store softmax + ground truth")
    p.add_argument("--arch", required=True)
    p.add_argument("--checkpoint")
    p.add_argument("--num-classes", type=int, default=19)
    p.add_argument("--dataset", required=True, choices=["cityscapes", "lostandfound", "fishyscapes_static"])
    p.add_argument("--root", required=True)
    p.add_argument("--split")
    p.add_argument("--out", required=True)
    p.add_argument("--shard", default="0/1", help="i/n: the i-th of n image ranges (0-based)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtype", default="fixed16", choices=["fixed16", "float16", "float32"])
    p.add_argument("--store-logits", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--sliding-window", type=int, nargs=3, metavar=("TILE_H", "TILE_W", "STRIDE"))
    p.set_defaults(func=_cmd_dump_softmax)

    p = sub.add_parser("pixel-eval", help="pixel-level AUROC / FPR95 / AUPRC (or mIoU) of a softmax store")
    p.add_argument("--store", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-npz", required=True)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scorer", default="entropy")
    p.set_defaults(func=_cmd_pixel_eval)

    p = sub.add_parser("segments", help="per-segment metrics for all thresholds in one pass over a store")
    p.add_argument("--store", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    p.add_argument("--shard", help="i/n: process only the i-th of n image ranges")
    p.set_defaults(func=_cmd_segments)

    p = sub.add_parser("meta-classify", help="leave-one-out meta classification of the segments of one threshold")
    p.add_argument("--segments", required=True, help="t<t>.parquet from 'segments'")
    p.add_argument("--out-parquet", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--features", default="paper", choices=["paper", "released"])
    p.add_argument("--protocols", nargs="+", default=["loo", "logo"], choices=["loo", "logo"])
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--free-intercept", action="store_true", help="do not penalize the intercept")
    p.add_argument("--standardize", default="global", choices=["global", "fold"])
    p.set_defaults(func=_cmd_meta_classify)

    p = sub.add_parser("segment-eval", help="FP / FN / road miss rate before and after meta classification")
    p.add_argument("--segments", required=True, help="folder written by 'segments'")
    p.add_argument("--meta", required=True, help="folder with the meta-classify t<t>.parquet files")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    p.add_argument("--out", required=True)
    p.add_argument("--meta-threshold", type=float, default=0.5)
    p.add_argument("--reference-fp-after", action="store_true",
                   help="count FP after meta classification as the released code did (removed true positives)")
    p.set_defaults(func=_cmd_segment_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``meta-ood`` console script; bad input gives one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except InputError as exc:
        print(f"meta-ood: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
