"""Segmentation scores from a streamed confusion matrix, equal to scikit-learn on the flattened labels.

Every pixel whose true label is `ignore_index` (255: COCO overlaps, padding) is dropped first; on the remaining
pixels, with y = true labels and p = predictions flattened over the whole dataset:

    micro_accuracy = accuracy_score(y, p)
    macro_accuracy = balanced_accuracy_score(y, p)          mean recall over classes present in y
    micro_iou      = jaccard_score(y, p, average="micro")    = TP / (2 N - TP) over all pixels
    macro_iou      = jaccard_score(y, p, average="macro")
    micro_f1       = f1_score(y, p, average="micro")         = micro_accuracy (single-label multiclass)
    macro_f1       = f1_score(y, p, average="macro")

Classes absent from the data. With `labels=None` (scikit-learn's default) IoU and F1 average over the classes
present in y or p, so a class absent from both contributes nothing; balanced accuracy always averages over the
classes present in y (a class only predicted lowers the recall of the true classes of those pixels but has no
recall of its own), as scikit-learn. With explicit `labels` (e.g. `range(num_classes)`, the `labels=` argument
of scikit-learn) a class with 0 true and 0 predicted pixels has IoU = F1 = `zero_division` (scikit-learn:
0.0 with a warning by default; 1.0; or NaN, which is then left out of the macro mean, as f1_score does). The
micro scores with explicit labels sum over those labels only (again as scikit-learn). Balanced accuracy has no
`labels` argument in scikit-learn and ignores it here too.

Confidence intervals: large-sample normal approximation for a proportion, p +- z_{1-alpha/2} sqrt(p (1 - p) / n),
with n the number of evaluated images (Holm 2022, Tables 2-3: 1,000 validation images; pixels of one image are
far from independent, so they do not count as separate trials).

NumPy only: no TensorFlow import (the training job computes the matrices on device, this module scores them).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Iterable, Optional

import numpy as np

IGNORE_INDEX = 255
METRICS = ("micro_accuracy", "macro_accuracy", "micro_iou", "macro_iou", "micro_f1", "macro_f1")
METRIC_TITLES = {"micro_accuracy": "Micro Accuracy", "macro_accuracy": "Macro Accuracy", "micro_iou": "Micro IoU",
                 "macro_iou": "Macro IoU", "micro_f1": "Micro F1", "macro_f1": "Macro F1"}


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: Optional[int] = IGNORE_INDEX) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = true class, columns = predicted class (scikit-learn's layout).

    Pixels with y_true == ignore_index are skipped. Any other label or prediction outside [0, num_classes) is an
    error (it would silently be a wrong score otherwise)."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} elements, y_pred {y_pred.size}")
    if ignore_index is not None:
        keep = y_true != ignore_index
        y_true, y_pred = y_true[keep], y_pred[keep]
    y_true = y_true.astype(np.int64)
    y_pred = y_pred.astype(np.int64)
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = values[(values < 0) | (values >= num_classes)]
            raise ValueError(f"{name} has labels {np.unique(bad)[:10].tolist()} outside [0, {num_classes})"
                             + (f" (and not the ignore index {ignore_index})" if name == "y_true" else ""))
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


class StreamingConfusionMatrix:
    """Accumulates a confusion matrix (and the number of images) over batches."""

    def __init__(self, num_classes: int, ignore_index: Optional[int] = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)
        self.num_images = 0

    def update(self, y_true, y_pred, num_images: Optional[int] = None) -> None:
        """Adds a batch; `num_images` defaults to the leading dimension of y_true."""
        y_true = np.asarray(y_true)
        self.matrix += confusion_matrix(y_true, y_pred, self.num_classes, self.ignore_index)
        self.num_images += int(num_images if num_images is not None else (y_true.shape[0] if y_true.ndim else 1))

    def add_matrix(self, matrix, num_images: int) -> None:
        matrix = np.asarray(matrix, np.int64)
        if matrix.shape != self.matrix.shape:
            raise ValueError(f"matrix shape {matrix.shape} != {self.matrix.shape}")
        self.matrix += matrix
        self.num_images += int(num_images)

    def scores(self, **kwargs) -> dict:
        return scores(self.matrix, **kwargs)


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den > 0)
    return out


def _macro(values: np.ndarray) -> float:
    """Mean leaving out NaN (zero_division=nan), NaN if nothing is left (as scikit-learn)."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def scores(matrix, labels: Optional[Iterable[int]] = None, zero_division: float = 0.0) -> dict:
    """The six scores (see the module docstring) and per-class values from a confusion matrix.

    Returns {'micro_accuracy', ..., 'macro_f1': float, 'labels': the classes averaged over (IoU/F1),
    'per_class': {'support', 'predicted', 'recall', 'iou', 'f1': lists over all classes, NaN where undefined},
    'num_pixels': int}.
    """
    cm = np.asarray(matrix, np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    if zero_division not in (0.0, 1.0) and not (isinstance(zero_division, float) and math.isnan(zero_division)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or nan, got {zero_division!r}")
    total = int(cm.sum())
    if total == 0:
        raise ValueError("confusion matrix is empty: no labelled pixels were evaluated")
    k = cm.shape[0]
    tp = np.diag(cm).astype(np.int64)
    support = cm.sum(axis=1)  # true pixels per class
    predicted = cm.sum(axis=0)
    fp, fn = predicted - tp, support - tp

    if labels is None:
        labels = np.flatnonzero((support > 0) | (predicted > 0))  # scikit-learn's unique_labels(y_true, y_pred)
    else:
        labels = np.asarray(list(labels), np.int64)
        if labels.size == 0 or labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"labels must be non-empty and within [0, {k}), got {labels.tolist()}")

    iou = _divide(tp, tp + fp + fn, zero_division)
    f1 = _divide(2 * tp, 2 * tp + fp + fn, zero_division)
    recall = _divide(tp, support, float("nan"))  # undefined for classes absent from y_true

    tp_l, fp_l, fn_l = tp[labels].sum(), fp[labels].sum(), fn[labels].sum()
    return {
        "micro_accuracy": float(tp.sum() / total),
        "macro_accuracy": _macro(recall),  # balanced_accuracy_score: classes with support only
        "micro_iou": float(_divide(tp_l, tp_l + fp_l + fn_l, zero_division)),
        "macro_iou": _macro(iou[labels]),
        "micro_f1": float(_divide(2 * tp_l, 2 * tp_l + fp_l + fn_l, zero_division)),
        "macro_f1": _macro(f1[labels]),
        "labels": labels.tolist(),
        "num_pixels": total,
        "per_class": {
            "support": support.tolist(),
            "predicted": predicted.tolist(),
            "recall": recall.tolist(),
            "iou": _divide(tp, tp + fp + fn, float("nan")).tolist(),
            "f1": _divide(2 * tp, 2 * tp + fp + fn, float("nan")).tolist(),
        },
    }


def z_value(alpha: float = 0.05) -> float:
    """Two-sided standard-normal quantile z_{1 - alpha/2} (1.959964 for alpha = 0.05)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def proportion_ci(p: float, n: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """(half_width, low, high) of the large-sample interval p +- z sqrt(p (1 - p) / n) (low/high clipped to [0, 1])."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if math.isnan(p):
        return float("nan"), float("nan"), float("nan")
    half = z_value(alpha) * math.sqrt(max(p * (1.0 - p), 0.0) / n)
    return half, max(0.0, p - half), min(1.0, p + half)


def scores_with_ci(matrix, num_images: int, alpha: float = 0.05, **kwargs) -> dict:
    """`scores(matrix)` plus {'ci': {metric: half_width}, 'num_images': n, 'alpha': alpha}."""
    result = scores(matrix, **kwargs)
    result["ci"] = {m: proportion_ci(result[m], num_images, alpha)[0] for m in METRICS}
    result["num_images"] = int(num_images)
    result["alpha"] = float(alpha)
    return result


def format_percent(p: float, half_width: float) -> str:
    """'97 ± 1' (percent, rounded to integers, as Tables 2-3 of the seed)."""
    if math.isnan(p):
        return "n/a"
    return f"{100 * p:.0f} ± {100 * half_width:.0f}"

