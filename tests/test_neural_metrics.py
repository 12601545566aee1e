"""tfsynth.neural metrics against scikit-learn / scipy computed directly (Brain-Score's recipe written out here)."""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA
from sklearn.model_selection import ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from eval.neural import (ceiled_explained_variance, ceiled_squared_ratio, compare_rdms, kendall_tau_a,
                         pls_predictivity, rdm, rdm_cv, split_half_ceiling)
from tfsynth.neural import fast_pls
from tfsynth.neural.metrics import FeatureGram, cv_splits, pearson_columns
from tfsynth.neural.pca import LayerPCA
from tfsynth.neural.screen import place_on_screen, present


def _data(n=120, p=600, q=12, objects=8, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, p)) + 2.0).astype(dtype)  # offset: features with large means, like ReLU outputs
    w = rng.normal(size=(p, 4)) @ rng.normal(size=(4, q)) / np.sqrt(p)
    y = x.astype(np.float64) @ w + 0.5 * rng.normal(size=(n, q))
    labels = np.array([f"obj{i % objects}" for i in range(n)])
    return x, y, labels


# ------------------------------------------------------------------------------------------- kernel PLS
@pytest.mark.parametrize("n,p,q,comps", [(80, 2000, 15, 25), (60, 300, 1, 10), (50, 30, 6, 25), (40, 500, 3, 2)])
def test_kernel_pls_equals_sklearn_nipals(n, p, q, comps):
    rng = np.random.default_rng(n + p)
    x = rng.normal(size=(n, p)) * rng.uniform(0.5, 2, p) + 3
    y = np.maximum(x[:, :4] @ rng.normal(size=(4, q)), 0) + rng.normal(size=(n, q))
    x_test = rng.normal(size=(17, p)) + 3
    ref = PLSRegression(comps, scale=False).fit(x, y)
    mean = x.mean(0)
    model = fast_pls.KernelPLS(comps).fit((x - mean) @ (x - mean).T, y, n_features=p)
    got = model.predict((x_test - mean) @ (x - mean).T)
    np.testing.assert_allclose(got, ref.predict(x_test).reshape(got.shape), rtol=0, atol=1e-10 * np.abs(got).max())
    assert model.n_iter_ == list(ref.n_iter_)  # same power-iteration counts, component by component
    np.testing.assert_allclose(np.abs(model.x_scores_), np.abs(ref.x_scores_), atol=1e-9 * np.abs(ref.x_scores_).max())


def test_kernel_pls_float32_features_and_drop_in_helper():
    x, y, _ = _data(dtype=np.float32)
    x_test = x[:20] + 0.1
    ref = PLSRegression(25, scale=False).fit(x[20:], y[20:]).predict(x_test)
    got = fast_pls.kernel_pls_predict(x[20:], y[20:], x_test, 25)
    # scikit-learn centres float32 test inputs in float32: agreement to 1e-6, not 1e-12
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_kernel_pls_edge_cases_match_sklearn():
    x, y, _ = _data(n=40, p=200, q=3)
    y[:, 1] = 7.0  # a constant target column is zeroed and skipped like in scikit-learn
    mean = x.mean(0)
    got = fast_pls.KernelPLS(5).fit((x - mean) @ (x - mean).T, y, 200).predict((x[:5] - mean) @ (x - mean).T)
    np.testing.assert_allclose(got, PLSRegression(5, scale=False).fit(x, y).predict(x[:5]), atol=1e-9)
    with pytest.raises(ValueError, match="`n_components` upper bound is 10"):
        fast_pls.KernelPLS(11).fit(np.eye(40), y, n_features=10)
    # 28 images that are 4 distinct ones repeated: 25 components do not exist (scikit-learn ends in NaN)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 500)).astype(np.float32)
    dup_x, dup_y = base[np.arange(28) % 4], rng.normal(size=(28, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            PLSRegression(25, scale=False).fit(dup_x, dup_y)
        with pytest.raises(ValueError, match="features span only ~3 dimensions"):
            fast_pls.kernel_pls_predict(dup_x, dup_y, base, 25)


def test_gram_and_center_kernel_match_direct_products():
    x, _, _ = _data(n=30, p=5000, dtype=np.float32)
    g, _ = fast_pls.gram(x, chunk_bytes=30 * 8 * 700)  # several column chunks
    train, test = np.arange(0, 30, 2), np.arange(1, 30, 2)
    k, kt = fast_pls.center_kernel(g, train, test)
    xt = x[train].astype(np.float64) - x[train].astype(np.float64).mean(0)
    np.testing.assert_allclose(k, xt @ xt.T, atol=1e-8 * np.abs(k).max())
    np.testing.assert_allclose(kt, (x[test].astype(np.float64) - x[train].astype(np.float64).mean(0)) @ xt.T,
                               atol=1e-8 * np.abs(kt).max())


# ----------------------------------------------------------------------------------- PLS predictivity
def _brain_score_pls(x, y, labels, n_splits=10, train_size=0.9, seed=1, kfold=False):
    """The recipe straight from scikit-learn/scipy: per split PLS, pearsonr per neuroid, median, mean, sem."""
    if kfold:
        splits = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), labels)
    else:
        splits = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, test_size=None,
                                        random_state=seed).split(np.zeros(len(y)), labels)
    medians = []
    for train, test in splits:
        train, test = np.sort(train), np.sort(test)
        pred = PLSRegression(n_components=25, scale=False).fit(x[train], y[train]).predict(x[test])
        medians.append(np.median([stats.pearsonr(y[test][:, j], pred[:, j]).statistic for j in range(y.shape[1])]))
    medians = np.array(medians)
    return medians.mean(), medians.std() / math.sqrt(len(medians)), medians


