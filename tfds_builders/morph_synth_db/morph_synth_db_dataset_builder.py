"""MorphSynthDB ("Beyond Flatland" §3.2) as a TFDS builder: GP morphs of the first 100 ProcSynthDB meshes.

    tfds build tfds_builders/morph_synth_db --config tiny
    tfds build morph_synth_db --imports tfds_builders.morph_synth_db --config 1k \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"
"""
from __future__ import annotations

from tfds_builders.proc_synth_db.synth3d_builder import Synth3dBuilder, Synth3dBuilderConfig
from tfsynth.shapes.morph import MorphConfig
from tfsynth.synth3d.config import Synth3DConfig

_DESCRIPTION = """
MorphSynthDB: class c is one Gaussian-process morphable-model sample (shape deformation + per-vertex albedo) of
ProcSynthDB base mesh c mod B (B = 100 for the full configs), after resampling the base to ~2,000 vertices.
Kernels follow Sutherland et al. (ICCV 2021) rescaled from millimetres to the mesh size: shape
7 G(100) + 5 G(50) + 3 G(10) with a 2.5x stronger standard deviation, albedo the average of a colour-space
0.015 G(0.15) and a physical-space 0.02 G(500) + 0.01 G(20) + 0.01 G(2) sample around a random class colour;
Nyström low-rank bases capture >= 90 % of every term's variance. Instances vary pose, illumination and two
single-axis scalings exactly as ProcSynthDB.
"""

_CITATION = """
@article{luthi2017gaussian,
  title={Gaussian process morphable models},
  author={L{\\"u}thi, Marcel and Gerig, Thomas and Jud, Christoph and Vetter, Thomas},
  journal={IEEE TPAMI}, volume={40}, number={8}, pages={1860--1873}, year={2017}
}
@inproceedings{sutherland2021building,
  title={Building 3D Morphable Models from a Single Scan},
  author={Sutherland, Skylar and Egger, Bernhard and Tenenbaum, Joshua},
  booktitle={ICCV Workshops}, year={2021}
}
"""


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
    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
