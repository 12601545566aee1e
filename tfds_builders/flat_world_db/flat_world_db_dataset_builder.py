"""FlatWorldDB ("Beyond Flatland" §4.4): the 3D datasets' objects with every 3D variation removed.

    tfds build tfds_builders/flat_world_db --config tiny            # ProcSynthDB objects
    tfds build flat_world_db --imports tfds_builders.flat_world_db --config 1k_morph
"""
from __future__ import annotations

import dataclasses

from tfds_builders.proc_synth_db.synth3d_builder import Synth3dBuilder, Synth3dBuilderConfig
from tfds_builders.morph_synth_db.morph_synth_db_dataset_builder import BUILDER_CONFIGS as MORPH_CONFIGS
from tfds_builders.proc_synth_db.proc_synth_db_dataset_builder import BUILDER_CONFIGS as PROC_CONFIGS

_DESCRIPTION = """
FlatWorldDB: the same class objects as ProcSynthDB (configs without suffix) or MorphSynthDB (`*_morph`), but
each class is rendered once, from one fixed canonical viewpoint under one fixed white light; the instances vary
only by 2D image transforms in the spirit of FractalDB's augmentation (a flip, an in-plane rotation, two
single-axis image scalings and a small shift). It is a 2D dataset made from 3D data: the ablation of §4.4.
The configs are the ProcSynthDB / MorphSynthDB configs of the same name with `views='flat'`.
"""


def _flat(config: Synth3dBuilderConfig, suffix: str) -> Synth3dBuilderConfig:
    return Synth3dBuilderConfig(name=config.name + suffix, description="FlatWorldDB of " + config.description,
                                synth=dataclasses.replace(config.synth, views="flat"))


BUILDER_CONFIGS = [_flat(c, "") for c in PROC_CONFIGS] + [_flat(c, "_morph") for c in MORPH_CONFIGS]


class Builder(Synth3dBuilder):
    """FlatWorldDB: canonical single-view renders of ProcSynthDB / MorphSynthDB objects, 2D variation only."""

    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "tiny"
    DESCRIPTION = _DESCRIPTION
    CITATION = """
@misc{beyondflatland,
  title={Beyond Flatland: Pre-training with a Strong 3D Inductive Bias},
  note={Project proposal, section 4.4 (FlatWorldDB ablation)}
}
"""
