"""Normalisation of accepted segmentations to look like the synthetic renders (the seed's ch. 3.2.1). TF-free.

* Car-to-frame ratio of an RGBA image (Definition 1): pixels with alpha > 0 / pixels with alpha = 0.
* `segmentation_rgba`: the photo cropped to the predicted box, alpha = the mask, RGB zeroed where alpha = 0.
* `colour_correct`: RGB (0, 0, 0) where alpha > 0 -> (1, 1, 1), so black car pixels never read as background
  for models that take alpha = "RGB is not all zero".
* `pad_to_square`: zero rows / columns on both sides of the short axis, half the difference each; an odd
  remainder goes to a side drawn from the generator.
* `pad_to_ratio`: with a ratio r drawn from a Normal fitted to the synthetic renders' ratios, pad a square
  of side s holding a car pixels by P = round(S - s), S = sqrt(a (1 + r) / r), so that a / (S^2 - a) = r
  (the seed's Figure 3.13); P // 2 on each side, the odd pixel to a drawn side (the same P on both axes
  keeps the image square). A segmentation whose ratio is already below r is left as it is (P = 0).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Optional

import numpy as np


def alpha_channel(array) -> np.ndarray:
    """The alpha channel of an RGBA [H, W, 4] image, or the array itself for [H, W] / [H, W, 1] alpha."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 4:
        return array[..., 3]
    if array.ndim == 3 and array.shape[-1] == 1:
        return array[..., 0]
    if array.ndim == 2:
        return array
    raise ValueError(f"expected an RGBA image [H, W, 4] or an alpha map [H, W(, 1)], got shape {array.shape}")


def car_to_frame_ratio(array) -> float:
    """Pixels with alpha > 0 divided by pixels with alpha == 0 (inf when there is no background)."""
    alpha = alpha_channel(array)
    foreground = int(np.count_nonzero(alpha > 0))
    background = alpha.size - foreground
    return foreground / background if background else math.inf


@dataclasses.dataclass(frozen=True)
class RatioNormal:
    """Normal distribution of car-to-frame ratios; draws are truncated to (0, inf) by redrawing."""

    mean: float
    std: float
    count: int = 0  # how many ratios it was fitted to (0: given by hand)

    def __post_init__(self):
        if not (self.mean > 0 and self.std >= 0 and math.isfinite(self.mean) and math.isfinite(self.std)):
            raise ValueError(f"ratio Normal needs mean > 0 and std >= 0, got mean={self.mean}, std={self.std}")

    def sample(self, rng: np.random.Generator) -> float:
        for _ in range(1000):
            r = float(rng.normal(self.mean, self.std))
            if r > 0:
                return r
        raise ValueError(f"N({self.mean}, {self.std}^2) gave no positive ratio in 1000 draws")


def normal_from_ratios(ratios: Iterable[float]) -> RatioNormal:
    """Maximum-likelihood Normal (mean, population std) of the finite ratios."""
    ratios = np.asarray(list(ratios), dtype=np.float64)
    if ratios.size == 0:
        raise ValueError("no ratios to fit a Normal to")
    finite = ratios[np.isfinite(ratios)]
    if finite.size == 0:
        raise ValueError("every image is all foreground (ratio inf)")
    return RatioNormal(float(finite.mean()), float(finite.std()), int(finite.size))


def fit_ratio_normal(arrays: Iterable) -> RatioNormal:
    """The Normal of the car-to-frame ratios of RGBA / alpha arrays (e.g. the synthetic renders)."""
    return normal_from_ratios(car_to_frame_ratio(a) for a in arrays)


