"""The run's summary: headline numbers of the result files as Markdown, with checks of the paper's direction."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meta_ood.io import read_json, write_text_atomic
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.pixel_eval.paired import paired_bootstrap, paired_counts
from meta_ood.report.results import dataset_title, per_image_errors


def _fmt(x: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals, or a dash for a missing one."""
    return "–" if x is None else f"{x:.{digits}f}"


#: Entropy threshold from which the paper calls the loss of mIoU acceptable (section 6.3, figure 5).
MIOU_FROM = 0.3
#: The mIoU loss the paper accepts (figure 5's dashed line: about one point).
MIOU_LOSS = 0.01
#: The paper's reduction of the summed detection errors by meta classification (section 7).
PAPER_ERROR_REDUCTION = 0.52
_PAPER_DATASETS = ("lostandfound", "fishyscapes_static", "fishyscapes_lostandfound")
#: The dataset of the paper's detection errors and meta classification (table 2, section 7).
_ERRORS_DATASET = "lostandfound"


def _error_dataset(entry: dict[str, Any]) -> str:
    """The dataset of a detection-error entry; entries without one are LostAndFound's (the paper's table 2)."""
    return str(entry.get("dataset") or _ERRORS_DATASET)


def _mark(ok: bool) -> str:
    return "**pass**" if ok else "**fail**"


def _auprc_change(paths: dict[str, str], before: float, after: float, rises: bool, n_boot: int, seed: int
                  ) -> tuple[str, str]:
    """(verdict, numbers) of a claim that OoD training raises (``rises``) or lowers the AUPRC: with the pixel
    evaluations' per-image histograms beside their JSONs, the paired bootstrap difference decides (pass when its
    95 % interval lies on the claimed side of 0, fail on the other side, not resolved when it holds 0)."""
    npz = {label: Path(path).with_suffix(".npz") for label, path in paths.items()}
    if n_boot > 0 and all(p.is_file() for p in npz.values()):
        r = paired_bootstrap(PooledHistogram.load(npz["OoD training"]), PooledHistogram.load(npz["Plain"]),
                             n_boot=n_boot, seed=seed)["auprc"]
        lo, hi = (r["lo"], r["hi"]) if rises else (-r["hi"], -r["lo"])
        verdict = "**pass**" if lo > 0 else "**fail**" if hi < 0 else "**not resolved**"
        return verdict, (f"{before:.4f} -> {after:.4f}: {r['diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}], "
                         f"p = {r['p']:.3f}, paired bootstrap over images")
    return _mark(after > before if rises else after < before), f"{before:.4f} -> {after:.4f}"


