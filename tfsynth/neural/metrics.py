"""Neural predictivity exactly as Brain-Score computes it (CrossRegressedCorrelation + pls + pearsonr).

Recipe (brain-score/vision `metrics/regression_correlation` and `metric_helpers/transformations`, the
`pls` metric used by the MajajHong2015 benchmarks):

1. splits: `StratifiedShuffleSplit(n_splits=10, train_size=0.9, test_size=None, random_state=1)` on the
   stratification labels (`object_name`), images in the assembly's order; with `kfold=True`
   `StratifiedKFold(n_splits, shuffle=True, random_state)` (the 10-fold cross-validation of Yamins et al.
   2014 / the "Beyond Flatland" protocol); without labels `ShuffleSplit` / `KFold`.
2. per split: `PLSRegression(n_components=25, scale=False)` fitted on the training images (sorted by
   stimulus, which is the given order sorted), predictions for the held-out images.
3. Pearson r per neuroid between held-out responses and predictions (`scipy.stats.pearsonr`).
4. median over neuroids per split (NaN-skipping, as xarray's median), then mean over splits;
   error = std over splits (ddof=0) / sqrt(n_splits).

`pls_predictivity` returns a `Predictivity` with the score, its error and the split x neuroid matrix of r.
For wide features the PLS fits run through `tfsynth.neural.fast_pls` (one Gram matrix for all splits),
which reproduces scikit-learn's NIPALS to rounding; `method='sklearn'` runs scikit-learn itself.

TF-free (numpy, scipy, scikit-learn).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Optional, Sequence

import numpy as np
import threadpoolctl
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from tfsynth.neural import fast_pls

__all__ = ["Predictivity", "Splits", "cv_splits", "pearson_columns", "pls_predictivity", "check_responses",
           "FeatureGram", "aggregate_splits"]


class Splits(list):
    """List of (train_indices, test_indices), each sorted ascending."""


def _label_counts(labels: np.ndarray) -> dict:
    values, counts = np.unique(labels, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def _shuffle_sizes(n: int, train_size: Optional[float], test_size: Optional[float]) -> tuple[int, int]:
    """scikit-learn's _validate_shuffle_split arithmetic (floats: test ceil, train floor)."""
    if test_size is None and train_size is None:
        test_size = 0.1
    n_test = math.ceil(test_size * n) if isinstance(test_size, float) else test_size
    n_train = math.floor(train_size * n) if isinstance(train_size, float) else train_size
    if n_train is None:
        n_train = n - n_test
    if n_test is None:
        n_test = n - n_train
    return n_train, n_test


def cv_splits(n: int, stratify: Optional[Sequence] = None, n_splits: int = 10, train_size: Optional[float] = 0.9,
              test_size: Optional[float] = None, seed: int = 1, kfold: bool = False, what: str = "images") -> Splits:
    """Brain-Score's `Split`: the (train, test) index pairs, sorted, with clear errors for impossible splits."""
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    dummy = np.zeros(n)
    if stratify is not None:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratification labels have shape {labels.shape}, expected ({n},) (one per {what[:-1]})")
        counts = _label_counts(labels)
        if kfold:
            small = {k: c for k, c in counts.items() if c < n_splits}
            if small:
                raise ValueError(f"too few {what} per stratum for {n_splits}-fold stratified cross-validation: "
                                 f"{len(small)} label(s) have fewer than {n_splits} {what} (e.g. "
                                 f"{dict(list(small.items())[:5])}); use fewer splits or merge labels")
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        else:
            small = {k: c for k, c in counts.items() if c < 2}
            if small:
                raise ValueError(f"too few {what} per stratum: {len(small)} label(s) have a single {what[:-1]} "
                                 f"(e.g. {list(small)[:5]}); stratified splitting needs >= 2 {what} per label")
            n_train, n_test = _shuffle_sizes(n, train_size, test_size)
            if min(n_train, n_test) < len(counts):
                raise ValueError(f"too few {what} per stratum: a split of {n} {what} into {n_train} train / "
                                 f"{n_test} test cannot hold all {len(counts)} labels on both sides; "
                                 f"add {what} or use fewer labels")
            splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, test_size=test_size,
                                              random_state=seed)
        pairs = splitter.split(dummy, labels)
    else:
        if kfold:
            if n < n_splits:
                raise ValueError(f"{n} {what} cannot be split into {n_splits} folds")
            splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
        else:
            n_train, n_test = _shuffle_sizes(n, train_size, test_size)
            if min(n_train, n_test) < 1:
                raise ValueError(f"too few {what} ({n}) for a train_size={train_size} / test_size={test_size} split")
            splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, test_size=test_size, random_state=seed)
        pairs = splitter.split(dummy)
    return Splits((np.sort(train), np.sort(test)) for train, test in pairs)


