"""Tests for the Anderson & Farrell (WACV 2022) SVD-parameterised IFS sampler."""
from pathlib import Path

import numpy as np
import pytest

from tfsynth.fractals import svd_sampler as ss

REPO_ROOT = Path(__file__).resolve().parents[1]


def _samples(count=400, seed=0, n_maps=None):
    rng = np.random.default_rng(seed)
    return [ss.sample_svd_ifs_detailed(rng, n_maps) for _ in range(count)]


def test_shape_and_convention():
    params = ss.sample_svd_ifs(np.random.default_rng(1))
    assert params.shape[1] == 7 and params.shape[0] in ss.N_MAPS_CHOICES
    assert params.dtype == np.float64 and np.all(np.isfinite(params))
    # x' = a*x + b*y + e, y' = c*x + d*y + f  <=>  A @ (x, y) + (e, f), A = [[a, b], [c, d]]
    a, b, c, d, e, f, _ = params[0]
    x, y = 0.3, -0.7
    A = params[0, :4].reshape(2, 2)
    np.testing.assert_allclose(A @ [x, y] + [e, f], [a * x + b * y + e, c * x + d * y + f])


def test_every_map_contractive():
    for s in _samples():
        sv = np.linalg.svd(s.params[:, :4].reshape(-1, 2, 2), compute_uv=False)
        assert np.all(sv < 1.0)
        assert np.all(s.singular_values < 1.0) and np.all(s.singular_values > 0.0)
        assert np.all(s.singular_values[:, 0] >= s.singular_values[:, 1])


def test_alpha_within_sampled_range():
    for s in _samples():
        n = len(s.params)
        lo, hi = s.alpha_range
        assert (lo, hi) == ((5 + n) / 2, (6 + n) / 2)
        assert lo <= s.alpha <= hi
        assert ss.sigma_factor(s.params) == pytest.approx(s.alpha, abs=1e-9)
        assert lo - 1e-9 <= ss.sigma_factor(s.params) <= hi + 1e-9


def test_svd_recovers_sampled_singular_values():
    for s in _samples():
        sv = np.linalg.svd(s.params[:, :4].reshape(-1, 2, 2), compute_uv=False)
        np.testing.assert_allclose(sv, s.singular_values, atol=1e-12)


def test_matrix_is_rotation_sigma_rotation_reflection():
    s = _samples(count=1, seed=5)[0]

    def rot(t):
        return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])

    for k in range(len(s.params)):
        expected = rot(s.theta[k]) @ np.diag(s.singular_values[k]) @ rot(s.phi[k]) @ np.diag(s.reflections[k])
        np.testing.assert_allclose(s.params[k, :4].reshape(2, 2), expected, atol=1e-14)
    assert set(np.unique(np.concatenate([x.reflections.ravel() for x in _samples()]))) == {-1.0, 1.0}


def test_probabilities_sum_to_one_and_proportional_to_det():
    for s in _samples():
        p = s.params[:, 6]
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        A = s.params[:, :4].reshape(-1, 2, 2)
        det = np.abs(np.linalg.det(A))
        np.testing.assert_allclose(p, det / det.sum(), rtol=1e-9)
        np.testing.assert_allclose(p, np.prod(s.singular_values, 1) / np.prod(s.singular_values, 1).sum(), rtol=1e-9)


def test_n_maps_and_translation_ranges():
    samples = _samples(count=600)
    counts = {n: sum(len(s.params) == n for s in samples) for n in ss.N_MAPS_CHOICES}
    assert sum(counts.values()) == len(samples)
    assert all(c > 120 for c in counts.values()), counts  # ~200 each
    t = np.concatenate([s.params[:, 4:6] for s in samples])
    assert np.all(np.abs(t) <= ss.TRANSLATION_BOUND)
    assert t.min() < -0.95 and t.max() > 0.95
    for n in (2, 3, 5, 7):
        for s in _samples(count=50, seed=n, n_maps=n):
            assert s.params.shape == (n, 7)
            assert s.alpha_range[0] <= ss.sigma_factor(s.params) + 1e-9 <= s.alpha_range[1] + 2e-9


@pytest.mark.parametrize("bad", [0, 1, -2, 2.5, "3", True])
def test_rejects_bad_n_maps(bad):
    with pytest.raises(ValueError):
        ss.sample_svd_ifs(np.random.default_rng(0), bad)


def test_singular_values_hit_alpha_exactly():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 6):
        for alpha in np.linspace(0.05, 3 * n - 0.05, 9):
            sv = ss.sample_singular_values(rng, n, alpha)
            assert np.sum(sv[:, 0] + 2 * sv[:, 1]) == pytest.approx(alpha, abs=1e-12)
            assert np.all(sv[:, 0] < 1) and np.all(sv[:, 1] > 0) and np.all(sv[:, 0] >= sv[:, 1])
    with pytest.raises(ValueError):
        ss.sample_singular_values(rng, 2, 6.0)


def test_categories_deterministic_and_prefix_stable():
    a = ss.sample_svd_categories(5, seed=123)
    b = ss.sample_svd_categories(5, seed=123)
    c = ss.sample_svd_categories(50, seed=123)
    assert len(a) == 5 and len(c) == 50
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    # category k is exactly the system drawn from its own SeedSequence([seed, k])
    np.testing.assert_array_equal(
        c[17], ss.sample_svd_ifs(np.random.default_rng(np.random.SeedSequence([123, 17])))
    )
    other = ss.sample_svd_categories(5, seed=124)
    assert not any(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, other))
    assert len({arr.tobytes() for arr in c}) == 50
    fixed = ss.sample_svd_categories(4, seed=7, n_maps=3)
    assert all(arr.shape == (3, 7) for arr in fixed)


def test_same_rng_seed_same_system():
    x = ss.sample_svd_ifs(np.random.default_rng(99))
    y = ss.sample_svd_ifs(np.random.default_rng(99))
    np.testing.assert_array_equal(x, y)