def _claims(pixel: Sequence[tuple[dict[str, Any], dict[str, Any]]], miou: Sequence[tuple[dict[str, Any], dict[str, Any]]],
            errors: Sequence[tuple[dict[str, Any], dict[str, Any]]], void_models: Sequence[str], n_boot: int = 1000,
            seed: int = 0) -> list[str]:
    """The paper's qualitative claims next to this run's numbers, each with one verdict: pass / fail, and for
    the AUPRC claims "not resolved" when the paired 95 % interval of the change holds 0."""
    out = ["", "## The paper's claims on this run", ""]
    auprc: dict[tuple[str, str], dict[str, float]] = {}
    paths: dict[tuple[str, str], dict[str, str]] = {}
    for e, r in pixel:
        auprc.setdefault((e["model"], e["dataset"]), {})[e["label"]] = r.get("auprc")
        paths.setdefault((e["model"], e["dataset"]), {})[e["label"]] = str(e["path"])
    for (model, dataset), v in auprc.items():
        before, after = v.get("Plain"), v.get("OoD training")
        if before is None or after is None or dataset not in _PAPER_DATASETS:
            continue
        void = model in void_models
        if void and dataset != "lostandfound":
            continue
        verdict, numbers = _auprc_change(paths[(model, dataset)], before, after, not void, n_boot, seed)
        if void:
            out.append(f"- void OoD training lowers the LostAndFound AUPRC against the baseline (appendix C: "
                       f"0.46 -> 0.17) ({model}): {verdict} ({numbers})")
        else:
            out.append(f"- OoD training raises AUPRC on {dataset} ({model}): {verdict} ({numbers})")
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for e, r in miou:
        by_model.setdefault(e["model"], {})[e["label"]] = r["miou"]
    for model, v in by_model.items():
        plain, ood = v.get("Plain"), v.get("OoD training")
        if plain is None or ood is None or model in void_models or plain.get("inf") is None:
            continue
        ts = sorted(float(t) for t in ood if t != "inf" and float(t) >= MIOU_FROM - 1e-9)
        if not ts:
            continue
        drop = max(plain["inf"] - ood[f"{t:g}"] for t in ts)
        out.append(f"- mIoU drops by less than about one point at t >= {MIOU_FROM:g} after OoD training (paper, real "
                   f"data) ({model}): {_mark(drop < MIOU_LOSS)} (largest drop {100 * drop:.2f} points, "
                   f"plain {plain['inf']:.4f})")
    # the paper's numbers are for LostAndFound (section 7): the best plain baseline against the best OoD
    # training + meta classifier, each at its best acceptable threshold t >= 0.3
    where = f" on {dataset_title(_ERRORS_DATASET)}" if any(_error_dataset(e) != _ERRORS_DATASET for e, _ in errors) else ""
    best: dict[tuple[str, str], tuple[int, str, list[int] | None, list[str]]] = {}  # (label, stage) -> smallest
    # total, its t, its errors per image and the images
    model = ""
    for e, r in errors:
        if _error_dataset(e) != _ERRORS_DATASET or e.get("label") not in ("Baseline", "OoD training"):
            continue
        model = model or str(e.get("model") or "")
        for tag, d in r["thresholds"].items():
            if float(tag[1:]) < MIOU_FROM - 1e-9:
                continue
            for stage in ("before", "after"):
                total = d.get(f"total_{stage}")
                key = (str(e["label"]), stage)
                if total is not None and (key not in best or total < best[key][0]):
                    best[key] = (int(total), tag[1:], per_image_errors(d, stage), [str(f) for f in r.get("frames", [])])
    who = f" ({model})" if model else ""
    if ("Baseline", "before") in best and ("OoD training", "after") in best:
        base, ood = best[("Baseline", "before")], best[("OoD training", "after")]
        (b, tb), (o, to) = base[:2], ood[:2]
        cut = (b - o) / b if b else 0.0
        verdict, paired = _fewer_errors(ood, base, n_boot, seed)
        out.append(f"- OoD training + meta classifier cut the detection errors of the best baseline{where} (paper: by "
                   f"{100 * PAPER_ERROR_REDUCTION:.0f} %, 1,242 -> 598){who}: {verdict} ({b:,} at t = {tb} -> "
                   f"{o:,} at t = {to}, {100 * cut:.0f} %{paired})")
    if ("Baseline", "after") in best and ("OoD training", "after") in best:
        base, ood = best[("Baseline", "after")], best[("OoD training", "after")]
        (b, tb), (o, to) = base[:2], ood[:2]
        verdict, paired = _fewer_errors(ood, base, n_boot, seed)
        out.append(f"- OoD training + meta classifier beats baseline + meta classifier{where} (paper: 598 vs 714 errors)"
                   f"{who}: {verdict} ({o:,} at t = {to} vs {b:,} at t = {tb}{paired})")
    return out


def _fewer_errors(a: tuple[int, str, list[int] | None, list[str]], b: tuple[int, str, list[int] | None, list[str]],
                  n_boot: int, seed: int) -> tuple[str, str]:
    """(verdict, paired numbers) of the claim that ``a`` makes fewer detection errors than ``b`` ((total, t,
    per-image errors, images) each): with per-image errors on the same images the paired bootstrap of the
    difference decides (pass: its 95 % interval below 0, fail: above, not resolved: it holds 0), else the totals."""
    (ta, _, pa, fa), (tb, _, pb, fb) = a, b
    if n_boot > 0 and pa is not None and pb is not None and sorted(fa) == sorted(fb) and len(fa) == len(pa):
        r = paired_counts(fa, pa, fb, pb, n_boot=n_boot, seed=seed)
        verdict = "**pass**" if r["hi"] < 0 else "**fail**" if r["lo"] > 0 else "**not resolved**"
        return verdict, (f"; difference {r['diff']:+,.0f} [{r['lo']:+,.0f}, {r['hi']:+,.0f}], p = {r['p']:.3f}, "
                         "paired bootstrap over images")
    return _mark(ta < tb), ""


