"""AIST-stylised copies of multi-view datasets: a trained generator run over every view (seed 002 §6.1, ch. 6).

    tfds build tfds_builders/aist_stylized --config procedural_tiny --manual_dir runs/aist/tiny     # G.keras there
    tfds build tfds_builders/aist_stylized --config shapenet_cars_constrained --manual_dir runs/aist
        # -> runs/aist/constrained/G.keras; shapenet_cars_less_constrained reads runs/aist/less_constrained/G.keras

The source dataset (`multiview_shapes/<config>`, in the same --data_dir unless the config says otherwise) must be
built first. The generator runs in the builder process (TensorFlow only; nothing is rendered).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

_MANUAL = """
--manual_dir is a train.aist workdir holding G.keras (configs with an empty `run`), or a folder of such workdirs
(configs with `run` set read <manual_dir>/<run>/G.keras). A config's `generator` field, when set, names the file
directly and no manual dir is needed (the form `experiments.aist_shape_pose` uses).
"""


@dataclasses.dataclass
class AISTStylizedConfig(tfds.core.BuilderConfig):
    source: str = "multiview_shapes/procedural_tiny"  # source TFDS dataset 'name/config' (needs images and masks)
    source_data_dir: str = ""  # TFDS data dir of the source ('' = this builder's data dir)
    run: str = ""  # sub-folder of --manual_dir holding G.keras ('' = --manual_dir itself)
    generator: str = ""  # explicit G.keras path (overrides --manual_dir / run)
    composite: str = "output_alpha"  # 'output_alpha' | 'original_mask' | 'none' (see README.md)
    batch_size: int = 16  # views per generator call
    splits: tuple = ("train", "validation", "test")  # source splits to stylise (those the source has)


BUILDER_CONFIGS = [
    AISTStylizedConfig(name="procedural_tiny", description="multiview_shapes/procedural_tiny through the generator "
                       "in --manual_dir (G.keras): tests and the tiny experiment."),
    AISTStylizedConfig(name="procedural", source="multiview_shapes/procedural",
                       description="multiview_shapes/procedural through the generator in --manual_dir."),
    AISTStylizedConfig(name="shapenet_cars_constrained", source="multiview_shapes/shapenet_cars", run="constrained",
                       description="Seed experiment 2 (Stylized 2): ShapeNet cars through <manual_dir>/constrained/"
                       "G.keras (train.aist --config constrained)."),
    AISTStylizedConfig(name="shapenet_cars_less_constrained", source="multiview_shapes/shapenet_cars",
                       run="less_constrained", description="Seed experiment 3 (Stylized 3): ShapeNet cars through "
                       "<manual_dir>/less_constrained/G.keras (train.aist --config less_constrained)."),
    AISTStylizedConfig(name="shapenet_cars", source="multiview_shapes/shapenet_cars",
                       description="ShapeNet cars through the generator in --manual_dir (G.keras)."),
]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Builder(tfds.core.GeneratorBasedBuilder):
    """Multi-view renders restyled by a trained AIST generator; annotations copied unchanged."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "procedural_tiny"
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL

    def _source(self):
        from tfsynth.aist.stylize import source_builder

        c = self.builder_config
        return source_builder(c.source, c.source_data_dir or self._data_dir_root)

    def _info(self) -> tfds.core.DatasetInfo:
        src = self._source().info.features
        for needed in ("images", "masks"):
            if needed not in src:
                raise ValueError(f"aist_stylized: source {self.builder_config.source!r} has no {needed!r} feature")
        images = src["images"]
        views = images.shape[0]
        size = images.shape[1]
        features = {k: src[k] for k in src.keys()}
        features["alphas"] = tfds.features.Sequence(
            tfds.features.Image(shape=(size, size, 1), encoding_format="png"), length=views)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(),
            homepage="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix",
        )

    def _generator_path(self, dl_manager) -> str:
        from tfsynth.aist.stylize import find_generator

        c = self.builder_config
        manual = None
        if not c.generator:
            try:
                manual = str(dl_manager.manual_dir)
            except Exception as err:  # noqa: BLE001 (TFDS asserts on a missing manual dir)
                raise ValueError(f"aist_stylized/{c.name}: no generator given and no --manual_dir ({err}). "
                                 + _MANUAL.strip()) from None
        return find_generator(c.generator, manual, c.run)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        from tfsynth.aist import stylize

        c = self.builder_config
        path = self._generator_path(dl_manager)
        generator = stylize.load_generator(path)
        src = self._source()
        if not src.is_prepared():
            raise ValueError(f"aist_stylized: source {c.source!r} is not built in {src.data_dir!s}; build it first "
                             f"(tfds build tfds_builders/{c.source.split('/')[0]} --config "
                             f"{c.source.split('/')[-1]} --data_dir ...)")
        size, channels, mode = stylize.generator_spec(generator, path)
        self.info.metadata["generator"] = {"path": os.path.abspath(path), "sha256": _sha256(path),
                                           "image_size": size, "channels": channels, "alpha_mode": mode,
                                           "composite": c.composite}
        self.info.metadata["source"] = {"dataset": c.source, "version": str(src.version)}
        self.info.metadata["mask_agreement"] = {}
        splits = [s for s in c.splits if s in src.info.splits]
        if not splits:
            raise ValueError(f"aist_stylized: source {c.source!r} has none of the splits {c.splits}")
        return {s: self._generate_examples(src, s, generator) for s in splits}

    def _generate_examples(self, src, split: str, generator):
        from tfsynth.aist import stylize

        c = self.builder_config
        ious = []
        ds = src.as_dataset(split=split, shuffle_files=False)
        for index, ex in enumerate(tfds.as_numpy(ds)):
            new, iou = stylize.stylize_example(generator, ex, c.composite, c.batch_size)
            ious.append(iou)
            mid = new.get("model_id", b"")
            mid = mid.decode() if isinstance(mid, bytes) else str(mid)
            yield (mid or f"{index:07d}"), new
        summary = stylize.agreement_summary(np.concatenate(ious) if ious else [])
        self.info.metadata["mask_agreement"][split] = summary
        print(f"aist_stylized/{c.name} {split}: mask agreement (IoU original mask vs output alpha) "
              + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()),
              flush=True)
