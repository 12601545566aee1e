"""scikit-learn's bundled handwritten digits as a small real downstream dataset (TF-free; no download).

`sklearn.datasets.load_digits()` holds 1,797 real 8x8 images (UCI "Optical Recognition of Handwritten Digits",
test part: 32x32 bitmaps by 13 writers, counted in 4x4 blocks, so pixels are integers 0..16), about 180 per
digit. Here each image is scaled to 0..255, upsampled with bilinear interpolation (pixel-centre aligned, edges
clamped, as PIL / tf.image.resize without antialiasing) to `image_size`, and replicated to RGB (ink bright on a
black background). The train/test split is stratified and seeded: for digit c, a generator seeded with
`SeedSequence([seed, c])` permutes that digit's images and the first round(n_c * test_fraction) go to test.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

NUM_CLASSES = 10
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class DigitsConfig:
    image_size: int = 32  # output side in pixels (8 = the original images)
    test_fraction: float = 0.2  # share of each digit's images in the test split
    seed: int = 0  # seeds the stratified split

    def __post_init__(self):
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


def load_raw() -> tuple[np.ndarray, np.ndarray]:
    """(images float64 (1797, 8, 8) in 0..16, labels int64 (1797,)) as bundled with scikit-learn."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.asarray(data.images, np.float64), np.asarray(data.target, np.int64)


def interpolation_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of 1-D linear interpolation with half-pixel centres and clamped edges."""
    pos = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    pos = np.clip(pos, 0.0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    frac = pos - lo
    weights = np.zeros((dst, src))
    weights[np.arange(dst), lo] += 1.0 - frac
    weights[np.arange(dst), hi] += frac
    return weights


def upsample(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 8, 8) in 0..16 -> uint8 (N, size, size, 3): scaled to 0..255, bilinear, gray replicated to RGB."""
    images = np.asarray(images, np.float64) * (255.0 / 16.0)
    rows = interpolation_matrix(images.shape[1], size)
    cols = interpolation_matrix(images.shape[2], size)
    resized = np.einsum("ij,njk,lk->nil", rows, images, cols)
    gray = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """{'train': indices, 'test': indices} (sorted), per-class seeded as described in the module docstring."""
    labels = np.asarray(labels)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng(np.random.SeedSequence([seed, int(c)]))
        n_test = int(round(len(members) * test_fraction))
        test.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {"train": train, "test": test}


def split_indices(config: DigitsConfig) -> dict[str, np.ndarray]:
    _, labels = load_raw()
    return stratified_split(labels, config.test_fraction, config.seed)


def examples(config: DigitsConfig, split: str) -> Iterator[tuple[int, dict]]:
    """(key, {'image': uint8 (S, S, 3), 'label': int, 'index': row in load_digits()}) of one split, by index."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    images, labels = load_raw()
    indices = stratified_split(labels, config.test_fraction, config.seed)[split]
    upsampled = upsample(images[indices], config.image_size)
    for i, image in zip(indices, upsampled):
        yield int(i), {"image": image, "label": int(labels[i]), "index": int(i)}
