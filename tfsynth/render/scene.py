"""Scene description for the TF-free renderer: meshes, cameras, lights (NumPy only; no OpenGL import here).

Conventions
* World frame: right-handed, +y up. Cameras follow OpenGL: they look down their local -z axis, +y up.
* `Camera.pose` is camera-to-world (4x4). Perspective cameras take a vertical field of view `yfov` (radians);
  or give pinhole intrinsics `fx, fy, cx, cy` in pixels (principal point from the top-left image corner).
* Object pose: `rotation` is a unit quaternion [w, x, y, z] applied about the object origin, then `translation`;
  `scale` (3 per-axis factors) is applied in the object frame before rotating (normals are transformed with the
  inverse-transpose, so non-uniform scales shade correctly).
* Lights: `kind` is 'directional' (uses `direction`, the direction the light travels, world frame), 'point'
  (uses `position`) or 'spot' (both, plus `inner_cone` / `outer_cone` half-angles in radians). `color` is linear
  RGB in [0, 1]; `intensity` is in pyrender's units (lux for directional lights, candela for point/spot lights).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

LIGHT_KINDS = ("directional", "point", "spot")


@dataclasses.dataclass(frozen=True)
class Camera:
    pose: np.ndarray  # (4, 4) camera-to-world
    yfov: float = np.deg2rad(40.0)
    znear: float = 0.05
    zfar: float = 100.0
    fx: Optional[float] = None  # pinhole intrinsics in pixels (all four or none): override yfov
    fy: Optional[float] = None
    cx: Optional[float] = None
    cy: Optional[float] = None

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """3x3 pinhole matrix K for an image of the given size."""
        if self.fx is not None:
            return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])
        f = 0.5 * height / np.tan(0.5 * self.yfov)
        return np.array([[f, 0, 0.5 * width], [0, f, 0.5 * height], [0, 0, 1.0]])


@dataclasses.dataclass(frozen=True)
class Light:
    kind: str  # 'directional' | 'point' | 'spot'
    color: tuple = (1.0, 1.0, 1.0)
    intensity: float = 3.0
    direction: tuple = (0.0, 0.0, -1.0)  # world direction the light travels (directional, spot)
    position: tuple = (0.0, 0.0, 3.0)  # world position (point, spot)
    inner_cone: float = 0.0
    outer_cone: float = np.pi / 4

    def __post_init__(self):
        if self.kind not in LIGHT_KINDS:
            raise ValueError(f"unknown light kind {self.kind!r}; valid: {', '.join(LIGHT_KINDS)}")

    def pose(self) -> np.ndarray:
        """4x4 light-to-world pose: pyrender lights shine down their local -z axis from their origin."""
        from tfsynth.shapes.geometry import look_at

        d = np.asarray(self.direction, np.float64)
        d = d / np.linalg.norm(d)
        position = np.asarray(self.position, np.float64)
        if self.kind == "directional":
            position = -d  # any point works; keep it on the line through the origin
        return look_at(position, position + d)


@dataclasses.dataclass
class RenderMesh:
    """Geometry + appearance handed to the renderer.

    `vertex_colors` (V, 3|4) or `face_colors` (F, 3|4) in [0, 1] multiply `base_color`; face colours render flat.
    `smooth` interpolates vertex normals (False: faceted shading). `key` names the geometry for the renderer's
    per-process cache of GPU buffers (meshes with the same key must be identical); None disables caching.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: Optional[np.ndarray] = None
    face_colors: Optional[np.ndarray] = None
    base_color: tuple = (0.8, 0.8, 0.8, 1.0)
    metallic: float = 0.0
    roughness: float = 0.6
    smooth: bool = True
    key: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ObjectPose:
    rotation: tuple = (1.0, 0.0, 0.0, 0.0)  # [w, x, y, z]
    translation: tuple = (0.0, 0.0, 0.0)
    scale: tuple = (1.0, 1.0, 1.0)  # per-axis, object frame, before the rotation

    def matrix(self) -> np.ndarray:
        """4x4 object-to-world matrix (scale, then rotation, then translation)."""
        from tfsynth.shapes.geometry import quaternion_to_matrix

        out = np.eye(4)
        out[:3, :3] = quaternion_to_matrix(self.rotation) @ np.diag(self.scale)
        out[:3, 3] = self.translation
        return out


@dataclasses.dataclass(frozen=True)
class View:
    """Everything about one rendered image except the mesh."""

    camera: Camera
    lights: Sequence[Light] = ()
    pose: ObjectPose = ObjectPose()
    width: int = 224
    height: int = 224
    ambient: tuple = (0.1, 0.1, 0.1)  # ambient light colour x intensity
    background: tuple = (0.0, 0.0, 0.0, 0.0)  # RGBA in [0, 1]
    shadows: bool = False  # shadow maps for directional and spot lights (slower)


@dataclasses.dataclass
class RenderOutput:
    rgba: np.ndarray  # (H, W, 4) uint8; alpha 255 on the object, background alpha elsewhere
    depth: np.ndarray  # (H, W) float32 eye-space distance along -z; 0 on the background
    mask: np.ndarray  # (H, W) bool, True where the object covers the pixel

    @property
    def rgb(self) -> np.ndarray:
        return self.rgba[..., :3]
