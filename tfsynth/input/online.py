"""Online sources for `--data`: procedural datasets rendered while training, never written to disk.

    --data fractal_db_online/1k          FractalDB-1k, the examples of `fractal_db/1k`, rendered by worker processes
    --pretrain_data noise_scenes_online/perlin   (train.segment) the scenes of `noise_scenes/perlin`, likewise

`fractal_db_online/<config>` takes every config of the `fractal_db` builder that needs no files (`tiny`, `small`,
`100`, `1k`, `1k_svd`). Its examples are the stored builder's, byte for byte (PNG), and a split (`train`,
`train[:75%]`, ...) holds the same examples as the stored one (`tfsynth.fractals.online`). Each epoch renders its
units in an order drawn from (seed, epoch); the pipeline then shuffles, decodes and crops exactly as for stored
data, so a run is repeatable and resumable, whatever the number of workers (`TFSYNTH_ONLINE_WORKERS`, default:
every core). Category parameters are searched once and cached (`TFSYNTH_CACHE`, default ~/.cache/tfsynth).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfsynth.fractals import online as fractal_online
from tfsynth.input.datasets import DataSpecError

SUFFIX = "_online"
ONLINE_DATASETS = {"fractal_db_online": "fractal_db"}  # online name -> the stored builder it mirrors
_EXCLUDED_CONFIGS = {"1k_csv"}  # needs a --manual_dir of CSV files: build it with tfds


def is_online(name: str) -> bool:
    return name in ONLINE_DATASETS


def online_configs(name: str) -> dict:
    """{config name: FractalDBConfig} of an online dataset."""
    from tfds_builders.fractal_db.fractal_db_dataset_builder import BUILDER_CONFIGS

    return {c.name: c.fractal for c in BUILDER_CONFIGS if c.name not in _EXCLUDED_CONFIGS}


def default_config(name: str) -> str:
    from tfds_builders.fractal_db.fractal_db_dataset_builder import Builder

    return Builder.DEFAULT_BUILDER_CONFIG_NAME


def check_config(name: str, config: str) -> None:
    configs = online_configs(name)
    if config not in configs:
        extra = (f" ({config!r} reads CSV files: build it with `tfds build {ONLINE_DATASETS[name]} --config "
                 f"{config} --manual_dir DIR`)") if config in _EXCLUDED_CONFIGS else ""
        raise DataSpecError(f"unknown config {config!r} of online dataset {name!r} in --data{extra}. "
                              f"Valid configs: {', '.join(configs)}")


_ANNOUNCED: set = set()


def _workers(workers: Optional[int]) -> int:
    """`workers`, else TFSYNTH_ONLINE_WORKERS, else every core; a bad value is a one-line DataSpecError."""
    try:
        return fractal_online.default_workers() if workers is None else int(workers)
    except ValueError as e:
        raise DataSpecError(str(e)) from None


@dataclasses.dataclass
class _Info:
    features: dict
    splits: dict


class OnlineBuilder:
    """Stands in for a TFDS builder in a Mixture: `info.features` ('image', 'label') and per-split datasets."""

    def __init__(self, name: str, config: str, workers: Optional[int] = None, verbose: bool = True,
                 fractal: Optional[fractal_online.FractalDBConfig] = None):
        """`fractal` replaces the named config's FractalDBConfig (benchmarks: the 1k recipe on fewer categories)."""
        check_config(name, config)
        self.name, self.config_name = name, config
        self.fractal = online_configs(name)[config] if fractal is None else fractal
        size, channels = self.fractal.image_size, self.fractal.channels
        self.num_examples_total = self.fractal.num_categories * self.fractal.instances_per_category
        self.info = _Info(features={"image": tfds.features.Image(shape=(size, size, channels),
                                                                 encoding_format="png"),
                                    "label": tfds.features.ClassLabel(num_classes=self.fractal.num_categories)},
                          splits={"train": self.num_examples_total})
        self.categories = fractal_online.cached_category_params(
            self.fractal, progress=(lambda msg: print(f"{name}/{config}: {msg} ...", flush=True)) if verbose else None)
        self.stream = fractal_online.UnitStream(self.fractal, self.categories, _workers(workers))
        self._positions = None
        if verbose and (name, config) not in _ANNOUNCED:
            _ANNOUNCED.add((name, config))
            print(f"{name}/{config}: rendered while training by {self.stream.workers} TF-free worker processes "
                  f"({fractal_online.WORKERS_ENV} sets how many)", flush=True)

    def members(self, split: str) -> np.ndarray:
        """Bool mask over example indices: the examples of `split` (TFDS split syntax over the one split 'train')."""
        try:
            instructions = tfds.core.ReadInstruction.from_spec(split).to_absolute(
                {"train": tfds.core.SplitInfo(name="train", shard_lengths=[self.num_examples_total], num_bytes=0)})
        except (ValueError, KeyError, AssertionError) as e:
            raise DataSpecError(f"bad split {split!r} for {self.name}/{self.config_name} (splits: ['train']): "
                                  f"{e}") from None
        if self._positions is None:
            self._positions = fractal_online.stored_positions(self.fractal, "train")
        mask = np.zeros(self.num_examples_total, bool)
        for ins in instructions:
            start = 0 if ins.from_ is None else ins.from_
            stop = self.num_examples_total if ins.to is None else ins.to
            mask |= (self._positions >= start) & (self._positions < stop)
        return mask

    def count(self, split: str, num_classes: int) -> int:
        members = self.members(split).reshape(self.fractal.num_categories, -1)
        return int(members[:num_classes].sum())

    @tf.autograph.experimental.do_not_convert  # called while tf.data traces an epoch: plain Python, no tensors
    def dataset(self, split: str, num_classes: int, label_offset: int = 0, seed: Optional[int] = None,
                epoch=None) -> tf.data.Dataset:
        """(PNG bytes, int64 label + label_offset) of `split`'s examples with label < num_classes. Without `epoch`:
        in index order; with `epoch` (a scalar tensor) and `seed`: units in the order of (seed, epoch)."""
        units = fractal_online.split_units(self.fractal, self.members(split), num_classes)
        stream = self.stream

        @tf.autograph.experimental.do_not_convert  # a Python generator, called by tf.data: nothing to convert
        def generate(epoch_value=None):
            order = None if epoch_value is None else fractal_online.epoch_order(len(units), seed, int(epoch_value))
            for images, labels in stream.iterate(units, order, label_offset):
                yield np.array(images, dtype=object), np.array(labels, np.int64)

        signature = (tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64))
        if epoch is None:
            ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
        else:
            ds = tf.data.Dataset.from_generator(generate, output_signature=signature,
                                                args=(tf.cast(epoch, tf.int64),))
        # A known length, as for stored splits: Keras then knows the size of a validation set up front (it warns
        # "Your input ran out of data" after a first pass over one of unknown length).
        n = int(sum(len(flips) for unit in units for flips in unit.keep))
        return ds.unbatch().apply(tf.data.experimental.assert_cardinality(n))


