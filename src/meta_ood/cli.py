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
