"""FractalDB instance rendering (official `make_fractaldb.py` scheme), TF-free.

One category expands into instances by
  * weight variants: the identity, and each of a..f scaled alone by 1 -/+ step, 1 -/+ 2*step
    (step 0.4 -> 0.2, 0.6, 1.4, 1.8; 25 variants in the official `weights_0.4.csv` row order);
  * patch re-draws: every point pastes a random non-empty 3x3 binary patch (random per point);
  * flips: none, top-bottom, left-right, both (applied after the official vertical flip).
The chaos game of a weight variant is shared by all its patch re-draws and flips (the official
renderer reseeds it with 100 every time), so render a (category, weight) group at once.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from tfsynth.fractals.ifs import chaos_game, fit_to_image

DRAW_TYPES = ("point_gray", "point_color", "patch_gray", "patch_color")
GRAY_LEVEL = 127
N_FLIPS = 4
PALETTE_SIZE = 128


def weight_variants(step: float = 0.4) -> np.ndarray:
    """(25, 6) multipliers for a..f in the official row order (identity is row 2)."""
    low_high = (1.0 - 2 * step, 1.0 - step, 1.0 + step, 1.0 + 2 * step)
    rows = []
    for column in range(6):
        factors = (low_high[0], low_high[1], 1.0, low_high[2], low_high[3]) if column == 0 else low_high
        for factor in factors:
            row = np.ones(6)
            row[column] = factor
            rows.append(row)
    return np.round(np.array(rows), 12)  # 1 - 2*0.4 must be exactly 0.2, as parsed from the official CSV


IDENTITY_WEIGHT_INDEX = 2


def _official_color(index: int, n_div: int = PALETTE_SIZE):
    """Hue cycle of the official `convert_color` (channel order as it writes them)."""
    s, i = 0.75, 0.75
    hue = 2.0 * math.pi * (float(index % n_div) / float(n_div))
    if hue >= 2.0 * math.pi:
        hue -= 2.0 * math.pi
    sector = math.floor((3.0 / math.pi) * hue)
    p = i * (1.0 - s)
    q = i * (1.0 - s * ((3.0 / math.pi) * hue - sector))
    t = i * (1.0 - s * ((1.0 - (3.0 / math.pi) * hue) + sector))
    i8, p8, q8, t8 = (int(np.uint8(v * 255.0)) for v in (i, p, q, t))
    return {0: (p8, t8, i8), 1: (p8, i8, q8), 2: (t8, i8, p8),
            3: (i8, q8, p8), 4: (i8, p8, t8), 5: (q8, p8, i8)}[sector]


PALETTE = np.array([_official_color(k) for k in range(PALETTE_SIZE)], dtype=np.uint8)


def point_colors(n_points: int, color: bool) -> np.ndarray:
    if not color:
        return np.full((1, 3), GRAY_LEVEL, np.uint8)
    return PALETTE[np.arange(n_points) % PALETTE_SIZE]


@numba.njit(cache=True, nogil=True)
def _draw_points(canvas, px, py, colors):
    height, width, channels = canvas.shape
    n_colors = colors.shape[0]
    for i in range(px.shape[0]):
        x, y = px[i], py[i]
        if x < width and y < height:
            k = i % n_colors
            for ch in range(channels):
                canvas[y, x, ch] = colors[k, ch]


@numba.njit(cache=True, nogil=True)
def _paste_patches(canvas, px, py, masks, colors):
    # Each point overwrites a whole 3x3 block at (x+1, y+1) -- zeros included, like PIL's paste --
    # so later points cover earlier ones: this must stay sequential.
    height, width, channels = canvas.shape
    n_colors = colors.shape[0]
    for i in range(px.shape[0]):
        k = i % n_colors
        mask = masks[i]
        for r in range(3):
            y = py[i] + 1 + r
            if y >= height:
                continue
            for c in range(3):
                x = px[i] + 1 + c
                if x >= width:
                    continue
                bit = (mask >> (8 - (3 * r + c))) & 1  # '{:09b}' reads the most significant bit first
                for ch in range(channels):
                    canvas[y, x, ch] = colors[k, ch] * bit


class PointSet:
    """Pixel coordinates of one weighted IFS, shared by its patch re-draws and flips."""

    def __init__(self, params: np.ndarray, weight: np.ndarray, n_points: int, image_size: int, pad: int = 6,
                 chaos_seed: int = 100, uniforms: np.ndarray | None = None):
        weighted = np.array(params, dtype=np.float64)
        weighted[:, :6] *= weight
        if uniforms is None:
            uniforms = np.random.RandomState(chaos_seed).random_sample(n_points)
        xs, ys = chaos_game(weighted, uniforms)
        self.px, self.py = fit_to_image(xs, ys, image_size, pad)
        self.px = self.px.astype(np.int64)
        self.py = self.py.astype(np.int64)
        self.image_size = image_size


def draw(points: PointSet, draw_type: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """Renders the canvas in official orientation (before flips): (S, S, 1) gray or (S, S, 3) colour."""
    if draw_type not in DRAW_TYPES:
        raise ValueError(f"unknown draw_type {draw_type!r}; valid: {', '.join(DRAW_TYPES)}")
    color = draw_type.endswith("color")
    channels = 3 if color else 1
    colors = point_colors(points.px.shape[0], color)[:, :channels].copy()
    canvas = np.zeros((points.image_size, points.image_size, channels), np.uint8)
    if draw_type.startswith("patch"):
        if rng is None:
            raise ValueError("patch drawing needs a random generator for the patch masks")
        masks = rng.integers(1, 512, size=points.px.shape[0], dtype=np.int64)
        _paste_patches(canvas, points.px, points.py, masks, colors)
    else:
        _draw_points(canvas, points.px, points.py, colors)
    return canvas[::-1]  # the official renderer stores images upside down (FLIP_TOP_BOTTOM)


def flip(image: np.ndarray, flip_type: int) -> np.ndarray:
    if flip_type == 0:
        return image
    if flip_type == 1:
        return image[::-1]
    if flip_type == 2:
        return image[:, ::-1]
    if flip_type == 3:
        return image[::-1, ::-1]
    raise ValueError(f"flip_type must be 0..3, got {flip_type}")
