"""Multi-view renders of meshes with cameras and ground-truth point clouds (DPC shape & pose, seed 002 §2.4).

    tfds build tfds_builders/multiview_shapes                              # procedural_tiny (tests, demo)
    tfds build tfds_builders/multiview_shapes --config shapenet_cars --manual_dir /data/ShapeNetCore.v2
    tfds build multiview_shapes --imports tfds_builders.multiview_shapes --config procedural \\
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"

The builder imports TensorFlow, so it never renders: `tfsynth.multiview.generate.render_item` runs in TF-free
worker processes (`tfsynth.render.pool`) and returns PNG bytes and arrays; Beam spreads models over workers.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import ShardChecksums
from tfsynth.multiview.generate import (SPLITS, MultiviewConfig, beam_render, folder_meshes, folder_split,
                                       list_models)

_MANUAL = """
shapenet_* configs: --manual_dir is the ShapeNetCore root (v1 `<synset>/<id>/model.obj` or v2
`<synset>/<id>/models/model_normalized.obj`). Put the DRC split files (`<synset>_{train,val,test}.txt`, as in the
differentiable-point-clouds repository's data/splits) in `<manual_dir>/splits/` to use the reference's split;
otherwise models are split 70/10/20 by a seeded hash of their id. mesh_folder: --manual_dir is any folder of
.obj / .ply / .glb / .off files (searched recursively). Unreadable meshes are left out (listed in one line); the
readable ones, ordered by a seeded hash of their path, give validation round(0.1 n) and test round(0.2 n) meshes,
at least one each, and train the rest: a folder needs 3 readable meshes, fewer stop the build with the counts.
"""


@dataclasses.dataclass
class MultiviewBuilderConfig(tfds.core.BuilderConfig):
    multiview: MultiviewConfig = MultiviewConfig()


def _cfg(name, description, **fields):
    return MultiviewBuilderConfig(name=name, description=description, multiview=MultiviewConfig(**fields))


BUILDER_CONFIGS = [
    _cfg("procedural_tiny", "10 ProcSynthDB meshes (6 / 2 / 2), 3 views at 64 px, 20k-point ground truth: tests.",
         num_models=(6, 2, 2), views=3, image_size=64, gt_points=20_000),
    _cfg("procedural", "650 ProcSynthDB meshes (500 / 50 / 100), 5 views at 128 px: a ShapeNet-free demo.",
         num_models=(500, 50, 100)),
    _cfg("vehicles_tiny", "24 car-like meshes of one family (16 / 4 / 4), 5 views at 64 px, 20k-point ground truth: "
         "tests.", family="vehicles", num_models=(16, 4, 4), image_size=64, gt_points=20_000),
    _cfg("vehicles", "750 car-like meshes of one family in a shared canonical frame (600 / 50 / 100), 5 views at "
         "64 px: a ShapeNet-cars stand-in for shape & pose at laptop scale.", family="vehicles",
         num_models=(600, 50, 100), image_size=64),
    _cfg("shapenet_cars", "ShapeNetCore cars (02958343), 5 views at 128 px (manual download).", source="shapenet",
         synset="02958343"),
    _cfg("shapenet_chairs", "ShapeNetCore chairs (03001627), 5 views at 128 px (manual download).",
         source="shapenet", synset="03001627"),
    _cfg("shapenet_planes", "ShapeNetCore airplanes (02691156), 5 views at 128 px (manual download).",
         source="shapenet", synset="02691156"),
    _cfg("mesh_folder", "Any folder of meshes (manual dir), 5 views at 128 px.", source="folder"),
]


class Builder(ShardChecksums, tfds.core.GeneratorBasedBuilder):
    """Multi-view renders, cameras and ground-truth point clouds of meshes (ProcSynthDB or ShapeNet)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "procedural_tiny"
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config.multiview
        s, v, f32 = c.image_size, c.views, np.float32
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "images": tfds.features.Sequence(tfds.features.Image(shape=(s, s, 3), encoding_format="png"),
                                                 length=v),
                "masks": tfds.features.Sequence(tfds.features.Image(shape=(s, s, 1), encoding_format="png"),
                                                length=v),
                "depths": tfds.features.Tensor(shape=(v, s, s), dtype=f32, encoding="zlib"),
                "extrinsics": tfds.features.Tensor(shape=(v, 4, 4), dtype=f32),
                "camera_positions": tfds.features.Tensor(shape=(v, 3), dtype=f32),
                "quaternions": tfds.features.Tensor(shape=(v, 4), dtype=f32),
                "azimuth": tfds.features.Tensor(shape=(v,), dtype=f32),
                "elevation": tfds.features.Tensor(shape=(v,), dtype=f32),
                "points": tfds.features.Tensor(shape=(None, 3), dtype=f32, encoding="zlib"),
                "model_id": tfds.features.Text(),
            }),
            homepage="https://github.com/eldar/differentiable-point-clouds",
            metadata=tfds.core.MetadataDict(),  # shard_sha256 (ShardChecksums)
        )

    def _config(self, dl_manager) -> MultiviewConfig:
        c = self.builder_config.multiview
        if c.source == "procedural" or c.mesh_dir:
            return c
        root = str(dl_manager.manual_dir)
        splits = os.path.join(root, "splits")
        return dataclasses.replace(c, mesh_dir=root, split_dir=splits if os.path.isdir(splits) else "")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        c = self._config(dl_manager)
        if c.source == "folder":  # unreadable meshes are left out before the split, in one line
            readable, skipped = folder_meshes(c)
            if skipped:
                print(f"multiview_shapes: {len(skipped)} of {len(readable) + len(skipped)} meshes in {c.mesh_dir} "
                      "are unreadable and left out: " + "; ".join(f"{k} ({why})" for k, why in skipped), flush=True)
            folder_split(c)  # a folder too small for every split: one line with the counts (ValueError)
        return {split: self._generate_examples(c, split) for split in SPLITS if list_models(c, split)}

    def _generate_examples(self, config: MultiviewConfig, split: str):
        beam = tfds.core.lazy_imports.apache_beam
        items = [(split, key, path) for key, path in list_models(config, split)]
        return beam.Create(items) | f"Render_{split}" >> beam.FlatMap(beam_render, config=config)
