"""Run a trained AIST generator (G: X -> Y, `G.keras` from train.aist) over multi-view renders (seed 002 §6.1).

Every view is turned into the generator's input exactly as train.aist fed it (`tfsynth.aist.data.to_model_input`:
RGB + the mask as alpha, resized to the generator's size, [-1, 1]); the output is resized back to the view's size.
The generator's own input shape tells the mode: 4 channels = RGBA ('channel' alpha mode), 3 = RGB (the seed's
'nonblack' workaround, whose alpha is "any channel > -1").

Per view:
- the stylised RGB, composited over white (the renders' background) with `composite`:
  'output_alpha' (default: the generator's output alpha, so every change the generator makes is kept),
  'original_mask' (the original annotation; the image then agrees with the mask by construction) or
  'none' (the raw generator RGB);
- the output alpha (uint8, 0..255);
- the mask agreement: IoU between the original mask (> 0) and the output alpha (> 0.5) at the view's resolution
  (an image whose two masks are both empty counts as 1, as `tfsynth.models.aist.mask_iou`).

Deterministic for fixed weights and inputs on CPU (no random ops; inference mode).
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tfsynth.aist import data as aist_data
from tfsynth.models import aist

COMPOSITES = ("output_alpha", "original_mask", "none")


class GeneratorError(ValueError):
    """A generator file that cannot be used (named in the message)."""


def load_generator(path: str):
    """The generator saved by train.aist (`G.keras`, X -> Y); a folder is read as `<folder>/G.keras`."""

    import tfsynth.models.cyclegan  # noqa: F401  (registers the custom layers)

    if os.path.isdir(path):
        path = os.path.join(path, "G.keras")
    if not os.path.exists(path):
        raise GeneratorError(f"{path}: no such generator file (train.aist writes <workdir>/G.keras)")
    from tfsynth.models.files import ModelFileError, load_keras_model

    try:
        model = load_keras_model(path, "generator")
    except ModelFileError as err:  # says what a corrupt / foreign file is
        raise GeneratorError(str(err)) from None
    generator_spec(model, path)
    return model


def generator_spec(model, name: str = "generator") -> tuple[int, int, str]:
    """(image_size, channels, alpha_mode) from the generator's fixed input shape."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] not in (3, 4) or shape[1] is None or shape[1] != shape[2]:
        raise GeneratorError(f"{name}: expected a square RGB/RGBA image generator with a fixed input size, "
                             f"got input shape {shape}")
    return int(shape[1]), int(shape[-1]), ("channel" if shape[-1] == 4 else "nonblack")


@tf.function(reduce_retracing=True)
def _run(model, rgba, image_size: int, channels: int, alpha_mode: str, out_size: int):
    x = tf.map_fn(lambda im: aist_data.to_model_input(im, image_size, alpha_mode)[..., :channels], rgba,
                  fn_output_signature=tf.float32)
    y = model(x, training=False)
    alpha = aist.alpha_of(y, alpha_mode)
    rgb = (y[..., :3] + 1.0) * 0.5
    both = tf.concat([rgb, alpha], -1)
    if image_size != out_size:
        both = tf.image.resize(both, [out_size, out_size], method="bilinear", antialias=True)
    return tf.clip_by_value(both, 0.0, 1.0)


