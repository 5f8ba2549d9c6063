"""The ``meta-ood smiyc-eval`` sub-command: arguments and the command itself."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from meta_ood.errors import InputError
from meta_ood.io import write_text_atomic
from meta_ood.smiyc.components import OFFICIAL_DATASET_TRACKS, SIZE_FILTERS, track_names
from meta_ood.smiyc.evaluate import EXACT_ENCODINGS, smiyc_eval

__all__ = ["add_compare_args", "add_smiyc_eval_args", "cmd_compare", "cmd_smiyc_eval"]


def _track_help() -> str:
    names = {track: [track, *(n for n, t in OFFICIAL_DATASET_TRACKS.items() if t == track)] for track in SIZE_FILTERS}
    groups = "; ".join(f"{track} ({seg} / {inst}): {', '.join(names[track])}"
                       for track, (seg, inst) in SIZE_FILTERS.items())
    return f"track or official SegmentMeIfYouCan dataset name; sets the size filters (segsize / instsize): {groups}"


def add_smiyc_eval_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``smiyc-eval``."""
    p.add_argument("--scores", required=True,
                   help="folder with one <fid>.hdf5 score map (dataset 'value') per frame")
    p.add_argument("--labels", required=True,
                   help="folder with <fid>_labels_semantic.png masks (0 / 1 / 255), "
                        "or its parent holding labels_masks/")
    p.add_argument("--track", required=True, choices=track_names(), metavar="TRACK", help=_track_help())
    p.add_argument("--strict", action="store_true",
                   help="refuse score files without a label, the former behaviour (default: skip them, "
                        "as the unlabelled test frames of an official anomaly_p/<method>/<dataset> folder)")
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument("--segsize", type=int, help="minimum predicted component size (default: by track, 500 or 50)")
    p.add_argument("--instsize", type=int, help="minimum ground-truth component size (default: by track, 100 or 10)")
    p.add_argument("--pixel-thresholds", type=float, nargs="+", metavar="T",
                   help="extra pixel thresholds for component metrics, JSON key at_threshold (default: none)")
    p.add_argument("--n-boot", type=int, default=1000, help="image-bootstrap resamples of the exact metrics (0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--alpha", type=float, default=0.05, help="bootstrap intervals cover 1 - alpha")
    p.add_argument("--exact-encoding", default="auto", choices=list(EXACT_ENCODINGS),
                   help="score encoding of the exact histogram (auto: float16 if every map is float16, else unit)")
    p.add_argument("--exact-bits", type=int, default=24,
                   help="bits of the exact histogram with the unit encoding "
                        "(grid spacing 2**-bits; memory 2**(bits+4) bytes)")
    p.add_argument("--jobs", type=int, default=None,
                   help="threads working on frames in parallel; results are identical for any number "
                        "(default: every core this process may use)")
    p.add_argument("--details",
                   help="also write per-frame bins, curves and component values to this .npz (default: none)")


def cmd_smiyc_eval(args: argparse.Namespace) -> None:
    """Run :func:`~meta_ood.smiyc.evaluate.smiyc_eval` and write its JSON (and the details)."""
    details: dict[str, np.ndarray] | None = {} if args.details else None
    res = smiyc_eval(args.scores, args.labels, args.track, strict=args.strict,
                     segsize=args.segsize, instsize=args.instsize,
                     pixel_thresholds=args.pixel_thresholds or (), n_boot=args.n_boot, seed=args.seed, alpha=args.alpha,
                     exact_encoding=args.exact_encoding, exact_bits=args.exact_bits, jobs=args.jobs,
                     details=details)
    out = Path(args.out)
    write_text_atomic(out, json.dumps(res, indent=1))
    if details is not None:
        Path(args.details).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.details, **details)
    skipped = res["skipped_unlabelled"]
    if skipped:
        print(f"smiyc-eval: skipped {len(skipped)} score files without a label in {args.labels} "
              "(unlabelled test frames); --strict refuses them", file=sys.stderr)
    ex = res["exact"]
    print(f"SMIYC {args.track}: AP {res['AP']:.4f} FPR95 {res['FPR95']:.4f} mean F1 {res['F1_mean']:.4f} "
          f"(exact AP {ex['AP']:.4f} FPR95 {ex['FPR95']:.4f}) -> {out}")


def add_compare_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``compare``."""
    p.add_argument("--scores", required=True, nargs=2, metavar=("A", "B"),
                   help="the two methods' folders of <fid>.hdf5 score maps (as for smiyc-eval)")
    p.add_argument("--labels", required=True, help="folder of the frames' <fid>_labels_semantic.png masks")
    p.add_argument("--names", nargs=2, metavar=("A", "B"), help="names of the two methods in the table "
                                                                 "(default: the folders' names)")
    p.add_argument("--n-boot", type=int, default=1000, help="paired bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (the same draws for both methods)")
    p.add_argument("--alpha", type=float, default=0.05, help="intervals cover 1 - alpha")
    p.add_argument("--exact-encoding", default="auto", choices=list(EXACT_ENCODINGS),
                   help="score encoding of the exact histograms (auto: float16 if every map is float16, else unit)")
    p.add_argument("--jobs", type=int, default=None, help="threads reading frames (default: every core)")
    p.add_argument("--track", choices=track_names(), metavar="TRACK",
                   help="also compare the component metrics (sIoU, PPV, mean F1; official and exact protocol) "
                        "with this track's size filters; " + _track_help() + " (default: pixel metrics only)")
    p.add_argument("--segsize", type=int, help="with --track: minimum predicted component size (default: by track)")
    p.add_argument("--instsize", type=int,
                   help="with --track: minimum ground-truth component size (default: by track)")
    p.add_argument("--out", help="also write the comparison as JSON (default: none)")


def cmd_compare(args: argparse.Namespace) -> None:
    """Run :func:`~meta_ood.smiyc.compare.compare_methods`, print its table (and write its JSON)."""
    from meta_ood.smiyc.compare import compare_methods, comparison_markdown

    a, b = args.scores
    if args.track is None and (args.segsize is not None or args.instsize is not None):
        raise InputError("--segsize / --instsize: size filters of the component metrics, which need --track")
    res = compare_methods(a, b, args.labels, n_boot=args.n_boot, seed=args.seed, alpha=args.alpha,
                          encoding=args.exact_encoding, jobs=args.jobs, track=args.track, segsize=args.segsize,
                          instsize=args.instsize)
    names = args.names or [Path(a).name or a, Path(b).name or b]
    if args.out:
        write_text_atomic(Path(args.out), json.dumps(res, indent=1))
    print(comparison_markdown(res, *names), end="")
