"""Improved Perlin noise (Perlin, "Improving Noise", SIGGRAPH 2002), 2D and 3D, TF-free.

Ken Perlin's reference `ImprovedNoise.java`, transcribed to numba so that it can be called per pixel from
renderers: a 256-entry permutation table (doubled to 512 to avoid index wrapping), the quintic fade
6t^5 - 15t^4 + 10t^3, and the 12 cube-edge gradients picked from the low 4 bits of the hash (16 cases,
4 of them repeated). The noise is exactly 0 at every lattice point and periodic with period 256.
With Perlin's own table, `perlin3(3.14, 42, 7)` is his 0.13691995878400012 to the last bit.

The 2D noise is the z = 0 slice of the 3D noise (as in Perlin's reference and in the GLSL shaders that
texture 2D backgrounds with it), computed from the 4 corners of a square: `perlin2(x, y) ==
perlin3(x, y, 0)` bit for bit.

Seeds: `permutation_table(None)` is Perlin's reference table; `permutation_table(seed)` shuffles 0..255
with NumPy's PCG64 seeded through `SeedSequence(seed)`, the same on every machine.
"""
from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

# Ken Perlin's permutation, from the reference implementation (https://mrl.cs.nyu.edu/~perlin/noise/).
REFERENCE_PERMUTATION = np.array([
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69, 142, 8, 99, 37, 240,
    21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219, 203, 117, 35, 11, 32, 57, 177, 33, 88,
    237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175, 74, 165, 71, 134, 139, 48, 27, 166, 77, 146, 158, 231, 83,
    111, 229, 122, 60, 211, 133, 230, 220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1, 216,
    80, 73, 209, 76, 132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100, 109, 198, 173, 186,
    3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206, 59, 227, 47, 16, 58, 17,
    182, 189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163, 70, 221, 153, 101, 155, 167, 43, 172, 9, 129,
    22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232, 178, 185, 112, 104, 218, 246, 97, 228, 251, 34, 242, 193, 238,
    210, 144, 12, 191, 179, 162, 241, 81, 51, 145, 235, 249, 14, 239, 107, 49, 192, 214, 31, 181, 199, 106, 157, 184,
    84, 204, 176, 115, 121, 50, 45, 127, 4, 150, 254, 138, 236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141, 128, 195,
    78, 66, 215, 61, 156, 180,
], dtype=np.int64)


def permutation_table(seed: int | None = None) -> np.ndarray:
    """(512,) int64 table p with p[i] = p[i + 256] = permutation[i].

    seed None: Ken Perlin's reference permutation. An int (or a sequence of ints, anything
    `numpy.random.SeedSequence` takes): a permutation of 0..255 drawn from PCG64(SeedSequence(seed)).
    """
    if seed is None:
        permutation = REFERENCE_PERMUTATION
    else:
        permutation = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed))).permutation(256)
    return np.concatenate([permutation, permutation]).astype(np.int64)


REFERENCE_TABLE = permutation_table(None)


@numba.njit(cache=True, nogil=True)
def fade(t):
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


@numba.njit(cache=True, nogil=True)
def _lerp(t, a, b):
    return a + t * (b - a)


@numba.njit(cache=True, nogil=True)
def _grad(hash_value, x, y, z):
    # The 12 edge gradients (1,1,0), (-1,1,0), ... from the low 4 bits, as Perlin's reference `grad`.
    h = hash_value & 15
    u = x if h < 8 else y
    if h < 4:
        v = y
    elif h == 12 or h == 14:
        v = x
    else:
        v = z
    return (u if (h & 1) == 0 else -u) + (v if (h & 2) == 0 else -v)


@numba.njit(cache=True, nogil=True)
def perlin3_at(p, x, y, z):
    """Improved noise at one point; p is a (512,) table from `permutation_table`."""
    fx = math.floor(x)
    fy = math.floor(y)
    fz = math.floor(z)
    X = np.int64(fx) & 255
    Y = np.int64(fy) & 255
    Z = np.int64(fz) & 255
    x -= fx
    y -= fy
    z -= fz
    u = fade(x)
    v = fade(y)
    w = fade(z)
    A = p[X] + Y
    AA = p[A] + Z
    AB = p[A + 1] + Z
    B = p[X + 1] + Y
    BA = p[B] + Z
    BB = p[B + 1] + Z
    return _lerp(w, _lerp(v, _lerp(u, _grad(p[AA], x, y, z), _grad(p[BA], x - 1.0, y, z)),
                          _lerp(u, _grad(p[AB], x, y - 1.0, z), _grad(p[BB], x - 1.0, y - 1.0, z))),
                 _lerp(v, _lerp(u, _grad(p[AA + 1], x, y, z - 1.0), _grad(p[BA + 1], x - 1.0, y, z - 1.0)),
                       _lerp(u, _grad(p[AB + 1], x, y - 1.0, z - 1.0), _grad(p[BB + 1], x - 1.0, y - 1.0, z - 1.0))))


