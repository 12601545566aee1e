"""A procedural target domain Y for the annotation-invariance experiment (seed 002 ch. 4 and 6), TF-free.

The seed's claim is that AIST keeps a rendered object's outline while it changes the object's appearance, where a
plain CycleGAN is free to change both. The claim can only be tested on a domain pair where CycleGAN has a reason to
change outlines: Y must differ from the multi-view renders X (`multiview_shapes/vehicles`: uniformly coloured,
shaded cars filling about half the frame, white background) in its silhouette statistics as well as in appearance.
Each Y image here is:

- an object of another family: a random union of 2-4 boxes and ellipsoids (`tfsynth.dpc.synthetic`, kind 'blob'),
  seen from a random azimuth and elevation U[0, 60] degrees and scaled to fill `fill` (0.85) of the frame's side,
  so its silhouettes are larger and rounder than the cars';
- textured with two-colour fractal Perlin noise (`tfsynth.noise.perlin`, 3 octaves; the two colours drawn per
  image), lit from the left (brightness falls from 1.15 to 0.55 across the image), with pixel noise;
- on a dark, differently textured background; alpha = the silhouette (the layout of the seed's cleaned real images:
  RGBA, alpha = the segmentation).

Image i is a pure function of (seed, i) (`numpy.random.SeedSequence([seed, 13, i])`), whatever the order or the
number of processes that write them.
"""
from __future__ import annotations

import os

import numpy as np

from tfsynth.dpc import geometry as geo
from tfsynth.dpc import synthetic
from tfsynth.noise import perlin


def target_image(seed: int, index: int, size: int = 64, fill: float = 0.85, num_points: int = 20000) -> np.ndarray:
    """One uint8 RGBA (size, size, 4) image of domain Y (see the module docstring)."""
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    if not 0.1 <= fill <= 1.0:
        raise ValueError(f"fill must be in [0.1, 1], got {fill}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13, index]))
    points = synthetic.sample_object(rng, num_points, kind="blob")
    _, _, quats = synthetic.sample_views(rng, 1, elevation=(0.0, 60.0))
    # Scale the projected outline to `fill` of the frame: the projection is nearly orthographic at the DPC camera's
    # distance, so scaling the cloud scales the silhouette (the unit-cube normalisation spans the whole frame).
    proj = geo.project_points(points, quats[0])
    extent = float(np.max(proj[:, 1:].max(0) - proj[:, 1:].min(0)))
    points = points * (fill / max(extent, 1e-6))  # the cloud is centred on its bounding box
    mask = geo.silhouette_from_points(points, quats[0], size, radius=max(1.0, size / 64)) > 0

    ys, xs = np.mgrid[0:size, 0:size] / size
    table = perlin.permutation_table(int(rng.integers(0, 2**31)))
    offset = rng.uniform(0, 64, 2)
    texture = perlin.perlin2(xs * 6 + offset[0], ys * 6 + offset[1], table, octaves=3)  # about [-1, 1]
    t = np.clip(texture * 1.2 + 0.5, 0.0, 1.0)[..., None]
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    light = np.linspace(1.15, 0.55, size)[None, :, None]  # lit from the left
    rgb = (c0 * (1 - t) + c1 * t) * light + rng.normal(0.0, 10.0, (size, size, 3))
    background = 25 + 35 * np.clip(perlin.perlin2(xs * 3 + offset[1], ys * 3 + offset[0], table, octaves=2) + 0.5,
                                   0, 1)[..., None] * rng.uniform(0.5, 1.0, 3)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = np.clip(np.where(mask[..., None], rgb, background), 0, 255).astype(np.uint8)
    rgba[..., 3] = mask * 255
    return rgba


def write_target_folder(folder: str, first: int, n: int, size: int = 64, seed: int = 0) -> list[str]:
    """Writes images first .. first + n - 1 as RGBA PNGs `<folder>/y_<i>.png` (each atomically; files already there
    are kept, so an interrupted write resumes); returns their paths."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(first, first + n):
        path = os.path.join(folder, f"y_{i:05d}.png")
        if not os.path.exists(path):
            tmp = path + ".tmp.png"
            Image.fromarray(target_image(seed, i, size)).save(tmp)
            os.replace(tmp, path)
        paths.append(path)
    return paths
