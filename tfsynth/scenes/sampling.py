"""Scene sampling: (SceneConfig, index) -> Scene, a pure function (no global state, no worker ids).

Example `index` draws everything from `numpy.random.default_rng(SeedSequence([config.seed, index]))`, in
this order: N, background noise scale, then per object (vectorised over the N objects) class, scale, x, y,
kd, ks, shininess, three standard normals (hue, elongation, noise scale), and N + 1 noise seeds (background
first). The noise kind is not an input: `perlin` and `sc` datasets with one seed hold the same scenes,
differently textured.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfsynth.scenes.config import SceneConfig


@dataclasses.dataclass(frozen=True)
class Scene:
    """N objects (arrays of length N, in drawing order; object i has instance id i + 1)."""

    background_scale: float
    labels: np.ndarray  # int64 class 1..K
    centers: np.ndarray  # (N, 3) float64 world coordinates
    scales: np.ndarray  # float64
    elongations: np.ndarray  # rho in [0, 1]
    hues: np.ndarray  # degrees in [0, 360)
    noise_scales: np.ndarray  # r >= min_noise_scale
    kd: np.ndarray
    ks: np.ndarray
    shininess: np.ndarray
    noise_seeds: np.ndarray  # (N + 1,) uint64: [0] background, [i + 1] object i

    @property
    def num_objects(self) -> int:
        return int(self.labels.shape[0])

    @property
    def semi_axes(self) -> np.ndarray:
        """(N, 3) semi-axes of the ellipsoids: scale * elongation_axes(rho)."""
        return self.scales[:, None] * elongation_axes(self.elongations)

    @property
    def colors(self) -> np.ndarray:
        """(N, 3) RGB in [0, 1]: HSL(hue, 1, 0.5)."""
        return hsl_to_rgb(self.hues, 1.0, 0.5)


def elongation_axes(rho) -> np.ndarray:
    """Listing 3: (rho * norm, (1 - rho) * norm, 1) with norm = sqrt(2) / |(rho, 1 - rho)|; rho = 1/2 -> (1, 1, 1)."""
    rho = np.asarray(rho, dtype=np.float64)
    sx, sy = rho, 1.0 - rho
    norm = np.sqrt(2.0) / np.sqrt(sx ** 2 + sy ** 2)
    return np.stack([sx * norm, sy * norm, np.ones_like(rho)], axis=-1)


def model_matrix(center, scale: float, rho: float) -> np.ndarray:
    """4x4 model matrix of one object as the original `getModel`: T(center) @ S(scale) @ E(rho)."""
    matrix = np.diag(np.append(scale * elongation_axes(rho), 1.0))
    matrix[:3, 3] = np.asarray(center, dtype=np.float64)
    return matrix


def hsl_to_rgb(hue, saturation, lightness) -> np.ndarray:
    """HSL -> RGB in [0, 1] (hue in degrees, any real; saturation, lightness in [0, 1]); shape (..., 3)."""
    hue = np.asarray(hue, dtype=np.float64)
    a = saturation * np.minimum(lightness, 1.0 - lightness)
    channels = []
    for n in (0.0, 8.0, 4.0):
        k = np.mod(n + hue / 30.0, 12.0)
        channels.append(lightness - a * np.clip(np.minimum(k - 3.0, 9.0 - k), -1.0, 1.0))
    return np.stack(channels, axis=-1)


def scene_rng(config: SceneConfig, index: int) -> np.random.Generator:
    if not 0 <= index < config.num_examples:
        raise ValueError(f"example index {index} out of range 0..{config.num_examples - 1}")
    return np.random.default_rng(np.random.SeedSequence([config.seed, index]))


def sample_scene(config: SceneConfig, index: int) -> Scene:
    rng = scene_rng(config, index)
    n = int(rng.integers(1, config.max_objects + 1))
    background_scale = float(rng.uniform(*config.background_scale_range))
    num_classes = len(config.class_priors)
    labels = rng.integers(1, num_classes + 1, size=n)
    scales = rng.uniform(*config.scale_range, size=n)
    xs = rng.uniform(*config.position_range, size=n)
    ys = rng.uniform(*config.position_range, size=n)
    kd = rng.uniform(*config.kd_range, size=n)
    ks = rng.uniform(*config.ks_range, size=n)
    shininess = rng.uniform(*config.shininess_range, size=n)
    z_hue, z_rho, z_r = rng.standard_normal((3, n))
    noise_seeds = rng.integers(0, 2 ** 64, size=n + 1, dtype=np.uint64)

    priors = np.array([(p.hue, p.elongation, p.noise_scale) for p in config.class_priors], np.float64)[labels - 1]
    hues = np.mod(priors[:, 0] + config.hue_std * z_hue, 360.0)
    hues[hues >= 360.0] = 0.0  # mod of a tiny negative number rounds up to 360.0
    elongations = np.clip(priors[:, 1] + config.elongation_std * z_rho, 0.0, 1.0)
    noise_scales = np.maximum(priors[:, 2] + config.noise_scale_std * z_r, config.min_noise_scale)
    centers = np.stack([xs, ys, np.zeros(n)], axis=1)
    return Scene(background_scale, labels.astype(np.int64), centers, scales, elongations, hues, noise_scales,
                 kd, ks, shininess, noise_seeds)
