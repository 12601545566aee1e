"""ProcSynthDB ("Beyond Flatland" §3.1) as a TFDS builder; meshes and renders live in `tfsynth.synth3d`.

    tfds build tfds_builders/proc_synth_db --config tiny
    tfds build proc_synth_db --imports tfds_builders.proc_synth_db --config 1k \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"

The configs (tiny, small, 1k) are `tfds_builders.synth3d_base.PROC_CONFIGS`, shared with flat_world_db.
"""
from __future__ import annotations

from tfds_builders.synth3d_base import PROC_CONFIGS, Synth3dBuilder

BUILDER_CONFIGS = PROC_CONFIGS


class Builder(Synth3dBuilder):
    """ProcSynthDB: procedural 3D meshes rendered under random pose and illumination."""

    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "tiny"