@numba.njit(cache=True, nogil=True)
def perlin2_at(p, x, y):
    """The z = 0 slice of `perlin3_at` (4 corners; fade(0) = 0 makes the z - 1 corners drop out exactly)."""
    fx = math.floor(x)
    fy = math.floor(y)
    X = np.int64(fx) & 255
    Y = np.int64(fy) & 255
    x -= fx
    y -= fy
    u = fade(x)
    v = fade(y)
    A = p[X] + Y
    B = p[X + 1] + Y
    return _lerp(v, _lerp(u, _grad(p[p[A]], x, y, 0.0), _grad(p[p[B]], x - 1.0, y, 0.0)),
                 _lerp(u, _grad(p[p[A + 1]], x, y - 1.0, 0.0), _grad(p[p[B + 1]], x - 1.0, y - 1.0, 0.0)))


@numba.njit(cache=True, nogil=True)
def perlin3_fractal_at(p, x, y, z, octaves, lacunarity, gain):
    """sum_o gain^o * noise(lacunarity^o * (x, y, z)), o = 0..octaves-1 (plain fractal sum, not normalised)."""
    total = 0.0
    frequency = 1.0
    amplitude = 1.0
    for _ in range(octaves):
        total += amplitude * perlin3_at(p, x * frequency, y * frequency, z * frequency)
        frequency *= lacunarity
        amplitude *= gain
    return total


@numba.njit(cache=True, nogil=True)
def perlin2_fractal_at(p, x, y, octaves, lacunarity, gain):
    total = 0.0
    frequency = 1.0
    amplitude = 1.0
    for _ in range(octaves):
        total += amplitude * perlin2_at(p, x * frequency, y * frequency)
        frequency *= lacunarity
        amplitude *= gain
    return total


@numba.njit(cache=True, nogil=True)
def _perlin3_many(p, xs, ys, zs, octaves, lacunarity, gain, out):
    for i in range(out.shape[0]):
        out[i] = perlin3_fractal_at(p, xs[i], ys[i], zs[i], octaves, lacunarity, gain)


@numba.njit(cache=True, nogil=True)
def _perlin2_many(p, xs, ys, octaves, lacunarity, gain, out):
    for i in range(out.shape[0]):
        out[i] = perlin2_fractal_at(p, xs[i], ys[i], octaves, lacunarity, gain)


def _flat(*coords):
    arrays = np.broadcast_arrays(*[np.asarray(c, dtype=np.float64) for c in coords])
    shape = arrays[0].shape
    return shape, [np.ascontiguousarray(a).reshape(-1) for a in arrays]


def _check_table(table) -> np.ndarray:
    table = np.ascontiguousarray(table, dtype=np.int64)
    if table.shape != (512,) or table.min() < 0 or table.max() > 255:
        raise ValueError(f"permutation table must be (512,) ints in 0..255 (see permutation_table), got {table.shape}")
    return table


def _check_octaves(octaves: int):
    if int(octaves) < 1:
        raise ValueError(f"octaves must be >= 1, got {octaves}")


def perlin3(x, y, z, table=None, octaves: int = 1, lacunarity: float = 2.0, gain: float = 0.5) -> np.ndarray:
    """Improved Perlin noise at broadcast arrays x, y, z (float64 result of the broadcast shape).

    table: (512,) from `permutation_table` (None: Perlin's reference table). octaves > 1 sums
    gain^o * noise(lacunarity^o * point) over o = 0..octaves-1.
    """
    _check_octaves(octaves)
    table = REFERENCE_TABLE if table is None else _check_table(table)
    shape, (xs, ys, zs) = _flat(x, y, z)
    out = np.empty(xs.shape[0], np.float64)
    _perlin3_many(table, xs, ys, zs, int(octaves), float(lacunarity), float(gain), out)
    return out.reshape(shape)


def perlin2(x, y, table=None, octaves: int = 1, lacunarity: float = 2.0, gain: float = 0.5) -> np.ndarray:
    """2D improved Perlin noise (= perlin3(x, y, 0)) at broadcast arrays x, y."""
    _check_octaves(octaves)
    table = REFERENCE_TABLE if table is None else _check_table(table)
    shape, (xs, ys) = _flat(x, y)
    out = np.empty(xs.shape[0], np.float64)
    _perlin2_many(table, xs, ys, int(octaves), float(lacunarity), float(gain), out)
    return out.reshape(shape)


@dataclasses.dataclass(frozen=True)
class PerlinNoise:
    """Improved Perlin noise as a value: `PerlinNoise(seed=7)(points)` with points (..., 2) or (..., 3).

    seed None uses Ken Perlin's reference permutation.
    """

    seed: int | None = None
    octaves: int = 1
    lacunarity: float = 2.0
    gain: float = 0.5

    @property
    def table(self) -> np.ndarray:
        return permutation_table(self.seed)

    def __call__(self, points) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim < 1 or points.shape[-1] not in (2, 3):
            raise ValueError(f"points must have shape (..., 2) or (..., 3), got {points.shape}")
        args = dict(table=self.table, octaves=self.octaves, lacunarity=self.lacunarity, gain=self.gain)
        if points.shape[-1] == 2:
            return perlin2(points[..., 0], points[..., 1], **args)
        return perlin3(points[..., 0], points[..., 1], points[..., 2], **args)
