"""CycleGAN networks as in the reference PyTorch implementation (Zhu et al. 2017, junyanz/pytorch-CycleGAN-and-pix2pix),
with the activation option of "Annotation-Invariant Style Transfer" (seed 002, §4.2-4.3).

Generator (``ResnetGenerator``, ``--netG resnet_9blocks --norm instance``)::

    ReflectionPad(3) Conv7x7(64)  IN act          'model.1'
    Conv3x3/2 pad 1 (128)         IN act          'model.4'     zero padding, as nn.Conv2d(padding=1)
    Conv3x3/2 pad 1 (256)         IN act          'model.7'
    9 x ResnetBlock(256): ReflectionPad(1) Conv3x3 IN act ReflectionPad(1) Conv3x3 IN, + identity
    ConvT3x3/2 pad 1 out_pad 1 (128) IN act       'model.19'
    ConvT3x3/2 pad 1 out_pad 1 (64)  IN act       'model.22'
    ReflectionPad(3) Conv7x7(3) tanh              'model.26'

Instance normalisation is non-affine (``nn.InstanceNorm2d(affine=False, track_running_stats=False)``), so every
conv keeps its bias: 11,378,179 parameters, as the reference. The reference uses ReLU; the seed uses leaky ReLU
with slope 0.01 (its default here, ``activation="leaky_relu"``).

Discriminator (``NLayerDiscriminator``, 70x70 PatchGAN, ``n_layers=3``)::

    Conv4x4/2 pad 1 (64) lrelu0.2; Conv4x4/2 (128) IN lrelu; Conv4x4/2 (256) IN lrelu;
    Conv4x4/1 pad 1 (512) IN lrelu; Conv4x4/1 pad 1 (1)

2,764,737 parameters; a 256 x 256 input gives a 30 x 30 map of (unbounded, LSGAN) scores.

Padding is explicit and symmetric as in PyTorch (never Keras 'same', which pads stride-2 convs asymmetrically),
and ``nn.ConvTranspose2d(k=3, s=2, padding=1, output_padding=1)`` is reproduced exactly: a 'valid' transposed conv
(output 2n+1) cropped by one pixel at the start (padding) and zero at the end (padding - output_padding).
Weights are initialised N(0, 0.02), biases 0 (the reference's ``init_type='normal'``). Layer names are the
reference ``state_dict`` module paths so a PyTorch checkpoint maps one-to-one (``load_torch_state_dict``).
"""
from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import layers

__all__ = ["ReflectionPad2D", "InstanceNorm", "resnet_generator", "patch_discriminator",
           "load_torch_state_dict", "GENERATOR_PARAMS", "DISCRIMINATOR_PARAMS"]

GENERATOR_PARAMS = 11_378_179  # reference resnet_9blocks, instance norm
DISCRIMINATOR_PARAMS = 2_764_737  # reference basic (n_layers=3) PatchGAN, instance norm

_IN_EPS = 1e-5  # nn.InstanceNorm2d default


def _init():
    return keras.initializers.RandomNormal(0.0, 0.02)


