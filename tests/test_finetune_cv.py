"""Cross-validation split logic, grid and selection (TF-free), and fold subsets of a real TFDS split."""
import math

import numpy as np
import pytest

from tfsynth.transfer import cv


def _labels(seed=0, n=203, k=7):
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=n, p=np.arange(1, k + 1) / np.arange(1, k + 1).sum())  # unbalanced classes


@pytest.mark.parametrize("k", [2, 5])
def test_folds_are_disjoint_cover_and_stratified(k):
    labels = _labels()
    folds = cv.stratified_folds(labels, k, seed=3)
    assert len(folds) == k
    heldout = [h for _, h in folds]
    for train, held in folds:
        assert np.intersect1d(train, held).size == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([train, held])), np.arange(len(labels)))
    np.testing.assert_array_equal(np.sort(np.concatenate(heldout)), np.arange(len(labels)))  # each example once
    sizes = [len(h) for h in heldout]
    assert max(sizes) - min(sizes) <= 1
    for c in np.unique(labels):
        per_fold = [int((labels[h] == c).sum()) for h in heldout]
        assert max(per_fold) - min(per_fold) <= 1, (c, per_fold)  # stratified: every class spread evenly


def test_folds_are_deterministic_and_depend_on_the_seed():
    labels = _labels()
    a = cv.fold_ids(labels, 5, seed=0)
    np.testing.assert_array_equal(a, cv.fold_ids(labels, 5, seed=0))
    np.testing.assert_array_equal(a, cv.fold_ids(list(labels), 5, seed=0))
    assert not np.array_equal(a, cv.fold_ids(labels, 5, seed=1))
    # Reordering the input moves the folds with the examples of each class (per-class generators).
    assert sorted(np.bincount(a)) == sorted(np.bincount(cv.fold_ids(labels, 5, seed=0)))


def test_fold_errors_and_warnings():
    with pytest.raises(ValueError, match="k >= 2"):
        cv.fold_ids([0, 1, 0, 1], 1, seed=0)
    with pytest.raises(ValueError, match="cannot split 3 examples into 4 folds"):
        cv.fold_ids([0, 1, 0], 4, seed=0)
    with pytest.warns(UserWarning, match="fewer than 3 folds"):
        cv.fold_ids([0, 0, 0, 1, 1, 1, 2], 3, seed=0)


def test_grid_summary_and_selection():
    points = cv.grid([0.003, 0.01], [1e-5, 1e-4])
    assert points == [{"lr": 0.003, "weight_decay": 1e-5}, {"lr": 0.003, "weight_decay": 1e-4},
                      {"lr": 0.01, "weight_decay": 1e-5}, {"lr": 0.01, "weight_decay": 1e-4}]
    assert cv.point_name(points[3]) == "lr0.01_wd0.0001"
    scores = {0: [0.5, 0.7], 1: [0.8, 0.6], 2: [0.9, 0.8], 3: [0.85, 0.85]}
    trials = [{**p, "fold": f, "top1": scores[i][f]} for i, p in enumerate(points) for f in (1, 0)]
    summary = cv.summarize(trials)
    assert [s["mean_top1"] for s in summary] == pytest.approx([0.6, 0.7, 0.85, 0.85])
    assert summary[0]["fold_top1"] == [0.5, 0.7]  # in fold order
    assert summary[0]["std_top1"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    best = cv.select_best(summary)
    assert (best["lr"], best["weight_decay"]) == (0.01, 1e-5)  # tie with (0.01, 1e-4): the earlier grid point
    single = cv.summarize([{**points[0], "fold": 0, "top1": 0.4}])
    assert single[0]["n_folds"] == 1 and math.isnan(single[0]["std_top1"])
    with pytest.raises(ValueError, match="no finished CV trials"):
        cv.select_best([])
    text = cv.trials_csv([{**points[0], "fold": 0, "top1": 0.5, "workdir": "w", "extra": 1}])
    assert text.splitlines()[0].startswith("lr,weight_decay,fold,") and ",0.5," in text.splitlines()[1]


def test_fold_subsets_of_a_real_split_select_exactly_those_examples(tmp_path):
    import tensorflow_datasets as tfds

    import tfds_builders.digits  # noqa: F401
    from tfsynth.input.datasets import load_mixture
    from tfsynth.transfer.finetune import mixture_labels, subset

    tfds.builder("digits", config="8px", data_dir=str(tmp_path)).download_and_prepare()
    mix = load_mixture("digits/8px", "train[:200]", data_dir=str(tmp_path))
    labels = np.concatenate(mixture_labels(mix))
    assert labels.shape == (200,) and set(labels) == set(range(10))
    everything = list(mix.encoded_datasets()[0].as_numpy_iterator())  # (encoded PNG, label) in file order
    assert [int(label) for _, label in everything] == labels.tolist()

    train_idx, held_idx = cv.stratified_folds(labels, 4, seed=0)[1]
    for indices in (held_idx, train_idx):
        part = subset(mix, indices, "part")
        assert part.num_examples == len(indices) and part.num_classes == 10
        got = list(part.encoded_datasets(try_autocache=False)[0].as_numpy_iterator())
        assert [(bytes(e), int(lab)) for e, lab in got] == [(bytes(everything[i][0]), int(everything[i][1]))
                                                           for i in indices]


def test_per_class_sample_nested_stratified_and_seeded():
    from tfsynth.transfer.cv import per_class_sample

    labels = np.repeat(np.arange(10), 30)[np.random.default_rng(0).permutation(300)]
    ten = per_class_sample(labels, 10, seed=3)
    fifty_like = per_class_sample(labels, 20, seed=3)
    assert len(ten) == 100 and np.all(np.bincount(labels[ten]) == 10)
    assert set(ten) <= set(fifty_like)  # one seed's smaller draw is part of its larger one
    np.testing.assert_array_equal(ten, per_class_sample(labels, 10, seed=3))
    assert not np.array_equal(ten, per_class_sample(labels, 10, seed=4))
    with pytest.raises(ValueError, match="only 30"):
        per_class_sample(labels, 31, seed=1)