def segmentation_rgba(image: np.ndarray, mask: np.ndarray, roi) -> np.ndarray:
    """uint8 RGBA crop of the photo at `roi` (clipped to the photo): alpha 255 on the mask, RGB 0 elsewhere."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    h, w = image.shape[:2]
    if mask.shape != (h, w):
        raise ValueError(f"mask shape {mask.shape} does not match the photo's {(h, w)}")
    y1, x1, y2, x2 = (int(v) for v in roi)
    y1, x1, y2, x2 = max(0, y1), max(0, x1), min(h, y2), min(w, x2)
    if y2 <= y1 or x2 <= x1:
        raise ValueError(f"roi {tuple(roi)} is empty inside a {h}x{w} photo")
    crop_mask = np.asarray(mask[y1:y2, x1:x2], dtype=bool)
    rgba = np.zeros((y2 - y1, x2 - x1, 4), np.uint8)
    rgba[..., :3] = np.where(crop_mask[..., None], image[y1:y2, x1:x2, :3], 0)
    rgba[..., 3] = np.where(crop_mask, 255, 0)
    return rgba


def colour_correct(rgba: np.ndarray) -> np.ndarray:
    """RGB (0, 0, 0) with alpha > 0 -> (1, 1, 1); everything else unchanged."""
    out = np.array(rgba, copy=True)
    black = (out[..., 3] > 0) & np.all(out[..., :3] == 0, axis=-1)
    out[black, :3] = 1
    return out


def _split(total: int, rng: np.random.Generator) -> tuple[int, int]:
    """total -> (before, after): half each, the odd pixel to a side drawn from `rng`."""
    half, odd = divmod(total, 2)
    if odd and rng.integers(2):
        return half + 1, half
    return half, half + odd


def pad_to_square(rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero-pads the short axis to the long axis' length (odd remainder to a random side)."""
    h, w = rgba.shape[:2]
    if h == w:
        return np.array(rgba, copy=True)
    before, after = _split(abs(h - w), rng)
    pad = [(before, after), (0, 0)] if h < w else [(0, 0), (before, after)]
    return np.pad(rgba, pad + [(0, 0)] * (rgba.ndim - 2))


def padding_for_ratio(side: int, foreground: int, ratio: float) -> int:
    """Total padding P (pixels added to the side of a square) that brings its car-to-frame ratio to `ratio`."""
    if ratio <= 0:
        raise ValueError(f"target ratio must be positive, got {ratio}")
    target_side = math.sqrt(foreground * (1.0 + ratio) / ratio)
    return max(0, int(round(target_side - side)))


def pad_to_ratio(square: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-pads a square RGBA image on all sides so its car-to-frame ratio is `ratio` (as close as pixels go)."""
    h, w = square.shape[:2]
    if h != w:
        raise ValueError(f"pad_to_ratio needs a square image, got {h}x{w}")
    total = padding_for_ratio(h, int(np.count_nonzero(alpha_channel(square) > 0)), ratio)
    rows = _split(total, rng)
    cols = _split(total, rng)
    return np.pad(square, [rows, cols] + [(0, 0)] * (square.ndim - 2))


@dataclasses.dataclass
class NormalisedSegmentation:
    rgba: np.ndarray  # uint8 [S, S, 4]
    ratio_before: float  # car-to-frame ratio of the square segmentation before ratio padding
    target_ratio: float  # the ratio drawn from the synthetic Normal
    ratio: float  # the ratio reached


def normalise_segmentation(image: np.ndarray, mask: np.ndarray, roi, target: RatioNormal,
                           rng: np.random.Generator) -> NormalisedSegmentation:
    """Crop -> RGBA -> colour correction -> pad to square -> pad to a ratio drawn from `target`."""
    rgba = colour_correct(segmentation_rgba(image, mask, roi))
    square = pad_to_square(rgba, rng)
    ratio_before = car_to_frame_ratio(square)
    target_ratio = target.sample(rng)
    out = pad_to_ratio(square, target_ratio, rng)
    return NormalisedSegmentation(out, ratio_before, target_ratio, car_to_frame_ratio(out))


def sampled_ratios(target: RatioNormal, count: int, seed: int = 0) -> np.ndarray:
    """`count` draws of the (truncated) Normal, e.g. to plot against real ratios when only (mean, std) is known."""
    rng = np.random.default_rng(seed)
    return np.array([target.sample(rng) for _ in range(count)])


def ratio_summary(ratios) -> Optional[dict]:
    ratios = np.asarray([r for r in ratios if math.isfinite(r)], dtype=np.float64)
    if ratios.size == 0:
        return None
    return {"count": int(ratios.size), "mean": float(ratios.mean()), "std": float(ratios.std()),
            "median": float(np.median(ratios)), "p95": float(np.percentile(ratios, 95))}
