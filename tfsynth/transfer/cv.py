"""Cross-validated hyper-parameter search: stratified seeded k-fold splits, the grid, selection (TF-free).

Folds (`stratified_folds`): the examples of each class c are permuted by a generator seeded with
`SeedSequence([seed, c])` and dealt to the folds round robin, starting where the previous class stopped, so every
fold gets each class's examples up to one and all folds' sizes differ by at most one. The same labels and seed
give the same folds on any machine. Selection (`select_best`): the grid point with the highest mean top-1 over
the folds; ties go to the earlier point of the grid (`grid` lists learning rates in the outer loop).
"""
from __future__ import annotations

import csv
import io
import itertools
import math
import warnings
from typing import Sequence

import numpy as np


def fold_ids(labels: Sequence[int], k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of every example, stratified by label (see the module docstring)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2, got {k}")
    if len(labels) < k:
        raise ValueError(f"cannot split {len(labels)} examples into {k} folds")
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < k:
        warnings.warn(f"the smallest class ({classes[counts.argmin()]}) has {counts.min()} examples, fewer than "
                      f"{k} folds: some folds miss it")
    folds = np.empty(len(labels), np.int64)
    start = 0
    for c in classes:
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng(np.random.SeedSequence([seed, int(c)]))
        folds[rng.permutation(members)] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return folds


def stratified_folds(labels: Sequence[int], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train indices, held-out indices)] for each of the k folds, indices sorted."""
    ids = fold_ids(labels, k, seed)
    return [(np.flatnonzero(ids != f), np.flatnonzero(ids == f)) for f in range(k)]


def grid(lrs: Sequence[float], wds: Sequence[float]) -> list[dict]:
    """[{'lr': ..., 'weight_decay': ...}] over lrs x wds, learning rate in the outer loop."""
    return [{"lr": float(lr), "weight_decay": float(wd)} for lr, wd in itertools.product(lrs, wds)]


def point_name(point: dict) -> str:
    """Directory / trial name of a grid point, e.g. 'lr0.01_wd0.0001'."""
    return f"lr{point['lr']:g}_wd{point['weight_decay']:g}"


def summarize(trials: Sequence[dict]) -> list[dict]:
    """Per grid point (in first-seen order): lr, weight_decay, mean/std (ddof 1) of the folds' top-1, n, folds.

    `trials`: [{'lr', 'weight_decay', 'fold', 'top1', ...}]."""
    points: dict[tuple, list[dict]] = {}
    for trial in trials:
        points.setdefault((trial["lr"], trial["weight_decay"]), []).append(trial)
    summary = []
    for (lr, wd), members in points.items():
        scores = np.array([t["top1"] for t in sorted(members, key=lambda t: t["fold"])], np.float64)
        summary.append({"lr": lr, "weight_decay": wd, "mean_top1": float(scores.mean()),
                        "std_top1": float(scores.std(ddof=1)) if len(scores) > 1 else math.nan,
                        "n_folds": len(scores), "fold_top1": scores.tolist()})
    return summary


def select_best(summary: Sequence[dict]) -> dict:
    """The grid point with the highest mean CV top-1 (first in grid order among equals)."""
    if not summary:
        raise ValueError("no finished CV trials to select from")
    best = summary[0]
    for point in summary[1:]:
        if point["mean_top1"] > best["mean_top1"]:
            best = point
    return best


def trials_csv(trials: Sequence[dict]) -> str:
    """One row per trial: lr, weight_decay, fold, train/held-out sizes, top-1, loss, epochs, workdir."""
    fields = ["lr", "weight_decay", "fold", "train_examples", "heldout_examples", "top1", "loss", "epochs",
              "workdir"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for trial in trials:
        writer.writerow(trial)
    return out.getvalue()


def per_class_sample(labels: Sequence[int], k: int, seed: int) -> np.ndarray:
    """Sorted indices of k examples of every class (low-data fine-tuning and probes): class c's examples are
    permuted by `SeedSequence([seed, c])` and the first k kept, so for one seed the 10-per-class draw is part of
    the 50-per-class draw, and every source fine-tuned with that seed sees the same images (paired comparisons)."""
    labels = np.asarray(labels)
    if k < 1:
        raise ValueError(f"images per class must be >= 1, got {k}")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) and counts.min() < k:
        raise ValueError(f"--images_per_class {k}: class {classes[counts.argmin()]} has only {counts.min()} "
                         "training examples")
    picked = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng(np.random.SeedSequence([seed, int(c)]))
        picked.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(picked)) if picked else np.zeros([0], np.int64)
