"""Label ids the street renderer paints: the official Cityscapes ids and the LostAndFound obstacles."""

from __future__ import annotations

from meta_ood import labels as L


_ID = {lab.name: lab.id for lab in L.CITYSCAPES_LABELS if lab.id >= 0}
UNLABELED, EGO, RECT_BORDER, OUT_OF_ROI = _ID["unlabeled"], _ID["ego vehicle"], _ID["rectification border"], _ID["out of roi"]
STATIC, DYNAMIC, GROUND, ROAD, SIDEWALK, PARKING = _ID["static"], _ID["dynamic"], _ID["ground"], _ID["road"], _ID["sidewalk"], _ID["parking"]
BUILDING, WALL, FENCE, GUARD_RAIL = _ID["building"], _ID["wall"], _ID["fence"], _ID["guard rail"]
POLE, POLEGROUP, TRAFFIC_LIGHT, TRAFFIC_SIGN = _ID["pole"], _ID["polegroup"], _ID["traffic light"], _ID["traffic sign"]
VEGETATION, TERRAIN, SKY, PERSON, RIDER = _ID["vegetation"], _ID["terrain"], _ID["sky"], _ID["person"], _ID["rider"]
CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = _ID["car"], _ID["truck"], _ID["bus"], _ID["train"], _ID["motorcycle"], _ID["bicycle"]


# Rare classes: every image gets one of these groups (by index), see render_cityscapes.
_RARE_GROUPS = (("train", "parked_bicycle"), ("bus", "motorcyclist"), ("truck", "cyclist"), ("cyclist", "parked_motorcycle"))
_SLOT_EXTRA = (TERRAIN, WALL, FENCE, TRAFFIC_LIGHT)
_RARE_LABELS = {"train": TRAIN, "bus": BUS, "truck": TRUCK, "cyclist": BICYCLE, "motorcyclist": MOTORCYCLE,
                "parked_bicycle": BICYCLE, "parked_motorcycle": MOTORCYCLE}


# LostAndFound obstacles are painted into the Cityscapes id canvas as _LAF_MARK + official id.
_LAF_MARK = 100
_LAF_CRATE_IDS = (2, 3, 4, 5, 6, 7, 10, 11, 12, 13)
_LAF_PYLON_IDS = (17, 18, 19)
_LAF_BLOB_IDS = (9, 22, 30, 32, 35)
_LAF_NON_HAZARD_IDS = (33, 36, 37, 39)