def pearson_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column of x with the same column of y (scipy.stats.pearsonr per column; NaN if constant)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    xm = x - x.mean(axis=0)
    ym = y - y.mean(axis=0)
    nx = np.linalg.norm(xm, axis=0)
    ny = np.linalg.norm(ym, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ((xm / nx) * (ym / ny)).sum(axis=0)
    # scipy returns NaN (with a ConstantInputWarning) exactly when a column is constant.
    r[np.all(x == x[:1], axis=0) | np.all(y == y[:1], axis=0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def check_responses(responses: np.ndarray, name: str = "responses") -> np.ndarray:
    """(images, neuroids) float64; clear errors for NaN/inf and neuroids that never vary."""
    y = np.asarray(responses, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"{name} must be (images, neuroids), got shape {y.shape}")
    bad = ~np.isfinite(y)
    if bad.any():
        cols = np.unique(np.nonzero(bad)[1])
        raise ValueError(f"{name}: {int(bad.sum())} non-finite values in neuroid(s) {cols[:10].tolist()}; "
                         "average repetitions with NaN-skipping first or drop those neuroids")
    const = np.nonzero(np.ptp(y, axis=0) == 0)[0]
    if const.size:
        raise ValueError(f"{name}: neuroid(s) {const[:10].tolist()} are constant over all {y.shape[0]} images "
                         f"({const.size} in total); their correlation is undefined - drop them")
    return y


@dataclasses.dataclass
class FeatureGram:
    """Precomputed Gram matrix of globally centred features, so several regions/metrics reuse one GEMM."""

    g: np.ndarray  # (n, n) float64
    n_features: int

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FeatureGram":
        g, _ = fast_pls.gram(features)
        return cls(g, int(np.shape(features)[1]))

    @property
    def n_images(self) -> int:
        return self.g.shape[0]

    def subset(self, index: np.ndarray) -> "FeatureGram":
        return FeatureGram(self.g[np.ix_(index, index)], self.n_features)


@dataclasses.dataclass
class Predictivity:
    """Raw neural predictivity: mean over splits of the median over neuroids of held-out Pearson r."""

    score: float
    error: float  # std over splits (ddof=0) / sqrt(n_splits)
    r: np.ndarray  # (n_splits, n_neuroids) held-out Pearson r
    split_scores: np.ndarray  # (n_splits,) median over neuroids
    splits: Splits
    n_components: int
    not_converged: int = 0  # PLS components whose power iteration hit max_iter (scikit-learn warns the same)
    note: str = ""  # why the score is NaN, when it could not be computed (see `failed`)

    @classmethod
    def failed(cls, message: str, n_components: int = 25) -> "Predictivity":
        return cls(score=float("nan"), error=float("nan"), r=np.zeros((0, 0)), split_scores=np.zeros(0),
                   splits=Splits(), n_components=n_components, note=message)

    def to_dict(self) -> dict:
        return {"score": self.score, "error": self.error, "split_scores": self.split_scores.tolist(),
                "n_splits": len(self.split_scores), "n_neuroids": int(self.r.shape[1]),
                "nan_correlations": int(np.isnan(self.r).sum()), "n_components": self.n_components,
                "components_at_max_iter": self.not_converged, **({"note": self.note} if self.note else {})}


def aggregate_splits(per_split: np.ndarray) -> tuple[float, float]:
    """Brain-Score's Split.aggregate: mean over splits and std (ddof=0) / sqrt(n_splits)."""
    per_split = np.asarray(per_split, np.float64)
    return float(np.nanmean(per_split)), float(np.nanstd(per_split) / math.sqrt(len(per_split)))


def _median_over_neuroids(r: np.ndarray) -> np.ndarray:
    out = np.full(r.shape[0], np.nan)
    for i, row in enumerate(r):
        if np.isfinite(row).any():
            out[i] = np.nanmedian(row)
    return out


def pls_predictivity(features, responses, stratify=None, n_splits: int = 10, train_size: float = 0.9,
                     n_components: int = 25, seed: int = 1, kfold: bool = False, method: str = "auto",
                     splits: Optional[Splits] = None) -> Predictivity:
    """Brain-Score's PLS neural predictivity (see the module docstring) of `features` for `responses`.

    features: (images, units) array, or a `FeatureGram` of them. responses: (images, neuroids), repetitions
    averaged. stratify: (images,) labels (object identity) or None. Images must be in the same order in all
    three (Brain-Score sorts by stimulus_id; give that order to reproduce its split membership).
    method: 'kernel' (Gram-matrix PLS, exact), 'sklearn' (PLSRegression per split) or 'auto' (kernel when
    units > images). `splits` overrides the split generation (list of (train, test) index arrays).
    """
    y = check_responses(responses)
    n = y.shape[0]
    if isinstance(features, FeatureGram):
        if features.n_images != n:
            raise ValueError(f"features Gram is for {features.n_images} images, responses have {n}")
        if method == "sklearn":
            raise ValueError("method='sklearn' needs the feature matrix, not a FeatureGram")
        method, gram, p = "kernel", features.g, features.n_features
        x = None
    else:
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"features must be (images={n}, units), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or inf")
        p = x.shape[1]
        if method == "auto":
            method = "kernel" if p > n else "sklearn"
        if method not in ("kernel", "sklearn"):
            raise ValueError(f"method must be 'auto', 'kernel' or 'sklearn', got {method!r}")
        gram = fast_pls.gram(x)[0] if method == "kernel" else None
    if splits is None:
        splits = cv_splits(n, stratify, n_splits=n_splits, train_size=train_size, seed=seed, kfold=kfold)
    for train, test in splits:
        if min(len(train), p) < n_components:
            raise ValueError(f"PLS with n_components={n_components} needs >= {n_components} training images and "
                             f"units; got {len(train)} images x {p} units")

    def fit_predict(pair):
        train, test = pair
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if method == "kernel":
                k, k_test = fast_pls.center_kernel(gram, train, test)
                pred = fast_pls.KernelPLS(n_components).fit(k, y[train], n_features=p).predict(k_test)
            else:
                from sklearn.cross_decomposition import PLSRegression

                pred = PLSRegression(n_components=n_components, scale=False).fit(x[train], y[train]).predict(x[test])
        return pearson_columns(y[test], pred), caught

    if method == "kernel":
        # n x n algebra: BLAS thread start-up costs more than it saves (2-3x slower with threads on small n).
        with threadpoolctl.threadpool_limits(1 if n < 2000 else None, user_api="blas"):
            results = [fit_predict(pair) for pair in splits]
    else:
        results = [fit_predict(pair) for pair in splits]
    rs, not_converged = [], 0
    for r_split, caught in results:
        rs.append(r_split)
        for w in caught:
            if "Maximum number of iterations" in str(w.message):
                not_converged += 1  # NIPALS power iteration stopped at max_iter=500 (same in scikit-learn)
            else:
                warnings.warn(w.message, w.category)
    r = np.stack(rs)
    per_split = _median_over_neuroids(r)
    if np.isnan(per_split).any():
        warnings.warn(f"{int(np.isnan(per_split).sum())} split(s) had no defined correlation (constant held-out "
                      "responses or predictions); they are skipped in the mean")
    score, error = aggregate_splits(per_split)
    return Predictivity(score=score, error=error, r=r, split_scores=per_split, splits=splits,
                        n_components=n_components, not_converged=not_converged)
