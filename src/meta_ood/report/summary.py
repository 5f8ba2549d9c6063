"""The run's summary: headline numbers of the result files as Markdown, with checks of the paper's direction."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from meta_ood.io import read_json, write_text_atomic


def _fmt(x: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals, or a dash for a missing one."""
    return "–" if x is None else f"{x:.{digits}f}"


def summary_stage(
    out_md: str | os.PathLike,
    pixel_entries: Sequence[dict[str, Any]],
    miou_entries: Sequence[dict[str, Any]],
    error_entries: Sequence[dict[str, Any]],
    run: str = "",
) -> str:
    """The run's headline numbers: pixel AUROC / FPR95 / AUPRC per dataset and variant, mIoU, and the
    detection errors before / after meta classification, with the two checks of the paper's direction:
    AUPRC rises with OoD training, and meta classification lowers the total number of errors (t >= 0.3).
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
    checks = ["", "## Checks", ""]
    for (model, dataset), v in auprc.items():
        before, after = v.get("Plain"), v.get("OoD training")
        if before is not None and after is not None:
            verdict = "yes" if after > before else "no"
            checks.append(f"- AUPRC on {dataset} ({model}) rises after OoD training: **{verdict}** ({before:.4f} -> {after:.4f})")
    if error_entries:
        lines += ["", "## Detection errors on LostAndFound (FP + FN), before -> after meta classification", "",
                  "| variant | t | FP | FN | total | FP (meta) | FN (meta) | total (meta) | ε % | ε % (meta) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for e in error_entries:
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
                checks.append(
                    f"- meta classification lowers the total errors at t >= 0.3 ({e['label']}): "
                    f"**{'yes' if lowered == considered else 'no'}** at {lowered} of {considered} thresholds"
                )
    text = "\n".join(lines + checks) + "\n"
    write_text_atomic(out_md, text)
    return text
