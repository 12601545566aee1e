"""NumPy quaternions [w, x, y, z] (`tfsynth.quaternion`) and the DPC camera model without TensorFlow (TF-free).

The camera model (`tfsynth.shapes.camera`, shared with the multi-view renderer) is the one of
`tfsynth.models.dpc.project` (the reference's): rotate by q (q p q*), the camera sits at x = -camera_distance looking
along +x; image column u = f z / (x + d), row v = f y / (x + d), rows flipped so that +y is up.
`silhouette_from_points` rasterises that projection without blur, to make training targets for synthetic point clouds
and to draw predicted shapes sharply (the seed's §6.3 real-image metric).
"""
from __future__ import annotations

import numpy as np

from tfsynth import quaternion
from tfsynth.shapes.camera import (CAMERA_DISTANCE, FOCAL_LENGTH, camera_position, camera_to_world,  # noqa: F401
                                   project_points, quaternion_from_view)


# The quaternion algebra under the DPC names; defined once in `tfsynth.quaternion`.
q_normalize = quaternion.normalize
q_multiply = quaternion.multiply
q_conjugate = quaternion.conjugate
q_to_matrix = quaternion.to_matrix
matrix_to_q = quaternion.from_matrix
q_rotate = quaternion.rotate
random_quaternions = quaternion.random_gaussian


def silhouette_from_points(points, q, size: int, radius: float = 1.0, focal_length: float = FOCAL_LENGTH,
                           camera_distance: float = CAMERA_DISTANCE) -> np.ndarray:
    """Hard (size, size) float32 silhouette of a dense point cloud: every pixel within `radius` pixels of a projected
    point is set. Pixel centres sit on the DPC grid (coordinate -0.5 + i / (size - 1)), row 0 at the top.
    """
    proj = project_points(points, q, focal_length, camera_distance)
    col = (proj[:, 2] + 0.5) * (size - 1)
    row = (size - 1) - (proj[:, 1] + 0.5) * (size - 1)
    out = np.zeros((size, size), np.float32)
    r = int(np.ceil(radius))
    for dr in range(-r, r + 1):
        for dc in range(-r, r + 1):
            if dr * dr + dc * dc > radius * radius + 1e-9:
                continue
            rr, cc = np.round(row).astype(int) + dr, np.round(col).astype(int) + dc
            ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
            out[rr[ok], cc[ok]] = 1.0
    return out
