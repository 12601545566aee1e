"""Keras 3 AlexNet and VGG-16 matching torchvision's ``alexnet`` and ``vgg16`` (the ImageNet baselines of
Kataoka et al. 2020), with weights loaded from local files only.

Layer names are torchvision ``state_dict`` module paths (``features.0``, ``classifier.6``...), so torchvision
weights map one-to-one; parameter counts equal torchvision's (AlexNet 61,100,840, VGG-16 138,357,544 with 1000
classes). Details that make the mapping exact:

* convolutions pad symmetrically as PyTorch (explicit ZeroPadding2D before a strided conv);
* ``avgpool`` is PyTorch's ``AdaptiveAvgPool2d`` (6x6 AlexNet, 7x7 VGG; `AdaptiveAvgPool2D`), any input size;
* the pooled map is flattened in PyTorch's (C, H, W) order (``flatten`` permutes first), so the first Linear's
  weight is torchvision's transposed, nothing else;
* dropout layers sit where torchvision has them (AlexNet: before ``classifier.1`` and ``classifier.4``; VGG:
  after ``classifier.1`` and ``classifier.4``).

Inputs are expected already normalised (ImageNet mean/std); no preprocessing happens here. Channels-last only.

Weights (``load_weights``): a ``.keras`` model file, or arrays named by torchvision keys in ``.npz`` or
``.h5``/``.hdf5`` -- e.g. a torchvision state dict ``sd`` saved with
``numpy.savez('alexnet.npz', **{k: v.numpy() for k, v in sd.items()})``. Nothing is ever downloaded.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Mapping

import keras
import numpy as np
from keras import layers

from tfsynth.models.resnet import plan_state_dict_load

__all__ = ["alexnet", "vgg16", "AdaptiveAvgPool2D", "REFERENCE_NETS", "HEADS", "torch_layout",
           "to_torchvision_state_dict", "read_state_dict", "state_dict_of_file", "load_torchvision_state_dict",
           "load_weights", "count_params", "torch_named_net"]

_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
HEADS = {"alexnet": "classifier.6", "vgg16": "classifier.6"}  # the last Linear (replaced when fine-tuning)


def _torch_linear_init(fan_in: int):
    """nn.Linear / nn.Conv2d default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _conv(x, filters, kernel, stride, padding, name, kernel_init, bias_init):
    if stride > 1 and padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
        pad_mode = "valid"
    else:
        # stride 1: 'same' pads (k - 1) / 2 on both sides for odd kernels, as PyTorch's padding=(k - 1) / 2.
        if padding not in (0, (kernel - 1) // 2):
            raise ValueError(f"{name}: unsupported padding {padding} for kernel {kernel}")
        pad_mode = "same" if padding else "valid"
    return layers.Conv2D(filters, kernel, strides=stride, padding=pad_mode, kernel_initializer=kernel_init,
                         bias_initializer=bias_init, name=name)(x)


@keras.saving.register_keras_serializable(package="tfsynth")
class AdaptiveAvgPool2D(layers.Layer):
    """PyTorch's ``AdaptiveAvgPool2d(size)`` for channels-last inputs of any (also unknown) spatial size.

    Output bin i along an axis of length L averages [floor(i L / size), ceil((i + 1) L / size)); bins overlap or
    repeat pixels when L is not a multiple of `size` or smaller than it, exactly as in PyTorch. (Keras's own
    AdaptiveAveragePooling2D needs static spatial sizes.) Load saved models that contain it after importing
    `tfsynth.models.reference_nets`.
    """

    def __init__(self, output_size: int, **kwargs):
        super().__init__(**kwargs)
        self.output_size = int(output_size)

    def _pool_axis(self, x, axis: int):
        from keras import ops

        length = ops.shape(x)[axis]
        size = self.output_size
        bins = []
        for i in range(size):
            start = (i * length) // size
            stop = -((-(i + 1) * length) // size)
            begin = [0, 0, 0, 0]
            extent = [-1, -1, -1, -1]
            begin[axis], extent[axis] = start, stop - start
            bins.append(ops.mean(ops.slice(x, begin, extent), axis=axis))
        return ops.stack(bins, axis=axis)

    def call(self, inputs):
        return self._pool_axis(self._pool_axis(inputs, 1), 2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size, self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


def _classifier_input(x, pooled: int):
    x = AdaptiveAvgPool2D(pooled, name="avgpool")(x)
    x = layers.Permute((3, 1, 2), name="flatten_chw")(x)  # PyTorch flattens (C, H, W)
    return layers.Flatten(name="flatten")(x)


def alexnet(num_classes: int = 1000, input_shape=(None, None, 3), dropout: float = 0.5,
            name: str = "alexnet") -> keras.Model:
    """torchvision ``alexnet`` (the "one weird trick" variant: 64-192-384-256-256 channels), default PyTorch init."""
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    plan = [(64, 11, 4, 2, 0), (192, 5, 1, 2, 3), (384, 3, 1, 1, 6), (256, 3, 1, 1, 8), (256, 3, 1, 1, 10)]
    in_ch = input_shape[-1]
    for filters, kernel, stride, pad, idx in plan:
        init = _torch_linear_init(in_ch * kernel * kernel)
        x = _conv(x, filters, kernel, stride, pad, f"features.{idx}", init, init)
        x = layers.ReLU(name=f"features.{idx + 1}")(x)
        if idx in (0, 3):
            x = layers.MaxPooling2D(3, strides=2, name=f"features.{idx + 2}")(x)
        in_ch = filters
    x = layers.MaxPooling2D(3, strides=2, name="features.12")(x)
    x = _classifier_input(x, 6)
    x = layers.Dropout(dropout, name="classifier.0")(x)
    x = layers.Dense(4096, kernel_initializer=_torch_linear_init(256 * 36),
                     bias_initializer=_torch_linear_init(256 * 36), name="classifier.1")(x)
    x = layers.ReLU(name="classifier.2")(x)
    x = layers.Dropout(dropout, name="classifier.3")(x)
    x = layers.Dense(4096, kernel_initializer=_torch_linear_init(4096), bias_initializer=_torch_linear_init(4096),
                     name="classifier.4")(x)
    x = layers.ReLU(name="classifier.5")(x)
    x = layers.Dense(num_classes, kernel_initializer=_torch_linear_init(4096),
                     bias_initializer=_torch_linear_init(4096), name="classifier.6")(x)
    return keras.Model(inputs, x, name=name)


def vgg16(num_classes: int = 1000, input_shape=(None, None, 3), dropout: float = 0.5,
          name: str = "vgg16") -> keras.Model:
    """torchvision ``vgg16`` (configuration D, no batch norm) with torchvision's initialisation (conv: Kaiming
    normal fan_out, bias 0; Linear: N(0, 0.01), bias 0)."""
    conv_init = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
    linear_init = keras.initializers.RandomNormal(0.0, 0.01)
    inputs = keras.Input(shape=input_shape, name="input")
    x, idx = inputs, 0
    for v in _VGG16_CFG:
        if v == "M":
            x = layers.MaxPooling2D(2, strides=2, name=f"features.{idx}")(x)
            idx += 1
        else:
            x = _conv(x, v, 3, 1, 1, f"features.{idx}", conv_init, "zeros")
            x = layers.ReLU(name=f"features.{idx + 1}")(x)
            idx += 2
    x = _classifier_input(x, 7)
    x = layers.Dense(4096, kernel_initializer=linear_init, name="classifier.0")(x)
    x = layers.ReLU(name="classifier.1")(x)
    x = layers.Dropout(dropout, name="classifier.2")(x)
    x = layers.Dense(4096, kernel_initializer=linear_init, name="classifier.3")(x)
    x = layers.ReLU(name="classifier.4")(x)
    x = layers.Dropout(dropout, name="classifier.5")(x)
    x = layers.Dense(num_classes, kernel_initializer=linear_init, name="classifier.6")(x)
    return keras.Model(inputs, x, name=name)


REFERENCE_NETS = {"alexnet": alexnet, "vgg16": vgg16}


# --- torchvision state_dict mapping (any model whose weighted layers carry torchvision module paths) -------------

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # Keras weight order


def _same(a):
    return a


def torch_layout(model: keras.Model):
    """Yield (layer, [(torch_key, to_keras, to_torch)]) for every weighted layer; convs and Linears with or without
    bias, batch norms (the ResNet mapping of `tfsynth.models.resnet` plus conv biases)."""
    for layer in model.layers:
        n = layer.name
        if isinstance(layer, layers.Conv2D):
            entries = [(f"{n}.weight", lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))]
            if layer.use_bias:
                entries.append((f"{n}.bias", _same, _same))
            yield layer, entries
        elif isinstance(layer, layers.BatchNormalization):
            yield layer, [(f"{n}.{k}", _same, _same) for k in _BN_KEYS]
        elif isinstance(layer, layers.Dense):
            entries = [(f"{n}.weight", np.transpose, np.transpose)]
            if layer.use_bias:
                entries.append((f"{n}.bias", _same, _same))
            yield layer, entries
        elif layer.weights:
            raise ValueError(f"don't know how to map layer {n!r} ({type(layer).__name__}) of {model.name!r}")


def to_torchvision_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """The weights as a torchvision-layout dict (key -> numpy array, PyTorch shapes)."""
    sd = {}
    for layer, entries in torch_layout(model):
        for (key, _, to_torch), w in zip(entries, layer.get_weights()):
            sd[key] = np.ascontiguousarray(to_torch(w))
    return sd


def load_torchvision_state_dict(model: keras.Model, state_dict: Mapping[str, np.ndarray], strict: bool = True,
                                skip: Iterable[str] = ()) -> keras.Model:
    """Assigns a torchvision-layout state dict to `model`; nothing is assigned unless every check passes.

    Layers named in `skip` (e.g. the head being replaced) are neither loaded nor required. `strict`: every other
    weight must be present and no key may be unexpected (``num_batches_tracked`` is ignored); shapes must always
    match."""
    skip = tuple(skip)
    layout = [(layer, entries) for layer, entries in torch_layout(model) if layer.name not in skip]
    state_dict = {k: v for k, v in state_dict.items() if not any(k.startswith(f"{s}.") for s in skip)}
    pending, problems = plan_state_dict_load(layout, state_dict, strict)
    if problems:
        raise ValueError(f"cannot load weights into {model.name!r}: " + "; ".join(problems))
    for var, value in pending:
        var.assign(value)
    return model


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """Arrays keyed by torchvision names from an ``.npz`` or ``.h5``/``.hdf5`` file (nested HDF5 groups are joined
    with '.', e.g. ``features/0/weight`` -> ``features.0.weight``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path} does not exist")
    lower = path.lower()
    if lower.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except Exception as e:  # noqa: BLE001 - zip/pickle/format errors: name the file
            raise ValueError(f"cannot read {path} as an .npz of arrays: {e}") from None
    if lower.endswith(".weights.h5"):
        raise ValueError(f"{path} is a Keras weights file; save the model as .keras, or its torchvision-named "
                         "arrays as .npz, and pass that instead")
    if lower.endswith((".h5", ".hdf5")):
        import h5py

        arrays = {}
        try:
            with h5py.File(path, "r") as f:
                def visit(name, obj):
                    if isinstance(obj, h5py.Dataset):
                        arrays[name.replace("/", ".")] = np.asarray(obj[()])
                f.visititems(visit)
        except OSError as e:
            raise ValueError(f"cannot read {path} as HDF5: {e}") from None
        if not arrays:
            raise ValueError(f"{path} holds no arrays")
        return arrays
    raise ValueError(f"unsupported weights file {path}: expected .keras, .npz, .h5 or .hdf5 "
                     "(a PyTorch .pth must be converted to .npz first, see tfsynth.models.reference_nets)")


def torch_named_net(model: keras.Model) -> keras.Model:
    """`model` itself if its layers carry torchvision names, else its (single) nested model that does."""
    def torch_named(m):
        names = {layer.name for layer in m.layers}
        return "conv1" in names or "features.0" in names
    if torch_named(model):
        return model
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model) and torch_named(layer)]
    if len(nested) != 1:
        raise ValueError(f"{model.name!r} has {len(nested)} nested networks with torchvision layer names "
                         f"({[m.name for m in nested]}); expected one")
    return nested[0]


def state_dict_of_file(path: str) -> dict[str, np.ndarray]:
    """The torchvision-layout weights stored in `path` (.keras model, .npz or .h5 arrays)."""
    if path.lower().endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file {path} does not exist")
        import tfsynth.training.optim  # noqa: F401 - registers TorchSGD for models saved with their optimizer

        from tfsynth.models.files import load_keras_model

        model = load_keras_model(path, "weights")  # ModelFileError (a ValueError) says what a bad file is
        try:
            return to_torchvision_state_dict(torch_named_net(model))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    return read_state_dict(path)


def load_weights(model: keras.Model, path: str, strict: bool = True, skip: Iterable[str] = ()) -> keras.Model:
    """Loads the weights in `path` (.keras, .npz, .h5) into `model` (or its nested torchvision-named network)."""
    try:
        return load_torchvision_state_dict(torch_named_net(model), state_dict_of_file(path), strict, skip)
    except ValueError as e:
        if path in str(e):
            raise
        raise ValueError(f"{path}: {e}") from None


def count_params(model: keras.Model) -> int:
    """Trainable parameters, as torchvision counts `model.parameters()` (batch-norm statistics excluded)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
