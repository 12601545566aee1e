"""Split-half internal-consistency ceiling and ceiled scores, as Brain-Score computes them.

`split_half_ceiling` follows brain-score/vision `metrics/internal_consistency` (`InternalConsistency`):
the repetition values are split by `ShuffleSplit(n_splits=10, train_size=0.5, test_size=None, random_state=1)`
(unique repetition values, sorted), each half is averaged over its repetitions per image (NaN-skipping, as
xarray's groupby mean), Pearson r per neuroid between the two halves over images, Spearman-Brown correction
2r / (1 + r) per neuroid, median over neuroids per split, mean over splits (error: std over splits / sqrt(n)).

Ceiled scores (r: raw predictivity, c: the ceiling above):
* `ceiled_explained_variance` = r^2 / c - Brain-Score since brain-score/vision#2169 (2025), since c is a
  reliability, i.e. already a variance fraction;
* `ceiled_squared_ratio` = (r / c)^2 - brain-score 2019-2025 (`explained_variance` of `_neural_common.py`).

TF-free.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from sklearn.model_selection import ShuffleSplit

from tfsynth.neural.metrics import aggregate_splits, pearson_columns

__all__ = ["Ceiling", "split_half_ceiling", "spearman_brown", "ceiled_explained_variance", "ceiled_squared_ratio",
           "average_repetitions"]


def spearman_brown(r, n: float = 2):
    """Reliability of the mean of n parallel measurements from the reliability r of one: n r / (1 + (n - 1) r)."""
    r = np.asarray(r, np.float64)
    return n * r / (1 + (n - 1) * r)


def ceiled_explained_variance(r, ceiling):
    """r^2 / ceiling (current Brain-Score)."""
    return np.power(r, 2) / ceiling


def ceiled_squared_ratio(r, ceiling):
    """(r / ceiling)^2 (Brain-Score 2019-2025)."""
    return np.power(np.asarray(r, np.float64) / ceiling, 2)


def average_repetitions(trials: np.ndarray) -> np.ndarray:
    """(repetition, image, neuroid) with NaN for missing trials -> (image, neuroid) NaN-skipping mean."""
    trials = np.asarray(trials, np.float64)
    count = np.isfinite(trials).sum(axis=0)
    if (count == 0).any():
        img, neu = np.nonzero(count == 0)
        raise ValueError(f"no trials for image {int(img[0])}, neuroid {int(neu[0])} "
                         f"({int((count == 0).sum())} image/neuroid pairs without any trial)")
    return np.nansum(trials, axis=0) / count


@dataclasses.dataclass
class Ceiling:
    score: float
    error: float
    r: np.ndarray  # (n_splits, n_neuroids) Spearman-Brown corrected split-half r
    split_scores: np.ndarray

    def to_dict(self) -> dict:
        return {"score": self.score, "error": self.error, "split_scores": self.split_scores.tolist(),
                "n_neuroids": int(self.r.shape[1])}


def _nan_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """pearson_columns, restricted per column to images present in both halves."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.all():
        return pearson_columns(a, b)
    out = np.full(a.shape[1], np.nan)
    for j in range(a.shape[1]):
        m = ok[:, j]
        if m.sum() >= 2:
            out[j] = pearson_columns(a[m, j], b[m, j])[0]
    return out


def _half_mean(trials: np.ndarray) -> np.ndarray:
    count = np.isfinite(trials).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(trials, axis=0) / np.maximum(count, 1), np.nan)


def split_half_ceiling(trials: np.ndarray, n_splits: int = 10, seed: int = 1) -> Ceiling:
    """Brain-Score's split-half internal consistency of trials shaped (repetition, image, neuroid).

    NaN marks a missing trial (images with fewer repetitions); an image without any trial in one half is left
    out of that split's correlation for the affected neuroids.
    """
    trials = np.asarray(trials, np.float64)
    if trials.ndim != 3:
        raise ValueError(f"trials must be (repetition, image, neuroid), got shape {trials.shape}")
    n_rep, n_img, n_neu = trials.shape
    if n_rep < 2:
        raise ValueError(f"a split-half ceiling needs >= 2 repetitions, got {n_rep}")
    if n_img < 3:
        raise ValueError(f"a split-half ceiling needs >= 3 images, got {n_img}")
    if np.isinf(trials).any():
        raise ValueError("trials contain inf")
    splitter = ShuffleSplit(n_splits=n_splits, train_size=0.5, test_size=None, random_state=seed)
    rs = []
    for half1, half2 in splitter.split(np.zeros(n_rep)):
        a = _half_mean(trials[np.sort(half1)])
        b = _half_mean(trials[np.sort(half2)])
        rs.append(spearman_brown(_nan_pearson(a, b), 2))
    r = np.stack(rs)
    per_split = np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in r])
    score, error = aggregate_splits(per_split)
    if not math.isfinite(score):
        raise ValueError("split-half ceiling undefined: every neuroid is constant within a half")
    return Ceiling(score=score, error=error, r=r, split_scores=per_split)
