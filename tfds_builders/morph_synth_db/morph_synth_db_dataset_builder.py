"""MorphSynthDB ("Beyond Flatland" §3.2) as a TFDS builder: GP morphs of the first 100 ProcSynthDB meshes.

    tfds build tfds_builders/morph_synth_db --config tiny
    tfds build morph_synth_db --imports tfds_builders.morph_synth_db --config 1k \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"
"""
from __future__ import annotations

from tfds_builders.proc_synth_db.synth3d_builder import Synth3dBuilder, Synth3dBuilderConfig
from tfsynth.shapes.morph import MorphConfig
from tfsynth.synth3d.config import Synth3DConfig


def _config(name: str, description: str, **fields) -> Synth3dBuilderConfig:
    return Synth3dBuilderConfig(name=name, description=description, synth=Synth3DConfig(source="morph", **fields))


BUILDER_CONFIGS = [
    _config("tiny", "4 classes (morphs of 2 base meshes resampled to 600 vertices) x 8 instances at 64 px: tests "
            "and demo.", num_classes=4, instances_per_class=8, image_size=64, instances_per_unit=4,
            morph_base_classes=2, morph=MorphConfig(target_vertices=600)),
    _config("small", "100 classes (morphs of 20 base meshes) x 20 instances at 128 px: a few CPU-minutes.",
            num_classes=100, instances_per_class=20, image_size=128, instances_per_unit=20, morph_base_classes=20),
    _config("1k", "1,000 classes (10 morphs of each of the first 100 ProcSynthDB meshes) x 1,000 instances at "
            "362 px, FractalDB-1k's size (Table 2 of Beyond Flatland).",
            num_classes=1000, instances_per_class=1000, image_size=362, instances_per_unit=500,
            morph_base_classes=100),
]


class Builder(Synth3dBuilder):
    """MorphSynthDB: GP-morphed ProcSynthDB meshes with per-vertex colour, random pose and illumination."""

    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "tiny"
