"""Keras 3 FCN semantic segmentation models that match torchvision's ``fcn_resnet50`` / ``fcn_resnet101``.

torchvision (``torchvision.models.segmentation.fcn``)::

    backbone      ResNet with replace_stride_with_dilation=[False, True, True]  (output stride 8)
    classifier    FCNHead(2048, num_classes): Conv3x3(2048 -> 512, padding 1, no bias), BatchNorm, ReLU,
                  Dropout(0.1), Conv1x1(512 -> num_classes, bias)
    aux_classifier  FCNHead(1024, num_classes) on layer3 (inter channels 1024 // 4 = 256), when aux_loss
    output        {"out": bilinear(classifier(layer4)), "aux": bilinear(aux_classifier(layer3))}, each upsampled
                  to the input size with F.interpolate(mode="bilinear", align_corners=False)

Here the same graph is one functional model::

    image (B, H, W, 3) -> ['normalize'] -> 'backbone' (nested: torchvision-named ResNet layers, returns
    {'out': layer4, 'aux': layer3}) -> 'classifier.0' ... 'classifier.4' -> 'upsample' -> outputs['out']
                                    -> 'aux_classifier.0' ... '.4' -> 'aux_upsample' -> outputs['aux']

Outputs are a dict of float32 logits (B, H, W, num_classes) (also under a mixed-precision policy).
Layer names are torchvision ``state_dict`` module paths, so ``load_torchvision_fcn_state_dict`` maps a
torchvision checkpoint (converted to numpy arrays) one-to-one. Parameter counts (trainable weights, as
``sum(p.numel() for p in model.parameters())``) for 21 classes: 32,957,013 without and 35,322,218 with
the auxiliary head, as torchvision.

Upsampling: ``tf.image.resize(method='bilinear')`` uses half-pixel centres without antialiasing, which is
exactly PyTorch's ``align_corners=False`` bilinear interpolation (source coordinate
``(dst + 0.5) * in / out - 0.5``, clamped at 0); tested against a NumPy transcription of PyTorch's formula.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfsynth.models import resnet as resnet_lib
from tfsynth.models.classifier import normalization_layer
from tfsynth.imagenet import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["fcn_resnet", "fcn_resnet50", "fcn_resnet101", "BilinearResizeLike", "IMAGENET_MEAN", "IMAGENET_STD",
           "load_torchvision_fcn_state_dict", "to_torchvision_fcn_state_dict", "transfer_weights",
           "transfer_state_dict", "save_torchvision_npz", "load_npz",
           "backbone_of", "count_trainable", "DilatedConv2D", "SegmentationCrossEntropy"]



@keras.saving.register_keras_serializable(package="tfsynth")
class BilinearResizeLike(layers.Layer):
    """Resizes ``inputs[0]`` (B, h, w, C) to the spatial size of ``inputs[1]`` (B, H, W, ...), bilinearly with
    PyTorch ``align_corners=False`` semantics (half-pixel centres, no antialiasing)."""

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        return tf.image.resize(x, size, method="bilinear", antialias=False)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


DILATED_CONV_IMPLEMENTATIONS = ("auto", "native", "im2col")


@keras.saving.register_keras_serializable(package="tfsynth")
class DilatedConv2D(layers.Conv2D):
    """Conv2D whose dilated, stride-1, 'same' convolutions can run as im2col + one matmul.

    TensorFlow's CPU kernels have no dilated Conv2D gradient, so ``tf.nn.convolution`` falls back to
    SpaceToBatch -> conv -> BatchToSpace, whose backward pass is slow; gathering the k*k dilated taps of the
    zero-padded input into channels and multiplying once with the (k*k*C_in, C_out) kernel computes the same
    (to float rounding) with the same weights. Measured on 2 CPU cores: 2.4-20x faster for one layer4 conv's
    forward + backward, about 2x for a whole FCN-ResNet-50 training step at 32-64 px, on par at 128 px
    (benchmarks/bench_segmentation.py). ``implementation``: 'native' (always
    tf.nn.convolution), 'im2col', or 'auto' (im2col unless a GPU is visible when the graph is traced; the
    im2col tensor holds k*k copies of the input, which matters at full resolution on accelerators).
    """

    def __init__(self, *args, implementation: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        if implementation not in DILATED_CONV_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {DILATED_CONV_IMPLEMENTATIONS}, got {implementation!r}")
        self.implementation = implementation

    def _use_im2col(self) -> bool:
        eligible = (max(self.dilation_rate) > 1 and tuple(self.strides) == (1, 1) and self.padding == "same"
                    and self.data_format == "channels_last" and all(k % 2 for k in self.kernel_size)
                    and self.groups == 1)
        if not eligible or self.implementation == "native":
            return False
        return self.implementation == "im2col" or not tf.config.list_logical_devices("GPU")

    def convolution_op(self, inputs, kernel):
        if not self._use_im2col():
            return super().convolution_op(inputs, kernel)
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation_rate
        ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
        padded = tf.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
        taps = [padded[:, i * dh:i * dh + height, j * dw:j * dw + width, :] for i in range(kh) for j in range(kw)]
        columns = tf.concat(taps, axis=-1)  # (B, H, W, kh * kw * C_in), tap order = kernel's (i, j, c) order
        return tf.einsum("bhwc,cd->bhwd", columns, tf.reshape(kernel, [-1, kernel.shape[-1]]))

    def get_config(self):
        return {**super().get_config(), "implementation": self.implementation}


def _use_dilated_conv2d(net: keras.Model, implementation: str) -> keras.Model:
    """Turns the dilated Conv2D layers of a freshly built ResNet into DilatedConv2D, in place.

    DilatedConv2D only adds an attribute and overrides ``convolution_op``, so switching the class of the
    existing layer objects keeps the graph, names and initial weights (``keras.models.clone_model`` would do
    the same but costs ~3 s per ResNet-50).
    """
    for layer in net.layers:
        if type(layer) is layers.Conv2D and max(layer.dilation_rate) > 1:
            layer.__class__ = DilatedConv2D
            layer.implementation = implementation
    return net


def _torch_default_conv_init(fan_in: int):
    """nn.Conv2d's default init: kaiming_uniform_(a=sqrt(5)) -> U(+-1/sqrt(fan_in)) for weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)
    kernel = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")  # bound sqrt(3 * (1/3) / fan_in)
    bias = keras.initializers.RandomUniform(-bound, bound)
    return kernel, bias


