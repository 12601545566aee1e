"""Shape distances between class meshes (TF-free).

ProcSynthDB renders each class under arbitrary rotations, so the distance that decides whether two classes are
"visually distinct" must not depend on pose. We use the D2 shape distribution of Osada et al. (ACM TOG 2002):
the histogram of distances between random pairs of surface points. Meshes are normalised to bounding radius 1
(as the renderer frames them), so distances lie in [0, 2]; the descriptor is a 64-bin histogram (sums to 1) and the
distance between two shapes is the L1 distance of their histograms, in [0, 2] (0: same distribution).

The surface points are drawn with a fixed seed, so a descriptor is a deterministic function of the mesh; the
sampling noise floor of the L1 distance (the same shape, different points) is about 0.03 with the defaults.

`chamfer_distance` (symmetric mean nearest-neighbour distance after normalisation) is also provided for checks
where the two meshes share a frame (e.g. a morph sample vs its base mesh).
"""
from __future__ import annotations

import numpy as np

from tfsynth.shapes.geometry import sample_surface

D2_BINS = 64
D2_POINTS = 1024  # 523,776 pairs
D2_SEED = 20021001


def d2_descriptor(vertices: np.ndarray, faces: np.ndarray, bins: int = D2_BINS, points: int = D2_POINTS,
                  seed: int = D2_SEED) -> np.ndarray:
    """The D2 histogram (float64, sums to 1) of a mesh normalised to bounding radius 1."""
    pts = sample_surface(np.asarray(vertices, np.float64), np.asarray(faces), points, np.random.default_rng(seed))
    sq = np.sum(pts * pts, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pts @ pts.T, 0.0)
    iu = np.triu_indices(points, k=1)
    hist, _ = np.histogram(np.sqrt(d2[iu]), bins=bins, range=(0.0, 2.0))
    return hist / hist.sum()


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L1 distance between D2 descriptors; broadcasts over leading axes (a: (..., bins), b: (..., bins))."""
    return np.abs(np.asarray(a) - np.asarray(b)).sum(axis=-1)


def pairwise_distances(descriptors: np.ndarray) -> np.ndarray:
    """(N, N) L1 distances between N descriptors (diagonal = 0), computed in row blocks to bound memory."""
    descriptors = np.asarray(descriptors, np.float64)
    n = len(descriptors)
    out = np.zeros((n, n))
    for start in range(0, n, 128):
        out[start:start + 128] = descriptor_distance(descriptors[start:start + 128, None, :], descriptors[None, :, :])
    return out


def min_pairwise_distance(descriptors: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The smallest distance between two different descriptors and the pair (i < j) that attains it."""
    d = pairwise_distances(descriptors)
    if len(d) < 2:
        return float("inf"), (-1, -1)
    d[np.tril_indices(len(d))] = np.inf
    i, j = np.unravel_index(np.argmin(d), d.shape)
    return float(d[i, j]), (int(i), int(j))


def chamfer_distance(vertices_a, faces_a, vertices_b, faces_b, points: int = 4096, seed: int = D2_SEED) -> float:
    """Symmetric Chamfer distance (mean of the two mean nearest-neighbour distances) of surface samples."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    pa = sample_surface(np.asarray(vertices_a, np.float64), np.asarray(faces_a), points, rng)
    pb = sample_surface(np.asarray(vertices_b, np.float64), np.asarray(faces_b), points, rng)
    return float(0.5 * (cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean()))