# Segmentation: `--data noise_scenes_online/<config>` for train.segment (image + label map per example).
ONLINE_SEGMENTATION = {"noise_scenes_online": "noise_scenes"}


def is_online_segmentation(name: str) -> bool:
    return name in ONLINE_SEGMENTATION


class OnlineScenesBuilder:
    """Stands in for the `noise_scenes` builder in `tfsynth.segmentation.pipeline`: `info.features` ('image', a
    LabeledImage 'label'), `info.splits` and per-split datasets of (image PNG, label PNG), the builder's bytes."""

    def __init__(self, name: str, config: Optional[str] = None, workers: Optional[int] = None, verbose: bool = True,
                 scenes=None):
        from tfds_builders.noise_scenes.noise_scenes_dataset_builder import BUILDER_CONFIGS, CLASS_NAMES, Builder

        configs = {c.name: c.scenes for c in BUILDER_CONFIGS}
        config = config or Builder.DEFAULT_BUILDER_CONFIG_NAME
        if config not in configs:
            raise DataSpecError(f"unknown config {config!r} of online dataset {name!r} in --data. "
                                f"Valid configs: {', '.join(configs)}")
        self.name, self.config_name = name, config
        self.scenes = configs[config] if scenes is None else scenes
        size = self.scenes.image_size
        self.workers = _workers(workers)
        self.info = _Info(features={"image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                                    "label": tfds.features.LabeledImage(labels=list(CLASS_NAMES),
                                                                        shape=(size, size, 1), encoding_format="png")},
                          splits={"train": self.scenes.num_train,
                                  "validation": self.scenes.num_examples - self.scenes.num_train})
        if verbose and (name, config) not in _ANNOUNCED:
            _ANNOUNCED.add((name, config))
            print(f"{name}/{config}: rendered while training by {self.workers} TF-free worker processes "
                  f"({fractal_online.WORKERS_ENV} sets how many)", flush=True)

    def indices(self, split: str) -> np.ndarray:
        """The scene indices of `split` (TFDS split syntax over 'train' and 'validation'), in index order per part."""
        from tfsynth.scenes import online as scenes_online

        infos = {s: tfds.core.SplitInfo(name=s, shard_lengths=[n], num_bytes=0)
                 for s, n in self.info.splits.items() if n}
        try:
            instructions = tfds.core.ReadInstruction.from_spec(split).to_absolute(infos)
        except (ValueError, KeyError, AssertionError) as e:
            raise DataSpecError(f"bad split {split!r} for {self.name}/{self.config_name} "
                                f"(splits: {list(infos)}): {e}") from None
        parts = [np.sort(scenes_online.stored_order(self.scenes, ins.splitname)[ins.from_:ins.to])
                 for ins in instructions]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    @tf.autograph.experimental.do_not_convert  # called while tf.data traces an epoch: plain Python, no tensors
    def dataset(self, split: str, seed: Optional[int] = None, epoch=None) -> tf.data.Dataset:
        """(image PNG, label PNG) of `split`: in index order, or (with `seed` and a scalar tensor `epoch`) in an order
        drawn from (seed, epoch)."""
        from tfsynth.scenes import online as scenes_online

        indices = self.indices(split)
        scenes, workers = self.scenes, self.workers

        @tf.autograph.experimental.do_not_convert  # a Python generator, called by tf.data: nothing to convert
        def generate(epoch_value=None):
            order = None if epoch_value is None else scenes_online.epoch_order(len(indices), seed, int(epoch_value))
            for images, labels in scenes_online.iterate(scenes, indices, order, workers):
                yield np.array(images, dtype=object), np.array(labels, dtype=object)

        signature = (tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string))
        if epoch is None:
            ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
        else:
            ds = tf.data.Dataset.from_generator(generate, output_signature=signature,
                                                args=(tf.cast(epoch, tf.int64),))
        return ds.unbatch().apply(tf.data.experimental.assert_cardinality(len(indices)))