def summary_stage(
    out_md: str | os.PathLike,
    pixel_entries: Sequence[dict[str, Any]],
    miou_entries: Sequence[dict[str, Any]],
    error_entries: Sequence[dict[str, Any]],
    run: str = "",
    void_models: Sequence[str] = (),
    n_boot: int = 1000,
    seed: int = 0,
) -> str:
    """The run's headline numbers: pixel AUROC / FPR95 / AUPRC per dataset and variant, mIoU, and the
    detection errors before / after meta classification; the check that meta classification lowers
    the errors at t >= 0.3; and the paper's claims with one verdict each (:func:`_claims`; the AUPRC
    changes judged by their paired bootstrap interval, ``n_boot`` resamples, ``seed``). ``void_models`` are the models trained with the
    Cityscapes void class as the proxy (appendix C), whose claim is the opposite.

    ``error_entries``: ``{label, path}`` (optionally ``model``, ``dataset``) of segment_eval JSONs,
    entries without a dataset being LostAndFound's. Each dataset gets its own detection-error
    section and checks (named after the label when there are several datasets); the paper's claim on
    the errors (a 52 % reduction, section 7) is checked on LostAndFound only, where the paper made it.
    """
    pixel_results = [read_json(e["path"]) for e in pixel_entries]
    scorers = sorted({str(r.get("scorer", "entropy")) for r in pixel_results}) or ["entropy"]
    score_name = "normalized entropy" if scorers == ["entropy"] else "scorer " + ", ".join(scorers)
    lines = [f"# meta-ood run `{run}`", "", f"## Pixel-level OoD detection ({score_name})", "",
             "| model | variant | dataset | AUROC | FPR95 | AUPRC |", "| --- | --- | --- | --- | --- | --- |"]
    auprc: dict[tuple[str, str], dict[str, float]] = {}
    for e, r in zip(pixel_entries, pixel_results):
        lines.append(f"| {e['model']} | {e['label']} | {e['dataset']} | {_fmt(r.get('auroc'))} | {_fmt(r.get('fpr95'))} | {_fmt(r.get('auprc'))} |")
        auprc.setdefault((e["model"], e["dataset"]), {})[e["label"]] = r.get("auprc")
    if miou_entries:
        lines += ["", "## Cityscapes val mIoU (no OoD class)", "", "| model | variant | mIoU |", "| --- | --- | --- |"]
        for e in miou_entries:
            r = read_json(e["path"])
            lines.append(f"| {e['model']} | {e['label']} | {_fmt(r['miou'].get('inf'))} |")
    checks = ["", "## Checks", ""]  # the AUPRC changes are judged once, with their intervals, in the claims
    datasets = list(dict.fromkeys(_error_dataset(e) for e in error_entries))
    for ds in datasets:
        title = dataset_title(ds)
        lines += ["", f"## Detection errors on {title} (FP + FN), before -> after meta classification", "",
                  "| variant | t | FP | FN | total | FP (meta) | FN (meta) | total (meta) | ε % | ε % (meta) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for e in (e for e in error_entries if _error_dataset(e) == ds):
            r = read_json(e["path"])
            lowered, considered = 0, 0
            for tag, d in r["thresholds"].items():
                eps_b = None if d.get("eps_before") is None else 100 * d["eps_before"]
                eps_a = None if d.get("eps_after") is None else 100 * d["eps_after"]
                lines.append(
                    f"| {e['label']} | {tag[1:]} | {d['fp_before']} | {d['fn_before']} | {d['total_before']} | "
                    f"{d.get('fp_after', '–')} | {d.get('fn_after', '–')} | {d.get('total_after', '–')} | "
                    f"{_fmt(eps_b, 3)} | {_fmt(eps_a, 3)} |"
                )
                if float(tag[1:]) >= 0.3 - 1e-9 and d.get("total_after") is not None:
                    considered += 1
                    lowered += int(d["total_after"] < d["total_before"])
            if considered:
                which = e["label"] if len(datasets) == 1 else f"{e['label']}, {title}"
                checks.append(
                    f"- meta classification lowers the total errors at t >= 0.3 ({which}): "
                    f"**{'yes' if lowered == considered else 'no'}** at {lowered} of {considered} thresholds"
                )
    miou_results = [(e, read_json(e["path"])) for e in miou_entries]
    error_results = [(e, read_json(e["path"])) for e in error_entries]
    claims = _claims(list(zip(pixel_entries, pixel_results)), miou_results, error_results, list(void_models),
                     n_boot=n_boot, seed=seed)
    text = "\n".join(lines + checks + claims) + "\n"
    write_text_atomic(out_md, text)
    return text
