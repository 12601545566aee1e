"""Differentiable point clouds (DPC) shape & pose: configs, data, training and evaluation logic.

TF-free modules: `geometry` (quaternions, the DPC camera, NumPy silhouettes), `metrics` (Chamfer, ICP alignment,
pose error, mask disagreement), `synthetic` (procedural multi-view objects), `configs`, and `data` (TensorFlow
Datasets is imported only for 'tfds:' sources). `training` and `evaluation` import TensorFlow; the network and the
differentiable projection live in `tfsynth.models.dpc`.
"""
