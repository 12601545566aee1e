"""The seeded rule that both sides use for weights and inputs (NumPy only: runs in the reference's scratch
environment and in the tests, which need neither torch nor the references).

Every state-dict entry is drawn from its own generator, seeded by (seed, CRC-32 of the key), so a value depends
only on the seed, the key and the shape, not on which other keys exist or their order. Distributions keep
activations O(1) through deep nets and make every tensor non-trivial:

* conv / linear weights (ndim >= 2): N(0, std^2), fan_in = prod(shape[1:]) (PyTorch OIHW / (out, in));
  std sqrt(2 / fan_in) (He);
* batch-norm ``weight`` (ndim 1, a ``running_var`` sibling exists): U(0.5, 1.5); ``bias``: N(0, 0.2);
  ``running_mean``: N(0, 0.5); ``running_var``: U(0.5, 2.0); ``num_batches_tracked``: 0;
* any other ndim-1 ``weight`` (instance/affine norms): U(0.5, 1.5); other ``bias``: N(0, 0.1).
"""
from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import numpy as np

__all__ = ["seeded_state_dict", "seeded_inputs", "key_rng"]


def key_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def _normal(rng, shape, std):
    # float32 draws: VGG-16's 138M weights stay cheap to regenerate in the tests.
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= np.float32(std)
    return out


def _uniform(rng, shape, low, high):
    out = rng.random(shape, dtype=np.float32)
    out *= np.float32(high - low)
    out += np.float32(low)
    return out


def _draw(seed: int, key: str, shape: Sequence[int], is_bn: bool) -> np.ndarray:
    rng = key_rng(seed, key)
    shape = tuple(int(s) for s in shape)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    if leaf == "running_mean":
        return _normal(rng, shape, 0.5)
    if leaf == "running_var":
        return _uniform(rng, shape, 0.5, 2.0)
    if leaf == "weight" and len(shape) >= 2:
        return _normal(rng, shape, float(np.sqrt(2.0 / int(np.prod(shape[1:])))))
    if leaf == "weight":
        return _uniform(rng, shape, 0.5, 1.5)
    if leaf == "bias":
        return _normal(rng, shape, 0.2 if is_bn else 0.1)
    raise ValueError(f"no seeded rule for state-dict key {key!r} {shape}")


def seeded_state_dict(shapes: Mapping[str, Sequence[int]], seed: int) -> dict[str, np.ndarray]:
    """{key: array} for {key: shape} (a state dict's keys and shapes), by the rule above."""
    bn_prefixes = {k.rsplit(".", 1)[0] for k in shapes if k.endswith(".running_var")}
    return {key: _draw(seed, key, shape, key.rsplit(".", 1)[0] in bn_prefixes)
            for key, shape in sorted(shapes.items())}


def seeded_inputs(shape: Sequence[int], seed: int) -> np.ndarray:
    """N(0, 1) float32 inputs of `shape` (NCHW on the torch side; the tests transpose to NHWC)."""
    return np.random.default_rng([int(seed), 0x1A9C7]).standard_normal(tuple(shape), dtype=np.float32)
