"""Per-instance variation: object rotation, two single-axis scalings, lights (random views) or the fixed
canonical view plus a 2D image transform (FlatWorldDB). TF-free, NumPy only."""
from __future__ import annotations

import colorsys
import dataclasses

import numpy as np

from tfsynth.render.scene import Camera, Light, ObjectPose, View
from tfsynth.shapes.geometry import look_at, random_quaternion, random_unit_vectors
from tfsynth.synth3d.config import Synth3DConfig

KIND_IDS = {"directional": 0, "point": 1, "spot": 2}


@dataclasses.dataclass
class InstanceParams:
    view: View
    scale_axes: np.ndarray  # (2,) int: the axis (0 x, 1 y, 2 z, object frame) of each single-axis scaling
    scale_factors: np.ndarray  # (2,) the two factors as drawn
    fit: float  # uniform factor that brings the scaled object back to bounding radius 1


def camera(config: Synth3DConfig) -> Camera:
    return Camera(pose=look_at((0.0, 0.0, config.camera_distance)), yfov=np.deg2rad(config.yfov_deg),
                  znear=0.1, zfar=config.camera_distance + 10.0)


def _light_color(rng, config: Synth3DConfig) -> tuple:
    return tuple(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*config.lighting.color_saturation), 1.0))


def random_lights(rng: np.random.Generator, config: Synth3DConfig) -> tuple[list[Light], float]:
    lc = config.lighting
    n = int(rng.integers(lc.min_lights, lc.max_lights + 1))
    weights = np.asarray(lc.kind_weights, np.float64)
    lights = []
    for _ in range(n):
        kind = str(lc.kinds[rng.choice(len(lc.kinds), p=weights / weights.sum())])
        color = _light_color(rng, config)
        direction = random_unit_vectors(rng, 1)[0]  # where the light comes FROM (unit vector, world frame)
        if kind == "directional":
            lights.append(Light("directional", color, float(rng.uniform(*lc.directional_intensity)),
                                direction=tuple(-direction)))
        else:
            position = direction * rng.uniform(*lc.light_distance)
            intensity = float(rng.uniform(*lc.point_intensity))
            if kind == "point":
                lights.append(Light("point", color, intensity, direction=tuple(-direction), position=tuple(position)))
            else:
                outer = np.deg2rad(rng.uniform(*lc.spot_outer_cone_deg))
                lights.append(Light("spot", color, intensity, direction=tuple(-direction), position=tuple(position),
                                    inner_cone=float(0.5 * outer), outer_cone=float(outer)))
    return lights, float(rng.uniform(*lc.ambient))


def scaled_radius(vertices: np.ndarray, scale: np.ndarray) -> float:
    return float(np.linalg.norm(vertices * scale, axis=1).max())


def random_instance(config: Synth3DConfig, vertices: np.ndarray, rng: np.random.Generator) -> InstanceParams:
    """Full-rotation viewpoint, random lights, and two single-axis scalings ("change the size of the mesh twice
    across one single axis"), after which the object is refitted to bounding radius 1."""
    rotation = random_quaternion(rng)
    axes = rng.integers(0, 3, size=2)
    factors = rng.uniform(*config.scale_range, size=2)
    scale = np.ones(3)
    for axis, factor in zip(axes, factors):
        scale[axis] *= factor
    fit = 1.0 / scaled_radius(vertices, scale)
    lights, ambient = random_lights(rng, config)
    view = View(camera=camera(config), lights=tuple(lights),
                pose=ObjectPose(rotation=tuple(rotation), scale=tuple(scale * fit)),
                width=config.image_size, height=config.image_size, ambient=(ambient,) * 3)
    return InstanceParams(view, axes.astype(np.int32), factors, fit)


def canonical_view(config: Synth3DConfig) -> View:
    """FlatWorldDB's single view: fixed rotation, one fixed white directional light, fixed ambient."""
    flat = config.flat
    light = Light("directional", (1.0, 1.0, 1.0), flat.light_intensity, direction=tuple(flat.light_direction))
    rotation = np.asarray(flat.rotation, np.float64) / np.linalg.norm(flat.rotation)
    return View(camera=camera(config), lights=(light,), pose=ObjectPose(rotation=tuple(rotation)),
                width=config.image_size, height=config.image_size, ambient=(flat.ambient,) * 3)


def flat_transform(config: Synth3DConfig, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A 2D affine map (2x3, output pixel -> input pixel is its inverse) of the canonical image: a FractalDB-style
    flip, an in-plane rotation, two single-axis scalings (the 2D counterpart of the 3D ones) and a small shift.
    Returns (forward 2x3 matrix in pixel coordinates about the image centre, parameters)."""
    flat = config.flat
    flip = int(flat.flips[rng.integers(0, len(flat.flips))])
    angle = float(rng.uniform(-flat.max_rotation_deg, flat.max_rotation_deg)) if flat.max_rotation_deg else 0.0
    axes = rng.integers(0, 2, size=2)
    factors = rng.uniform(*config.scale_range, size=2)
    scale = np.ones(2)
    for axis, factor in zip(axes, factors):
        scale[axis] *= factor
    scale /= scale.max()  # never grow beyond the canonical framing: the object stays inside the image
    shift = rng.uniform(-flat.translate, flat.translate, size=2) * config.image_size
    f = np.diag([(-1.0 if flip in (2, 3) else 1.0), (-1.0 if flip in (1, 3) else 1.0)])
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    linear = np.array([[c, -s], [s, c]]) @ np.diag(scale) @ f
    centre = np.array([config.image_size / 2.0] * 2)
    forward = np.concatenate([linear, (centre + shift - linear @ centre)[:, None]], 1)
    return forward, {"flip": flip, "angle_deg": angle, "scale_axes": axes.astype(np.int32),
                     "scale_factors": factors, "scale2d": scale, "shift": shift}


def warp_rgba(rgba: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Applies the 2x3 forward affine map (pixel coordinates, x right / y down) with bilinear sampling."""
    from PIL import Image

    full = np.vstack([forward, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)
    image = Image.fromarray(rgba, "RGBA")
    out = image.transform(image.size, Image.Transform.AFFINE, data=tuple(inv[:2].reshape(-1)),
                          resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0, 0))
    return np.asarray(out)
