"""tfsynth.segmentation.metrics equals scikit-learn on the same flattened labels (random labels, absent classes)."""
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix as sk_confusion_matrix,
                             f1_score, jaccard_score)

from tfsynth.segmentation import metrics

K = 7


def _sklearn(y, p, labels=None, zero_division=0.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined-metric / "y_pred contains classes not in y_true" warnings
        out = {"micro_accuracy": accuracy_score(y, p), "macro_accuracy": balanced_accuracy_score(y, p)}
        for avg in ("micro", "macro"):
            out[f"{avg}_f1"] = f1_score(y, p, average=avg, labels=labels, zero_division=zero_division)
            if not (isinstance(zero_division, float) and math.isnan(zero_division)):  # jaccard has no NaN option
                out[f"{avg}_iou"] = jaccard_score(y, p, average=avg, labels=labels, zero_division=zero_division)
    return out


def _random_maps(seed, n=5, h=9, w=11, present_true=(0, 1, 2, 4), present_pred=(0, 1, 2, 5), ignore_frac=0.1):
    """Label maps where class 3 and 6 never occur, 5 is only predicted and 4 never predicted."""
    rng = np.random.default_rng(seed)
    y = rng.choice(present_true, size=(n, h, w), p=[0.6, 0.2, 0.15, 0.05][:len(present_true)])
    p = np.where(rng.random((n, h, w)) < 0.6, y, rng.choice(present_pred, size=(n, h, w)))
    p = np.where(p == 4, 0, p)
    y = np.where(rng.random((n, h, w)) < ignore_frac, 255, y).astype(np.uint8)
    return y, p.astype(np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_default_labels_equal_sklearn(seed):
    y, p = _random_maps(seed)
    keep = y != 255
    expected = _sklearn(y[keep], p[keep])
    got = metrics.scores(metrics.confusion_matrix(y, p, K))
    for name in metrics.METRICS:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name
    # Classes 3 and 6 occur nowhere: not averaged over (scikit-learn's unique_labels).
    assert got["labels"] == [0, 1, 2, 4, 5]
    assert got["micro_f1"] == pytest.approx(got["micro_accuracy"])
    np.testing.assert_array_equal(metrics.confusion_matrix(y, p, K),
                                  sk_confusion_matrix(y[keep], p[keep], labels=list(range(K))))


@pytest.mark.parametrize("zero_division", [0.0, 1.0, float("nan")])
def test_explicit_labels_and_zero_division_equal_sklearn(zero_division):
    y, p = _random_maps(11)
    keep = y != 255
    for labels in (list(range(K)), [1, 2, 3], [3, 6], [0, 5]):
        expected = _sklearn(y[keep], p[keep], labels=labels, zero_division=zero_division)
        got = metrics.scores(metrics.confusion_matrix(y, p, K), labels=labels, zero_division=zero_division)
        for name, value in expected.items():
            if math.isnan(value):
                assert math.isnan(got[name]), (labels, name)
            else:
                assert got[name] == pytest.approx(value, abs=1e-12), (labels, name, zero_division)


def test_streaming_over_batches_equals_one_matrix():
    y, p = _random_maps(3, n=12)
    stream = metrics.StreamingConfusionMatrix(K)
    for start in range(0, 12, 5):
        stream.update(y[start:start + 5], p[start:start + 5])
    assert stream.num_images == 12
    np.testing.assert_array_equal(stream.matrix, metrics.confusion_matrix(y, p, K))
    other = metrics.StreamingConfusionMatrix(K)
    other.add_matrix(stream.matrix, 12)
    assert other.scores()["macro_iou"] == stream.scores()["macro_iou"]


def test_per_class_values():
    y = np.array([0, 0, 1, 1, 2, 255])
    p = np.array([0, 1, 1, 1, 0, 2])
    got = metrics.scores(metrics.confusion_matrix(y, p, 4))
    assert got["per_class"]["support"] == [2, 2, 1, 0]
    assert got["per_class"]["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 0.0]) and math.isnan(got["per_class"]["iou"][3])
    assert got["per_class"]["f1"][:3] == pytest.approx([0.5, 0.8, 0.0])
    assert (got["per_class"]["recall"][:3] == pytest.approx([0.5, 1.0, 0.0])
            and math.isnan(got["per_class"]["recall"][3]))
    assert got["num_pixels"] == 5


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"y_true has labels \[7\]"):
        metrics.confusion_matrix(np.array([0, 7]), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match=r"y_pred has labels \[4\]"):
        metrics.confusion_matrix(np.array([0, 1]), np.array([0, 4]), 4)
    with pytest.raises(ValueError, match="empty"):
        metrics.scores(np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="zero_division"):
        metrics.scores(np.eye(3, dtype=np.int64), zero_division=0.5)


def test_confidence_intervals_as_the_seed():
    assert metrics.z_value(0.05) == pytest.approx(1.959964, abs=1e-6)
    half, low, high = metrics.proportion_ci(0.5, 100)
    assert half == pytest.approx(1.959964 * 0.05, abs=1e-6) and (low, high) == pytest.approx((0.5 - half, 0.5 + half))
    # Table 3 of the seed (n = 1,000 validation images): 88 +- 2, 17 +- 2, 78 +- 3, 14 +- 2; Table 2: 97 +- 1.
    for p, shown in ((0.88, "88 ± 2"), (0.17, "17 ± 2"), (0.78, "78 ± 3"), (0.14, "14 ± 2"), (0.97, "97 ± 1")):
        assert metrics.format_percent(p, metrics.proportion_ci(p, 1000)[0]) == shown
    assert metrics.proportion_ci(1.0, 10) == (0.0, 1.0, 1.0)
    cm = np.array([[8, 2], [1, 9]])
    result = metrics.scores_with_ci(cm, num_images=4)
    assert result["ci"]["micro_accuracy"] == pytest.approx(1.959964 * math.sqrt(0.85 * 0.15 / 4), abs=1e-6)


def test_voc_palette_and_overlays():
    from tfsynth.segmentation import visualize

    pal = visualize.palette(21)
    assert pal[0].tolist() == [0, 0, 0] and pal[1].tolist() == [128, 0, 0] and pal[2].tolist() == [0, 128, 0]
    assert pal[15].tolist() == [192, 128, 128] and pal[20].tolist() == [0, 64, 128]  # person, tvmonitor (VOC)
    labels = np.array([[[0, 1], [255, 15]]], np.uint8)
    assert visualize.colorize(labels[..., None])[0, 1, 0].tolist() == [255, 255, 255]  # ignore -> white
    images = np.full((1, 2, 2, 3), 100, np.uint8)
    out = visualize.overlay(images, labels, alpha=0.5)
    assert out[0, 0, 0].tolist() == [100, 100, 100]  # background untouched
    assert out[0, 0, 1].tolist() == [114, 50, 50]
    assert visualize.comparison_rows(images, labels, labels).shape == (1, 2, 6, 3)
