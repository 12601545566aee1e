"""Every parameter of a noise-scene dataset in one place (defaults: the `perlin` / `sc` datasets of the seed).

Scene distribution (Tasks 2-4 of Holm 2022, "Synthesising Abstract Deep Computer Vision Pretraining Data"):
N ~ U{1..max_objects} objects in front of a grey 2D noise background of noise scale U[1, 20]. Per object:
scale U(0.1, 0.7), centre (U(-1.5, 1.5), U(-1.5, 1.5), 0), kd U(0.25, 0.75), ks U(0, 0.5), shininess
U(10, 100), class k uniform in 1..K, and from the class prior (Table 1) hue ~ N(h_k, 50^2) mod 360,
elongation rho ~ N(rho_k, 0.05^2) clamped to [0, 1], noise scale r ~ N(r_k, 5^2) clamped to >= 1.

Class 3's hue is missing from the paper's Table 1. We use 350: the value in the author's own code
(`randomness.js`, classAvgHue = [150, 250, 350] in github.com/sorenmulli/imgseg-fake-balloons) and the
red that Figure 3 shows for class 3; it is 160 and 100 degrees from classes 1 and 2.

Renderer (the WebGL original, exact instead of tessellated): a unit sphere per object under the model
matrix T(x, y, 0) S(scale) E(rho) (Listing 3), a perspective camera at (0, 0, 2) looking down -z with a
90 degree vertical field of view, Phong shading with ambient 0.1 and a point light behind the camera,
the diffuse term modulated by noise at r * (unit surface normal), colour HSL(h, 1, 0.5).
"""
from __future__ import annotations

import dataclasses
import math

NOISE_KINDS = ("perlin", "sc")


@dataclasses.dataclass(frozen=True)
class ClassPrior:
    """Mean hue (degrees), elongation rho and noise scale r of one object class."""

    hue: float
    elongation: float
    noise_scale: float


# Table 1 of the seed; class 3's hue (missing there) from the author's code, see the module docstring.
CLASS_PRIORS = (ClassPrior(150.0, 0.55, 5.0), ClassPrior(250.0, 0.45, 17.5), ClassPrior(350.0, 0.50, 30.0))


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    noise: str = "perlin"  # texture noise: "perlin" (improved Perlin) or "sc" (sparse convolution)
    image_size: int = 512
    num_train: int = 9_000  # examples 0..num_train-1; the seed held out a tenth of 10,000 for validation
    num_validation: int = 1_000  # examples num_train..num_train+num_validation-1
    seed: int = 0  # scene randomness: example i is drawn from SeedSequence([seed, i]) (same for both noises)

    # Scene distribution (Listing 2 and Table 1 of the seed).
    max_objects: int = 20
    background_scale_range: tuple = (1.0, 20.0)
    scale_range: tuple = (0.1, 0.7)
    position_range: tuple = (-1.5, 1.5)
    kd_range: tuple = (0.25, 0.75)
    ks_range: tuple = (0.0, 0.5)
    shininess_range: tuple = (10.0, 100.0)
    class_priors: tuple = CLASS_PRIORS
    hue_std: float = 50.0
    elongation_std: float = 0.05
    noise_scale_std: float = 5.0
    min_noise_scale: float = 1.0

    # Camera and light (the WebGL original: eye (0, 0, 2), fovy 90, ka 0.1).
    camera_distance: float = 2.0
    fov_y_degrees: float = 90.0
    light_position: tuple = (0.0, 0.0, 3.0)  # behind the camera (the original's code puts it at the eye)
    ambient: float = 0.1

    # Noise. Per-object (and background) noise seeds by default; reference_noise=True textures every object
    # and the background with one fixed field (Perlin's reference table / SC seed 0), like the original shader.
    reference_noise: bool = False
    sc_impulses_per_kernel: float = 16.0
    sc_radius: float = 0.5  # Frisvad & Wyvill's kernel (1 - 4|v|^2)^3
    sc_std: float = 0.15  # SC is rescaled to this std: that of the original shader's scnoise (measured 0.147-0.151)

    png_compress_level: int = 1

    def __post_init__(self):
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise {self.noise!r} unknown; valid: {', '.join(NOISE_KINDS)}")
        if self.image_size < 2:
            raise ValueError(f"image_size must be >= 2, got {self.image_size}")
        if self.num_train < 0 or self.num_validation < 0 or self.num_examples < 1:
            raise ValueError(f"need num_train, num_validation >= 0 and at least one example, got "
                             f"{self.num_train}, {self.num_validation}")
        if not 1 <= self.max_objects <= 255:
            raise ValueError(f"max_objects must be in 1..255 (instance ids are uint8), got {self.max_objects}")
        if not self.class_priors or len(self.class_priors) > 254:
            raise ValueError("class_priors must list 1..254 classes")
        for name in ("background_scale_range", "scale_range", "position_range", "kd_range", "ks_range",
                     "shininess_range"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(low, high)}")
        if self.scale_range[0] <= 0.0:
            raise ValueError(f"scale_range must be positive, got {self.scale_range}")
        # Elongation stretches x by up to sqrt(2); every object must stay in front of the camera.
        reach = self.scale_range[1] * math.sqrt(2.0)
        if not self.camera_distance > reach:
            raise ValueError(f"camera_distance {self.camera_distance} must exceed "
                             f"the largest object extent {reach:.3f}")
        if not 0.0 < self.fov_y_degrees < 180.0:
            raise ValueError(f"fov_y_degrees must be in (0, 180), got {self.fov_y_degrees}")
        if len(self.light_position) != 3:
            raise ValueError(f"light_position must be (x, y, z), got {self.light_position}")
        if self.min_noise_scale <= 0.0 or self.sc_radius <= 0.0 or self.sc_std <= 0.0:
            raise ValueError("min_noise_scale, sc_radius and sc_std must be positive")

    @property
    def num_examples(self) -> int:
        return self.num_train + self.num_validation

    @property
    def num_classes(self) -> int:
        """Label-map classes including background 0."""
        return len(self.class_priors) + 1
