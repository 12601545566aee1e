"""Rules that reject bad Mask R-CNN segmentations of real car photos (the seed's ch. 3.1 and 3.2.2-3.2.3).

A segmentation is rejected when (rules in this order; the first failing rule is the one counted):

1. `label`: its predicted class is not in `labels` (default car, truck);
2. `confidence`: its score is below `min_confidence` (0.7);
3. `bbox_size`: sqrt(area of its predicted box) is below `min_bbox_side` (128: the synthetic images' side);
4. `mask_fill`: mask area / predicted box area is below `min_mask_fill` (0.5);
5. `colour`: the photo is greyscale (one channel, or mean per-pixel channel spread <= `grey_tolerance`);
6. `occlusion`: its mask has more than one connected component (`connectivity` 8 or 4);
7. `truncation`: more than `max_border_coverage` (1/3) of any of the four border strips of the photo, each
   `border_fraction` (2 %) of the photo's height (top, bottom) or width (left, right) wide, is covered.

Rules 1-5 are the seed's first pass (16,185 photos -> 17,398 segmentations), 6-7 the second (-> 14,092).
Every threshold is a field of `FilterConfig`; boundary values pass (e.g. a score of exactly 0.7). TF-free.
"""
from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from typing import Iterable, Optional, Sequence

import numpy as np
import scipy.ndimage

RULES = ("label", "confidence", "bbox_size", "mask_fill", "colour", "occlusion", "truncation")
FIRST_PASS_RULES = RULES[:5]


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    labels: tuple[str, ...] = ("car", "truck")  # class names a segmentation may have
    min_confidence: float = 0.7  # reject scores below this
    min_bbox_side: float = 128.0  # reject when sqrt(predicted box area) is below this (pixels)
    min_mask_fill: float = 0.5  # reject when mask area / predicted box area is below this
    grey_tolerance: float = 2.0  # a photo is grey when its mean per-pixel channel spread (max - min) is <= this
    connectivity: int = 8  # pixel connectivity of mask components (8 or 4)
    border_fraction: float = 0.02  # border strip width as a fraction of the photo's height / width
    max_border_coverage: float = 1 / 3  # reject when a border strip is covered by more than this fraction

    def __post_init__(self):
        if self.connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if not 0 < self.border_fraction < 0.5:
            raise ValueError(f"border_fraction must be in (0, 0.5), got {self.border_fraction}")


@dataclasses.dataclass
class Detection:
    """One segmentation of a photo: class name, score, predicted box (y1, x1, y2, x2; y2, x2 exclusive) and
    its full-photo bool mask [H, W]."""

    label: str
    score: float
    roi: tuple[int, int, int, int]
    mask: np.ndarray
    index: int = 0  # position in the detector's output for the photo


def detections_from_result(result: dict, class_names: Sequence[str]) -> list[Detection]:
    """matterport's `detect()` result of one image (rois, class_ids, scores, masks [H, W, N]) -> Detections."""
    rois = np.asarray(result["rois"]).reshape(-1, 4)
    class_ids = np.asarray(result["class_ids"]).reshape(-1)
    scores = np.asarray(result["scores"]).reshape(-1)
    masks = np.asarray(result["masks"])
    if not (len(rois) == len(class_ids) == len(scores) == (masks.shape[-1] if masks.ndim == 3 else 0)):
        raise ValueError(f"inconsistent detection result: {len(rois)} rois, {len(class_ids)} class ids, "
                         f"{len(scores)} scores, masks of shape {masks.shape}")
    out = []
    for i in range(len(rois)):
        class_id = int(class_ids[i])
        if not 0 <= class_id < len(class_names):
            raise ValueError(f"class id {class_id} outside the {len(class_names)} class names")
        out.append(Detection(class_names[class_id], float(scores[i]), tuple(int(v) for v in rois[i]),
                             masks[:, :, i].astype(bool), index=i))
    return out


def box_area(roi) -> int:
    y1, x1, y2, x2 = roi
    return max(0, y2 - y1) * max(0, x2 - x1)


def label_ok(detection: Detection, config: FilterConfig) -> bool:
    return detection.label in config.labels


def confidence_ok(detection: Detection, config: FilterConfig) -> bool:
    # Compared in float32, the precision the detector's scores and its own threshold have.
    return bool(np.float32(detection.score) >= np.float32(config.min_confidence))


def bbox_size_ok(detection: Detection, config: FilterConfig) -> bool:
    return math.sqrt(box_area(detection.roi)) >= config.min_bbox_side


def mask_fill(detection: Detection) -> float:
    area = box_area(detection.roi)
    return float(np.count_nonzero(detection.mask)) / area if area else 0.0


def mask_fill_ok(detection: Detection, config: FilterConfig) -> bool:
    return mask_fill(detection) >= config.min_mask_fill


