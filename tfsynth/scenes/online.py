"""Noise scenes rendered while training (the TF-free half of `--data noise_scenes_online/<config>`).

An example is a pure function of (config, index) (`tfsynth.scenes.dataset.encoded_example`, the builder's own
function), so the online source renders the stored builder's PNG bytes (image and label map) for any index. A split
holds the stored split's examples: TFDS sorts a split by the MD5 of (split name + key) (`stored_order`), so slices
such as `train[:50%]` select the same scenes online and on disk. Scenes are rendered in chunks of `CHUNK` by the
worker pool of `tfsynth.fractals.online` (results in submission order, whatever the worker count); an epoch's order
is a permutation of the split drawn from (seed, epoch). Generation code: never import TensorFlow here.
"""
from __future__ import annotations

import hashlib
from typing import Iterator, Optional, Sequence

import numpy as np

from tfsynth.fractals.online import default_workers, ordered_calls
from tfsynth.scenes.config import SceneConfig
from tfsynth.scenes.dataset import encoded_example, example_key, split_indices

CHUNK = 4  # scenes per worker call


def render_examples(config: SceneConfig, indices: Sequence[int]) -> list[tuple[bytes, bytes]]:
    """(image PNG, label PNG) of each index: the bytes the `noise_scenes` builder stores (run in a worker)."""
    out = []
    for index in indices:
        _, ex = encoded_example(config, int(index))
        out.append((ex["image"], ex["label"]))
    return out


def stored_order(config: SceneConfig, split: str) -> np.ndarray:
    """The indices of `split` ('train' or 'validation') in the order TFDS stores them."""
    indices = np.asarray(split_indices(config, split), np.int64)
    salt = hashlib.md5(split.encode("utf-8"))

    def digest(index: int) -> bytes:
        md5 = salt.copy()
        md5.update(example_key(int(index)).encode("utf-8"))
        return md5.digest()

    digests = np.array([digest(i) for i in indices], dtype="S16")
    return indices[np.argsort(digests, kind="stable")]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, int(epoch), 0x7363])).permutation(n)


_RENDER = f"{__name__}:render_examples"


def iterate(config: SceneConfig, indices: Sequence[int], order: Optional[np.ndarray] = None,
            workers: Optional[int] = None) -> Iterator[tuple[list[bytes], list[bytes]]]:
    """(image PNGs, label PNGs) per chunk of `indices` taken in `order` (default: as given)."""
    workers = default_workers() if workers is None else workers
    chosen = [int(indices[i]) for i in (range(len(indices)) if order is None else order)]
    chunks = [chosen[i:i + CHUNK] for i in range(0, len(chosen), CHUNK)]
    for pairs in ordered_calls(workers, _RENDER, ((config, chunk) for chunk in chunks)):
        yield [image for image, _ in pairs], [label for _, label in pairs]