def _fcn_head(x, in_channels: int, num_classes: int, prefix: str, dropout: float):
    """torchvision FCNHead(in_channels, num_classes): inter_channels = in_channels // 4."""
    inter = in_channels // 4
    kernel_init, _ = _torch_default_conv_init(in_channels * 9)
    x = layers.Conv2D(inter, 3, padding="same", use_bias=False, kernel_initializer=kernel_init,
                      name=f"{prefix}.0")(x)  # padding=1 at stride 1 == 'same'
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{prefix}.1")(x)  # PyTorch momentum 0.1
    x = layers.ReLU(name=f"{prefix}.2")(x)
    x = layers.Dropout(dropout, name=f"{prefix}.3")(x)
    kernel_init, bias_init = _torch_default_conv_init(inter)
    return layers.Conv2D(num_classes, 1, kernel_initializer=kernel_init, bias_initializer=bias_init,
                         name=f"{prefix}.4")(x)


def fcn_resnet(depth: int = 50, num_classes: int = 21, aux_loss: bool = False,
               input_shape: Sequence[Optional[int]] = (None, None, 3), dropout: float = 0.1,
               mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
               dilated_conv: str = "auto", name: Optional[str] = None) -> keras.Model:
    """torchvision ``fcn_resnet{depth}(weights=None, weights_backbone=None, num_classes, aux_loss)`` in Keras.

    Without ``mean``/``std`` the model takes normalised images, as torchvision's. With them it takes [0, 255]
    pixels (uint8 or float) and starts with a 'normalize' layer computing ``(x / 255 - mean) / std``, as
    torchvision's ``ToTensor`` + ``Normalize`` (torchvision's reference: ImageNet mean/std, ``IMAGENET_MEAN``).
    Returns a model whose output is ``{'out': logits}`` or ``{'out': logits, 'aux': aux_logits}``.
    ``dilated_conv``: how the backbone's dilated 3x3 convs run ('auto', 'native', 'im2col'; see DilatedConv2D);
    it changes speed and memory only, not the weights or the function.
    """
    if depth not in (50, 101):
        raise ValueError(f"torchvision has FCN with ResNet-50 and ResNet-101 backbones, got depth {depth}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if dilated_conv not in DILATED_CONV_IMPLEMENTATIONS:
        raise ValueError(f"dilated_conv must be one of {DILATED_CONV_IMPLEMENTATIONS}, got {dilated_conv!r}")
    net = resnet_lib.resnet(depth, include_top=False, input_shape=tuple(input_shape),
                            replace_stride_with_dilation=(False, True, True), name=f"resnet{depth}")
    if dilated_conv != "native":
        net = _use_dilated_conv2d(net, dilated_conv)

    def last_block(stage: int) -> str:
        return max((layer.name for layer in net.layers
                    if layer.name.startswith(f"layer{stage}.") and layer.name.endswith(".out")),
                   key=lambda name: int(name.split(".")[1]))

    feature_outputs = {"out": net.get_layer(last_block(4)).output}
    if aux_loss:
        feature_outputs["aux"] = net.get_layer(last_block(3)).output
    backbone = keras.Model(net.input, feature_outputs, name="backbone")  # torchvision's IntermediateLayerGetter

    images = keras.Input(shape=tuple(input_shape), name="image")
    x = images
    if mean is not None:
        x = normalization_layer(mean, std)(x)
    features = backbone(x)
    logits = _fcn_head(features["out"], 2048, num_classes, "classifier", dropout)
    outputs = {"out": BilinearResizeLike(dtype="float32", name="upsample")([logits, x])}
    if aux_loss:
        aux = _fcn_head(features["aux"], 1024, num_classes, "aux_classifier", dropout)
        outputs["aux"] = BilinearResizeLike(dtype="float32", name="aux_upsample")([aux, x])
    return keras.Model(images, outputs, name=name or f"fcn_resnet{depth}")


def fcn_resnet50(**kw) -> keras.Model:
    return fcn_resnet(50, **kw)


def fcn_resnet101(**kw) -> keras.Model:
    return fcn_resnet(101, **kw)


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested 'backbone' model (torchvision-named ResNet layers) of an ``fcn_resnet`` model."""
    return model.get_layer("backbone")


def count_trainable(model: keras.Model) -> int:
    """sum(p.numel() for p in model.parameters()) of the torchvision model: trainable weights only."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# --- torchvision state_dict mapping ----------------------------------------------------------------------------

def _head_entries(model: keras.Model):
    """(layer, [(torch key, to_keras, to_torch)]) for the head layers (conv OIHW <-> HWIO, BN as is)."""
    def same(a):
        return a

    conv = (lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))
    for layer in model.layers:
        n = layer.name
        if not (n.startswith("classifier.") or n.startswith("aux_classifier.")) or not layer.weights:
            continue
        if isinstance(layer, layers.Conv2D):
            entries = [(f"{n}.weight", *conv)]
            if layer.use_bias:
                entries.append((f"{n}.bias", same, same))
        elif isinstance(layer, layers.BatchNormalization):
            entries = [(f"{n}.{k}", same, same) for k in ("weight", "bias", "running_mean", "running_var")]
        else:
            raise ValueError(f"don't know how to map layer {n!r}")
        yield layer, entries


