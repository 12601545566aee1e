"""TF-free mesh generation: ProcSynthDB building-block meshes (`procedural`), Gaussian-process morphable-model
deformations for MorphSynthDB (`morph`), rotation-invariant shape distances (`distance`) and geometry helpers."""
from tfsynth.shapes.geometry import MeshError
from tfsynth.shapes.procedural import Mesh, ProcMeshConfig, generate_mesh

__all__ = ["Mesh", "MeshError", "ProcMeshConfig", "generate_mesh"]
