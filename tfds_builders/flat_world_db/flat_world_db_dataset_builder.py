"""FlatWorldDB ("Beyond Flatland" §4.4): the 3D datasets' objects with every 3D variation removed.

    tfds build tfds_builders/flat_world_db --config tiny            # ProcSynthDB objects
    tfds build flat_world_db --imports tfds_builders.flat_world_db --config 1k_morph
"""
from __future__ import annotations

import dataclasses

from tfds_builders.synth3d_base import MORPH_CONFIGS, PROC_CONFIGS, Synth3dBuilder, Synth3dBuilderConfig


def _flat(config: Synth3dBuilderConfig, suffix: str) -> Synth3dBuilderConfig:
    return Synth3dBuilderConfig(name=config.name + suffix, description="FlatWorldDB of " + config.description,
                                synth=dataclasses.replace(config.synth, views="flat"))


BUILDER_CONFIGS = [_flat(c, "") for c in PROC_CONFIGS] + [_flat(c, "_morph") for c in MORPH_CONFIGS]


class Builder(Synth3dBuilder):
    """FlatWorldDB: canonical single-view renders of ProcSynthDB / MorphSynthDB objects, 2D variation only."""

    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "tiny"
