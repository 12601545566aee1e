"""A procedural family of car-like meshes in one canonical frame, for shape & pose learning (TF-free).

ProcSynthDB meshes (`tfsynth.shapes.procedural`) are unrelated objects in random orientations: good pre-training
classes, but no shared shape to learn and no canonical frame, so an unsupervised pose estimator has nothing to be
consistent about. These are one coherent family, like ShapeNet's cars in the DPC paper: every model is a body (a
side profile with a sloped nose and tail, extruded across the width), a cabin (a trapezoid profile, narrower than
the body) and four wheels, with length along +x (front at +x), up along +y and width along z. The proportions vary
per model (length-to-width and -height ratios, cabin length, height, position and slopes, wheel size and base), so
the family spans sedan-, hatchback- and van-like shapes.

    mesh = generate_vehicle(VehicleConfig(), np.random.default_rng(0))   # Mesh, bounding-sphere radius 1

The parts are merged by an exact boolean union (manifold3d) into one watertight component, then normalised like
the ProcSynthDB meshes (bounding box centred on the origin, bounding-sphere radius 1).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfsynth.shapes.geometry import MeshError, normalize_vertices
from tfsynth.shapes.procedural import Mesh, from_manifold


@dataclasses.dataclass(frozen=True)
class VehicleConfig:
    """Ranges (uniform) of the proportions, relative to the body length 1."""

    width: tuple = (0.36, 0.50)  # body width (z)
    body_height: tuple = (0.13, 0.24)  # body height above its underside
    clearance: tuple = (0.03, 0.07)  # underside above the ground
    nose: tuple = (0.05, 0.16)  # length of the sloped nose (front top edge set back by this)
    nose_drop: tuple = (0.2, 0.45)  # front face height lost to the slope, as a fraction of body_height
    tail: tuple = (0.02, 0.10)  # length of the sloped tail
    cabin_length: tuple = (0.35, 0.75)  # cabin footprint on the body
    cabin_offset: tuple = (-0.18, 0.04)  # cabin centre along x (negative: towards the rear)
    cabin_height: tuple = (0.10, 0.24)
    windshield: tuple = (0.08, 0.22)  # front slope of the cabin (the roof ends this much behind its footprint)
    rear_window: tuple = (0.0, 0.14)  # rear slope of the cabin
    cabin_width: tuple = (0.78, 0.95)  # cabin width as a fraction of the body width
    wheel_radius: tuple = (0.075, 0.11)
    wheel_width: tuple = (0.05, 0.09)
    wheelbase: tuple = (0.52, 0.70)  # distance between the axles
    segments: int = 24  # wheel circle resolution

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple) and not (len(value) == 2 and value[0] <= value[1]):
                raise ValueError(f"VehicleConfig.{field.name} must be a (low, high) range, got {value}")
        if self.segments < 3:
            raise ValueError(f"segments must be >= 3, got {self.segments}")


def sample_parameters(config: VehicleConfig, rng: np.random.Generator) -> dict:
    """One model's proportions: every range of `config` drawn uniformly, in field order."""
    return {f.name: float(rng.uniform(*getattr(config, f.name))) for f in dataclasses.fields(config)
            if isinstance(getattr(config, f.name), tuple)}


def _prism(profile, width: float):
    """A side profile (x, y) polygon extruded symmetrically across the width (z in [-width / 2, width / 2])."""
    import manifold3d

    return manifold3d.CrossSection([np.asarray(profile, np.float64)]).extrude(width).translate((0.0, 0.0, -width / 2))


def vehicle_solid(p: dict, segments: int = 24):
    """The manifold3d solid of one parameter set (length 1 along x, ground at y = 0)."""
    import manifold3d

    half, c, h = 0.5, p["clearance"], p["body_height"]
    top = c + h
    body = _prism([(-half, c), (half, c), (half, top - p["nose_drop"] * h), (half - p["nose"], top),
                   (-half + p["tail"], top), (-half, top - 0.5 * p["nose_drop"] * h)], p["width"])
    x0 = p["cabin_offset"] - p["cabin_length"] / 2
    x1 = p["cabin_offset"] + p["cabin_length"] / 2
    x0, x1 = max(x0, -half + p["tail"]), min(x1, half - p["nose"])  # the cabin sits on the flat top
    roof0, roof1 = x0 + p["rear_window"], x1 - p["windshield"]
    if roof1 - roof0 < 0.05:  # slopes longer than the cabin: keep a short roof in the middle
        mid = (roof0 + roof1) / 2
        roof0, roof1 = mid - 0.025, mid + 0.025
    base = top - 0.01  # overlaps the body, so the union is one solid
    cabin = _prism([(x0, base), (x1, base), (roof1, top + p["cabin_height"]), (roof0, top + p["cabin_height"])],
                   p["width"] * p["cabin_width"])
    solid = body + cabin
    r, tw = p["wheel_radius"], p["wheel_width"]
    for sx in (-1.0, 1.0):
        for sz in (-1.0, 1.0):
            wheel = manifold3d.Manifold.cylinder(tw, r, r, segments, True)  # axis z, centred
            z = sz * (p["width"] / 2 - 0.2 * tw)  # 30 % of the tyre outside the body
            solid = solid + wheel.translate((sx * p["wheelbase"] / 2, r, z))
    return solid


def generate_vehicle(config: VehicleConfig, rng: np.random.Generator) -> Mesh:
    """One car-like mesh (normalised: bounding box centred, bounding-sphere radius 1; front +x, up +y)."""
    import manifold3d

    params = sample_parameters(config, rng)
    solid = vehicle_solid(params, config.segments)
    if solid.status() != manifold3d.Error.NoError or solid.is_empty():
        raise MeshError(f"vehicle union invalid ({solid.status()})")
    parts = len(solid.decompose())
    if parts != 1:
        raise MeshError(f"vehicle union has {parts} disconnected components")
    vertices, faces = from_manifold(solid)
    vertices, _, _ = normalize_vertices(vertices)
    return Mesh(vertices, faces, None, {"family": "vehicles", **params})
