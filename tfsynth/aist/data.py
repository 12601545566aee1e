"""Unaligned two-domain input for AIST / CycleGAN: image sources, decoding to RGBA, resizing, flips, [-1, 1].

A source is either ``tfds:name/config:split[:feature]`` (a TFDS dataset; `feature` defaults to 'image'; a feature
holding several views per example, (V, H, W, C), is flattened to single images; ``images+masks`` combines an RGB
feature with a mask feature into RGBA, mask > 0 -> alpha 255) or a folder / glob of PNG or JPEG
files (RGBA PNGs keep their alpha; images without alpha are fully opaque).

Per epoch, both domains are shuffled with stateless draws from (seed, epoch, domain) and the shorter one is drawn
again in a new order until the epoch has max(|X|, |Y|) images, as the reference's unaligned dataset does; flips are
stateless functions of (seed, epoch, domain, position), so a resumed run sees the same batches.
"""
from __future__ import annotations

import glob
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tfsynth.aist.configs import AISTConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class SourceError(ValueError):
    """An image source that cannot be read (named in the message)."""


def _list_files(spec: str) -> list[str]:
    if os.path.isdir(spec):
        files = [os.path.join(spec, f) for f in sorted(os.listdir(spec))]
    else:
        files = sorted(glob.glob(spec))
    files = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not files:
        raise SourceError(f"{spec}: no PNG/JPEG images found (expected a folder, a glob, or tfds:name/config:split)")
    return files


def decode_rgba(data):
    """Encoded PNG/JPEG -> uint8 (H, W, 4); gray, gray+alpha and RGB images get an opaque or expanded alpha."""
    image = tf.io.decode_image(data, channels=0, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, None])
    c = tf.shape(image)[-1]
    opaque = tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), tf.constant(255, tf.uint8))
    return tf.switch_case(c - 1, [
        lambda: tf.concat([tf.repeat(image[..., :1], 3, -1), opaque], -1),
        lambda: tf.concat([tf.repeat(image[..., :1], 3, -1), image[..., 1:2]], -1),
        lambda: tf.concat([image[..., :3], opaque], -1),
        lambda: image[..., :4],
    ])


class Source:
    """One domain's images as encoded bytes or file paths (random access by index, decoded on demand)."""

    def __init__(self, spec: str, items: np.ndarray, are_paths: bool):
        self.spec, self.items, self.are_paths = spec, items, are_paths

    def __len__(self) -> int:
        return len(self.items)

    def decode(self, item):
        return decode_rgba(tf.io.read_file(item) if self.are_paths else item)


def load_source(spec: str, data_dir: Optional[str] = None, max_images: int = 0) -> Source:
    """The images of one source (see the module docstring), in a fixed order."""
    if not spec:
        raise SourceError("empty image source: give --x_data and --y_data")
    if spec.startswith("tfds:"):
        import tensorflow_datasets as tfds

        parts = spec[len("tfds:"):].split(":")
        if len(parts) not in (2, 3):
            raise SourceError(f"{spec}: expected tfds:name/config:split[:feature]")
        name, split = parts[0], parts[1]
        feature = parts[2] if len(parts) == 3 else "image"
        # 'images+masks': an RGB feature and a mask feature combined into RGBA (e.g. multiview_shapes).
        feature, _, mask_feature = feature.partition("+")
        from tfsynth.input.datasets import unknown_dataset_message

        unknown = unknown_dataset_message(name, spec)
        if unknown:
            raise SourceError(unknown)
        try:
            builder = tfds.builder(name, data_dir=data_dir)
            for f in filter(None, (feature, mask_feature)):
                if f not in builder.info.features:
                    raise SourceError(f"{spec}: no feature {f!r}; features: {sorted(builder.info.features)}")
            decoders = None if mask_feature else {feature: tfds.decode.SkipDecoding()}
            ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        except SourceError:
            raise
        except Exception as err:  # noqa: BLE001 (re-raised with the source named)
            raise SourceError(f"{spec}: cannot load TFDS dataset: {err}") from err
        items = []
        if mask_feature:
            def rgba_png(image, mask):
                rgb = image[..., :3] if image.shape[-1] >= 3 else tf.repeat(image[..., :1], 3, -1)
                alpha = tf.cast(tf.cast(mask[..., :1], tf.int32) * 255 // tf.maximum(tf.reduce_max(
                    tf.cast(mask, tf.int32)), 1), tf.uint8) if mask.dtype != tf.bool else tf.cast(mask, tf.uint8) * 255
                return tf.io.encode_png(tf.concat([tf.cast(rgb, tf.uint8), alpha], -1))

            def encode(ex):
                img, mask = ex[feature], ex[mask_feature]
                if len(img.shape) == 4:
                    return tf.map_fn(lambda im_m: rgba_png(*im_m), (img, mask), fn_output_signature=tf.string)
                return rgba_png(img, mask)
            stream = ds.map(encode)
        else:
            stream = ds.map(lambda ex: ex[feature])
        for encoded in stream.as_numpy_iterator():
            items.extend(np.atleast_1d(encoded).tolist())  # a multi-view example contributes every view
            if max_images and len(items) >= max_images:
                break
        items = items[:max_images] if max_images else items
        if not items:
            raise SourceError(f"{spec}: no images")
        return Source(spec, np.asarray(items, dtype=object), are_paths=False)
    files = _list_files(spec)
    if max_images:
        files = files[:max_images]
    for path in files:  # fail on the first unreadable file with its name, not deep inside tf.data
        try:
            decode_rgba(tf.io.read_file(path))
        except tf.errors.InvalidArgumentError as err:
            raise SourceError(f"{path}: not a decodable PNG/JPEG image ({err.message.splitlines()[0]})") from err
    return Source(spec, np.asarray(files, dtype=object), are_paths=True)


