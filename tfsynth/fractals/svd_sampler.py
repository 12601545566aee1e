"""Contractive, SVD-parameterised IFS sampler of Anderson & Farrell, "Improving Fractal
Pre-training" (WACV 2022, arXiv:2110.03091).

Recipe (confirmed in the authors' code, github.com/catalys1/fractal-pretraining,
`fractal_learning/fractals/ifs.py`: `sample_system`, `sample_svs`, `random_systems`, `iterate`;
the same numbers are in AtelierArith/RandomLogos.jl `src/ifs_sigma_factor.jl`):

* number of maps N ~ uniform over {2, 3, 4} (`random_systems(n=(2, 5))`, CLI --min_n 2 --max_n 4);
* sigma-factor alpha = sum_k (sigma1_k + 2*sigma2_k) ~ U[(5 + N)/2, (6 + N)/2];
* singular values drawn pair by pair so that 0 <= sigma2_k <= sigma1_k <= 1 and the weighted sum
  is exactly alpha: with r the alpha budget left and m the pairs still to come after pair k,
  sigma1_k ~ U[max(0, (r - 3m)/3), min(1, r)], then
  sigma2_k ~ U[max(0, (r - 3m - sigma1_k)/2), min(sigma1_k, (r - sigma1_k)/2)], r -= sigma1_k + 2 sigma2_k;
  the last pair takes sigma2_N ~ U[max(0, (r - 1)/2), r/3], sigma1_N = r - 2 sigma2_N;
* A_k = R(theta_k) diag(sigma1_k, sigma2_k) R(phi_k) D_k, theta, phi ~ U[-pi, pi) (the full circle),
  D_k = diag(d1, d2), d1, d2 uniform in {-1, +1} (the code draws a sign diagonal for both singular
  vector matrices; that has the same distribution as this single D);
* translation (e, f) ~ U[-1, 1]^2 (`bval=1`);
* p_k = |det A_k| / sum_j |det A_j| (`iterate` default).

Draws whose singular values land on a boundary (sigma1 >= 1 or sigma2 <= 0, a null event) are redrawn,
so every map is strictly contractive with a non-zero probability.

Generation code: imports numpy only, never TensorFlow.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

N_MAPS_CHOICES = (2, 3, 4)
TRANSLATION_BOUND = 1.0
_MAX_REDRAWS = 100


def alpha_range(n_maps: int) -> tuple[float, float]:
    """The interval alpha is drawn from for an N-map system: [(5 + N)/2, (6 + N)/2]."""
    return (5 + n_maps) / 2.0, (6 + n_maps) / 2.0


class SVDIFSSample(NamedTuple):
    """Everything drawn for one system; `params` is what `sample_svd_ifs` returns."""

    params: np.ndarray  # (N, 7): a, b, c, d, e, f, p
    singular_values: np.ndarray  # (N, 2): sigma1 >= sigma2
    alpha: float
    alpha_range: tuple[float, float]
    theta: np.ndarray  # (N,)
    phi: np.ndarray  # (N,)
    reflections: np.ndarray  # (N, 2) entries of D, each +1 or -1
    translations: np.ndarray  # (N, 2): e, f


def _check_n_maps(n_maps) -> int:
    if isinstance(n_maps, bool) or not isinstance(n_maps, (int, np.integer)):
        raise ValueError(f"n_maps must be None or an integer >= 2, got {n_maps!r}")
    if n_maps < 2:
        raise ValueError(f"n_maps must be >= 2 (alpha >= 3.5 needs two maps), got {n_maps}")
    return int(n_maps)


def _draw_singular_values(rng: np.random.Generator, n_maps: int, alpha: float) -> np.ndarray:
    """One pass of the sequential scheme: (N, 2) array with sum(s1 + 2*s2) == alpha."""
    sv = np.empty((n_maps, 2))
    budget = alpha
    for k in range(n_maps - 1):
        still_to_come = 3.0 * (n_maps - 1 - k)  # most that the later pairs can absorb
        need = budget - still_to_come  # least that this pair must take
        s1 = rng.uniform(max(0.0, need / 3.0), min(1.0, budget))
        s2 = rng.uniform(max(0.0, (need - s1) / 2.0), min(s1, (budget - s1) / 2.0))
        budget -= s1 + 2.0 * s2
        sv[k] = s1, s2
    s2 = rng.uniform(max(0.0, (budget - 1.0) / 2.0), budget / 3.0)
    sv[-1] = budget - 2.0 * s2, s2
    return sv


def sample_singular_values(rng: np.random.Generator, n_maps: int, alpha: float) -> np.ndarray:
    """Singular values (N, 2), 0 < sigma2 <= sigma1 < 1, with sum(sigma1 + 2*sigma2) == alpha.

    `alpha` must lie in (0, 3N); boundary draws (a null event) are redrawn.
    """
    n_maps = int(n_maps)
    if n_maps < 1:
        raise ValueError(f"n_maps must be >= 1, got {n_maps}")
    if not 0.0 < alpha < 3.0 * n_maps:
        raise ValueError(f"alpha must lie in (0, {3 * n_maps}) for {n_maps} maps, got {alpha}")
    for _ in range(_MAX_REDRAWS):
        sv = _draw_singular_values(rng, n_maps, alpha)
        if np.all(sv[:, 0] < 1.0) and np.all(sv[:, 1] > 0.0) and np.all(sv[:, 0] >= sv[:, 1]):
            return sv
    raise RuntimeError(f"could not draw valid singular values for alpha={alpha}, N={n_maps}")


def _rotations(angles: np.ndarray) -> np.ndarray:
    c, s = np.cos(angles), np.sin(angles)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (N, 2, 2)


def sample_svd_ifs_detailed(rng: np.random.Generator, n_maps=None) -> SVDIFSSample:
    """Like `sample_svd_ifs`, also returning the drawn singular values, angles, alpha, etc."""
    n = int(rng.choice(N_MAPS_CHOICES)) if n_maps is None else _check_n_maps(n_maps)
    lo, hi = alpha_range(n)
    alpha = float(rng.uniform(lo, hi))
    sv = sample_singular_values(rng, n, alpha)
    theta = rng.uniform(-np.pi, np.pi, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    signs = np.where(rng.random((n, 2)) < 0.5, -1.0, 1.0)
    translations = rng.uniform(-TRANSLATION_BOUND, TRANSLATION_BOUND, (n, 2))

    # A = R(theta) diag(sigma) R(phi) D; scaling rows/columns replaces the diagonal products.
    matrices = ((_rotations(theta) * sv[:, None, :]) @ _rotations(phi)) * signs[:, None, :]
    det = np.abs(matrices[:, 0, 0] * matrices[:, 1, 1] - matrices[:, 0, 1] * matrices[:, 1, 0])
    params = np.empty((n, 7))
    params[:, :4] = matrices.reshape(n, 4)  # a, b, c, d  (A = [[a, b], [c, d]])
    params[:, 4:6] = translations
    params[:, 6] = det / det.sum()
    return SVDIFSSample(params, sv, alpha, (lo, hi), theta, phi, signs, translations)


def sample_svd_ifs(rng: np.random.Generator, n_maps=None) -> np.ndarray:
    """One contractive IFS as an (N, 7) array of rows (a, b, c, d, e, f, p), p summing to 1.

    N ~ uniform over {2, 3, 4} when `n_maps` is None, otherwise N = n_maps (>= 2).
    """
    return sample_svd_ifs_detailed(rng, n_maps).params


def sigma_factor(params) -> float:
    """alpha = sum_k (sigma1_k + 2*sigma2_k) over the 2x2 linear parts of an (N, 6 or 7) array."""
    arr = np.asarray(params, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise ValueError(f"expected rows (a, b, c, d, ...), got shape {arr.shape}")
    sv = np.linalg.svd(arr[:, :4].reshape(-1, 2, 2), compute_uv=False)  # descending per map
    return float(np.sum(sv[:, 0] + 2.0 * sv[:, 1]))


def sample_svd_categories(n_categories: int, seed: int, n_maps=None) -> list[np.ndarray]:
    """`n_categories` systems; category k uses default_rng(SeedSequence([seed, k])), so it does
    not depend on how many categories are drawn."""
    if n_categories < 0:
        raise ValueError(f"n_categories must be >= 0, got {n_categories}")
    return [
        sample_svd_ifs(np.random.default_rng(np.random.SeedSequence([seed, k])), n_maps)
        for k in range(int(n_categories))
    ]
