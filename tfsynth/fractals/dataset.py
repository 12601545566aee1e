"""FractalDB as a pure function of (config, seed, category, instance) -> example of numpy arrays.

The TFDS builder (`tfds_builders/fractal_db`) only encodes what this module returns. Work is done in
units of one (category, weight variant): its chaos game is shared by the unit's patch re-draws and
flips. Patch masks come from `SeedSequence([seed, category, weight_index, patch_index])`, so an
example never depends on which worker rendered it or in which order.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from tfsynth.fractals import render
from tfsynth.png import encode_png
from tfsynth.fractals.search import SearchConfig, search_categories

SAMPLERS = ("official", "svd", "csv")


@dataclasses.dataclass(frozen=True)
class FractalDBConfig:
    num_categories: int
    image_size: int = 362
    pad: int = 6
    num_points: int = 200_000
    draw_type: str = "patch_gray"
    weight_step: float = 0.4
    weight_indices: tuple = tuple(range(25))
    patches_per_weight: int = 10
    flips: tuple = (0, 1, 2, 3)
    # 'official': Kataoka et al.'s filling-rate search (seed 1 = the official categories);
    # 'svd': Anderson & Farrell's contractive SVD sampler; 'csv': parameter files from a directory.
    sampler: str = "official"
    search: SearchConfig = SearchConfig()
    svd_seed: int = 1
    seed: int = 0  # instance randomness (patch masks)
    chaos_seed: int = 100  # the official renderer reseeds its chaos game with 100 for every image
    png_compress_level: int = 1

    def __post_init__(self):
        if self.draw_type not in render.DRAW_TYPES:
            raise ValueError(f"draw_type {self.draw_type!r} unknown; valid: {', '.join(render.DRAW_TYPES)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r} unknown; valid: {', '.join(SAMPLERS)}")
        if self.draw_type.startswith("point") and self.patches_per_weight != 1:
            raise ValueError("point drawing is deterministic: use patches_per_weight=1")
        if not set(self.flips) <= {0, 1, 2, 3} or not self.flips:
            raise ValueError(f"flips must be a non-empty subset of 0..3, got {self.flips}")
        if not all(0 <= w < 25 for w in self.weight_indices) or not self.weight_indices:
            raise ValueError(f"weight_indices must be a non-empty subset of 0..24, got {self.weight_indices}")
        if self.image_size <= 2 * self.pad + 3:
            raise ValueError(f"image_size {self.image_size} too small for padding {self.pad}")

    @property
    def instances_per_category(self) -> int:
        return len(self.weight_indices) * self.patches_per_weight * len(self.flips)

    @property
    def channels(self) -> int:
        return 3 if self.draw_type.endswith("color") else 1


def category_params(config: FractalDBConfig, params_dir=None) -> list[np.ndarray]:
    """The IFS of every category, in label order."""
    if config.sampler == "official":
        categories, _ = search_categories(config.num_categories, config.search)
        return categories
    if config.sampler == "svd":
        from tfsynth.fractals.svd_sampler import sample_svd_categories

        return sample_svd_categories(config.num_categories, config.svd_seed)
    from tfsynth.fractals.params_csv import read_params_dir

    if params_dir is None:
        raise ValueError("sampler 'csv' needs a directory of parameter CSVs (tfds: --manual_dir)")
    categories = read_params_dir(params_dir)
    if len(categories) != config.num_categories:
        raise ValueError(f"{params_dir}: expected {config.num_categories} category CSVs, found {len(categories)}")
    return categories


def work_units(config: FractalDBConfig) -> list[tuple[int, int]]:
    return [(c, w) for c in range(config.num_categories) for w in config.weight_indices]


def example_key(category: int, weight_index: int, patch_index: int, flip_type: int) -> str:
    return f"{category:05d}_w{weight_index:02d}_p{patch_index:03d}_f{flip_type}"


def render_unit(config: FractalDBConfig, category: int, params: np.ndarray,
                weight_index: int, patch_indices=None) -> Iterator[tuple[str, dict]]:
    """Yields (key, example) for every patch re-draw and flip of one (category, weight variant), or only for the
    patch re-draws in `patch_indices` (the online source renders the ones of its split; the others are skipped, which
    changes nothing else: every re-draw has its own generator).

    example: image (PNG bytes, S x S x channels), label, params (n, 7) float64,
    weight_index, patch_index, flip (int32).
    """
    weights = render.weight_variants(config.weight_step)
    points = render.PointSet(params, weights[weight_index], config.num_points, config.image_size, config.pad,
                             chaos_seed=config.chaos_seed)
    for patch_index in range(config.patches_per_weight) if patch_indices is None else patch_indices:
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, category, weight_index, patch_index]))
        canvas = render.draw(points, config.draw_type, rng)
        for flip_type in config.flips:
            image = render.flip(canvas, flip_type)
            yield example_key(category, weight_index, patch_index, flip_type), {
                "image": encode_png(image, config.png_compress_level),
                "label": category,
                "params": np.asarray(params, np.float64),
                "weight_index": np.int32(weight_index),
                "patch_index": np.int32(patch_index),
                "flip": np.int32(flip_type),
            }


def generate(config: FractalDBConfig, categories: list[np.ndarray] | None = None) -> Iterator[tuple[str, dict]]:
    """Every example of the dataset, sequentially (the builder distributes `render_unit` with Beam)."""
    categories = category_params(config) if categories is None else categories
    for category, weight_index in work_units(config):
        yield from render_unit(config, category, categories[category], weight_index)