@pytest.mark.parametrize("kfold", [False, True])
def test_pls_predictivity_reproduces_the_recipe(kfold):
    x, y, labels = _data()
    score, error, medians = _brain_score_pls(x, y, labels, kfold=kfold)
    for method in ("kernel", "sklearn"):
        result = pls_predictivity(x, y, labels, kfold=kfold, method=method)
        np.testing.assert_allclose(result.split_scores, medians, rtol=0, atol=1e-9)
        assert result.score == pytest.approx(score, abs=1e-9) and result.error == pytest.approx(error, abs=1e-9)
        assert result.r.shape == (10, y.shape[1])
    gram_result = pls_predictivity(FeatureGram.from_features(x), y, labels, kfold=kfold)
    assert gram_result.score == pytest.approx(score, abs=1e-9)


def test_splits_are_sklearns_sorted():
    labels = np.repeat(np.arange(6), 10)
    got = cv_splits(len(labels), labels, n_splits=10, train_size=0.9, seed=1)
    ref = StratifiedShuffleSplit(10, train_size=0.9, random_state=1).split(np.zeros(len(labels)), labels)
    for (a, b), (c, d) in zip(got, ref):
        np.testing.assert_array_equal(a, np.sort(c))
        np.testing.assert_array_equal(b, np.sort(d))
        assert np.all(np.diff(a) > 0)
    unstratified = cv_splits(50, None, n_splits=3, train_size=0.9, seed=1)
    for (a, _), (c, _) in zip(unstratified, ShuffleSplit(3, train_size=0.9, random_state=1).split(np.zeros(50))):
        np.testing.assert_array_equal(a, np.sort(c))


def test_pearson_columns_equals_scipy_and_is_nan_for_constants():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    b[:, 4] = 2.0
    ref = [stats.pearsonr(a[:, j], b[:, j]).statistic if j < 4 else np.nan for j in range(5)]
    np.testing.assert_allclose(pearson_columns(a, b), ref, atol=1e-14)


def test_predictivity_edge_cases_give_clear_errors():
    x, y, labels = _data(n=60)
    y_const = y.copy()
    y_const[:, 3] = 1.5
    with pytest.raises(ValueError, match=r"neuroid\(s\) \[3\] are constant over all 60 images"):
        pls_predictivity(x, y_const, labels)
    y_nan = y.copy()
    y_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite values in neuroid"):
        pls_predictivity(x, y_nan, labels)
    lonely = labels.copy()
    lonely[0] = "only-one-image"
    with pytest.raises(ValueError, match="too few images per stratum: 1 label"):
        pls_predictivity(x, y, lonely)
    with pytest.raises(ValueError, match="cannot hold all 20 labels on both sides"):
        pls_predictivity(x, y, np.array([f"o{i % 20}" for i in range(60)]))
    with pytest.raises(ValueError, match="fewer than 10 images"):
        pls_predictivity(x, y, np.array([f"o{i % 8}" for i in range(60)]), kfold=True)
    with pytest.raises(ValueError, match="needs >= 25 training images and units; got 54 images x 10 units"):
        pls_predictivity(x[:, :10], y, np.array([f"o{i % 4}" for i in range(60)]))
    with pytest.raises(ValueError, match="shape"):
        pls_predictivity(x[:50], y, labels)


# ----------------------------------------------------------------------------------------- ceilings
def _direct_ceiling(trials, n_splits=10, seed=1):
    per_split = []
    for a, b in ShuffleSplit(n_splits, train_size=0.5, random_state=seed).split(np.zeros(trials.shape[0])):
        h1, h2 = np.nanmean(trials[np.sort(a)], 0), np.nanmean(trials[np.sort(b)], 0)
        r = np.array([stats.pearsonr(h1[:, j], h2[:, j]).statistic for j in range(trials.shape[2])])
        per_split.append(np.median(2 * r / (1 + r)))
    per_split = np.array(per_split)
    return per_split.mean(), per_split.std() / math.sqrt(n_splits)


