"""Per-image ops of the pre-training pipeline: decode to 3 channels, stateless random crop, centre crop.

The FractalDB recipe (official PyTorch code) uses `RandomCrop(224)` on the 362 px images and nothing else; the
normalisation (mean 0.2, std 0.5 on [0, 1] pixels) lives inside the model (`tfsynth.models.classifier`), so every
op here returns uint8 images.
"""
from __future__ import annotations

import tensorflow as tf


def decode_rgb(encoded: tf.Tensor) -> tf.Tensor:
    """PNG/JPEG bytes -> uint8 (H, W, 3); 1-channel images are replicated to 3 channels."""
    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _check_size(image: tf.Tensor, size: int) -> list:
    shape = tf.shape(image)
    return [tf.debugging.assert_greater_equal(
        tf.minimum(shape[0], shape[1]), size,
        message=f"image smaller than the crop size {size}; lower --crop_size")]


def random_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """A `size` x `size` crop at a position drawn from the stateless `seed` (shape [2])."""
    with tf.control_dependencies(_check_size(image, size)):
        return tf.image.stateless_random_crop(image, [size, size, 3], seed=seed)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """The central `size` x `size` window (torchvision CenterCrop rounding: offset = round((H - size) / 2))."""
    with tf.control_dependencies(_check_size(image, size)):
        shape = tf.shape(image)
        top = tf.cast(tf.round((shape[0] - size) / 2), tf.int32)
        left = tf.cast(tf.round((shape[1] - size) / 2), tf.int32)
        crop = image[top:top + size, left:left + size, :]
    crop.set_shape([size, size, 3])
    return crop


def resize_shorter(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 (H, W, 3) -> uint8 with the shorter side `size` and the aspect ratio kept, as torchvision's
    `Resize(size)` on a PIL image: bilinear, antialiased when shrinking, longer side int(size * long / short)."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    short, long = tf.minimum(h, w), tf.maximum(h, w)
    other = tf.cast(tf.cast(size, tf.float64) * tf.cast(long, tf.float64) / tf.cast(short, tf.float64), tf.int32)
    new_size = tf.where(h <= w, tf.stack([size, other]), tf.stack([other, size]))
    resized = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def image_grid(images, columns: int = 8):
    """(N, H, W, C) uint8 -> one (rows*H, columns*W, C) grid (padded with black), for TensorBoard."""
    images = tf.convert_to_tensor(images)
    n = int(images.shape[0])
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    pad = rows * columns - n
    if pad:
        images = tf.concat([images, tf.zeros([pad, *images.shape[1:]], images.dtype)], axis=0)
    h, w, c = images.shape[1:]
    grid = tf.reshape(images, [rows, columns, h, w, c])
    grid = tf.transpose(grid, [0, 2, 1, 3, 4])
    return tf.reshape(grid, [rows * h, columns * w, c])


def seeded_shuffle(ds: tf.data.Dataset, buffer: int, seed) -> tf.data.Dataset:
    """`ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)` with a tensor `seed`, also when TF's global
    seed is 0 (`keras.utils.set_random_seed(0)`, i.e. `--seed 0`): TF then compares the (global, op) seed pair with
    (0, 0), which a tensor op seed turns into a symbolic bool ("Using a symbolic tf.Tensor as a Python bool"). Inside
    the traced function the graph-level seed is dropped for that case only, so every other seed keeps its order."""
    graph = tf.compat.v1.get_default_graph()
    if not tf.executing_eagerly() and graph.seed == 0:
        graph.seed = None
    return ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
