"""The DPC camera model in NumPy (TF-free), shared by the multi-view renderer and DPC shape & pose.

The convention of `tfsynth.models.dpc.project` (the reference's): a [w, x, y, z] quaternion q turns the object
(q p q*), the camera sits at x = -camera_distance looking along +x with image right = +z and up = +y; image column
u = f z / (x + d), row v = f y / (x + d) on an image plane of width 1.
"""
from __future__ import annotations

import numpy as np

from tfsynth import quaternion

FOCAL_LENGTH = 1.875
CAMERA_DISTANCE = 2.0


def quaternion_from_view(azimuth_deg, elevation_deg):
    """The DPC camera quaternion for a camera at (azimuth, elevation) around the object's +y (up) axis.

    The object is turned so that the viewing direction ends on +x: first by -azimuth about y, then by +elevation
    about z, which puts the camera at height d sin(elevation) above the object. Image up stays +y.
    """
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    q_az = np.array([np.cos(-az / 2), 0.0, np.sin(-az / 2), 0.0])
    q_el = np.array([np.cos(el / 2), 0.0, 0.0, np.sin(el / 2)])
    return quaternion.normalize(quaternion.multiply(q_el, q_az))


def camera_position(q, camera_distance: float = CAMERA_DISTANCE):
    """Camera centre in object coordinates for DPC quaternion q (the point that q maps to (-d, 0, 0))."""
    return quaternion.to_matrix(q).T @ np.array([-camera_distance, 0.0, 0.0])


def camera_to_world(q, camera_distance: float = CAMERA_DISTANCE):
    """4x4 OpenGL camera pose (camera looks along its -z, +y up) in object coordinates for DPC quaternion q.

    In the rotated frame the camera looks along +x with image right = +z and up = +y; the camera axes (right, up,
    back) are therefore (+z, +y, -x) there, mapped back to object coordinates with R(q)^T.
    """
    r_t = quaternion.to_matrix(q).T
    pose = np.eye(4)
    pose[:3, 0] = r_t @ np.array([0.0, 0.0, 1.0])
    pose[:3, 1] = r_t @ np.array([0.0, 1.0, 0.0])
    pose[:3, 2] = r_t @ np.array([-1.0, 0.0, 0.0])
    pose[:3, 3] = camera_position(q, camera_distance)
    return pose


def project_points(points, q, focal_length: float = FOCAL_LENGTH, camera_distance: float = CAMERA_DISTANCE):
    """(N, 3) -> (N, 3) (depth, v, u) as in `tfsynth.models.dpc.perspective_transform`."""
    p = quaternion.rotate(points, q)
    z = p[:, 0] + camera_distance
    return np.stack([p[:, 0], p[:, 1] * focal_length / z, p[:, 2] * focal_length / z], axis=-1)
