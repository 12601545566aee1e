"""FractalDB (Kataoka et al., ACCV 2020) as a TFDS builder; rendering lives in `tfsynth.fractals`.

    tfds build tfds_builders/fractal_db --config tiny
    tfds build fractal_db --imports tfds_builders.fractal_db --config 1k \
        --beam_pipeline_options="direct_num_workers=8,direct_running_mode=multi_processing"
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import ShardChecksums
from tfsynth.fractals.dataset import FractalDBConfig, category_params, render_unit, work_units


@dataclasses.dataclass
class FractalDbBuilderConfig(tfds.core.BuilderConfig):
    fractal: FractalDBConfig = FractalDBConfig(num_categories=4)

    @property
    def num_classes(self) -> int:
        return self.fractal.num_categories


# 1,000 instances: 25 weight variants x 10 patch re-draws x 4 flips, 362 px, 200k points, patch_gray.
_FULL = dict(image_size=362, num_points=200_000, draw_type="patch_gray")


def _config(name: str, description: str, **fields) -> FractalDbBuilderConfig:
    return FractalDbBuilderConfig(name=name, description=description, fractal=FractalDBConfig(**fields))


BUILDER_CONFIGS = [
    _config("tiny", "4 categories x 16 instances at 64 px (2 weights x 2 patches x 4 flips): tests and demo.",
            num_categories=4, image_size=64, num_points=20_000, weight_indices=(2, 7), patches_per_weight=2),
    _config("small", "100 categories x 40 instances at 128 px: builds in a few CPU-minutes.",
            num_categories=100, image_size=128, num_points=50_000, weight_indices=(0, 2, 4, 12, 20),
            patches_per_weight=2),
    _config("100", "FractalDB-100: the first 100 official categories x 1,000 instances at 362 px.",
            num_categories=100, **_FULL),
    _config("1k", "FractalDB-1k: the 1,000 official categories x 1,000 instances at 362 px.",
            num_categories=1000, **_FULL),
    _config("1k_svd", "1,000 categories from the SVD-parameterised contractive IFS sampler of Anderson & Farrell "
            "(WACV 2022), x 1,000 instances at 362 px.", num_categories=1000, sampler="svd", **_FULL),
    _config("1k_csv", "1,000 categories read from official-format CSVs in --manual_dir (e.g. the official "
            "csv_rate0.2_category1000 folder, or your own), x 1,000 instances at 362 px.",
            num_categories=1000, sampler="csv", **_FULL),
]


def _render(unit, config: FractalDBConfig):
    category, weight_index, params = unit
    yield from render_unit(config, category, params, weight_index)


class Builder(ShardChecksums, tfds.core.GeneratorBasedBuilder):
    """FractalDB: formula-driven fractal categories (Kataoka et al. 2020)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "tiny"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Only for the `*_csv` configs: put one CSV per category (rows a,b,c,d,e,f,p, e.g. the official "
        "`csv_rate0.2_category1000` folder or `python -m tfsynth.fractals.search --out DIR`) in --manual_dir."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config.fractal
        size = config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, config.channels), encoding_format="png"),
                "label": tfds.features.ClassLabel(num_classes=self.builder_config.num_classes),
                "params": tfds.features.Tensor(shape=(None, 7), dtype=np.float64,
                                               encoding=tfds.features.Encoding.BYTES),
                "weight_index": tfds.features.Scalar(dtype=np.int32),
                "patch_index": tfds.features.Scalar(dtype=np.int32),
                "flip": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(),  # shard_sha256 (ShardChecksums)
            homepage="https://hirokatsukataoka16.github.io/Pretraining-without-Natural-Images/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config.fractal
        params_dir = dl_manager.manual_dir if config.sampler == "csv" else None
        categories = category_params(config, params_dir=params_dir)
        return {"train": self._generate_examples(categories)}

    def _generate_examples(self, categories):
        beam = tfds.core.lazy_imports.apache_beam
        config = self.builder_config.fractal
        units = [(c, w, categories[c]) for c, w in work_units(config)]
        # One element per (category, weight variant): its chaos game is shared by the 40 images it yields.
        return beam.Create(units) | "RenderFractals" >> beam.FlatMap(_render, config=config)
