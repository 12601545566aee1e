"""Contact sheets: a classes x instances grid of images (NumPy only, TF-free)."""
from __future__ import annotations

import numpy as np


def contact_sheet(rows: list[list[np.ndarray]], pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """One uint8 (H, W, 3) image: row r holds the images of rows[r] (e.g. one class), left to right.

    Images may be (h, w), (h, w, 1) or (h, w, 3) and of different sizes (each cell is the largest size; smaller
    images are centred); missing cells stay blank."""
    if not rows or not any(rows):
        raise ValueError("contact_sheet needs at least one image")
    cells = [[_rgb(im) for im in row] for row in rows]
    h = max(im.shape[0] for row in cells for im in row)
    w = max(im.shape[1] for row in cells for im in row)
    cols = max(len(row) for row in cells)
    sheet = np.full((len(cells) * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, np.uint8)
    for r, row in enumerate(cells):
        for c, im in enumerate(row):
            y = pad + r * (h + pad) + (h - im.shape[0]) // 2
            x = pad + c * (w + pad) + (w - im.shape[1]) // 2
            sheet[y:y + im.shape[0], x:x + im.shape[1]] = im
    return sheet


def _rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"contact_sheet expects uint8 images, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.shape[-1] == 4:
        image = image[..., :3]
    return image
