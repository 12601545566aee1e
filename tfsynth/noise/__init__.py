"""Procedural noise, 2D and 3D, as numba kernels (per-point `*_at` functions for renderers) and NumPy APIs.

* `perlin`: improved Perlin noise (Perlin 2002), reference or seeded permutation tables.
* `sparse_convolution`: sparse convolution noise (Lewis 1989 / Lagae et al. 2009), Poisson impulses
  hashed per cell, Frisvad & Wyvill's compact cubic kernel.
Both take `octaves` for fractal sums. Generation code: never imports TensorFlow.
"""
from tfsynth.noise.perlin import PerlinNoise, perlin2, perlin3, permutation_table
from tfsynth.noise.sparse_convolution import SparseConvolutionNoise, sparse_convolution2, sparse_convolution3

__all__ = ["PerlinNoise", "SparseConvolutionNoise", "perlin2", "perlin3", "permutation_table",
           "sparse_convolution2", "sparse_convolution3"]
