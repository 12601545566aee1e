"""Iterated function systems: the chaos game and the official FractalDB point-to-pixel mapping.

An IFS is an array of shape (n_maps, 7) with rows (a, b, c, d, e, f, p):
    x' = a*x + b*y + e,   y' = c*x + d*y + f,   chosen with probability p.

Everything here reproduces the floating-point behaviour of the official FractalDB code
(Kataoka et al., ACCV 2020, `ifs_function`), so that the official category search and the
official renders can be reproduced exactly. Generation code: never import TensorFlow here.
"""
from __future__ import annotations

import numba
import numpy as np

PARAM_COLUMNS = ("a", "b", "c", "d", "e", "f", "p")


def validate_params(params, source: str = "IFS parameters") -> np.ndarray:
    """Returns params as a float64 (n, 7) array, or raises ValueError naming `source`."""
    arr = np.asarray(params, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise ValueError(f"{source}: expected rows of 7 values (a,b,c,d,e,f,p), got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{source}: an IFS needs at least one map")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{source}: non-finite value in parameters")
    if np.any(arr[:, 6] < 0):
        raise ValueError(f"{source}: negative map probability")
    return arr


def determinant_probabilities(coefficients: np.ndarray) -> np.ndarray:
    """Map probabilities |ad - bc| / sum|det| with the official summation order (sequential)."""
    det = np.abs(coefficients[:, 0] * coefficients[:, 3] - coefficients[:, 1] * coefficients[:, 2])
    total = 0.0
    for value in det:  # sequential like the official loop; np.sum is pairwise
        total += float(value)
    return det / total


@numba.njit(cache=True, nogil=True)
def _chaos_game(coef, cumulative, uniforms, n_points, x0, y0, xs, ys):
    xs[0] = x0
    ys[0] = y0
    px, py = x0, y0
    nx, ny = x0, y0
    n_maps = cumulative.shape[0]
    for i in range(n_points - 1):
        r = uniforms[i]
        for j in range(n_maps):
            # `<=` and first-match as the official selection; if rounding leaves r above the
            # last cumulative value no map matches and the point repeats, as there.
            if r <= cumulative[j]:
                nx = px * coef[j, 0] + py * coef[j, 1] + coef[j, 4]
                ny = px * coef[j, 2] + py * coef[j, 3] + coef[j, 5]
                break
        xs[i + 1] = nx
        ys[i + 1] = ny
        px = nx
        py = ny


def chaos_game(params: np.ndarray, uniforms: np.ndarray, start=(0.0, 0.0), out=None):
    """Runs the chaos game; returns (xs, ys) float64 arrays of len(uniforms) points.

    The first point is `start`; point i+1 uses uniforms[i] to pick the map, so the last uniform is
    unused, exactly as the official `calculate(iteration)`. `out`: optional (xs, ys) float64 arrays of that length
    to write into (a loop over many systems reuses them).
    """
    params = np.ascontiguousarray(params, dtype=np.float64)
    uniforms = np.ascontiguousarray(uniforms, dtype=np.float64)
    cumulative = np.cumsum(params[:, 6])  # add.accumulate is sequential, like `temp_proba += p`
    n = uniforms.shape[0]
    if out is None:
        xs = np.empty(n, np.float64)
        ys = np.empty(n, np.float64)
    else:
        xs, ys = out
        if not (xs.shape == ys.shape == (n,) and xs.dtype == ys.dtype == np.float64):
            raise ValueError(f"chaos_game out: two float64 arrays of {n} points expected")
    _chaos_game(params[:, :6].copy(), cumulative, uniforms, n, float(start[0]), float(start[1]), xs, ys)
    return xs, ys


def _drop_nan_run(xs: np.ndarray, ys: np.ndarray, bad: np.ndarray):
    # Official behaviour for divergent systems: drop every NaN point and the 100 points before the first.
    nan_index = np.flatnonzero(bad)
    first = nan_index[0]
    rows = np.append(np.arange(first - 100, first), nan_index)
    return np.delete(xs, rows), np.delete(ys, rows)


def fit_to_image(xs: np.ndarray, ys: np.ndarray, image_size: int, pad: int):
    """Maps points to integer pixel coordinates exactly as the official `__rescale` (uint16 casts)."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    if np.isnan(xs).any():
        xs, ys = _drop_nan_run(xs, ys, np.isnan(xs))
    if np.isnan(ys).any():
        xs, ys = _drop_nan_run(xs, ys, np.isnan(ys))
    if xs.size == 0:
        return np.zeros(0, np.uint16), np.zeros(0, np.uint16)
    with np.errstate(all="ignore"):  # divergent (inf) or zero-extent systems give junk, as in the original
        if xs.min() < 0.0:
            xs = xs - xs.min()
        if ys.min() < 0.0:
            ys = ys - ys.min()
        px = (xs / (xs.max() - xs.min()) * float(image_size - 2 * pad) + float(pad)).astype(np.uint16)
        py = (ys / (ys.max() - ys.min()) * float(image_size - 2 * pad) + float(pad)).astype(np.uint16)
    return px, py


def filling_rate(px: np.ndarray, py: np.ndarray, image_size: int) -> float:
    """Fraction of pixels hit by at least one point (the official acceptance statistic)."""
    inside = (px < image_size) & (py < image_size)
    hit = np.zeros(image_size * image_size, dtype=bool)
    hit[py[inside].astype(np.int64) * image_size + px[inside]] = True
    return np.count_nonzero(hit) / float(image_size * image_size)


@numba.njit(cache=True, nogil=True)
def _finite_filling_rate(xs, ys, image_size, pad, hit):
    """`filling_rate(*fit_to_image(...))` in two passes for finite points with a nonzero extent; -1.0 otherwise.

    Each float operation is the one (and in the order) `fit_to_image` does on whole arrays, so the pixels are equal.
    """
    n = xs.shape[0]
    if n == 0:
        return -1.0
    x_min, x_max, y_min, y_max = xs[0], xs[0], ys[0], ys[0]
    for i in range(n):
        x, y = xs[i], ys[i]
        if not (np.isfinite(x) and np.isfinite(y)):
            return -1.0
        x_min, x_max = min(x_min, x), max(x_max, x)
        y_min, y_max = min(y_min, y), max(y_max, y)
    # fit_to_image shifts by the minimum only when it is negative; the shifted minimum is then exactly 0 and the
    # shifted maximum (rounding is monotonic) is x_max - x_min rounded once.
    x_shift, y_shift = min(x_min, 0.0), min(y_min, 0.0)
    x_extent = (x_max - x_shift) - (x_min - x_shift)
    y_extent = (y_max - y_shift) - (y_min - y_shift)
    if not (x_extent > 0.0 and y_extent > 0.0 and np.isfinite(x_extent) and np.isfinite(y_extent)):
        return -1.0
    span, offset = float(image_size - 2 * pad), float(pad)
    hit[:] = False
    count = 0
    for i in range(n):
        fx = ((xs[i] - x_shift) if x_shift < 0.0 else xs[i]) / x_extent * span + offset
        fy = ((ys[i] - y_shift) if y_shift < 0.0 else ys[i]) / y_extent * span + offset
        if not (0.0 <= fx < 65536.0 and 0.0 <= fy < 65536.0):  # outside uint16: leave it to NumPy's cast
            return -1.0
        px, py = int(fx), int(fy)  # truncation, as astype(np.uint16) for values in range
        if px < image_size and py < image_size:
            k = py * image_size + px
            if not hit[k]:
                hit[k] = True
                count += 1
    return count / float(image_size * image_size)


def fitted_filling_rate(xs: np.ndarray, ys: np.ndarray, image_size: int, pad: int, scratch=None) -> float:
    """`filling_rate(*fit_to_image(xs, ys, image_size, pad), image_size)`, equal to it bit for bit, in one compiled
    pass for the usual finite points (the category search calls it ~43,000 times for FractalDB-1k); NaN, inf or
    zero-extent points take the NumPy path and its official handling. `scratch`: optional bool array of
    image_size**2 pixels to reuse (overwritten)."""
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    ys = np.ascontiguousarray(ys, dtype=np.float64)
    if scratch is None:
        scratch = np.empty(image_size * image_size, np.bool_)
    elif scratch.shape != (image_size * image_size,) or scratch.dtype != np.bool_:
        raise ValueError(f"fitted_filling_rate scratch: a bool array of {image_size}**2 pixels expected")
    rate = _finite_filling_rate(xs, ys, int(image_size), int(pad), scratch)
    if rate < 0.0:
        return filling_rate(*fit_to_image(xs, ys, image_size, pad), image_size)
    return rate
