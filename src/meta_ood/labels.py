"""Label tables and id mappings of Cityscapes, LostAndFound and Fishyscapes, and the default
entropy thresholds that turn their predictions into OoD masks.

Conventions used throughout the pipeline:

* Cityscapes: 19 train ids 0..18, void = 255 (every label with ``ignore_in_eval``).
* LostAndFound: train id 1 = in-distribution (free road), 2 = OoD (obstacles), 255 = void
  (unlabeled, ego vehicle, rectification border, out of roi, background). The released code of
  the paper maps the "Random non-hazards" (marker pole, red post, post stand, small timber, squared
  timber, wheel cap, thin wood) to train id 0: neither in nor out, so they are ignored by the
  pixel evaluation, but unlike void they are NOT removed from predicted OoD segments. We keep
  that mapping for parity.
* Fishyscapes: 0 = in-distribution, 1 = OoD, 255 = void. SegmentMeIfYouCan (AnomalyTrack,
  ObstacleTrack) ships its labels in the same values and is read with the same convention.
* Road Anomaly (Lis et al.): label 0 = in-distribution, 2 and above = anomaly, 255 = void; read as
  the Fishyscapes train ids 0 / 1 / 255 (:data:`ROAD_ANOMALY_ID_TO_TRAIN`, label 1 is not used).
* COCO proxy masks (written by :mod:`meta_ood.coco_filter`): 254 = OoD object, 0 = background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOID_ID = 255
NUM_CLASSES = 19
COCO_OOD_ID = 254
COCO_BACKGROUND_ID = 0
#: Entropy thresholds t of the OoD segments {normalized entropy >= t} (config ``evaluation.thresholds``).
ENTROPY_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: Thresholds of the Cityscapes mIoU with an extra OoD class (config ``evaluation.miou_thresholds``).
MIOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Label:
    """One row of a label table (a subset of the cityscapesScripts fields)."""

    name: str
    id: int
    train_id: int
    category: str
    ignore_in_eval: bool
    color: tuple[int, int, int]


# Cityscapes, as in cityscapesScripts/helpers/labels.py (train id -1 of 'license plate' -> void).
CITYSCAPES_LABELS: tuple[Label, ...] = (
    Label("unlabeled", 0, 255, "void", True, (0, 0, 0)),
    Label("ego vehicle", 1, 255, "void", True, (0, 0, 0)),
    Label("rectification border", 2, 255, "void", True, (0, 0, 0)),
    Label("out of roi", 3, 255, "void", True, (0, 0, 0)),
    Label("static", 4, 255, "void", True, (0, 0, 0)),
    Label("dynamic", 5, 255, "void", True, (111, 74, 0)),
    Label("ground", 6, 255, "void", True, (81, 0, 81)),
    Label("road", 7, 0, "flat", False, (128, 64, 128)),
    Label("sidewalk", 8, 1, "flat", False, (244, 35, 232)),
    Label("parking", 9, 255, "flat", True, (250, 170, 160)),
    Label("rail track", 10, 255, "flat", True, (230, 150, 140)),
    Label("building", 11, 2, "construction", False, (70, 70, 70)),
    Label("wall", 12, 3, "construction", False, (102, 102, 156)),
    Label("fence", 13, 4, "construction", False, (190, 153, 153)),
    Label("guard rail", 14, 255, "construction", True, (180, 165, 180)),
    Label("bridge", 15, 255, "construction", True, (150, 100, 100)),
    Label("tunnel", 16, 255, "construction", True, (150, 120, 90)),
    Label("pole", 17, 5, "object", False, (153, 153, 153)),
    Label("polegroup", 18, 255, "object", True, (153, 153, 153)),
    Label("traffic light", 19, 6, "object", False, (250, 170, 30)),
    Label("traffic sign", 20, 7, "object", False, (220, 220, 0)),
    Label("vegetation", 21, 8, "nature", False, (107, 142, 35)),
    Label("terrain", 22, 9, "nature", False, (152, 251, 152)),
    Label("sky", 23, 10, "sky", False, (70, 130, 180)),
    Label("person", 24, 11, "human", False, (220, 20, 60)),
    Label("rider", 25, 12, "human", False, (255, 0, 0)),
    Label("car", 26, 13, "vehicle", False, (0, 0, 142)),
    Label("truck", 27, 14, "vehicle", False, (0, 0, 70)),
    Label("bus", 28, 15, "vehicle", False, (0, 60, 100)),
    Label("caravan", 29, 255, "vehicle", True, (0, 0, 90)),
    Label("trailer", 30, 255, "vehicle", True, (0, 0, 110)),
    Label("train", 31, 16, "vehicle", False, (0, 80, 100)),
    Label("motorcycle", 32, 17, "vehicle", False, (0, 0, 230)),
    Label("bicycle", 33, 18, "vehicle", False, (119, 11, 32)),
    Label("license plate", -1, 255, "vehicle", True, (0, 0, 142)),
)

_NON_HAZARD_IDS = (31, 33, 34, 36, 37, 38, 39)

# LostAndFound (official gtCoarse label ids 0..43); the five 'Miscellaneous'/'background' names share id 0.
_LAF_NAMES = {
    1: "free", 2: "Crate (black)", 3: "Crate (black - stacked)", 4: "Crate (black - upright)",
    5: "Crate (gray)", 6: "Crate (gray - stacked)", 7: "Crate (gray - upright)", 8: "Bumper",
    9: "Cardboard box 1", 10: "Crate (blue)", 11: "Crate (blue - small)", 12: "Crate (green)",
    13: "Crate (green - small)", 14: "Exhaust Pipe", 15: "Headlight", 16: "Euro Pallet",
    17: "Pylon", 18: "Pylon (large)", 19: "Pylon (white)", 20: "Rearview mirror", 21: "Tire",
    22: "Ball", 23: "Bicycle", 24: "Dog (black)", 25: "Dog (white)", 26: "Kid dummy",
    27: "Bobby car (gray)", 28: "Bobby Car (red)", 29: "Bobby Car (yellow)", 30: "Cardboard box 2",
    31: "Marker Pole (lying)", 32: "Plastic bag (bloated)", 33: "Post (red - lying)", 34: "Post Stand",
    35: "Styrofoam", 36: "Timber (small)", 37: "Timber (squared)", 38: "Wheel Cap", 39: "Wood (thin)",
    40: "Kid (walking)", 41: "Kid (on a bobby car)", 42: "Kid (small bobby)", 43: "Kid (crawling)",
}


def _laf_train_id(label_id: int) -> int:
    if label_id == 0:
        return VOID_ID
    if label_id == 1:
        return 1
    if label_id in _NON_HAZARD_IDS:
        return 0
    return 2


LOSTANDFOUND_LABELS: tuple[Label, ...] = (
    Label("unlabeled", 0, VOID_ID, "Miscellaneous", True, (0, 0, 0)),
) + tuple(
    Label(
        name,
        lid,
        _laf_train_id(lid),
        "Counter hypotheses" if lid == 1 else ("Random non-hazards" if lid in _NON_HAZARD_IDS else "Objects"),
        lid in _NON_HAZARD_IDS,
        (128, 64, 128) if lid == 1 else ((0, 0, 0) if lid in _NON_HAZARD_IDS else (0, 0, 142)),
    )
    for lid, name in _LAF_NAMES.items()
)


@dataclass(frozen=True)
class EvalConvention:
    """Which train ids are in-distribution / OoD / void in an evaluation dataset."""

    train_id_in: int
    train_id_out: int
    void_id: int = VOID_ID


LOSTANDFOUND = EvalConvention(train_id_in=1, train_id_out=2)
FISHYSCAPES = EvalConvention(train_id_in=0, train_id_out=1)

CITYSCAPES_TRAIN_NAMES: tuple[str, ...] = tuple(
    lab.name for lab in sorted((l for l in CITYSCAPES_LABELS if l.train_id < NUM_CLASSES), key=lambda l: l.train_id)
)


def lookup_table(labels: tuple[Label, ...]) -> np.ndarray:
    """A 256-entry int16 table mapping label id -> train id; ids not in the table map to -1."""
    lut = np.full(256, -1, dtype=np.int16)
    for lab in labels:
        if 0 <= lab.id < 256:
            lut[lab.id] = lab.train_id
    return lut


CITYSCAPES_ID_TO_TRAIN = lookup_table(CITYSCAPES_LABELS)
LOSTANDFOUND_ID_TO_TRAIN = lookup_table(LOSTANDFOUND_LABELS)
#: Cityscapes label ids of the void classes that count as OoD in the void OoD training of appendix C
#: (``finetune.proxy: cityscapes_void``) and in the ``cityscapes_void`` evaluation (figure 8):
#: unlabeled (0), static (4), dynamic (5) and ground (6), the objects and surfaces that fit no
#: training class. Ego vehicle (1), rectification border (2) and out of roi (3) are left out (ignored):
#: they are the recording car's hood and the image borders, at the same place in every frame and
#: not objects of the scene; entropy maximization on them would teach a fixed image region, which
#: LostAndFound (another car and camera) does not share.
CITYSCAPES_VOID_OOD_IDS: tuple[int, ...] = (0, 4, 5, 6)


def _void_table() -> np.ndarray:
    """Cityscapes label id -> 0 (a training class), 1 (a void class of :data:`CITYSCAPES_VOID_OOD_IDS`),
    255 (ignored: other void ids and the classes without train id); unknown ids stay -1."""
    lut = CITYSCAPES_ID_TO_TRAIN.copy()
    lut[(lut >= 0) & (lut < NUM_CLASSES)] = 0
    lut[list(CITYSCAPES_VOID_OOD_IDS)] = 1
    return lut


CITYSCAPES_VOID_ID_TO_TRAIN = _void_table()
#: Road Anomaly label -> Fishyscapes train id: 0 -> 0 (in), 2..254 -> 1 (anomaly), 255 -> void; 1 -> -1 (unknown).
ROAD_ANOMALY_ID_TO_TRAIN = np.array([0, -1] + [1] * 253 + [VOID_ID], dtype=np.int16)


def label_ids_to_train_ids(label_ids: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map a label-id image to train ids with ``lut``.

    Raises
    ------
    ValueError
        if the image contains ids that the table does not know (the message lists them).
    """
    label_ids = np.asarray(label_ids)
    train = lut[label_ids]
    if (train < 0).any():
        bad = np.unique(label_ids[train < 0])
        raise ValueError(f"label ids {bad.tolist()} are not in the label table")
    return train.astype(np.uint8)


def check_values(label: np.ndarray, allowed: np.ndarray | list[int]) -> None:
    """Raise ValueError naming the unexpected values if ``label`` has values outside ``allowed``."""
    present = np.unique(label)
    bad = np.setdiff1d(present, np.asarray(allowed))
    if bad.size:
        raise ValueError(f"unexpected label values {bad.tolist()} (expected a subset of {sorted(set(np.asarray(allowed).tolist()))})")


CITYSCAPES_TRAIN_VALUES = np.array(list(range(NUM_CLASSES)) + [VOID_ID])
LOSTANDFOUND_TRAIN_VALUES = np.array([0, 1, 2, VOID_ID])
FISHYSCAPES_TRAIN_VALUES = np.array([0, 1, VOID_ID])
