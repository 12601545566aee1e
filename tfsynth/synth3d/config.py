"""Configs of the 3D procedural datasets (ProcSynthDB, MorphSynthDB, FlatWorldDB). TF-free.

One `Synth3DConfig` describes any of the three: `source` picks the class meshes ('proc': ProcSynthDB building-block
meshes; 'morph': GP morphs of the first `morph_base_classes` ProcSynthDB meshes) and `views` the instance variation
('random': full 3D rotation, random lights, two single-axis scalings; 'flat': FlatWorldDB, one canonical view and
light per class, instances vary only by 2D image transforms).
"""
from __future__ import annotations

import dataclasses

from tfsynth.shapes.morph import MorphConfig
from tfsynth.shapes.procedural import ProcMeshConfig

SOURCES = ("proc", "morph")
VIEWS = ("random", "flat")


@dataclasses.dataclass(frozen=True)
class LightingConfig:
    """Random illumination of one instance: number, type, direction, colour and intensity of the lights."""

    min_lights: int = 1
    max_lights: int = 4
    kinds: tuple = ("directional", "point", "spot")
    kind_weights: tuple = (0.5, 0.3, 0.2)
    directional_intensity: tuple = (1.0, 4.5)  # lux (pyrender), per light
    point_intensity: tuple = (6.0, 30.0)  # candela; lights sit 2.5-4 units from the object (radius 1)
    light_distance: tuple = (2.5, 4.0)
    spot_outer_cone_deg: tuple = (20.0, 45.0)
    color_saturation: tuple = (0.0, 0.5)  # HSV saturation of the light colour (0: white)
    ambient: tuple = (0.03, 0.25)  # grey ambient level

    def __post_init__(self):
        if not 1 <= self.min_lights <= self.max_lights:
            raise ValueError(f"need 1 <= min_lights <= max_lights, got {self.min_lights}, {self.max_lights}")
        if len(self.kinds) != len(self.kind_weights):
            raise ValueError("kinds and kind_weights must have the same length")


@dataclasses.dataclass(frozen=True)
class FlatConfig:
    """FlatWorldDB: the fixed canonical view + light, and the 2D augmentation that makes the instances."""

    rotation: tuple = (0.8876, 0.2939, 0.3429, 0.0868)  # [w, x, y, z]: ~ 35 deg about x then 40 deg about y
    light_direction: tuple = (-0.4, -0.5, -0.77)
    light_intensity: float = 3.0
    ambient: float = 0.15
    flips: tuple = (0, 1, 2, 3)  # as FractalDB: 0 none, 1 top-bottom, 2 left-right, 3 both
    max_rotation_deg: float = 180.0  # in-plane rotation drawn from +- this (0: none)
    translate: float = 0.05  # shift drawn from +- this fraction of the image size


@dataclasses.dataclass(frozen=True)
class Synth3DConfig:
    """Every parameter of one 3D procedural dataset."""

    num_classes: int = 4
    instances_per_class: int = 4
    image_size: int = 224
    source: str = "proc"  # 'proc' (ProcSynthDB meshes) or 'morph' (MorphSynthDB)
    views: str = "random"  # 'random' (3D variation) or 'flat' (FlatWorldDB)
    seed: int = 0
    mesh: ProcMeshConfig = ProcMeshConfig()
    min_class_distance: float = 0.035  # ProcSynthDB: stretch-invariant D2 distance between classes (~2x noise p99)
    morph: MorphConfig = MorphConfig()
    morph_base_classes: int = 100  # MorphSynthDB morphs the first N ProcSynthDB meshes (class c -> base c % N)
    morph_min_class_distance: float = 0.0  # D2 distance enforced between morph classes (0: only reported)
    lighting: LightingConfig = LightingConfig()
    flat: FlatConfig = FlatConfig()
    scale_range: tuple = (0.7, 1.4)  # each of the two single-axis scalings draws a factor from this range
    yfov_deg: float = 40.0
    camera_distance: float = 3.2  # the object (bounding radius 1 after scaling) stays inside the frame
    base_color: tuple = (0.8, 0.8, 0.8)  # ProcSynthDB material albedo (MorphSynthDB: per-vertex GP albedo)
    roughness: float = 0.6
    morph_base_albedo_saturation: tuple = (0.2, 0.8)  # the class's mean albedo: random hue, this saturation
    morph_base_albedo_value: tuple = (0.45, 0.9)
    min_object_fraction: float = 0.01  # an instance must cover at least this fraction of the image ...
    min_object_brightness: float = 12.0  # ... with at least this mean grey level (0-255) on the object
    max_clipped_fraction: float = 0.5  # ... and at most this fraction of object pixels blown out to white
    max_attempts: int = 100  # re-draws (derived seeds) of a class mesh or an instance before giving up
    instances_per_unit: int = 50  # Beam work unit: this many instances of one class
    png_compress_level: int = 1

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} unknown; valid: {', '.join(SOURCES)}")
        if self.views not in VIEWS:
            raise ValueError(f"views {self.views!r} unknown; valid: {', '.join(VIEWS)}")
        if self.num_classes < 1 or self.instances_per_class < 1 or self.instances_per_unit < 1:
            raise ValueError("num_classes, instances_per_class and instances_per_unit must be >= 1")
        if self.image_size < 16:
            raise ValueError(f"image_size {self.image_size} too small (>= 16)")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be 0 < lo <= hi, got {self.scale_range}")
        if self.source == "morph" and self.morph_base_classes < 1:
            raise ValueError("morph_base_classes must be >= 1")

    @property
    def num_examples(self) -> int:
        return self.num_classes * self.instances_per_class

    def replace(self, **kw) -> "Synth3DConfig":
        return dataclasses.replace(self, **kw)