def to_model_input(rgba_uint8, image_size: int, alpha_mode: str):
    """uint8 RGBA -> float in [-1, 1], resized; 'nonblack': colour-corrected RGB on a black background."""
    rgba = tf.cast(rgba_uint8, tf.float32)
    if alpha_mode == "nonblack":
        rgb, alpha = rgba[..., :3], rgba[..., 3:4]
        black = tf.reduce_all(rgb == 0.0, axis=-1, keepdims=True) & (alpha > 0.0)
        rgb = tf.where(black, 1.0, rgb)  # seed §4.1.1.1 colour correction, before masking
        rgba = tf.where(alpha > 0.0, rgb, 0.0)
    rgba = tf.image.resize(rgba, [image_size, image_size], method="bilinear", antialias=True)
    return tf.clip_by_value(rgba / 127.5 - 1.0, -1.0, 1.0)


def _epoch_indices(n: int, length: int, seed: tuple[int, int, int]) -> tf.Tensor:
    """`length` indices into range(n): shuffled passes over all n, concatenated (stateless)."""
    passes = -(-length // n)
    perms = [tf.argsort(tf.random.stateless_uniform([n], seed=[seed[0], seed[1] * 1009 + seed[2] * 7 + p]))
             for p in range(passes)]
    return tf.concat(perms, 0)[:length]


def epoch_dataset(config: AISTConfig, x: Source, y: Source, epoch: int) -> tf.data.Dataset:
    """(x_batch, y_batch) pairs for one epoch, each (B, S, S, C) in [-1, 1]; drops the last partial batch."""
    steps = steps_per_epoch(config, len(x), len(y))
    length = steps * config.batch_size
    streams = []
    for d, source in enumerate((x, y)):
        idx = _epoch_indices(len(source), length, (config.seed, epoch, d))
        flips = tf.random.stateless_uniform([length], seed=[config.seed + 7919, epoch * 2 + d]) < 0.5
        if not config.flip:
            flips = tf.zeros_like(flips)
        items = tf.gather(tf.constant(list(source.items)), idx)

        def load(item, flip, source=source):
            img = to_model_input(source.decode(item), config.image_size, config.alpha_mode)[..., :config.channels]
            return tf.where(flip, tf.reverse(img, [1]), img)

        streams.append(tf.data.Dataset.from_tensor_slices((items, flips))
                       .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    return (tf.data.Dataset.zip(tuple(streams)).batch(config.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def steps_per_epoch(config: AISTConfig, n_x: int, n_y: int) -> int:
    steps = config.steps_per_epoch or max(n_x, n_y) // config.batch_size
    if steps < 1:
        raise SourceError(f"fewer images ({max(n_x, n_y)}) than one batch ({config.batch_size})")
    return steps
