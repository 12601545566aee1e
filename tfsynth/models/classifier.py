"""Self-contained image classifiers for pre-training: pixel normalisation + a torchvision-conformant ResNet.

    image (B, H, W, 3), uint8 or float in [0, 255]
      -> 'normalize'  Rescaling: (x / 255 - mean) / std per channel (FractalDB: mean 0.2, std 0.5)
      -> '<arch>'     tfsynth.models.resnet (nested functional model, torchvision layer names)
      -> 'logits'     float32 even under a mixed-precision policy (softmax lives in the loss)

`backbone_from_classifier` returns the same layers without the fc head, ending at the pooled features, so the
exported backbone needs nothing but Keras to load (only built-in layers are used).
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from tfsynth.models import resnet as resnet_lib

ARCHITECTURES = {f"resnet{d}": getattr(resnet_lib, f"resnet{d}") for d in (18, 34, 50, 101, 152)}


def normalization_layer(mean: Sequence[float], std: Sequence[float], name: str = "normalize") -> keras.layers.Layer:
    """[0, 255] pixels -> (x / 255 - mean) / std per channel, as torchvision ToTensor + Normalize."""
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    return keras.layers.Rescaling(scale=(1.0 / (255.0 * std)).tolist(), offset=(-mean / std).tolist(), name=name)


def build_classifier(num_classes: int, arch: str = "resnet50", mean: Sequence[float] = (0.2, 0.2, 0.2),
                     std: Sequence[float] = (0.5, 0.5, 0.5), name: str = "classifier") -> keras.Model:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    net = ARCHITECTURES[arch](num_classes=num_classes, include_top=True, input_shape=(None, None, 3), name=arch)
    images = keras.Input(shape=(None, None, 3), name="image")
    x = normalization_layer(mean, std)(images)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(net(x))
    return keras.Model(images, logits, name=name)


def backbone_from_classifier(model: keras.Model, name: str = "backbone") -> keras.Model:
    """normalize + ResNet up to 'avgpool' (B, C) of a `build_classifier` model, sharing its weights."""
    arch = next(layer for layer in model.layers if layer.name in ARCHITECTURES)
    features = keras.Model(arch.input, arch.get_layer("avgpool").output, name=f"{arch.name}_features")
    images = keras.Input(shape=(None, None, 3), name="image")
    x = model.get_layer("normalize")(images)
    pooled = keras.layers.Activation("linear", dtype="float32", name="features")(features(x))
    return keras.Model(images, pooled, name=name)
