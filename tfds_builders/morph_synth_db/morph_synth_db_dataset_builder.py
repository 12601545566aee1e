"""MorphSynthDB ("Beyond Flatland" §3.2) as a TFDS builder: GP morphs of the first 100 ProcSynthDB meshes.

    tfds build tfds_builders/morph_synth_db --config tiny
    tfds build morph_synth_db --imports tfds_builders.morph_synth_db --config 1k \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"

The configs (tiny, small, 1k) are `tfds_builders.synth3d_base.MORPH_CONFIGS`, shared with flat_world_db.
"""
from __future__ import annotations

from tfds_builders.synth3d_base import MORPH_CONFIGS, Synth3dBuilder

BUILDER_CONFIGS = MORPH_CONFIGS


class Builder(Synth3dBuilder):
    """MorphSynthDB: GP-morphed ProcSynthDB meshes with per-vertex colour, random pose and illumination."""

    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "tiny"
