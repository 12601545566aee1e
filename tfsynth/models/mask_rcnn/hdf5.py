"""Keras-2 HDF5 weight files (the layout of matterport's `mask_rcnn_coco.h5`), read and written with h5py only.

Layout (what Keras 2's `save_weights` wrote): root attribute `layer_names` (bytes, one per layer, possibly split
into `layer_names0`, `layer_names1`, ... when longer than an HDF5 object header allows); one group per layer
with attribute `weight_names` (e.g. `b"conv1/kernel:0"`) and one dataset per weight name (so `conv1/kernel:0`
is the dataset `kernel:0` inside the subgroup `conv1` of the layer group). Files saved with the whole model
(`model.save`) keep this under the group `model_weights`. TF-free.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Sequence

import numpy as np

# An HDF5 object header holds at most 64 KiB; Keras 2 splits longer attributes into numbered chunks.
HDF5_OBJECT_HEADER_LIMIT = 64512


class WeightFileError(ValueError):
    """A weight file that cannot be read as a Keras-2 HDF5 weight file, or does not fit the model."""


def _decode(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_attribute_list(group, name: str) -> list[str]:
    """A (possibly chunked) list-of-strings attribute, as Keras 2 stored it."""
    if name in group.attrs:
        return _decode(group.attrs[name])
    values, chunk = [], 0
    while f"{name}{chunk}" in group.attrs:
        values.extend(_decode(group.attrs[f"{name}{chunk}"]))
        chunk += 1
    return values


def write_attribute_list(group, name: str, values: Sequence[str]) -> None:
    data = np.array([v.encode("utf8") for v in values]) if len(values) else np.zeros((0,), dtype="S1")
    chunks = 1
    parts = np.array_split(data, chunks)
    while any(part.nbytes > HDF5_OBJECT_HEADER_LIMIT for part in parts):
        chunks += 1
        parts = np.array_split(data, chunks)
    if chunks == 1:
        group.attrs[name] = data
    else:
        for i, part in enumerate(parts):
            group.attrs[f"{name}{i}"] = part


def read_weights(path: str) -> "OrderedDict[str, list[tuple[str, np.ndarray]]]":
    """{layer name: [(weight name, array), ...]} in file order, including layers without weights."""
    import h5py

    try:
        f = h5py.File(path, mode="r")
    except OSError as error:
        raise WeightFileError(f"{path}: cannot open as HDF5 ({error})") from error
    with f:
        root = f
        if "layer_names" not in f.attrs and "layer_names0" not in f.attrs and "model_weights" in f:
            root = f["model_weights"]
        layer_names = read_attribute_list(root, "layer_names")
        if not layer_names:
            raise WeightFileError(f"{path}: no 'layer_names' attribute: not a Keras-2 HDF5 weight file "
                                  f"(Keras 3 '.weights.h5' files load with keras_model.load_weights)")
        result = OrderedDict()
        for layer in layer_names:
            if layer not in root:
                raise WeightFileError(f"{path}: layer {layer!r} is listed in layer_names but has no group")
            group = root[layer]
            names = read_attribute_list(group, "weight_names")
            try:
                result[layer] = [(name, np.asarray(group[name])) for name in names]
            except KeyError as error:
                raise WeightFileError(f"{path}: layer {layer!r}: missing weight dataset ({error})") from error
        return result


def write_weights(path: str, layers: Iterable[tuple[str, Sequence[tuple[str, np.ndarray]]]],
                  keras_version: str = "2.2.4-tfsynth", backend: str = "tensorflow") -> None:
    """Writes [(layer name, [(weight name, array), ...]), ...] in the Keras-2 layout (layers in order)."""
    import h5py

    layers = list(layers)
    with h5py.File(path, mode="w") as f:
        write_attribute_list(f, "layer_names", [name for name, _ in layers])
        f.attrs["backend"] = backend.encode("utf8")
        f.attrs["keras_version"] = keras_version.encode("utf8")
        for layer, weights in layers:
            group = f.create_group(layer)
            write_attribute_list(group, "weight_names", [name for name, _ in weights])
            for name, value in weights:
                value = np.asarray(value)
                dataset = group.create_dataset(name, value.shape, dtype=value.dtype)
                if value.shape:
                    dataset[:] = value
                else:
                    dataset[()] = value
