"""What a network learned, as pictures: first-layer filters as image grids (side by side for several models, as
Kataoka et al. 2020 compare FractalDB and ImageNet conv1 filters), and activation maximisation for a few units of
a deeper layer.

Filter grids: each (kh, kw, 3) kernel of the first convolution that sees the RGB image is min-max scaled to
0..255 on its own (`scale='each'`, torchvision's make_grid(normalize=True, scale_each=True)) or with one range for
all filters of the model (`scale='all'`, which keeps their relative strength), enlarged by pixel repetition and laid
out row by row with a 1-pixel gap. Activation maximisation: gradient ascent on the input image of the mean
activation of one channel, with the regularisers of Yosinski et al. (2015): random jitter, L2 decay and a small
blur every few steps; the image stays in [0, 255] and goes through the model's own 'normalize' layer.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Optional, Sequence

import keras
import numpy as np


def _walk(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


def first_conv(model: keras.Model) -> keras.layers.Conv2D:
    """The first Conv2D (at any nesting depth) whose kernel takes 3 input channels."""
    for layer in _walk(model):
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel.shape[2] == 3:
            return layer
    raise ValueError(f"model {model.name!r} has no convolution over 3 input channels")


def filter_grid(kernel: np.ndarray, columns: Optional[int] = None, scale: str = "each", cell: int = 32,
                gap: int = 1) -> np.ndarray:
    """(kh, kw, 3, n) kernel -> uint8 (rows * (c + gap) - gap, columns * (c + gap) - gap, 3) grid, where c is the
    kernel size enlarged by an integer factor to at least `cell` pixels (`scale`: 'each' | 'all')."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(f"expected a (kh, kw, 3, n) kernel, got shape {kernel.shape}")
    if scale not in ("each", "all"):
        raise ValueError(f"scale must be 'each' or 'all', got {scale!r}")
    kh, kw, _, n = kernel.shape
    filters = np.moveaxis(kernel, 3, 0)  # (n, kh, kw, 3)
    axes = (1, 2, 3) if scale == "each" else None
    lo = filters.min(axis=axes, keepdims=axes is not None)
    hi = filters.max(axis=axes, keepdims=axes is not None)
    scaled = (filters - lo) / np.maximum(hi - lo, 1e-12)
    factor = max(1, math.ceil(cell / max(kh, kw)))
    scaled = scaled.repeat(factor, axis=1).repeat(factor, axis=2)
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    ch, cw = kh * factor, kw * factor
    grid = np.full((rows * (ch + gap) - gap, columns * (cw + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (ch + gap): r * (ch + gap) + ch, c * (cw + gap): c * (cw + gap) + cw] = np.rint(
            scaled[i] * 255).astype(np.uint8)
    return grid


def model_filter_grid(model: keras.Model, **kwargs) -> np.ndarray:
    """`filter_grid` of the model's first convolution."""
    return filter_grid(first_conv(model).kernel.numpy(), **kwargs)


def save_png(image: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.path.basename(path)}")
    plt.imsave(tmp, np.asarray(image, np.uint8), format="png")
    os.replace(tmp, path)


def side_by_side(images: Mapping[str, np.ndarray], path: str, title: str = "") -> None:
    """One panel per model (titled with its name), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("no images to show")
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), dpi=120, squeeze=False)
    for ax, (name, image) in zip(axes[0], images.items()):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.path.basename(path)}")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def write_tensorboard(log_dir: str, images: Mapping[str, np.ndarray], prefix: str = "filters") -> None:
    """Each uint8 (H, W, 3) image as `<prefix>/<name>` in an event file of `log_dir`."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for name, image in images.items():
            tf.summary.image(f"{prefix}/{name}", np.asarray(image, np.uint8)[None], step=0)
    writer.flush()
    writer.close()


# --- activation maximisation ------------------------------------------------------------------------------------

def _find_layer(model: keras.Model, name: str):
    for owner in [model, *[layer for layer in _walk_models(model)]]:
        try:
            return owner, owner.get_layer(name)
        except ValueError:
            continue
    raise ValueError(f"no layer {name!r} in model {model.name!r}")


def _walk_models(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield layer
            yield from _walk_models(layer)


def _pixel_model(model: keras.Model, layer_name: str) -> keras.Model:
    """[0, 255] image -> `layer_name`'s output, through the model's 'normalize' layer when it has one."""
    owner, layer = _find_layer(model, layer_name)
    features = keras.Model(owner.inputs, layer.output)
    images = keras.Input(shape=(None, None, 3))
    if owner is model:
        return keras.Model(images, features(images))
    try:
        normalize = model.get_layer("normalize")
    except ValueError:
        normalize = None
    x = normalize(images) if normalize is not None else images
    return keras.Model(images, features(x))


def activation_maximization(model: keras.Model, layer_name: str, units: Sequence[int], *, size: int = 64,
                            steps: int = 128, step_size: float = 6.0, l2: float = 1e-4, jitter: int = 2,
                            blur_every: int = 4, seed: int = 0) -> np.ndarray:
    """uint8 (len(units), size, size, 3): for each channel, an image that maximises its mean activation."""
    import tensorflow as tf

    extractor = _pixel_model(model, layer_name)
    channels = extractor.output.shape[-1]
    bad = [u for u in units if not 0 <= u < channels]
    if bad:
        raise ValueError(f"units {bad} out of range: layer {layer_name!r} has {channels} channels")
    rng = np.random.default_rng(np.random.SeedSequence([seed]))
    images = tf.Variable(128.0 + rng.normal(0, 8, (len(units), size, size, 3)).astype(np.float32))
    index = tf.constant(np.asarray(units), tf.int32)
    blur = tf.constant(np.outer([1, 2, 1], [1, 2, 1]) / 16.0, tf.float32)[:, :, None, None] * tf.eye(3)[None, None]

    @tf.function
    def step(shift):
        shifted = tf.roll(images, shift, axis=[1, 2])
        with tf.GradientTape() as tape:
            tape.watch(shifted)
            chosen = tf.gather(extractor(shifted, training=False), index, axis=-1)  # (n, [H, W,] n_units)
            if len(chosen.shape) == 4:
                chosen = tf.reduce_mean(chosen, axis=[1, 2])
            objective = tf.reduce_sum(tf.linalg.diag_part(chosen))  # image i maximises unit i
        grad = tf.roll(tape.gradient(objective, shifted), -shift, axis=[1, 2])
        grad /= tf.reduce_mean(tf.abs(grad), axis=[1, 2, 3], keepdims=True) + 1e-8
        images.assign(tf.clip_by_value(images * (1.0 - l2) + step_size * grad, 0.0, 255.0))

    @tf.function
    def smooth():
        images.assign(tf.nn.conv2d(tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT"), blur, 1,
                                   "VALID"))

    for i in range(steps):
        step(tf.constant(rng.integers(-jitter, jitter + 1, 2), tf.int32))
        if blur_every and (i + 1) % blur_every == 0 and i + 1 < steps:
            smooth()
    return np.rint(images.numpy()).astype(np.uint8)
