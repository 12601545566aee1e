"""scikit-learn's bundled handwritten digits as a TFDS builder: a real downstream dataset that needs no download.

    tfds build tfds_builders/digits --config 32px
    tfds build digits --imports tfds_builders.digits --config 64px --data_dir ~/tensorflow_datasets

Reading, upsampling and the seeded split live in `tfsynth.transfer.digits` (TF-free); this builder only encodes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import ShardChecksums
from tfsynth.transfer.digits import NUM_CLASSES, SPLITS, DigitsConfig, examples


@dataclasses.dataclass
class DigitsBuilderConfig(tfds.core.BuilderConfig):
    digits: DigitsConfig = DigitsConfig()


BUILDER_CONFIGS = [
    DigitsBuilderConfig(name="8px", description="The original 8x8 images (as RGB).", digits=DigitsConfig(image_size=8)),
    DigitsBuilderConfig(name="32px", description="Upsampled to 32x32: the fine-tuning demo and tests.",
                        digits=DigitsConfig(image_size=32)),
    DigitsBuilderConfig(name="64px", description="Upsampled to 64x64.", digits=DigitsConfig(image_size=64)),
]


class Builder(ShardChecksums, tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits (1,797 real images), upsampled; no download."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "32px"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.digits.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                "label": tfds.features.ClassLabel(names=[str(d) for d in range(NUM_CLASSES)]),
                "index": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
            metadata=tfds.core.MetadataDict(),  # shard_sha256 (ShardChecksums)
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str):
        yield from examples(self.builder_config.digits, split)
