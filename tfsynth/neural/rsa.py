"""Representational similarity analysis as Brain-Score's `rdm` metrics compute it.

* `rdm`: 1 - Pearson correlation between the stimulus patterns (rows), i.e. `1 - np.corrcoef(X)`
  (brain-score/vision `metrics/rdm` `RDM`), computed in float64 column chunks for wide layers.
* `compare_rdms`: Spearman rho between the upper triangles (k=1) of two RDMs (`RDMSimilarity`), or Kendall's
  tau-a (Nili et al. 2014's recommendation for RDMs with ties; not tau-b).
* `rdm_cv`: `RDMCrossValidated` - `StratifiedShuffleSplit(n_splits=10, test_size=0.9, random_state=1)` on the
  stratification labels, RDMs of the held-out 90 % (indices sorted), the similarity averaged over splits,
  error = std (ddof=0) / sqrt(n_splits). The correlation between two stimulus patterns does not depend on
  the other stimuli, so the full RDMs are computed once and indexed per split.

TF-free.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import threadpoolctl
from scipy import stats

from tfsynth.neural.metrics import aggregate_splits, cv_splits

__all__ = ["rdm", "compare_rdms", "spearman", "kendall_tau_a", "rdm_cv", "RSAResult"]


def rdm(patterns: np.ndarray, chunk_bytes: int = 256 * 2**20) -> np.ndarray:
    """(stimuli, units) -> (stimuli, stimuli) 1 - Pearson correlation between rows (diagonal 0)."""
    x = np.asarray(patterns)
    if x.ndim != 2:
        raise ValueError(f"patterns must be (stimuli, units), got shape {x.shape}")
    n, p = x.shape
    if p < 2:
        raise ValueError(f"an RDM needs >= 2 units per pattern, got {p}")
    row_mean = x.mean(axis=1, dtype=np.float64)
    cov = np.zeros((n, n))
    step = max(1, int(chunk_bytes // (8 * max(n, 1))))
    for start in range(0, p, step):
        block = x[:, start:start + step].astype(np.float64) - row_mean[:, None]
        cov += block @ block.T
    norm = np.sqrt(np.diag(cov))
    const = np.nonzero(norm == 0)[0]
    if const.size:
        raise ValueError(f"stimulus pattern(s) {const[:10].tolist()} are constant across units; "
                         "their correlation (and RDM row) is undefined")
    corr = np.clip(cov / norm[:, None] / norm[None, :], -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return 1.0 - corr


def _triu(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"an RDM must be square, got shape {m.shape}")
    return m[np.triu_indices(m.shape[0], k=1)]


def kendall_tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a = (concordant - discordant) / (n (n - 1) / 2), O(n log n) via scipy's tau-b numerator."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = len(x)
    if n < 2:
        raise ValueError("tau-a needs >= 2 pairs")
    n0 = n * (n - 1) / 2.0

    def ties(v):
        _, c = np.unique(v, return_counts=True)
        return float((c * (c - 1) / 2.0).sum())

    n1, n2 = ties(x), ties(y)
    if n1 == n0 or n2 == n0:
        return float("nan")
    tau_b = stats.kendalltau(x, y, variant="b").statistic
    return float(tau_b * np.sqrt((n0 - n1) * (n0 - n2)) / n0)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho = Pearson r of the average-tie ranks (what scipy.stats.spearmanr computes), without its overhead."""
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    return float(np.clip(rx @ ry / denom, -1.0, 1.0)) if denom > 0 else float("nan")


def compare_rdms(rdm1: np.ndarray, rdm2: np.ndarray, method: str = "spearman") -> float:
    """Similarity of two RDMs over their upper triangles: 'spearman' (Brain-Score) or 'kendall_tau_a'."""
    a, b = _triu(rdm1), _triu(rdm2)
    if a.shape != b.shape:
        raise ValueError(f"RDMs of different sizes: {np.shape(rdm1)} vs {np.shape(rdm2)}")
    if method == "spearman":
        return spearman(a, b)
    if method in ("kendall_tau_a", "kendall"):
        return kendall_tau_a(a, b)
    raise ValueError(f"method must be 'spearman' or 'kendall_tau_a', got {method!r}")


@dataclasses.dataclass
class RSAResult:
    score: float
    error: float
    split_scores: np.ndarray
    method: str

    def to_dict(self) -> dict:
        return {"score": self.score, "error": self.error, "split_scores": self.split_scores.tolist(),
                "method": self.method}


def rdm_cv(features, responses, stratify=None, n_splits: int = 10, test_size: float = 0.9, seed: int = 1,
           method: str = "spearman", splits=None) -> RSAResult:
    """Brain-Score's RDMCrossValidated: RDM similarity on the held-out `test_size` of images, averaged over splits.

    features: (images, units) or a precomputed (images, images) model RDM via `rdm(...)` passed as
    `features=("rdm", matrix)`; responses likewise (images, neuroids) or ("rdm", matrix).
    """
    def full_rdm(value, name):
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "rdm":
            return np.asarray(value[1], np.float64)
        arr = np.asarray(value)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contain NaN or inf")
        return rdm(arr)

    model = full_rdm(features, "features")
    brain = full_rdm(responses, "responses")
    n = model.shape[0]
    if brain.shape[0] != n:
        raise ValueError(f"features have {n} images, responses {brain.shape[0]}")
    if splits is None:
        splits = cv_splits(n, stratify, n_splits=n_splits, train_size=None, test_size=test_size, seed=seed)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # vector ops: BLAS threads only cost here
        scores = np.array([compare_rdms(model[np.ix_(test, test)], brain[np.ix_(test, test)], method)
                           for _, test in splits])
    score, error = aggregate_splits(scores)
    return RSAResult(score=score, error=error, split_scores=scores, method=method)
