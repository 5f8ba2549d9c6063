"""Ranking metrics (AUROC, AUPRC, FPR at a TPR level, best F1) from per-score (pos, neg) counts.

Counts are visited from the highest score down in blocks of score columns; every row is one
histogram (the pooled one, or one bootstrap resample), so all rows are evaluated at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meta_ood.errors import InputError

__all__ = ["RankState", "metrics_from_counts", "no_pixels_error", "thin_indices"]


class RankState:
    """Running sums over score columns visited from the highest score down.

    Every row is one histogram (one bootstrap replicate, or the single pooled histogram). Columns
    with no pixel in a row leave the running values unchanged, so zero columns are harmless.
    """

    def __init__(self, n_pos: np.ndarray, n_neg: np.ndarray, tpr_level: float):
        self.P = np.asarray(n_pos, dtype=np.float64)
        self.N = np.asarray(n_neg, dtype=np.float64)
        rows = self.P.shape[0]
        self.level = float(tpr_level)
        self.tps = np.zeros(rows)
        self.fps = np.zeros(rows)
        self.auc_acc = np.zeros(rows)
        self.ap_acc = np.zeros(rows)
        # fpr95: the (0, 0) point of the ROC curve already satisfies tpr >= level when level <= 0
        self.found = np.full(rows, self.level <= 0.0)
        self.fpr_fps = np.zeros(rows)
        self.best_f1 = np.zeros(rows)
        self.best_col = np.full(rows, -1, dtype=np.int64)

    def add(self, pos: np.ndarray, neg: np.ndarray, col_offset: int) -> None:
        """Columns of ``pos`` / ``neg`` (rows x b) are ordered by decreasing score."""
        pos = np.asarray(pos, dtype=np.float64)
        neg = np.asarray(neg, dtype=np.float64)
        tps = np.cumsum(pos, axis=1)
        tps += self.tps[:, None]
        fps = np.cumsum(neg, axis=1)
        fps += self.fps[:, None]
        # AUROC (Mann-Whitney with ties counted 1/2): each negative scores the positives strictly
        # above it plus half of those tied with it.
        self.auc_acc += np.einsum("ij,ij->i", neg, tps - 0.5 * pos)
        denom = tps + fps
        prec = np.divide(tps, denom, out=np.zeros_like(tps), where=denom > 0)
        # average precision: sum over thresholds of (R_k - R_{k-1}) * P_k, R_k - R_{k-1} = pos_k / P
        self.ap_acc += np.einsum("ij,ij->i", pos, prec)
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = tps / self.P[:, None]
        reach = tpr >= self.level
        hit = reach.any(axis=1) & ~self.found
        if hit.any():
            first = np.argmax(reach[hit], axis=1)
            self.fpr_fps[hit] = fps[hit, first]
            self.found[hit] = True
        f1 = np.divide(2.0 * tps, tps + fps + self.P[:, None], out=np.zeros_like(tps), where=tps > 0)
        col = np.argmax(f1, axis=1)
        val = f1[np.arange(f1.shape[0]), col]
        better = val > self.best_f1
        self.best_f1[better] = val[better]
        self.best_col[better] = col[better] + col_offset
        self.tps = tps[:, -1].copy()
        self.fps = fps[:, -1].copy()

    def result(self) -> dict[str, np.ndarray]:
        """Per-row ``auroc``, ``auprc``, ``fpr95``, ``best_f1`` (NaN without OoD or in-distribution
        pixels) and ``best_col``, the column offset of the best F1 threshold."""
        ok = (self.P > 0) & (self.N > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            auroc = np.where(ok, self.auc_acc / (self.P * self.N), np.nan)
            auprc = np.where(ok, self.ap_acc / self.P, np.nan)
            fpr95 = np.where(ok & self.found, self.fpr_fps / self.N, np.nan)
        best_f1 = np.where(ok, self.best_f1, np.nan)
        return {"auroc": auroc, "auprc": auprc, "fpr95": fpr95, "best_f1": best_f1, "best_col": self.best_col}


def no_pixels_error(n_pos: int, n_neg: int, what: str = "dataset") -> InputError:
    """The error for counts without OoD (``n_pos == 0``) or in-distribution pixels."""
    if n_pos == 0:
        return InputError(
            f"{what} has no OoD pixels (label == out_id): n_pos=0, n_neg={n_neg}; AUROC / AUPRC / FPR95 "
            "need at least one OoD and one in-distribution pixel (check out_id and the label files)"
        )
    return InputError(
        f"{what} has no in-distribution pixels (label == in_id): n_pos={n_pos}, n_neg=0; AUROC / AUPRC / "
        "FPR95 need at least one OoD and one in-distribution pixel (check in_id and the label files)"
    )


def thin_indices(n: int, max_points: int | None) -> np.ndarray:
    """Indices 0..n-1, or about ``max_points`` evenly spaced ones (first and last kept)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 2:
        raise InputError(f"curve_points={max_points}: expected None or an integer >= 2")
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))


def metrics_from_counts(
    pos: np.ndarray,
    neg: np.ndarray,
    values: np.ndarray,
    tpr_level: float = 0.95,
    curve_points: int | None = None,
) -> dict[str, Any]:
    """Metrics and curves of one histogram; ``pos``/``neg``/``values`` in increasing score order."""
    pos = np.asarray(pos, dtype=np.int64)
    neg = np.asarray(neg, dtype=np.int64)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        raise no_pixels_error(n_pos, n_neg)
    nz = np.flatnonzero((pos + neg) > 0)[::-1]  # distinct observed scores, decreasing
    p, n, thr = pos[nz], neg[nz], np.asarray(values, dtype=np.float64)[nz]
    state = RankState(np.array([n_pos]), np.array([n_neg]), tpr_level)
    state.add(p[None, :], n[None, :], 0)
    res = state.result()
    tps = np.cumsum(p)
    fps = np.cumsum(n)
    best = int(res["best_col"][0])
    out: dict[str, Any] = {
        "auroc": float(res["auroc"][0]),
        "auprc": float(res["auprc"][0]),
        "fpr95": float(res["fpr95"][0]),
        "best_f1": float(res["best_f1"][0]),
        "best_f1_threshold": float(thr[best]),
        "best_f1_precision": float(tps[best] / (tps[best] + fps[best])),
        "best_f1_recall": float(tps[best] / n_pos),
        "tpr_level": float(tpr_level),
        "n_pos": n_pos,
        "n_neg": n_neg,
    }
    # ROC curve in scikit-learn's roc_curve(drop_intermediate=False) layout: decreasing
    # thresholds, starting at (0, 0) with threshold +inf.
    fpr = np.concatenate(([0.0], fps / n_neg))
    tpr = np.concatenate(([0.0], tps / n_pos))
    roc_thr = np.concatenate(([np.inf], thr))
    keep = thin_indices(fpr.size, curve_points)
    out["roc"] = {"fpr": fpr[keep], "tpr": tpr[keep], "thresholds": roc_thr[keep]}
    # PR curve in scikit-learn's precision_recall_curve layout: increasing thresholds, a final
    # point (precision 1, recall 0) without threshold.
    precision = np.concatenate(((tps / (tps + fps))[::-1], [1.0]))
    recall = np.concatenate(((tps / n_pos)[::-1], [0.0]))
    pr_thr = thr[::-1]
    keep = thin_indices(precision.size, curve_points)
    out["pr"] = {
        "precision": precision[keep],
        "recall": recall[keep],
        "thresholds": pr_thr[keep[keep < pr_thr.size]],
    }
    return out
