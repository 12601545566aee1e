"""Noise-textured ellipsoid scenes with label maps (Holm 2022) as a TFDS builder; rendering lives in `tfsynth.scenes`.

    tfds build tfds_builders/noise_scenes --config perlin_tiny
    tfds build noise_scenes --imports tfds_builders.noise_scenes --config perlin \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import ShardChecksums
from tfsynth.scenes.config import SceneConfig
from tfsynth.scenes.dataset import SPLITS, encoded_example, split_indices

CLASS_NAMES = ("background", "class_1", "class_2", "class_3")


@dataclasses.dataclass
class NoiseScenesBuilderConfig(tfds.core.BuilderConfig):
    scenes: SceneConfig = SceneConfig()


def _config(name: str, description: str, **fields) -> NoiseScenesBuilderConfig:
    return NoiseScenesBuilderConfig(name=name, description=description, scenes=SceneConfig(**fields))


_TINY = dict(image_size=64, num_train=12, num_validation=4)
_SMALL = dict(image_size=256, num_train=900, num_validation=100)

BUILDER_CONFIGS = [
    _config("perlin", "10,000 scenes at 512 px (9,000 train + 1,000 validation), improved Perlin noise: the seed's "
            "`perlin` dataset.", noise="perlin"),
    _config("sc", "10,000 scenes at 512 px (9,000 + 1,000), sparse convolution noise: the seed's `sc` dataset.",
            noise="sc"),
    _config("perlin_small", "1,000 scenes at 256 px (900 + 100), Perlin: laptop-sized experiments.",
            noise="perlin", **_SMALL),
    _config("sc_small", "1,000 scenes at 256 px (900 + 100), sparse convolution.", noise="sc", **_SMALL),
    _config("perlin_tiny", "16 scenes at 64 px (12 + 4), Perlin: tests and demos.", noise="perlin", **_TINY),
    _config("sc_tiny", "16 scenes at 64 px (12 + 4), sparse convolution: tests and demos.", noise="sc", **_TINY),
]


def _encode(index: int, config: SceneConfig):
    return encoded_example(config, index)


class Builder(ShardChecksums, tfds.core.GeneratorBasedBuilder):
    """Noise-textured ellipsoid scenes with class and instance label maps (Holm 2022)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "perlin_tiny"

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config.scenes
        size = config.image_size
        if config.num_classes != len(CLASS_NAMES):
            raise ValueError(f"config {self.builder_config.name}: {config.num_classes} classes, "
                             f"names for {len(CLASS_NAMES)}")
        float_scalar = lambda doc: tfds.features.Scalar(dtype=np.float32, doc=doc)  # noqa: E731
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png", doc="rendered scene"),
                "label": tfds.features.LabeledImage(labels=list(CLASS_NAMES), shape=(size, size, 1),
                                                    encoding_format="png", doc="class per pixel, 0 background"),
                "instance": tfds.features.Image(shape=(size, size, 1), encoding_format="png",
                                                doc="0 background, i + 1 for objects[i]"),
                "background_scale": float_scalar("noise scale of the background"),
                "index": tfds.features.Scalar(dtype=np.int32, doc="example index (pure function of config, index)"),
                "objects": tfds.features.Sequence({
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES), doc="object class 1..3"),
                    "center": tfds.features.Tensor(shape=(3,), dtype=np.float32, doc="world (x, y, z)"),
                    "scale": float_scalar("uniform scale of the unit sphere"),
                    "elongation": float_scalar("rho in [0, 1], 0.5 = no elongation (Listing 3)"),
                    "semi_axes": tfds.features.Tensor(shape=(3,), dtype=np.float32, doc="ellipsoid semi-axes"),
                    "hue": float_scalar("degrees; colour HSL(hue, 1, 0.5)"),
                    "noise_scale": float_scalar("r: noise evaluated at r * unit normal"),
                    "kd": float_scalar("diffuse coefficient"),
                    "ks": float_scalar("specular coefficient"),
                    "shininess": float_scalar("Phong exponent"),
                    "area": tfds.features.Scalar(dtype=np.int32, doc="visible pixels"),
                }),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/sorenmulli/imgseg-fake-balloons",
            metadata=tfds.core.MetadataDict(),  # shard_sha256 (ShardChecksums)
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config.scenes
        return {split: self._generate_examples(split) for split in SPLITS if len(split_indices(config, split))}

    def _generate_examples(self, split: str):
        beam = tfds.core.lazy_imports.apache_beam
        config = self.builder_config.scenes
        return beam.Create(list(split_indices(config, split))) | f"Render_{split}" >> beam.Map(_encode, config=config)