def to_torchvision_fcn_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """Weights in torchvision's FCN state_dict layout ('backbone.conv1.weight', 'classifier.0.weight', ...)."""
    sd = {f"backbone.{k}": v for k, v in resnet_lib.to_torchvision_state_dict(backbone_of(model)).items()}
    for layer, entries in _head_entries(model):
        for (key, _, to_torch), w in zip(entries, layer.get_weights()):
            sd[key] = np.ascontiguousarray(to_torch(w))
        if isinstance(layer, layers.BatchNormalization):
            sd[f"{layer.name}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return sd


def load_torchvision_fcn_state_dict(model: keras.Model, state_dict, strict: bool = True) -> keras.Model:
    """Loads a torchvision ``fcn_resnet*`` state_dict (name -> numpy array) into an ``fcn_resnet`` model.

    All checks run before anything is assigned; missing/unexpected keys (strict) and shape mismatches raise
    ValueError naming them. ``num_batches_tracked`` entries are optional and ignored.
    """
    backbone_sd = {k[len("backbone."):]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    head_sd = {k: v for k, v in state_dict.items() if not k.startswith("backbone.")}
    pending, problems = resnet_lib.plan_state_dict_load(_head_entries(model), head_sd, strict, label="head ")
    backbone_pending, backbone_problems = resnet_lib.plan_state_dict_load(
        resnet_lib.torch_layout(backbone_of(model)), backbone_sd, strict, label="backbone ")
    problems += backbone_problems
    if problems:
        raise ValueError(f"cannot load state_dict into {model.name!r}: " + "; ".join(problems))
    for var, value in pending + backbone_pending:  # assigned only once head and backbone both passed
        var.assign(value)
    return model


# --- weight transfer between FCNs ------------------------------------------------------------------------------

TRANSFER_MODES = ("backbone", "matching")


def transfer_state_dict(state_dict, target: keras.Model, mode: str = "backbone") -> dict[str, list[str]]:
    """Initialises `target` (an ``fcn_resnet`` model) from a torchvision-layout FCN state_dict, e.g. the weights of
    a 4-class pre-training run for a 21-class COCO model.

    mode 'backbone': only 'backbone.*' (every backbone weight must be present with the right shape); both heads
    keep their fresh initialisation.
    mode 'matching': every layer whose weights are all present with equal shapes: the backbone and the heads'
    3x3 conv and batch norm, not the final 1x1 convs when the class counts differ (an aux head only if the
    source had one). This is what the seed author's code does (``load_state_dict`` of all but ``classifier.4``).
    Returns {'transferred': [...], 'kept': [...]}: module paths of the target's layers, by what happened.
    """
    if mode not in TRANSFER_MODES:
        raise ValueError(f"transfer mode must be one of {TRANSFER_MODES}, got {mode!r}")
    own = to_torchvision_fcn_state_dict(target)  # names and shapes of the target
    modules: dict[str, list[str]] = {}
    for key in own:
        if not key.endswith("num_batches_tracked"):
            modules.setdefault(key.rsplit(".", 1)[0], []).append(key)
    chosen, transferred, kept = {}, [], []
    for module, keys in modules.items():
        in_backbone = module.startswith("backbone.")
        ok = all(k in state_dict and np.shape(state_dict[k]) == own[k].shape for k in keys)
        if in_backbone and not ok:
            bad = [k for k in keys if k not in state_dict or np.shape(state_dict[k]) != own[k].shape]
            raise ValueError(f"cannot transfer the backbone: {bad[0]} is "
                             + ("missing" if bad[0] not in state_dict else
                                f"{np.shape(state_dict[bad[0]])}, expected {own[bad[0]].shape}")
                             + " in the source weights (a different architecture?)")
        if ok and (in_backbone or mode == "matching"):
            chosen.update({k: state_dict[k] for k in keys})
            transferred.append(module)
        else:
            kept.append(module)
    load_torchvision_fcn_state_dict(target, chosen, strict=False)
    return {"transferred": transferred, "kept": kept}


def transfer_weights(source: keras.Model, target: keras.Model, mode: str = "backbone") -> dict[str, list[str]]:
    """`transfer_state_dict` from another ``fcn_resnet`` model."""
    return transfer_state_dict(to_torchvision_fcn_state_dict(source), target, mode)


def save_torchvision_npz(model: keras.Model, path: str) -> None:
    """The weights as an .npz in torchvision's FCN state_dict layout (loads into torchvision's fcn_resnet50 with
    ``model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()})``)."""
    with open(path, "wb") as f:
        np.savez(f, **to_torchvision_fcn_state_dict(model))


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# --- loss -------------------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="tfsynth")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Pixel-wise cross-entropy on logits, ``F.cross_entropy(logits, target, ignore_index=255)`` of PyTorch.

    The mean runs over every non-ignored pixel of the batch (not per image first), as PyTorch's reduction='mean'
    with ignore_index. Labels: (B, H, W) or (B, H, W, 1) integers. A batch without any labelled pixel gives 0
    (PyTorch: NaN).
    """

    def __init__(self, ignore_index: int = 255, name: str = "segmentation_cross_entropy", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        labels = tf.cast(y_true, tf.int32)
        if labels.shape.rank == 4:
            labels = labels[..., 0]
        valid = tf.not_equal(labels, self.ignore_index)
        safe = tf.where(valid, labels, tf.zeros_like(labels))
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=tf.cast(y_pred, tf.float32))
        weights = tf.cast(valid, tf.float32)
        return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

    def get_config(self):
        return {"name": self.name, "ignore_index": self.ignore_index}
