"""ProcSynthDB ("Beyond Flatland" §3.1) as a TFDS builder; meshes and renders live in `tfsynth.synth3d`.

    tfds build tfds_builders/proc_synth_db --config tiny
    tfds build proc_synth_db --imports tfds_builders.proc_synth_db --config 1k \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"
"""
from __future__ import annotations

from tfds_builders.proc_synth_db.synth3d_builder import Synth3dBuilder, Synth3dBuilderConfig
from tfsynth.synth3d.config import Synth3DConfig


def _config(name: str, description: str, **fields) -> Synth3dBuilderConfig:
    return Synth3dBuilderConfig(name=name, description=description, synth=Synth3DConfig(source="proc", **fields))


BUILDER_CONFIGS = [
    _config("tiny", "4 classes x 8 instances at 64 px: tests and demo (seconds).",
            num_classes=4, instances_per_class=8, image_size=64, instances_per_unit=4),
    _config("small", "100 classes x 20 instances at 128 px: a few CPU-minutes.",
            num_classes=100, instances_per_class=20, image_size=128, instances_per_unit=20),
    # 362 px as FractalDB-1k: the Table 2 mixtures then share one recipe (random 224 crops of 362 px images).
    _config("1k", "1,000 classes x 1,000 instances at 362 px, FractalDB-1k's size (Table 2 of Beyond Flatland).",
            num_classes=1000, instances_per_class=1000, image_size=362, instances_per_unit=250),
]


class Builder(Synth3dBuilder):
    """ProcSynthDB: procedural 3D meshes rendered under random pose and illumination."""

    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "tiny"
