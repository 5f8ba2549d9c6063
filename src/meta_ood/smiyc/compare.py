"""``meta-ood compare``: two methods' score folders on the same labelled frames, compared pairwise.

Each folder is read as ``smiyc-eval`` reads it (``<fid>.hdf5`` maps, labels ``<fid>_labels_semantic.png``),
reduced to the exact pooled histogram with one image per frame, and the two histograms go through the paired
image bootstrap (:func:`meta_ood.pixel_eval.paired.paired_bootstrap`): per metric both values, the difference
with its interval, p-value and the smallest difference these frames resolve. With a ``track``, each
method is evaluated as ``smiyc-eval`` evaluates it (:func:`~meta_ood.smiyc.evaluate.evaluate_frames`), and its
per-frame component counts of both protocols go through the same paired draws
(:func:`~meta_ood.smiyc.component_counts.paired_components`): sIoU, PPV and mean F1 at each method's own
best-F1 threshold, official and exact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from meta_ood.errors import InputError
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.pixel_eval.paired import PAIRED_METRICS, paired_bootstrap
from meta_ood.smiyc.component_counts import COMPONENT_METRICS, ComponentCounts, load_counts, paired_components
from meta_ood.smiyc.evaluate import _exact_histogram, _ordered_map, default_jobs, evaluate_frames, file_frames
from meta_ood.smiyc.summary import summarize

__all__ = ["PROTOCOLS", "compare_methods", "comparison_markdown", "method_evaluation", "method_histogram"]

_TITLES = {"auroc": "AUROC", "auprc": "AP", "fpr95": "FPR95", "best_f1": "best F1",
           "sIoU_gt": "sIoU", "PPV": "PPV", "F1_mean": "mean F1"}
#: The protocols whose component metrics are compared, in the order of the table.
PROTOCOLS = ("official", "exact")


def method_histogram(scores_dir: str | os.PathLike, labels_dir: str | os.PathLike, encoding: str = "auto",
                     jobs: int | None = None) -> PooledHistogram:
    """The exact pooled histogram of a method's labelled frames, one image per frame (id = fid)."""
    frames = file_frames(scores_dir, labels_dir)
    if not frames:
        raise InputError(f"{scores_dir}: no labelled frame to compare")
    hist = _exact_histogram(frames, encoding, 24)
    jobs = default_jobs() if jobs is None else int(jobs)
    counts = _ordered_map(lambda f: summarize(*f.load(), f"frame {f.fid!r}").codes(hist.bits, hist.encoding),
                          frames, jobs)
    for f, c in zip(frames, counts):
        hist.update_counts(*c, image_id=f.fid)
    return hist


def method_evaluation(scores_dir: str | os.PathLike, labels_dir: str | os.PathLike, track: str,
                      encoding: str = "auto", jobs: int | None = None, segsize: int | None = None,
                      instsize: int | None = None) -> tuple[PooledHistogram, dict[str, ComponentCounts]]:
    """A method's labelled frames evaluated as ``smiyc-eval`` does on ``track``: its exact pooled histogram
    and its per-frame component counts of both protocols (``"official"``, ``"exact"``)."""
    frames = file_frames(scores_dir, labels_dir)
    if not frames:
        raise InputError(f"{scores_dir}: no labelled frame to compare")
    with tempfile.TemporaryDirectory(prefix="meta-ood-compare-") as tmp:
        hist_path, counts_path = Path(tmp) / "histogram.npz", Path(tmp) / "components.npz"
        evaluate_frames(frames, track, segsize=segsize, instsize=instsize, n_boot=0, exact_encoding=encoding,
                        jobs=jobs, histogram_out=hist_path, components_out=counts_path)
        return PooledHistogram.load(hist_path), load_counts(counts_path)


def compare_methods(scores_a: str | os.PathLike, scores_b: str | os.PathLike, labels_dir: str | os.PathLike,
                    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, encoding: str = "auto",
                    jobs: int | None = None, track: str | None = None, segsize: int | None = None,
                    instsize: int | None = None) -> dict[str, Any]:
    """Paired comparison of method A (``scores_a``) with method B on the labelled frames of ``labels_dir``.

    Returns ``a`` / ``b`` (the folders), ``n_frames``, ``n_boot``, ``seed``, ``alpha`` and ``metrics``:
    per metric ``a``, ``b``, ``diff`` (a - b), ``lo`` / ``hi``, ``p``, ``se``, ``resolvable``. With a ``track``
    (as for ``smiyc-eval``; ``segsize`` / ``instsize`` override its size filters) also ``track`` and
    ``components``: per protocol (``official``, ``exact``) the same fields for sIoU, PPV and mean F1, on the
    same resamples of frames as the pixel metrics.
    """
    result: dict[str, Any] = {"a": str(scores_a), "b": str(scores_b), "labels": str(labels_dir)}
    if track is None:
        hist_a = method_histogram(scores_a, labels_dir, encoding, jobs)
        hist_b = method_histogram(scores_b, labels_dir, encoding, jobs)
    else:
        hist_a, counts_a = method_evaluation(scores_a, labels_dir, track, encoding, jobs, segsize, instsize)
        hist_b, counts_b = method_evaluation(scores_b, labels_dir, track, encoding, jobs, segsize, instsize)
        result["track"] = track
        result["components"] = {p: paired_components(counts_a[p], counts_b[p], n_boot=n_boot, seed=seed,
                                                      alpha=alpha) for p in PROTOCOLS}
    metrics = paired_bootstrap(hist_a, hist_b, n_boot=n_boot, seed=seed, alpha=alpha)
    return {**result, "n_frames": hist_a.n_images, "n_boot": int(n_boot), "seed": int(seed), "alpha": float(alpha),
            "metrics": metrics}


def _row(title: str, better: str, r: dict[str, float]) -> str:
    arrow = "↑" if better == "max" else "↓"
    return (f"| {title} {arrow} | {r['a']:.4f} | {r['b']:.4f} | {r['diff']:+.4f} | "
            f"[{r['lo']:+.4f}, {r['hi']:+.4f}] | {r['p']:.3f} | {r['resolvable']:.4f} |")


def comparison_markdown(result: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """The comparison as a Markdown table, one row per metric."""
    level = round(100 * (1 - result["alpha"]))
    lines = [f"{name_a} vs {name_b} on {result['n_frames']} frames (exact pooled metrics; paired image bootstrap, "
             f"{result['n_boot']} resamples, seed {result['seed']})", "",
             f"| metric | {name_a} | {name_b} | {name_a} − {name_b} | {level} % interval | p | resolvable |",
             "| :--- | ---: | ---: | ---: | :---: | ---: | ---: |"]
    lines += [_row(_TITLES[key], better, result["metrics"][key]) for key, better in PAIRED_METRICS.items()]
    for protocol, comps in result.get("components", {}).items():
        lines += [_row(f"{_TITLES[key]} ({protocol})", better, comps[key]) for key, better in COMPONENT_METRICS.items()]
    if "components" in result:
        lines += ["", f"Component metrics ({result['track']} size filters) at each method's own best-F1 threshold: "
                  "official, of the benchmark's per-frame percentile protocol; exact, of the pooled histogram. "
                  "The same resamples of frames as the pixel metrics."]
    lines += ["", "p: two-sided bootstrap p-value of the difference; resolvable: the smallest difference these frames "
              f"separate at {level} % (normal quantile x the standard error of the paired difference)."]
    return "\n".join(lines) + "\n"