@keras.saving.register_keras_serializable(package="tfsynth")
class ReflectionPad2D(layers.Layer):
    """``nn.ReflectionPad2d(p)``: mirror without repeating the edge pixel (NumPy/TF 'REFLECT')."""

    def __init__(self, padding: int, **kw):
        super().__init__(**kw)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, s):
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (s[0], grow(s[1]), grow(s[2]), s[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tfsynth")
class InstanceNorm(layers.Layer):
    """Non-affine instance normalisation over H, W per sample and channel (biased variance, eps 1e-5)."""

    def __init__(self, epsilon: float = _IN_EPS, **kw):
        super().__init__(**kw)
        self.epsilon = float(epsilon)

    def call(self, x):
        x32 = tf.cast(x, tf.float32)
        mean, var = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
        return tf.cast((x32 - mean) * tf.math.rsqrt(var + self.epsilon), x.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tfsynth")
class CropStart(layers.Layer):
    """Drops ``n`` rows and columns at the start: the ``padding`` of nn.ConvTranspose2d after a 'valid' one."""

    def __init__(self, start: int, stop: int = 0, **kw):
        super().__init__(**kw)
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        return x[:, self.start:h - self.stop, self.start:w - self.stop, :]

    def compute_output_shape(self, s):
        shrink = lambda d: None if d is None else d - self.start - self.stop  # noqa: E731
        return (s[0], shrink(s[1]), shrink(s[2]), s[3])

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def _activation(kind: str, slope: float, name: str):
    if kind == "relu":
        return layers.ReLU(name=name)
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=slope, name=name)
    raise ValueError(f"activation must be 'relu' or 'leaky_relu', got {kind!r}")


def _conv(x, filters, kernel, stride, name, pad=0, reflect=False):
    if pad:
        pad_layer = (ReflectionPad2D(pad, name=f"{name}_pad") if reflect
                     else layers.ZeroPadding2D(pad, name=f"{name}_pad"))
        x = pad_layer(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=True,
                         kernel_initializer=_init(), bias_initializer="zeros", name=name)(x)


def resnet_generator(input_shape=(None, None, 3), output_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                     activation: str = "leaky_relu", negative_slope: float = 0.01,
                     name: str = "generator") -> keras.Model:
    """The reference ResNet generator (see module docstring); inputs and outputs in [-1, 1]."""
    act = lambda n: _activation(activation, negative_slope, n)  # noqa: E731
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(inputs, ngf, 7, 1, "model.1", pad=3, reflect=True)
    x = act("model.3")(InstanceNorm(name="model.2")(x))
    idx, ch = 4, ngf
    for _ in range(2):  # downsampling
        ch *= 2
        x = _conv(x, ch, 3, 2, f"model.{idx}", pad=1)
        x = act(f"model.{idx + 2}")(InstanceNorm(name=f"model.{idx + 1}")(x))
        idx += 3
    for b in range(n_blocks):
        p = f"model.{idx}.conv_block"
        y = _conv(x, ch, 3, 1, f"{p}.1", pad=1, reflect=True)
        y = act(f"{p}.3")(InstanceNorm(name=f"{p}.2")(y))
        y = _conv(y, ch, 3, 1, f"{p}.5", pad=1, reflect=True)
        y = InstanceNorm(name=f"{p}.6")(y)
        x = layers.Add(name=f"model.{idx}.add")([x, y])
        idx += 1
    for _ in range(2):  # upsampling: ConvTranspose2d(k3, s2, padding=1, output_padding=1)
        ch //= 2
        x = layers.Conv2DTranspose(ch, 3, strides=2, padding="valid", use_bias=True, kernel_initializer=_init(),
                                   bias_initializer="zeros", name=f"model.{idx}")(x)
        x = CropStart(1, 0, name=f"model.{idx}_crop")(x)
        x = act(f"model.{idx + 2}")(InstanceNorm(name=f"model.{idx + 1}")(x))
        idx += 3
    x = _conv(x, output_channels, 7, 1, f"model.{idx + 1}", pad=3, reflect=True)
    x = layers.Activation("tanh", dtype="float32", name=f"model.{idx + 2}")(x)
    return keras.Model(inputs, x, name=name)


def patch_discriminator(input_shape=(None, None, 3), ndf: int = 64, n_layers: int = 3,
                        name: str = "discriminator") -> keras.Model:
    """The reference 70x70 PatchGAN (``NLayerDiscriminator``); returns raw LSGAN scores (B, h, w, 1)."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(inputs, ndf, 4, 2, "model.0", pad=1)
    x = layers.LeakyReLU(0.2, name="model.1")(x)
    idx, mult = 2, 1
    for n in range(1, n_layers + 1):
        mult = min(2 ** n, 8)
        x = _conv(x, ndf * mult, 4, 2 if n < n_layers else 1, f"model.{idx}", pad=1)
        x = layers.LeakyReLU(0.2, name=f"model.{idx + 2}")(InstanceNorm(name=f"model.{idx + 1}")(x))
        idx += 3
    x = _conv(x, 1, 4, 1, f"model.{idx}", pad=1)
    x = layers.Activation("linear", dtype="float32", name="scores")(x)
    return keras.Model(inputs, x, name=name)


def load_torch_state_dict(model: keras.Model, state_dict: Mapping[str, np.ndarray], prefix: str = "") -> keras.Model:
    """Assign a reference PyTorch ``state_dict`` (name -> numpy array) to a generator or discriminator.

    Conv weights are (out, in, kh, kw) in PyTorch, ConvTranspose weights (in, out, kh, kw); both frameworks define the
    transposed conv as the input-gradient of a cross-correlation, so either kernel maps by the same axis permutation
    (no flip) to Keras' (kh, kw, in, out) / (kh, kw, out, in). Raises ValueError listing missing,
    unexpected and mis-shaped keys; nothing is assigned unless all match.
    """
    pending, expected, problems = [], set(), []
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):
            perm = (2, 3, 1, 0)  # (in, out, kh, kw) -> (kh, kw, out, in)
        elif isinstance(layer, layers.Conv2D):
            perm = (2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
        else:
            continue
        for suffix, var in (("weight", layer.kernel), ("bias", layer.bias)):
            key = f"{prefix}{layer.name}.{suffix}"
            expected.add(key)
            if key not in state_dict:
                continue
            arr = np.asarray(state_dict[key])
            value = np.transpose(arr, perm) if suffix == "weight" else arr
            if value.shape != tuple(var.shape):
                problems.append(f"{key}: got {arr.shape}, expected {tuple(var.shape)} (keras layout)")
            else:
                pending.append((var, value.astype(var.dtype)))
    missing = sorted(expected - state_dict.keys())
    unexpected = sorted(k for k in state_dict if k.startswith(prefix) and k not in expected)
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing[:8]}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected[:8]}")
    if problems:
        raise ValueError(f"cannot load state_dict into {model.name!r}: " + "; ".join(problems))
    for var, value in pending:
        var.assign(value)
    return model
