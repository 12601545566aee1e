"""Quaternions in NumPy, the one definition for mesh generation, rendering and DPC shape & pose (TF-free).

Convention (the DPC reference's and tfsynth's everywhere): [w, x, y, z], scalar first; q rotates column vectors as
v' = R(q) v = q v q*. `tfsynth.shapes.geometry` and `tfsynth.dpc.geometry` re-export these under their historic
names; `tfsynth.models.dpc` is the TensorFlow twin of the algebra.

Two samplers of uniformly distributed rotations are kept because stored data depend on their exact draws:
`random_shoemake` (one rotation from 3 uniforms; ProcSynthDB / MorphSynthDB / Synth3D object poses) and
`random_gaussian` (n rotations from normalised Gaussian 4-vectors; the shape & pose tests and baselines).
"""
from __future__ import annotations

import numpy as np


def normalize(q) -> np.ndarray:
    """(..., 4) quaternions scaled to unit norm along the last axis."""
    q = np.asarray(q, np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def multiply(a, b) -> np.ndarray:
    """Hamilton product a b of (..., 4) quaternions (broadcasting)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                     w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 + y1 * w2 + z1 * x2 - x1 * z2,
                     w1 * z2 + z1 * w2 + x1 * y2 - y1 * x2], axis=-1)


def conjugate(q) -> np.ndarray:
    """q* = [w, -x, -y, -z] (the inverse rotation of a unit q)."""
    return np.asarray(q, np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def to_matrix(q, unit: bool = False) -> np.ndarray:
    """(..., 4) [w, x, y, z] -> (..., 3, 3) rotation matrices; q is normalised first (`normalize`) unless `unit`
    says the caller has done so already."""
    q = np.asarray(q, np.float64) if unit else normalize(q)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def from_matrix(r) -> np.ndarray:
    """[w, x, y, z] (w >= 0) of a 3x3 rotation matrix (Shepperd's method, stable for any rotation)."""
    r = np.asarray(r, np.float64)
    t = np.trace(r)
    if t > 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def rotate(points, q) -> np.ndarray:
    """(N, 3) points rotated by one quaternion: q p q*."""
    return np.asarray(points, np.float64) @ to_matrix(q).T


def random_shoemake(rng: np.random.Generator) -> np.ndarray:
    """One rotation drawn uniformly from SO(3) with 3 uniforms (Shoemake 1992), as [w, x, y, z] with w >= 0."""
    u1, u2, u3 = rng.random(3)
    a, b = np.sqrt(1.0 - u1), np.sqrt(u1)
    q = np.array([b * np.cos(2 * np.pi * u3), a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2),
                  b * np.sin(2 * np.pi * u3)])
    return q if q[0] >= 0 else -q


def random_gaussian(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) rotations drawn uniformly from SO(3) as normalised Gaussian 4-vectors, w >= 0."""
    q = normalize(rng.normal(size=(n, 4)))
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)
