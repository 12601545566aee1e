"""Stand-in "real" segmentations for running the AIST experiment without real photos (TF-free, NumPy + PIL).

The AIST experiment needs two real-image sets: the Y domain of the style transfer and the held-out real
segmentations of §6.3 (the cleaned Stanford Cars images, `tfds_builders/stanford_cars_clean`). For tests and the
tiny configuration this module writes RGBA PNGs of procedural objects (`tfsynth.dpc.synthetic`) seen from near-
horizontal views (elevation U[0, 20] degrees, as photos are), painted in a shaded random colour with pixel noise,
alpha = the silhouette, transparent black background (the layout of the cleaned real images). They stand in for
the real data's format only; numbers on them say nothing about real photos.

Image i is a pure function of (seed, i) (`numpy.random.SeedSequence([seed, 7, i])`).
"""
from __future__ import annotations

import os

import numpy as np

from tfsynth.dpc import geometry as geo
from tfsynth.dpc import synthetic


def standin_image(seed: int, index: int, size: int = 64, num_points: int = 20000) -> np.ndarray:
    """One uint8 RGBA (size, size, 4) stand-in segmentation."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7, index]))
    points = synthetic.sample_object(rng, num_points)
    _, _, quats = synthetic.sample_views(rng, 1, elevation=(0.0, 20.0))
    mask = geo.silhouette_from_points(points, quats[0], size, radius=max(1.0, size / 64)) > 0
    colour = rng.uniform(30, 230, 3)
    rows = np.linspace(1.15, 0.7, size)[:, None, None]  # lit from above
    rgb = colour * rows + rng.normal(0.0, 18.0, (size, size, 3))
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = np.where(mask[..., None], np.clip(rgb, 0, 255), 0).astype(np.uint8)
    rgba[..., 3] = mask * 255
    return rgba


def write_standin_folder(folder: str, n: int, size: int = 64, seed: int = 0) -> list[str]:
    """Writes n RGBA PNGs `<folder>/standin_<i>.png` (skips files already there); returns their paths."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"standin_{i:05d}.png")
        if not os.path.exists(path):
            tmp = path + ".tmp.png"
            Image.fromarray(standin_image(seed, i, size)).save(tmp)
            os.replace(tmp, path)
        paths.append(path)
    return paths
