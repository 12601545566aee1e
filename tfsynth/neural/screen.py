"""Presenting stimuli to a model at a visual angle (Brain-Score's `place_on_screen` + the model's resize).

A model sees `model_degrees` of visual angle across its input (Brain-Score's default: 8 deg). A stimulus set
shown to the animals at `source_degrees` is converted by the ratio target / source: enlarged onto a gray
(128, 128, 128) canvas when the model's field of view is wider (the stimulus centred, top-left offset rounded),
centre-cropped when it is narrower; then resized to the model's `image_size` (bilinear, PIL), as Brain-Score's
ImageConverter followed by the model's preprocessing do. TF-free (numpy + Pillow).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["place_on_screen", "present"]


def _convert(image: Image.Image, ratio: float) -> Image.Image:
    size = np.array(image.size)
    target = (ratio * size).round().astype(int)
    if ratio >= 1:
        canvas = Image.new("RGB", tuple(int(v) for v in target), (128, 128, 128))
        topleft = ((target - size) / 2).round().astype(int)
        canvas.paste(image, tuple(int(v) for v in topleft))
        return canvas
    left, upper = ((size - target) / 2).round().astype(int)
    right, lower = np.array([left, upper]) + target
    return image.crop((int(left), int(upper), int(right), int(lower)))


def place_on_screen(image: np.ndarray, source_degrees: float, target_degrees: float) -> np.ndarray:
    """One (H, W, 3) uint8 stimulus seen at `source_degrees`, re-framed for a `target_degrees` field of view."""
    if source_degrees <= 0 or target_degrees <= 0:
        raise ValueError(f"visual degrees must be > 0, got source={source_degrees}, target={target_degrees}")
    if source_degrees == target_degrees:
        return np.asarray(image)
    return np.asarray(_convert(Image.fromarray(np.asarray(image, np.uint8)).convert("RGB"),
                               target_degrees / source_degrees))


def present(images: np.ndarray, source_degrees: float, model_degrees: float, image_size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 stimuli -> (N, image_size, image_size, 3) uint8 model inputs."""
    out = np.empty((len(images), image_size, image_size, 3), np.uint8)
    for i, image in enumerate(images):
        framed = Image.fromarray(place_on_screen(image, source_degrees, model_degrees)).convert("RGB")
        if framed.size != (image_size, image_size):
            framed = framed.resize((image_size, image_size), Image.BILINEAR)
        out[i] = np.asarray(framed)
    return out
