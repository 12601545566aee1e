"""Small geometry helpers shared by the mesh generators and the renderer (NumPy only, TF-free).

Quaternions are [w, x, y, z] (scalar first, unit norm) and rotate column vectors: v' = R(q) v (`tfsynth.quaternion`).
"""
from __future__ import annotations

import numpy as np

from tfsynth import quaternion


class MeshError(ValueError):
    """A generated mesh that is unusable (not watertight, degenerate, disconnected, ...)."""


# The quaternion helpers under the names the mesh and render code uses; defined once in `tfsynth.quaternion`.
random_quaternion = quaternion.random_shoemake
matrix_to_quaternion = quaternion.from_matrix


def quaternion_to_matrix(q) -> np.ndarray:
    """3x3 rotation matrix of one [w, x, y, z] quaternion, normalised by np.linalg.norm of the 4-vector as given.

    That norm can differ in the last bit from `quaternion.normalize`'s (a dot product versus a reduction), and the
    ProcSynthDB / Synth3D meshes and renders depend on it bit for bit, hence this normalisation here."""
    return quaternion.to_matrix(np.asarray(q, np.float64) / np.linalg.norm(q), unit=True)


def random_unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """4x4 camera-to-world pose (OpenGL convention: the camera looks down its -z axis, +y up)."""
    eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    if abs(np.dot(forward, up / np.linalg.norm(up))) > 0.999:  # looking along `up`: pick another up vector
        up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye
    return pose


def normalize_vertices(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centres the bounding box on the origin and scales the bounding sphere (about it) to radius 1.

    Returns (new vertices, centre, scale) with new = (old - centre) * scale."""
    vertices = np.asarray(vertices, np.float64)
    centre = 0.5 * (vertices.min(0) + vertices.max(0))
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    if not np.isfinite(radius) or radius <= 1e-9:
        raise MeshError(f"degenerate mesh: bounding radius {radius}")
    return (vertices - centre) / radius, centre, 1.0 / radius


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` points uniformly distributed over the surface area (area-weighted faces, uniform barycentrics)."""
    areas = face_areas(vertices, faces)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise MeshError("mesh has zero surface area")
    chosen = rng.choice(len(faces), size=count, p=areas / total)
    u, v = rng.random((2, count))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    tri = vertices[faces[chosen]]
    return tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])


def voxel_downsample(points, voxel: float = 0.01) -> np.ndarray:
    """One point per occupied voxel: the mean of the points inside it (open3d's voxel_down_sample)."""
    points = np.asarray(points, np.float64)
    keys = np.floor(points / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, inverse.reshape(-1), points)
    return (sums / counts[:, None]).astype(np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit length; zero-area neighbourhoods get +z)."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    normals = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    bad = norm[:, 0] < 1e-20
    normals[bad] = (0.0, 0.0, 1.0)
    norm[bad] = 1.0
    return normals / norm