def mask_iou(masks: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Per image IoU of masks > 0 and alphas > 127 (uint8) — both (N, H, W[, 1]); empty vs empty counts as 1."""
    a = np.asarray(masks).reshape(len(masks), -1) > 0
    b = np.asarray(alphas).reshape(len(alphas), -1) > 127
    inter, union = (a & b).sum(1), (a | b).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def stylize(model, images: np.ndarray, masks: np.ndarray, composite: str = "output_alpha",
            batch_size: int = 16) -> dict:
    """images (N, S, S, 3) uint8 on white, masks (N, S, S[, 1]) (> 0 = object) -> {'images' (N, S, S, 3) uint8,
    'alphas' (N, S, S, 1) uint8, 'iou' (N,)} (see the module docstring)."""
    if composite not in COMPOSITES:
        raise ValueError(f"composite must be one of {COMPOSITES}, got {composite!r}")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}")
    masks = np.asarray(masks).reshape(images.shape[:3] + (1,))
    size, channels, mode = generator_spec(model)
    alpha_in = np.where(masks > 0, 255, 0).astype(np.uint8)
    rgba = np.concatenate([images, alpha_in], -1)
    out_rgb, out_alpha = [], []
    for i in range(0, len(rgba), batch_size):
        both = _run(model, tf.constant(rgba[i:i + batch_size]), size, channels, mode, images.shape[1]).numpy()
        out_rgb.append(both[..., :3])
        out_alpha.append(both[..., 3:])
    rgb = np.concatenate(out_rgb) if out_rgb else np.zeros(images.shape, np.float32)
    alpha = np.concatenate(out_alpha) if out_alpha else np.zeros(masks.shape, np.float32)
    if composite == "output_alpha":
        rgb = rgb * alpha + (1.0 - alpha)
    elif composite == "original_mask":
        m = (masks > 0).astype(np.float32)
        rgb = rgb * m + (1.0 - m)
    alphas = np.round(alpha * 255).astype(np.uint8)
    return {"images": np.round(rgb * 255).astype(np.uint8), "alphas": alphas, "iou": mask_iou(masks, alphas)}


def stylize_example(model, example: dict, composite: str = "output_alpha",
                    batch_size: int = 16) -> tuple[dict, np.ndarray]:
    """A decoded multi-view example with `images` (V, S, S, 3) replaced by the stylised views and `alphas`
    (V, S, S, 1) added; every other feature is returned unchanged. Also returns the per-view IoU."""
    out = stylize(model, example["images"], example["masks"], composite, batch_size)
    new = dict(example)
    new["images"], new["alphas"] = out["images"], out["alphas"]
    return new, out["iou"]


def agreement_summary(ious) -> dict:
    """Mask agreement of one split: views, mean / median / min IoU and the fraction of views with IoU >= 0.9."""
    v = np.asarray(ious, np.float64)
    if v.size == 0:
        return {"views": 0}
    return {"views": int(v.size), "mean_iou": float(v.mean()), "median_iou": float(np.median(v)),
            "min_iou": float(v.min()), "frac_iou_ge_0.9": float((v >= 0.9).mean())}


def source_builder(source: str, data_dir: Optional[str] = None):
    """The TFDS builder of a multi-view source 'name/config' (registers the project's builders first)."""
    import importlib

    import tensorflow_datasets as tfds

    from tfsynth.input.datasets import import_tfds_builders

    import_tfds_builders()
    name = source.split("/")[0]
    try:  # a builder package whose __init__ does not import its module still registers this way
        importlib.import_module(f"tfds_builders.{name}.{name}_dataset_builder")
    except ImportError:
        pass
    try:
        return tfds.builder(source, data_dir=data_dir)
    except Exception as err:  # noqa: BLE001 (TFDS raises several types; re-raised with the source named)
        raise ValueError(f"source dataset {source!r} unavailable: {err}") from err


def stylized_builder(name: str, source: str, generator: str, data_dir: str, composite: str = "output_alpha",
                     source_data_dir: str = ""):
    """The `aist_stylized` builder for one generator, as a config made on the fly (found through the TFDS registry,
    so this module does not import the builder package)."""
    import dataclasses

    import tensorflow_datasets as tfds

    from tfsynth.input.datasets import import_tfds_builders

    import_tfds_builders()
    cls = tfds.builder_cls("aist_stylized")
    template = cls.builder_configs[cls.DEFAULT_BUILDER_CONFIG_NAME]
    config = dataclasses.replace(template, name=name, description=f"{source} through {generator}", source=source,
                                 generator=generator, composite=composite, source_data_dir=source_data_dir, run="")
    return cls(config=config, data_dir=data_dir)


def find_generator(generator: str = "", manual_dir: Optional[str] = None, run: str = "") -> str:
    """The generator file: `generator` if given, else `<manual_dir>/<run>/G.keras` (run '' = manual_dir itself)."""
    if generator:
        return generator
    if not manual_dir:
        raise GeneratorError("no generator: give the builder config's `generator` path or --manual_dir (a "
                             "train.aist workdir, or a folder of them with the config's `run` sub-folder)")
    return os.path.join(str(manual_dir), run, "G.keras") if run else os.path.join(str(manual_dir), "G.keras")
