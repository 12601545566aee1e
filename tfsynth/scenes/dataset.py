"""Noise scenes as a pure function of (config, index) -> example dict; the TFDS builder only encodes it.

`example(config, index)` returns numpy arrays; `encoded_example` the same with PNG bytes, as the
`noise_scenes` builder stores them:
  image     (S, S, 3) uint8 RGB          label    (S, S, 1) uint8, class 0..K (0 background)
  instance  (S, S, 1) uint8, 0 background, i + 1 for object i (the order of `objects`)
  background_scale  float32             index    int32 (example index; splits are index ranges)
  objects   dict of per-object arrays (length N, drawing order): label (int64 1..K), center (N, 3),
            scale, elongation, semi_axes (N, 3), hue, noise_scale, kd, ks, shininess (float32),
            area (int32, visible pixels).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from tfsynth.png import encode_png
from tfsynth.scenes.config import SceneConfig
from tfsynth.scenes.render import render_scene
from tfsynth.scenes.sampling import sample_scene

SPLITS = ("train", "validation")


def split_indices(config: SceneConfig, split: str) -> range:
    if split == "train":
        return range(0, config.num_train)
    if split == "validation":
        return range(config.num_train, config.num_examples)
    raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def example_key(index: int) -> str:
    return f"{index:06d}"


def example(config: SceneConfig, index: int) -> dict:
    """The example `index` (0 <= index < config.num_examples) as numpy arrays."""
    scene = sample_scene(config, index)
    rendering = render_scene(scene, config)
    areas = np.bincount(rendering.instance.ravel(), minlength=scene.num_objects + 1)[1:]
    objects = {
        "label": scene.labels.astype(np.int64),
        "center": scene.centers.astype(np.float32),
        "scale": scene.scales.astype(np.float32),
        "elongation": scene.elongations.astype(np.float32),
        "semi_axes": scene.semi_axes.astype(np.float32),
        "hue": scene.hues.astype(np.float32),
        "noise_scale": scene.noise_scales.astype(np.float32),
        "kd": scene.kd.astype(np.float32),
        "ks": scene.ks.astype(np.float32),
        "shininess": scene.shininess.astype(np.float32),
        "area": areas.astype(np.int32),
    }
    return {
        "image": rendering.image,
        "label": rendering.label[..., None],
        "instance": rendering.instance[..., None],
        "background_scale": np.float32(scene.background_scale),
        "index": np.int32(index),
        "objects": objects,
    }


def encoded_example(config: SceneConfig, index: int) -> tuple[str, dict]:
    """(key, example) with image, label and instance as PNG bytes: what the TFDS builder writes."""
    ex = example(config, index)
    for name in ("image", "label", "instance"):
        ex[name] = encode_png(ex[name], config.png_compress_level)
    return example_key(index), ex


def generate(config: SceneConfig, split: str = "train") -> Iterator[tuple[str, dict]]:
    """Every example of a split, sequentially (the builder distributes `encoded_example` with Beam)."""
    for index in split_indices(config, split):
        yield encoded_example(config, index)
