"""PCA of layer activations fitted on a separate image set (Brain-Score's LayerPCA for layer selection).

Brain-Score fits `sklearn.decomposition.PCA(n_components=1000)` per layer on the activations of 1,000 ImageNet
validation images and projects the benchmark's activations for layer selection; layers with <= n_components
units are left as they are. Here the fit uses the image x image Gram matrix (exact; the same subspace as a
full SVD, signs aside, which PLS and RDMs do not see), so a 1,000 x 800,000 layer needs no 800k x 800k work.
Components whose variance is below 1e-10 of the largest are dropped (their directions are arbitrary).
TF-free.
"""
from __future__ import annotations

import numpy as np

from tfsynth.neural.fast_pls import gram

__all__ = ["LayerPCA"]


class LayerPCA:
    def __init__(self, n_components: int = 1000):
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = n_components
        self.identity = False

    def fit(self, features: np.ndarray) -> "LayerPCA":
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"PCA needs (images >= 2, units) features, got shape {x.shape}")
        n, p = x.shape
        self.n_features_ = p
        if p <= self.n_components:
            self.identity = True
            return self
        g, self.mean_ = gram(x)  # float64, accumulated over column chunks
        evals, evecs = np.linalg.eigh(g)
        order = np.argsort(evals)[::-1][: self.n_components]
        evals, evecs = evals[order], evecs[:, order]
        keep = evals > 1e-10 * evals[0]
        evals, evecs = evals[keep], evecs[:, keep]
        basis = evecs / np.sqrt(evals)  # components = Xc^T U S^-1: orthonormal rows, computed per column chunk
        self.components_ = np.empty((len(evals), p), np.float32)
        step = max(1, (256 * 2**20) // (8 * n))
        for start in range(0, p, step):
            block = x[:, start:start + step].astype(np.float64) - self.mean_[start:start + step]
            self.components_[:, start:start + step] = (block.T @ basis).T
        self.explained_variance_ = evals / (n - 1)
        return self

    @property
    def n_output(self) -> int:
        return self.n_features_ if self.identity else self.components_.shape[0]

    def transform(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features)
        if x.shape[-1] != self.n_features_:
            raise ValueError(f"PCA was fitted on {self.n_features_} units, got {x.shape[-1]}")
        if self.identity:
            return x.astype(np.float32, copy=False)
        # float32 GEMM like scikit-learn's PCA.transform on float32 activations
        return (x.astype(np.float32) - self.mean_.astype(np.float32)) @ self.components_.T
