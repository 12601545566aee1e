"""Colour palettes and mask overlays for segmentation outputs (NumPy only; the training job sends them to TensorBoard).

`palette(n)`: Pascal VOC's colour map (class 0 black, 1 dark red, 2 dark green, ...), the usual colours of VOC and
COCO-VOC label maps; the ignore index 255 is drawn white.
"""
from __future__ import annotations

import numpy as np

from tfsynth.segmentation.metrics import IGNORE_INDEX

IGNORE_COLOR = (255, 255, 255)


def palette(num_classes: int = 256) -> np.ndarray:
    """(num_classes, 3) uint8 Pascal VOC colour map (bit-interleaved class index)."""
    colors = np.zeros((num_classes, 3), np.uint8)
    for c in range(num_classes):
        r = g = b = 0
        label = c
        for shift in range(7, -1, -1):
            r |= ((label >> 0) & 1) << shift
            g |= ((label >> 1) & 1) << shift
            b |= ((label >> 2) & 1) << shift
            label >>= 3
        colors[c] = (r, g, b)
    return colors


_PALETTE = palette(256)
_PALETTE[IGNORE_INDEX] = IGNORE_COLOR


def colorize(labels: np.ndarray) -> np.ndarray:
    """(..., H, W) or (..., H, W, 1) integer labels -> (..., H, W, 3) uint8 colours (255 -> white)."""
    labels = np.asarray(labels)
    if labels.ndim >= 3 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    return _PALETTE[np.clip(labels, 0, 255).astype(np.int64)]


def overlay(images: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blends label colours over uint8 RGB images: (1 - alpha) * image + alpha * colour; background (0) untouched."""
    images = np.asarray(images)
    colors = colorize(labels).astype(np.float32)
    labels = np.asarray(labels)
    if labels.ndim == colors.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    mask = (labels != 0)[..., None]
    blended = np.where(mask, (1.0 - alpha) * images.astype(np.float32) + alpha * colors, images)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def comparison_rows(images: np.ndarray, truth: np.ndarray, prediction: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(N, H, 3 W, 3) uint8: per example [image | ground truth overlay | prediction overlay]."""
    return np.concatenate([np.asarray(images, np.uint8), overlay(images, truth, alpha),
                           overlay(images, prediction, alpha)], axis=2)
