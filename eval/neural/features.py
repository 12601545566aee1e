"""Activations of any Keras model at named layers, batched, for stimuli presented at a visual angle.

Layers are found at any nesting depth (the project's classifiers and backbones keep the ResNet as a nested
functional model whose layers carry torchvision names: 'layer1.0.out' ... 'layer4.2.out' are the outputs of
the residual blocks). `feature_model` builds one multi-output model from the outer inputs to all requested
layers, so the forward pass runs once per batch. Activations are flattened per image (channels-last order;
PLS and RDMs do not depend on the unit order) and stored float32, optionally transformed per batch (PCA).
"""
from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tqdm

__all__ = ["default_layers", "feature_model", "extract_features", "layer_names", "PREPROCESS"]

# Residual-block outputs: torchvision-named tfsynth ResNets, then keras.applications ResNets.
_BLOCK_PATTERNS = (r"^layer\d+\.\d+\.out$", r"^conv\d+_block\d+_out$")

PREPROCESS = {
    # The project's models (tfsynth.models.classifier) normalise inside the model: feed [0, 255] pixels.
    "none": lambda x: x,
    # torchvision ImageNet normalisation on [0, 1] pixels (models without a normalisation layer).
    "torch": lambda x: ((x / 255.0 - np.array([0.485, 0.456, 0.406], np.float32))
                        / np.array([0.229, 0.224, 0.225], np.float32)),
    # keras.applications.resnet 'caffe' mode: BGR, ImageNet mean subtracted, no scaling.
    "caffe": lambda x: x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32),
}


def layer_names(model: keras.Model) -> list[str]:
    """All layer names, nested models included, in graph order (depth-first through nested models)."""
    names = []
    for layer in model.layers:
        names.append(layer.name)
        if isinstance(layer, keras.Model):
            names.extend(layer_names(layer))
    return names


def default_layers(model: keras.Model) -> list[str]:
    """Every residual block output ('layerS.B.out' or keras.applications 'convS_blockB_out'), in depth order."""
    names = layer_names(model)
    for pattern in _BLOCK_PATTERNS:
        found = [n for n in names if re.match(pattern, n)]
        if found:
            return found
    raise ValueError(f"model {model.name!r} has no residual-block outputs named like 'layer1.0.out' or "
                     "'conv2_block1_out'; pass the layers to read explicitly (--layers)")


def _node_in_graph(model: keras.Model, operation):
    """The node of `operation` that belongs to `model`'s graph (layers can be shared between graphs)."""
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation is operation:
                return node
    raise ValueError(f"layer {operation.name!r} is not part of {model.name!r}'s graph")


def _single(inputs):
    return inputs[0] if isinstance(inputs, (list, tuple)) and len(inputs) == 1 else inputs


def _contains(model: keras.Model, name: str) -> bool:
    return name in layer_names(model)


def _symbolic_outputs(model: keras.Model, names: Sequence[str]) -> dict:
    """name -> symbolic tensor in `model`'s own graph."""
    out = {}
    top = {layer.name: layer for layer in model.layers}
    for name in names:
        if name in top:
            tensors = _node_in_graph(model, top[name]).output_tensors
            out[name] = tensors[0] if len(tensors) == 1 else tensors
    rest = [n for n in names if n not in out]
    for sub in model.layers:
        inner_names = [n for n in rest if isinstance(sub, keras.Model) and _contains(sub, n)]
        if not inner_names:
            continue
        inner_out = _symbolic_outputs(sub, inner_names)
        inner = keras.Model(_single(sub.inputs), [inner_out[n] for n in inner_names], name=f"{sub.name}_taps")
        inputs = _node_in_graph(model, sub).input_tensors
        result = inner(inputs[0] if len(inputs) == 1 else inputs)
        result = result if isinstance(result, (list, tuple)) else [result]
        out.update(zip(inner_names, result))
        rest = [n for n in rest if n not in out]
    return out


_TAPS_CACHE: dict = {}


def feature_model(model: keras.Model, layers: Sequence[str]) -> keras.Model:
    """A model from `model`'s inputs to the outputs of `layers` (a list, in the given order); cached per model."""
    key = (id(model), tuple(layers))
    cached = _TAPS_CACHE.get(key)
    if cached is not None and cached[0] is model:
        return cached[1]
    missing = [n for n in layers if not _contains(model, n)]
    if missing:
        raise ValueError(f"layer(s) {missing} not found in model {model.name!r}; e.g. "
                         f"{', '.join(layer_names(model)[-8:])}")
    outputs = _symbolic_outputs(model, list(layers))
    taps = keras.Model(_single(model.inputs), [outputs[n] for n in layers], name=f"{model.name}_features")
    _TAPS_CACHE.clear()  # keep one: a new model or layer set replaces it
    _TAPS_CACHE[key] = (model, taps)
    return taps


def extract_features(model: keras.Model, images: np.ndarray, layers: Sequence[str], batch_size: int = 32,
                     preprocess: str = "none", transforms: Optional[dict[str, Callable]] = None,
                     progress: Optional[Callable[[int, int], None]] = None) -> dict[str, np.ndarray]:
    """{layer: (N, units) float32} for (N, H, W, 3) uint8 model-ready images (see tfsynth.neural.screen.present).

    transforms[layer], if given, maps a (batch, units) float32 block to its stored form (e.g. LayerPCA.transform).
    """
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {sorted(PREPROCESS)}, got {preprocess!r}")
    layers = list(layers)
    taps = feature_model(model, layers)
    transforms = transforms or {}
    store: dict[str, np.ndarray] = {}
    n = len(images)
    bar = tqdm.tqdm(total=n, desc=f"activations ({len(layers)} layers)", unit="img", leave=False,
                    disable=None if n > 4 * batch_size else True)  # None: shown on terminals only
    for start in range(0, n, batch_size):
        batch = PREPROCESS[preprocess](np.asarray(images[start:start + batch_size], np.float32))
        count = len(batch)
        if n > batch_size and count < batch_size:  # pad the last batch: one traced shape for the whole run
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - count, axis=0)])
        outs = taps.predict_on_batch(batch)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for name, value in zip(layers, outs):
            flat = np.asarray(value, np.float32)[:count].reshape(count, -1)
            if name in transforms:
                flat = np.asarray(transforms[name](flat), np.float32)
            if name not in store:
                store[name] = np.empty((n, flat.shape[1]), np.float32)
            store[name][start:start + count] = flat
        bar.update(count)
        if progress:
            progress(min(start + batch_size, n), n)
    bar.close()
    return store
