"""Multi-view data for DPC: load per-model examples into memory and draw (objects x views) batches.

A source is one of
- 'tfds:name/config:split' — e.g. the multiview_shapes builder (features images, masks, quaternions, points);
- a folder of per-model '.npz' files with arrays images (V, H, W, 3|4) uint8, masks (V, H, W), quaternions (V, 4)
  [w, x, y, z] and points (M, 3) — the simplest way to hand a stylised copy of a dataset to train.shape_pose;
- 'procedural:N' — N procedural objects from `tfsynth.dpc.synthetic` (no renderer, no downloads).
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Optional

import numpy as np

from tfsynth.dpc import synthetic


class SourceError(ValueError):
    """A data source that cannot be read, naming the source and the problem."""


@dataclasses.dataclass
class MultiviewSet:
    images: np.ndarray  # (M, V, H, W, 3) uint8 RGB on white
    masks: np.ndarray  # (M, V, H, W) uint8 0/1
    quaternions: np.ndarray  # (M, V, 4) float32 [w, x, y, z]
    points: list  # M arrays (P, 3) float32, ground-truth clouds
    model_ids: list

    def __len__(self):
        return len(self.images)

    @property
    def num_views(self) -> int:
        return self.images.shape[1]


def _rgb_on_white(images: np.ndarray) -> np.ndarray:
    if images.shape[-1] == 4:
        a = images[..., 3:4].astype(np.float32) / 255.0
        return np.round(images[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)
    if images.shape[-1] == 1:
        return np.repeat(images, 3, -1)
    return images


def _stack(models: list, source: str) -> MultiviewSet:
    if not models:
        raise SourceError(f"{source}: no models found")
    views = {m["images"].shape[:3] for m in models}
    if len(views) != 1:
        raise SourceError(f"{source}: models differ in views/size {sorted(views)}")
    return MultiviewSet(images=np.stack([_rgb_on_white(np.asarray(m["images"])) for m in models]),
                        masks=np.stack([(np.asarray(m["masks"]).reshape(m["images"].shape[:3]) > 0).astype(np.uint8)
                                        for m in models]),
                        quaternions=np.stack([np.asarray(m["quaternions"], np.float32) for m in models]),
                        points=[np.asarray(m["points"], np.float32) for m in models],
                        model_ids=[str(m.get("model_id", i)) for i, m in enumerate(models)])


def load_npz_folder(folder: str, max_models: int = 0) -> MultiviewSet:
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))[: max_models or None]
    models = []
    for f in files:
        try:
            with np.load(f) as z:
                m = {k: z[k] for k in ("images", "masks", "quaternions", "points")}
        except KeyError as err:
            raise SourceError(f"{f}: missing array {err}; need images, masks, quaternions, points") from None
        except (OSError, ValueError) as err:
            raise SourceError(f"{f}: unreadable npz ({err})") from None
        m["model_id"] = os.path.splitext(os.path.basename(f))[0]
        models.append(m)
    return _stack(models, folder)


def save_npz_folder(data: MultiviewSet, folder: str) -> list[str]:
    """Writes one '<model_id>.npz' per model (images, masks, quaternions, points): a source `load_source` reads back.

    The way to hand a restyled copy of a dataset (e.g. AIST-stylised images with the original masks and cameras)
    to train.shape_pose / eval.shape_pose.
    """
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, mid in enumerate(data.model_ids):
        name = str(mid).replace(os.sep, "_") or f"model{i:05d}"
        path = os.path.join(folder, f"{name}.npz")
        np.savez_compressed(path, images=data.images[i], masks=data.masks[i], quaternions=data.quaternions[i],
                            points=data.points[i])
        paths.append(path)
    return paths


def load_tfds(spec: str, data_dir: Optional[str] = None, max_models: int = 0,
              auto_build: bool = False) -> MultiviewSet:
    """'name/config:split' of a TFDS dataset; with `auto_build` a missing dataset of this project is built first
    (the project's build path, `tfsynth.input.datasets.built_builder`: Beam in-process, one build per data_dir)."""
    import tensorflow_datasets as tfds

    from tfsynth.input.datasets import import_tfds_builders

    import_tfds_builders()  # registers multiview_shapes and the project's other builders
    parts = spec.split(":")
    if len(parts) != 2:
        raise SourceError(f"{spec!r}: expected 'tfds:name/config:split'")
    name, split = parts
    from tfsynth.input.datasets import (DataSpecError, built_builder, parse_data_spec, resolve_source,
                                        unknown_dataset_message)

    unknown = unknown_dataset_message(name, f"tfds:{spec}")
    if unknown:
        raise SourceError(unknown)
    if auto_build:
        try:
            (source,) = parse_data_spec(name)
            built_builder(resolve_source(source), data_dir, auto_build=True)
        except (DataSpecError, ValueError) as err:
            raise SourceError(f"tfds:{spec}: {err}") from None
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)
    except Exception as err:  # noqa: BLE001 - TFDS raises many kinds; name the source
        raise SourceError(f"tfds:{spec}: cannot load ({err})") from None
    if max_models:
        ds = ds.take(max_models)
    return from_examples(tfds.as_numpy(ds), f"tfds:{spec}")


def from_examples(examples, source: str = "examples") -> MultiviewSet:
    """MultiviewSet of decoded multiview_shapes examples (dicts with images, masks, quaternions, points)."""
    models = []
    for ex in examples:
        missing = {"images", "masks", "quaternions", "points"} - set(ex)
        if missing:
            raise SourceError(f"{source}: examples lack {sorted(missing)}")
        mid = ex.get("model_id", "")
        models.append({"images": ex["images"], "masks": ex["masks"], "quaternions": ex["quaternions"],
                       "points": ex["points"], "model_id": mid.decode() if isinstance(mid, bytes) else str(mid)})
    return _stack(models, source)


def load_source(source: str, image_size: int = 128, data_dir: Optional[str] = None, max_models: int = 0,
                seed: int = 0, views: int = 5, auto_build: bool = False) -> MultiviewSet:
    if source.startswith("procedural:"):
        try:
            n = int(source.split(":", 1)[1])
        except ValueError:
            raise SourceError(f"{source!r}: expected 'procedural:N'") from None
        n = min(n, max_models) if max_models else n
        return _stack([synthetic.make_model(seed, i, views=views, image_size=image_size) for i in range(n)], source)
    if source.startswith("tfds:"):
        return load_tfds(source[len("tfds:"):], data_dir, max_models, auto_build)
    if os.path.isdir(source):
        return load_npz_folder(source, max_models)
    raise SourceError(f"{source!r}: not 'tfds:...', 'procedural:N' or an existing folder of .npz files")


def sample_batch(data: MultiviewSet, rng: np.random.Generator, batch_models: int, views_per_model: int):
    """Indices (B, V) of models and views: distinct models where possible, distinct views per model."""
    m = rng.choice(len(data), batch_models, replace=len(data) < batch_models)
    v = np.stack([rng.choice(data.num_views, views_per_model, replace=data.num_views < views_per_model)
                  for _ in m])
    return m, v


def gather_batch(data: MultiviewSet, models, views):
    """(images (B*V, H, W, 3) float32 in [0, 1], masks (B*V, H, W, 1) float32, quaternions (B*V, 4))."""
    images = data.images[models[:, None], views].reshape((-1,) + data.images.shape[2:])
    masks = data.masks[models[:, None], views].reshape((-1,) + data.masks.shape[2:] + (1,))
    quats = data.quaternions[models[:, None], views].reshape(-1, 4)
    return images.astype(np.float32) / 255.0, masks.astype(np.float32), quats