def channel_spread(image: np.ndarray) -> float:
    """Mean over pixels of (max - min) over the colour channels; 0 for single-channel images."""
    image = np.asarray(image)
    if image.ndim == 2 or image.shape[-1] == 1:
        return 0.0
    rgb = image[..., :3].astype(np.int32)
    return float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1)))


def is_colour(image: np.ndarray, config: FilterConfig) -> bool:
    return channel_spread(image) > config.grey_tolerance


def component_count(mask: np.ndarray, connectivity: int = 8) -> int:
    structure = np.ones((3, 3), bool) if connectivity == 8 else scipy.ndimage.generate_binary_structure(2, 1)
    _, count = scipy.ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    return int(count)


def occlusion_ok(detection: Detection, config: FilterConfig) -> bool:
    return component_count(detection.mask, config.connectivity) == 1


def border_coverage(mask: np.ndarray, border_fraction: float = 0.02) -> dict[str, float]:
    """Covered fraction of the top, bottom, left and right border strips of a full-photo mask.

    Strip width: max(1, round(border_fraction * side)), side = the photo's height for top/bottom strips and
    its width for left/right strips.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    kh = max(1, int(round(border_fraction * h)))
    kw = max(1, int(round(border_fraction * w)))
    return {"top": float(mask[:kh].mean()), "bottom": float(mask[h - kh:].mean()),
            "left": float(mask[:, :kw].mean()), "right": float(mask[:, w - kw:].mean())}


def truncation_ok(detection: Detection, config: FilterConfig) -> bool:
    coverage = border_coverage(detection.mask, config.border_fraction)
    return all(value <= config.max_border_coverage + 1e-12 for value in coverage.values())


def failed_rule(detection: Detection, image: np.ndarray, config: FilterConfig,
                rules: Sequence[str] = RULES) -> Optional[str]:
    """The first of `rules` the detection fails, or None when it passes them all."""
    checks = {
        "label": lambda: label_ok(detection, config),
        "confidence": lambda: confidence_ok(detection, config),
        "bbox_size": lambda: bbox_size_ok(detection, config),
        "mask_fill": lambda: mask_fill_ok(detection, config),
        "colour": lambda: is_colour(image, config),
        "occlusion": lambda: occlusion_ok(detection, config),
        "truncation": lambda: truncation_ok(detection, config),
    }
    unknown = [r for r in rules if r not in checks]
    if unknown:
        raise ValueError(f"unknown rule(s) {unknown}; valid: {RULES}")
    for rule in rules:
        if not checks[rule]():
            return rule
    return None


@dataclasses.dataclass
class FilterReport:
    """Per-rule rejection counts (each rejected segmentation counted once, by its first failing rule)."""

    images: int = 0
    unreadable_images: int = 0
    detections: int = 0
    rejected: "OrderedDict[str, int]" = dataclasses.field(default_factory=lambda: OrderedDict((r, 0) for r in RULES))
    accepted: int = 0

    def add(self, rule: Optional[str]) -> None:
        self.detections += 1
        if rule is None:
            self.accepted += 1
        else:
            self.rejected[rule] += 1

    def merge(self, other: "FilterReport") -> "FilterReport":
        self.images += other.images
        self.unreadable_images += other.unreadable_images
        self.detections += other.detections
        self.accepted += other.accepted
        for rule, count in other.rejected.items():
            self.rejected[rule] = self.rejected.get(rule, 0) + count
        return self

    @property
    def after_first_pass(self) -> int:
        """Segmentations that pass rules 1-5 (the seed's 17,398)."""
        return self.detections - sum(self.rejected[r] for r in FIRST_PASS_RULES)

    def as_dict(self) -> dict:
        return {"images": self.images, "unreadable_images": self.unreadable_images, "detections": self.detections,
                "rejected": dict(self.rejected), "after_first_pass": self.after_first_pass,
                "accepted": self.accepted}

    @classmethod
    def from_dict(cls, data: dict) -> "FilterReport":
        report = cls(images=data["images"], unreadable_images=data.get("unreadable_images", 0),
                     detections=data["detections"], accepted=data["accepted"])
        report.rejected = OrderedDict((r, int(data["rejected"].get(r, 0))) for r in RULES)
        return report


def filter_detections(image: np.ndarray, detections: Iterable[Detection], config: FilterConfig,
                      report: Optional[FilterReport] = None) -> list[Detection]:
    """The detections that pass every rule; counts go to `report` (one image)."""
    if report is not None:
        report.images += 1
    kept = []
    for detection in detections:
        rule = failed_rule(detection, image, config)
        if report is not None:
            report.add(rule)
        if rule is None:
            kept.append(detection)
    return kept