def test_split_half_ceiling_reproduces_internal_consistency():
    rng = np.random.default_rng(4)
    signal = rng.normal(size=(50, 9))
    trials = signal[None] + rng.normal(size=(7, 50, 9))  # 7 repetitions: halves of 3 and 4
    score, error = _direct_ceiling(trials)
    got = split_half_ceiling(trials)
    assert got.score == pytest.approx(score, abs=1e-12) and got.error == pytest.approx(error, abs=1e-12)
    # the Spearman-Brown-corrected split-half r estimates the reliability of the mean of all repetitions
    assert got.score == pytest.approx(1 / (1 + 1 / 7), abs=0.06)
    missing = trials.copy()
    missing[6, :10] = np.nan  # ten images with only six repetitions
    assert split_half_ceiling(missing).score == pytest.approx(_direct_ceiling(missing)[0], abs=1e-12)
    with pytest.raises(ValueError, match=">= 2 repetitions"):
        split_half_ceiling(trials[:1])


def test_ceiled_scores_both_conventions():
    assert ceiled_explained_variance(0.5, 0.8) == pytest.approx(0.25 / 0.8)
    assert ceiled_squared_ratio(0.5, 0.8) == pytest.approx((0.5 / 0.8) ** 2)


# ---------------------------------------------------------------------------------------------- RSA
def test_rdm_and_comparisons_equal_numpy_scipy():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(25, 300)), rng.normal(size=(25, 40))
    np.testing.assert_allclose(rdm(a), 1 - np.corrcoef(a), atol=1e-12)
    iu = np.triu_indices(25, 1)
    assert compare_rdms(rdm(a), rdm(b)) == pytest.approx(stats.spearmanr(rdm(a)[iu], rdm(b)[iu]).statistic, abs=1e-12)
    with pytest.raises(ValueError, match=r"stimulus pattern\(s\) \[0\] are constant"):
        rdm(np.vstack([np.ones(300), a[1:]]))


def _tau_a_brute(x, y):
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in itertools.combinations(range(len(x)), 2))
    return s / (len(x) * (len(x) - 1) / 2)


def test_kendall_tau_a_with_ties_equals_pair_count():
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, 5, 60).astype(float), rng.integers(0, 4, 60).astype(float)
    assert kendall_tau_a(x, y) == pytest.approx(_tau_a_brute(x, y), abs=1e-12)
    assert kendall_tau_a(x, y) != pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-3)  # not tau-b


def test_rdm_cv_reproduces_rdm_cross_validated():
    x, y, labels = _data(n=80)
    splits = StratifiedShuffleSplit(10, test_size=0.9, random_state=1).split(np.zeros(80), labels)
    direct = []
    for _, test in splits:
        test = np.sort(test)
        iu = np.triu_indices(len(test), 1)
        direct.append(stats.spearmanr((1 - np.corrcoef(x[test]))[iu], (1 - np.corrcoef(y[test]))[iu]).statistic)
    got = rdm_cv(x, y, labels)
    np.testing.assert_allclose(got.split_scores, direct, atol=1e-12)
    assert got.error == pytest.approx(np.std(direct) / math.sqrt(10), abs=1e-12)
    assert rdm_cv(x, y, labels, method="kendall_tau_a").score < got.score  # tau-a is smaller than rho


# --------------------------------------------------------------------------------- PCA, screen, layering
def test_layer_pca_spans_sklearns_pca_subspace():
    rng = np.random.default_rng(7)
    fit = (rng.normal(size=(40, 20)) @ rng.normal(size=(20, 3000))).astype(np.float32)
    data = (rng.normal(size=(15, 20)) @ rng.normal(size=(20, 3000))).astype(np.float32)
    ours = LayerPCA(12).fit(fit).transform(data).astype(np.float64)
    ref = PCA(12, random_state=0).fit(fit.astype(np.float64)).transform(data.astype(np.float64))
    np.testing.assert_allclose(ours @ ours.T, ref @ ref.T, rtol=1e-4, atol=1e-3 * np.abs(ref @ ref.T).max())
    small = LayerPCA(1000).fit(fit[:, :800])
    assert small.identity and small.transform(data[:, :800]).shape == (15, 800)  # <= 1000 units: left as they are


def test_place_on_screen_enlarges_on_gray_or_crops():
    image = np.full((100, 100, 3), 255, np.uint8)
    wide = place_on_screen(image, source_degrees=4, target_degrees=8)
    assert wide.shape == (200, 200, 3) and (wide[0, 0] == 128).all() and (wide[100, 100] == 255).all()
    assert place_on_screen(image, 8, 4).shape == (50, 50, 3)
    assert present(np.stack([image, image]), 8, 8, 32).shape == (2, 32, 32, 3)


def test_no_warnings_from_a_clean_run():
    x, y, labels = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pls_predictivity(x, y, labels)
        split_half_ceiling(np.random.default_rng(0).normal(size=(4, 30, 5)))
