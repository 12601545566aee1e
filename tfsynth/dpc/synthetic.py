"""Procedural multi-view point-cloud objects for DPC demos and tests, no renderer needed (TF-free).

Each model is a random union of boxes and ellipsoids (a crude 'vehicle': body, cabin, wheels or a random blob),
sampled densely on its surface, centred and fitted in the unit cube like the reference's meshes. Views are drawn
like the multiview_shapes builder (azimuth U[0, 360), elevation U[-20, 40] degrees); for each view the silhouette
and a coordinate-coloured image (RGB = object coordinates + 0.5, z-buffered, white background) come from the DPC
camera model in `tfsynth.dpc.geometry`, so silhouettes agree with `tfsynth.models.dpc.project` exactly.

    models = [make_model(seed=0, index=i, views=5, image_size=64) for i in range(8)]
    models[0]["images"] (5, 64, 64, 3) uint8, ["masks"] (5, 64, 64) uint8, ["quaternions"] (5, 4), ["points"] (M, 3)

This is the per-model example layout shared with the multiview_shapes builder and the AIST issue.
"""
from __future__ import annotations

import numpy as np

from tfsynth.dpc import geometry as geo


def _box_surface(rng, center, half, n):
    face = rng.integers(0, 6, n)
    p = rng.uniform(-1, 1, (n, 3))
    axis, sign = face // 2, np.where(face % 2 == 0, -1.0, 1.0)
    p[np.arange(n), axis] = sign
    return center + p * half


def _ellipsoid_surface(rng, center, radii, n):
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return center + d * radii


def _parts(rng, kind=None):
    drawn = rng.integers(0, 2)  # drawn even when `kind` is given, so the rest of the stream is the same
    kind = drawn if kind is None else {"vehicle": 0, "blob": 1}[kind]
    if kind == 0:  # 'vehicle': body + cabin + four wheels
        length, width, height = rng.uniform(0.8, 1.0), rng.uniform(0.35, 0.5), rng.uniform(0.15, 0.25)
        parts = [("box", np.array([0.0, 0.0, 0.0]), np.array([length, height, width]) / 2)]
        cab = rng.uniform(0.3, 0.6) * length
        parts.append(("box", np.array([rng.uniform(-0.15, 0.1), height * 0.9, 0.0]),
                      np.array([cab, height * 0.8, width * 0.9]) / 2))
        r = height * 0.6
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(("ellipsoid", np.array([sx * length * 0.32, -height * 0.5, sz * width * 0.5]),
                              np.array([r, r, r * 0.4])))
    else:  # blob: 2-4 random ellipsoids / boxes
        parts = []
        for _ in range(rng.integers(2, 5)):
            shape = "box" if rng.random() < 0.5 else "ellipsoid"
            parts.append((shape, rng.uniform(-0.25, 0.25, 3), rng.uniform(0.08, 0.35, 3)))
    return parts


def sample_object(rng: np.random.Generator, num_points: int = 20000, kind=None) -> np.ndarray:
    """A random object's surface points, centred and fitted in the unit cube [-0.5, 0.5]^3 (longest side 1);
    `kind` 'vehicle' or 'blob' fixes the family (None: either, at random)."""
    parts = _parts(rng, kind)
    areas = np.array([np.prod(h) ** (2 / 3) for _, _, h in parts])
    counts = np.maximum((areas / areas.sum() * num_points).astype(int), 50)
    pts = np.concatenate([(_box_surface if s == "box" else _ellipsoid_surface)(rng, c, h, k)
                          for (s, c, h), k in zip(parts, counts)])
    return normalize_unit_cube(pts).astype(np.float32)


def normalize_unit_cube(points) -> np.ndarray:
    """Centre the bounding box at the origin and scale its longest side to 1 (the reference's mesh normalisation)."""
    points = np.asarray(points, np.float64)
    lo, hi = points.min(0), points.max(0)
    extent = float(np.max(hi - lo))
    if extent <= 0:
        raise ValueError("degenerate point set: zero extent")
    return (points - (lo + hi) / 2) / extent


def sample_views(rng: np.random.Generator, views: int, elevation=(-20.0, 40.0)):
    az = rng.uniform(0.0, 360.0, views)
    el = rng.uniform(elevation[0], elevation[1], views)
    return az, el, np.stack([geo.quaternion_from_view(a, e) for a, e in zip(az, el)])


def render_points(points, q, size: int, radius: float = 1.0):
    """(mask (size, size) uint8 0/1, image (size, size, 3) uint8): coordinate colours, nearest point wins, white bg."""
    proj = geo.project_points(points, q)
    col = np.round((proj[:, 2] + 0.5) * (size - 1)).astype(int)
    row = np.round((size - 1) - (proj[:, 1] + 0.5) * (size - 1)).astype(int)
    order = np.argsort(-proj[:, 0])  # far first, so nearer points overwrite
    image = np.full((size, size, 3), 255, np.uint8)
    colours = np.clip((np.asarray(points) + 0.5) * 255, 0, 255).astype(np.uint8)
    r = int(np.ceil(radius))
    for dr in range(-r, r + 1):
        for dc in range(-r, r + 1):
            if dr * dr + dc * dc > radius * radius + 1e-9:
                continue
            rr, cc = row[order] + dr, col[order] + dc
            ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
            image[rr[ok], cc[ok]] = colours[order][ok]
    mask = geo.silhouette_from_points(points, q, size, radius).astype(np.uint8)
    return mask, image


def make_model(seed: int, index: int, views: int = 5, image_size: int = 64, num_points: int = 20000,
               elevation=(-20.0, 40.0)) -> dict:
    """One procedural model with `views` views; a pure function of (seed, index)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0, index]))
    points = sample_object(rng, num_points)
    az, el, quats = sample_views(rng, views, elevation)
    masks, images = zip(*(render_points(points, q, image_size) for q in quats))
    return {"model_id": f"proc{index:05d}", "images": np.stack(images), "masks": np.stack(masks),
            "quaternions": quats.astype(np.float32), "azimuth": az.astype(np.float32),
            "elevation": el.astype(np.float32), "points": points}
