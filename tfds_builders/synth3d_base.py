"""Shared TFDS builder base and configs of the 3D procedural datasets (proc_synth_db, morph_synth_db, flat_world_db).

A neutral home next to the builders' folders, so that no builder imports a sibling builder: each builder module
subclasses `Synth3dBuilder` and takes its configs from here (FlatWorldDB derives its own from PROC_CONFIGS and
MORPH_CONFIGS). `_render` runs in Beam workers; it lives in this importable module (`tfds_builders.synth3d_base`),
never in a path-loaded builder file, which Beam workers could not unpickle.

The builder process imports TensorFlow, so it never renders: the class search and the renders run in TF-free
worker processes (`tfsynth.render.pool`), which return PNG bytes and NumPy metadata. This also holds for Beam's
multi-processing DirectRunner (its workers import this module, hence TensorFlow, and start their own pool).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import ShardChecksums
from tfsynth.shapes.morph import MorphConfig
from tfsynth.synth3d.config import Synth3DConfig


@dataclasses.dataclass
class Synth3dBuilderConfig(tfds.core.BuilderConfig):
    synth: Synth3DConfig = Synth3DConfig()

    @property
    def num_classes(self) -> int:
        return self.synth.num_classes


def _config(source: str, name: str, description: str, **fields) -> Synth3dBuilderConfig:
    return Synth3dBuilderConfig(name=name, description=description, synth=Synth3DConfig(source=source, **fields))


PROC_CONFIGS = [  # proc_synth_db
    _config("proc", "tiny", "4 classes x 8 instances at 64 px: tests and demo (seconds).",
            num_classes=4, instances_per_class=8, image_size=64, instances_per_unit=4),
    _config("proc", "small", "100 classes x 20 instances at 128 px: a few CPU-minutes.",
            num_classes=100, instances_per_class=20, image_size=128, instances_per_unit=20),
    # 362 px as FractalDB-1k: the Table 2 mixtures then share one recipe (random 224 crops of 362 px images).
    _config("proc", "1k", "1,000 classes x 1,000 instances at 362 px, FractalDB-1k's size (Table 2 of Beyond "
            "Flatland).", num_classes=1000, instances_per_class=1000, image_size=362, instances_per_unit=250),
]

MORPH_CONFIGS = [  # morph_synth_db
    _config("morph", "tiny", "4 classes (morphs of 2 base meshes resampled to 600 vertices) x 8 instances at 64 px: "
            "tests and demo.", num_classes=4, instances_per_class=8, image_size=64, instances_per_unit=4,
            morph_base_classes=2, morph=MorphConfig(target_vertices=600)),
    _config("morph", "small", "100 classes (morphs of 20 base meshes) x 20 instances at 128 px: a few CPU-minutes.",
            num_classes=100, instances_per_class=20, image_size=128, instances_per_unit=20, morph_base_classes=20),
    _config("morph", "1k", "1,000 classes (10 morphs of each of the first 100 ProcSynthDB meshes) x 1,000 instances "
            "at 362 px, FractalDB-1k's size (Table 2 of Beyond Flatland).",
            num_classes=1000, instances_per_class=1000, image_size=362, instances_per_unit=500,
            morph_base_classes=100),
]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def search_workers() -> int:
    """Processes for the class search (TFSYNTH_SEARCH_WORKERS, default: all CPUs)."""
    return _env_int("TFSYNTH_SEARCH_WORKERS", os.cpu_count() or 1)


def _render(unit, config: Synth3DConfig):
    from apache_beam.metrics import Metrics

    from tfsynth.render.pool import get_pool

    pool = get_pool()
    cls, start, stop, attempt, base_attempt = unit
    if pool.size > 1 and stop - start > 1:  # several local workers: split the chunk between them
        bounds = np.linspace(start, stop, min(pool.size, stop - start) + 1).round().astype(int)
        parts = [(cls, int(a), int(b), attempt, base_attempt) for a, b in zip(bounds[:-1], bounds[1:])]
        chunks = pool.map("tfsynth.synth3d.dataset:render_unit_args", [(config, part) for part in parts])
        examples = [item for chunk in chunks for item in chunk]
    else:
        examples = pool.call("tfsynth.synth3d.dataset:render_unit", config, unit)
    retries = sum(int(ex["retries"]) for _, ex in examples)
    Metrics.counter("synth3d", "examples").inc(len(examples))
    if retries:
        Metrics.counter("synth3d", "instance_retries").inc(retries)
    yield from examples


class Synth3dBuilder(ShardChecksums, tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: subclasses set BUILDER_CONFIGS (and HOMEPAGE). TFDS takes the description and citation
    from the README.md and CITATIONS.bib next to the subclass's module (features documented there)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Instance seeds include the source and view mode (ProcSynthDB class k and its MorphSynthDB morph "
                 "no longer share poses and lights); renders with more than half the object blown out to white "
                 "are re-drawn; lights are summed in a fixed order (bytes independent of process history).",
    }
    HOMEPAGE = ""

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config.synth
        size = config.image_size
        f32 = np.float32
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                "label": tfds.features.ClassLabel(num_classes=self.builder_config.num_classes),
                "rotation": tfds.features.Tensor(shape=(4,), dtype=f32),
                "scale": tfds.features.Tensor(shape=(3,), dtype=f32),
                "scale_axes": tfds.features.Tensor(shape=(2,), dtype=np.int32),
                "scale_factors": tfds.features.Tensor(shape=(2,), dtype=f32),
                "camera_pose": tfds.features.Tensor(shape=(4, 4), dtype=f32),
                "camera_yfov": tfds.features.Scalar(dtype=f32),
                "ambient": tfds.features.Scalar(dtype=f32),
                "light_kind": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "light_color": tfds.features.Tensor(shape=(None, 3), dtype=f32),
                "light_intensity": tfds.features.Tensor(shape=(None,), dtype=f32),
                "light_direction": tfds.features.Tensor(shape=(None, 3), dtype=f32),
                "light_position": tfds.features.Tensor(shape=(None, 3), dtype=f32),
                "light_cone": tfds.features.Tensor(shape=(None, 2), dtype=f32),
                "image_transform": tfds.features.Tensor(shape=(2, 3), dtype=f32),
                "flip": tfds.features.Scalar(dtype=np.int32),
                "retries": tfds.features.Scalar(dtype=np.int32),
                "class_attempt": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        from tfsynth.render.pool import get_pool
        from tfsynth.synth3d.classes import search_classes

        config = self.builder_config.synth
        workers = search_workers()
        pool = get_pool(workers)
        table = search_classes(config, config.source, map_fn=pool.map_callable, workers=workers)
        summary = table.summary()
        self.info.metadata["classes"] = summary
        print(f"{self.name}/{self.builder_config.name}: {config.num_classes} classes, minimum D2 distance between "
              f"classes {summary['min_class_distance_d2']} (pair {summary['closest_pair']}), rejected "
              f"{summary['rejected_invalid']} invalid and {summary['rejected_similar']} too-similar meshes", flush=True)
        return {"train": self._generate_examples(table)}

    def _generate_examples(self, table):
        from tfsynth.synth3d.dataset import work_units

        beam = tfds.core.lazy_imports.apache_beam
        config = self.builder_config.synth
        # One element per (class, chunk of instances): a worker builds the class mesh once for the chunk.
        return beam.Create(work_units(config, table)) | "Render3D" >> beam.FlatMap(_render, config=config)
