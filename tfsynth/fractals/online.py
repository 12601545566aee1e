"""FractalDB rendered on the fly by TF-free worker processes (the TF-free half of `--data fractal_db_online/...`).

The online source serves the examples of the stored `fractal_db` builder, byte for byte, without writing them:
  * example indices follow the builder's unit order: index = ((category * W + w) * P + patch) * F + flip position
    over its weight variants (W), patch re-draws (P) and flips (F); `example_keys` lists them;
  * split membership is the stored dataset's: TFDS stores a split sorted by the MD5 of (split name + example key),
    and `stored_positions` computes that order, so `train[:75%]` names the same examples online and on disk;
  * a work unit (category, weight variant) is rendered by `tfsynth.fractals.dataset.render_unit`, the builder's own
    function, in a worker process (`tfsynth.render.pool`, `python -m tfsynth.render.worker`), which returns the PNG
    bytes the builder would store;
  * `UnitStream.iterate` keeps `2 x workers` units in flight and yields their results in submission order, so the
    stream never depends on the number of workers or on which worker finished first.
The order of an epoch is a permutation of the units drawn from (seed, epoch) (`epoch_order`); the tf.data side
(`tfsynth.input.online`) shuffles the examples with a buffer, decodes and crops like the stored path.
Generation code: never import TensorFlow here.
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from tfsynth.fractals.dataset import FractalDBConfig, category_params, example_key, render_unit

WORKERS_ENV = "TFSYNTH_ONLINE_WORKERS"
CACHE_ENV = "TFSYNTH_CACHE"


def default_workers() -> int:
    """`TFSYNTH_ONLINE_WORKERS`, else every core of the machine."""
    value = os.environ.get(WORKERS_ENV)
    if value is None:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def example_keys(config: FractalDBConfig) -> list[str]:
    """The builder's example keys in index (unit) order."""
    return [example_key(c, w, p, f) for c in range(config.num_categories) for w in config.weight_indices
            for p in range(config.patches_per_weight) for f in config.flips]


def stored_positions(config: FractalDBConfig, split_name: str = "train") -> np.ndarray:
    """positions[i]: where example i sits in the stored split (TFDS sorts a split by the 128-bit MD5 of the split
    name followed by the key, `tensorflow_datasets.core.hashing.Hasher`; 16-byte big-endian digests sort alike)."""
    salt = hashlib.md5(split_name.encode("utf-8"))

    def digest(key: str) -> bytes:
        md5 = salt.copy()
        md5.update(key.encode("utf-8"))
        return md5.digest()

    digests = np.array([digest(k) for k in example_keys(config)], dtype="S16")
    positions = np.empty(len(digests), np.int64)
    positions[np.argsort(digests, kind="stable")] = np.arange(len(digests))
    return positions


def _cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "tfsynth")


def cached_category_params(config: FractalDBConfig, progress=None) -> list[np.ndarray]:
    """`category_params(config)` ('official' or 'svd' sampler), cached in `$TFSYNTH_CACHE` (default ~/.cache/tfsynth)
    because the official search takes minutes for 1,000 categories. The cache file is named by a hash of every
    field that decides the categories; `progress(message)` is told when the search runs."""
    if config.sampler == "csv":
        raise ValueError("the online source takes the 'official' and 'svd' samplers; build 'csv' configs with tfds")
    key = repr((config.num_categories, config.sampler, config.search, config.svd_seed))
    path = os.path.join(_cache_dir(), "fractal_categories",
                        hashlib.sha256(key.encode()).hexdigest()[:16] + ".npz")
    if os.path.exists(path):
        with np.load(path) as data:
            return [data[f"c{i}"] for i in range(config.num_categories)]
    if progress is not None:
        progress(f"searching {config.num_categories} FractalDB categories ({config.sampler} sampler; cached in {path})")
    categories = category_params(config)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **{f"c{i}": c for i, c in enumerate(categories)})
    os.replace(tmp, path)
    return categories


