"""NumPy quaternions [w, x, y, z] (`tfsynth.quaternion`) and the DPC camera model without TensorFlow (TF-free).

The camera convention is the one of `tfsynth.models.dpc.project` (the reference's): rotate by q (q p q*), the camera
sits at x = -camera_distance looking along +x; image column u = f z / (x + d), row v = f y / (x + d), rows flipped so
that +y is up. `silhouette_from_points` rasterises that projection without blur, to make training targets for
synthetic point clouds and to draw predicted shapes sharply (the seed's §6.3 real-image metric).
"""
from __future__ import annotations

import numpy as np

from tfsynth import quaternion

FOCAL_LENGTH = 1.875
CAMERA_DISTANCE = 2.0


# The quaternion algebra under the DPC names; defined once in `tfsynth.quaternion`.
q_normalize = quaternion.normalize
q_multiply = quaternion.multiply
q_conjugate = quaternion.conjugate
q_to_matrix = quaternion.to_matrix
matrix_to_q = quaternion.from_matrix
q_rotate = quaternion.rotate
random_quaternions = quaternion.random_gaussian


def quaternion_from_view(azimuth_deg, elevation_deg):
    """The DPC camera quaternion for a camera at (azimuth, elevation) around the object's +y (up) axis.

    The object is turned so that the viewing direction ends on +x: first by -azimuth about y, then by +elevation
    about z, which puts the camera at height d sin(elevation) above the object. Image up stays +y.
    """
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    q_az = np.array([np.cos(-az / 2), 0.0, np.sin(-az / 2), 0.0])
    q_el = np.array([np.cos(el / 2), 0.0, 0.0, np.sin(el / 2)])
    return q_normalize(q_multiply(q_el, q_az))


def camera_position(q, camera_distance: float = CAMERA_DISTANCE):
    """Camera centre in object coordinates for DPC quaternion q (the point that q maps to (-d, 0, 0))."""
    return q_to_matrix(q).T @ np.array([-camera_distance, 0.0, 0.0])


def camera_to_world(q, camera_distance: float = CAMERA_DISTANCE):
    """4x4 OpenGL camera pose (camera looks along its -z, +y up) in object coordinates for DPC quaternion q.

    In the rotated frame the camera looks along +x with image right = +z and up = +y; the camera axes (right, up,
    back) are therefore (+z, +y, -x) there, mapped back to object coordinates with R(q)^T.
    """
    r_t = q_to_matrix(q).T
    pose = np.eye(4)
    pose[:3, 0] = r_t @ np.array([0.0, 0.0, 1.0])
    pose[:3, 1] = r_t @ np.array([0.0, 1.0, 0.0])
    pose[:3, 2] = r_t @ np.array([-1.0, 0.0, 0.0])
    pose[:3, 3] = camera_position(q, camera_distance)
    return pose


def project_points(points, q, focal_length: float = FOCAL_LENGTH, camera_distance: float = CAMERA_DISTANCE):
    """(N, 3) -> (N, 3) (depth, v, u) as in `tfsynth.models.dpc.perspective_transform`."""
    p = q_rotate(points, q)
    z = p[:, 0] + camera_distance
    return np.stack([p[:, 0], p[:, 1] * focal_length / z, p[:, 2] * focal_length / z], axis=-1)


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
