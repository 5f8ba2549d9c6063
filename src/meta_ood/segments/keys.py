"""Column names of the segment tables and the meta-classifier feature sets.

Predicted- and ground-truth-segment tables use the keys of the reference implementation, in its
insertion order; the released code's meta classifier sorts them as plain Python strings.
"""

from __future__ import annotations

from meta_ood.errors import InputError
from meta_ood.labels import NUM_CLASSES

__all__ = ["FEATURES_PAPER", "FEATURES_RELEASED", "GT_KEYS", "HEATMAPS", "PRED_KEYS", "feature_names",
           "gt_keys", "pred_keys"]

#: The reference's float32 pixel maps summarized per segment (entropy, margin, variation ratio).
HEATMAPS = ("E", "D", "V")
_HEAT_SUFFIXES = ("", "_in", "_bd", "_rel", "_rel_in", "_var", "_var_in", "_var_bd", "_var_rel", "_var_rel_in")


def pred_keys(num_classes: int) -> tuple[str, ...]:
    """Columns of the predicted-segment table for ``num_classes`` classes."""
    keys = ["iou", "iou0", "prc", "mean_x", "mean_y"]
    for h in HEATMAPS:
        keys += [h + s for s in _HEAT_SUFFIXES]
    keys += ["S", "S_in", "S_bd", "S_rel", "S_rel_in"]
    for c in range(num_classes):
        keys += [f"cprob{c}", f"ndist{c}"]
    return tuple(keys)


def gt_keys(num_classes: int) -> tuple[str, ...]:
    """Columns of the ground-truth-segment table for ``num_classes`` classes."""
    keys = ["iou", "iou0", "rec", "train_class", "label_class", "mean_x", "mean_y", "S", "S_in", "S_bd"]
    for c in range(num_classes):
        keys += [f"S_{c}", f"cprob{c}"]
    return tuple(keys)


#: Columns of the predicted-segment table, in the reference's insertion order (78 for 19 classes).
PRED_KEYS: tuple[str, ...] = pred_keys(NUM_CLASSES)
#: Columns of the ground-truth-segment table, in the reference's insertion order (48 for 19 classes).
GT_KEYS: tuple[str, ...] = gt_keys(NUM_CLASSES)

#: The 75 meta-classifier inputs of the released code: every predicted-segment key except the
#: targets ``iou``, ``iou0`` and the unused ``prc``, in plain Python string order (as
#: ``metrics_to_dataset`` sorts them: upper case first, ``cprob10`` before ``cprob2``).
FEATURES_RELEASED: tuple[str, ...] = tuple(sorted(k for k in PRED_KEYS if k not in ("iou", "iou0", "prc")))

_PAPER_SET = frozenset(
    ["E", "V", "D", "S", "S_rel", "S_rel_in", "mean_x", "mean_y"]
    + [f"cprob{c}" for c in range(NUM_CLASSES)]
    + [f"ndist{c}" for c in range(NUM_CLASSES)]
)
#: The 46 metrics of the paper's appendix B, as reference keys, in the same order as
#: :data:`FEATURES_RELEASED`:
#:
#: * ``E`` -- mean normalized entropy over the segment (eq. 11),
#: * ``V`` -- mean variation ratio (eq. 12), ``D`` -- mean probability margin (eq. 13),
#: * ``S`` -- segment size, ``S_rel`` = S / S_bd and ``S_rel_in`` = S_in / S_bd (eq. 14),
#: * ``ndist0`` ... ``ndist18`` -- the neighbourhood class distribution N(j|k) (eq. 15),
#: * ``mean_x``, ``mean_y`` -- the geometric centre C_h, C_w (eq. 16),
#: * ``cprob0`` ... ``cprob18`` -- the mean softmax probability per class ("the plain softmax
#:   probabilities", averaged over the segment like every pixel-wise score).
#:
#: 3 + 3 + 19 + 2 + 19 = 46 for q = 19. The released code additionally feeds interior / boundary
#: means, variances and their ``*_rel`` products of E, D and V (:data:`FEATURES_RELEASED`).
FEATURES_PAPER: tuple[str, ...] = tuple(k for k in FEATURES_RELEASED if k in _PAPER_SET)

_FEATURE_SETS = {"released": FEATURES_RELEASED, "paper": FEATURES_PAPER}


def feature_names(name: str) -> list[str]:
    """Meta-classifier input columns of a named feature set: ``"released"`` (75) or ``"paper"`` (46)."""
    try:
        return list(_FEATURE_SETS[name])
    except (KeyError, TypeError):
        raise InputError(f"unknown feature set {name!r}; expected one of {sorted(_FEATURE_SETS)}") from None