def render_unit_pngs(config: FractalDBConfig, category: int, params: np.ndarray, weight_index: int,
                     patch_indices: Sequence[int]) -> list[tuple[int, int, bytes]]:
    """(patch_index, flip, PNG bytes) of the given patch re-draws of one unit: the builder's bytes (run in a worker)."""
    return [(int(ex["patch_index"]), int(ex["flip"]), ex["image"])
            for _, ex in render_unit(config, category, params, weight_index, patch_indices)]


@dataclasses.dataclass(frozen=True)
class Unit:
    """One (category, weight variant) with the patch re-draws to render and the flips to keep (per patch)."""

    category: int
    weight_index: int
    patches: tuple  # patch indices to render
    keep: tuple  # per patch: the flips whose examples are in the split


def split_units(config: FractalDBConfig, members: np.ndarray, num_classes: Optional[int] = None) -> list[Unit]:
    """The units holding at least one member (a bool mask over example indices) with category < num_classes."""
    n_flips, n_patches = len(config.flips), config.patches_per_weight
    mask = np.asarray(members, bool).reshape(config.num_categories, len(config.weight_indices), n_patches, n_flips)
    units = []
    for c in range(config.num_categories if num_classes is None else min(num_classes, config.num_categories)):
        for w_pos, w in enumerate(config.weight_indices):
            patches = [p for p in range(n_patches) if mask[c, w_pos, p].any()]
            if patches:
                keep = tuple(tuple(f for f_pos, f in enumerate(config.flips) if mask[c, w_pos, p, f_pos])
                             for p in patches)
                units.append(Unit(c, w, tuple(patches), keep))
    return units


def epoch_order(num_units: int, seed: int, epoch: int) -> np.ndarray:
    """The units' order in epoch `epoch`: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, int(epoch), 0x6F6E6C])).permutation(
        num_units)


_POOLS: dict[int, object] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(workers: int):
    """The process-wide pool of `workers` TF-free render workers (own process group: Ctrl-C reaches the parent,
    which closes them at exit; a killed parent closes their stdin, and they exit)."""
    from tfsynth.render.pool import RenderPool

    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None or pool._closed:  # noqa: SLF001 - same package family
            pool = _POOLS[workers] = RenderPool(workers, own_process_group=True)
        return pool


def close_pools() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


atexit.register(close_pools)

_RENDER = f"{__name__}:render_unit_pngs"


class UnitStream:
    """Renders units of one config in worker processes; yields per unit (list of PNG bytes, list of labels)."""

    def __init__(self, config: FractalDBConfig, categories: list[np.ndarray], workers: Optional[int] = None):
        self.config = config
        self.categories = categories
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def iterate(self, units: Sequence[Unit], order: Optional[np.ndarray] = None,
                label_offset: int = 0) -> Iterator[tuple[list[bytes], list[int]]]:
        """Units in `order` (default: as given), each as (PNG bytes, labels) of its kept examples in (patch, flip)
        order. Up to 2 x workers units are in flight; results come back in submission order."""
        chosen = [units[i] for i in (range(len(units)) if order is None else order)]
        calls = ((self.config, u.category, self.categories[u.category], u.weight_index, u.patches) for u in chosen)
        for unit, results in zip(chosen, ordered_calls(self.workers, _RENDER, calls)):
            keep = dict(zip(unit.patches, unit.keep))
            images = [png for patch, flip, png in results if flip in keep[patch]]
            yield images, [unit.category + label_offset] * len(images)


def ordered_calls(workers: int, func: str, calls: Iterable[tuple]) -> Iterator:
    """func(*args) for every args of `calls` ('module:function', run by the pool of `workers`), results in the
    order of `calls`, with up to 2 x workers calls in flight: the output never depends on the worker count."""
    pool = get_pool(workers)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tfsynth-online")
    pending: collections.deque = collections.deque()
    todo = iter(calls)
    try:
        for args in todo:
            pending.append(executor.submit(pool.call, func, *args))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            args = next(todo, None)
            if args is not None:
                pending.append(executor.submit(pool.call, func, *args))
            yield result
    finally:  # also on GeneratorExit (a consumer that stops early): drop queued calls, wait for running ones
        executor.shutdown(wait=True, cancel_futures=True)
