"""Streaming evaluation of a segmentation model: per batch on device, a confusion matrix, the summed pixel
cross-entropy and the pixel count; the NumPy `metrics` module turns the accumulated matrix into scores.

Pixels labelled 255 (COCO overlaps, batch padding) are ignored. The model must return a dict with 'out' logits
(B, H, W, num_classes) (tfsynth.models.fcn), or the logits themselves.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfsynth.segmentation import metrics

IGNORE_INDEX = metrics.IGNORE_INDEX


@dataclasses.dataclass
class EvalResult:
    confusion_matrix: np.ndarray  # (K, K) int64, rows true, columns predicted
    loss: float  # mean cross-entropy over the labelled pixels
    num_images: int
    num_pixels: int  # labelled pixels (ignore index excluded)

    def scores(self, alpha: float = 0.05, **kwargs) -> dict:
        return metrics.scores_with_ci(self.confusion_matrix, self.num_images, alpha=alpha, **kwargs)


def _logits(outputs):
    return outputs["out"] if isinstance(outputs, dict) else outputs


class Evaluator:
    """Evaluates `model` over datasets of (uint8 images (B, H, W, 3), labels (B, H, W, 1)); traces once."""

    def __init__(self, model: keras.Model, num_classes: int):
        self.model = model
        self.num_classes = int(num_classes)
        # One trace per Evaluator whatever the image sizes (padded COCO batches differ in shape).
        self._batch = tf.function(self._batch_stats, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8), tf.TensorSpec([None, None, None, 1], tf.uint8)])

    def _batch_stats(self, images, labels):
        k = self.num_classes
        logits = tf.cast(_logits(self.model(images, training=False)), tf.float32)
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        labels = tf.cast(labels, tf.int32)
        if labels.shape.rank == 4:
            labels = labels[..., 0]
        valid = tf.not_equal(labels, IGNORE_INDEX)
        out_of_range = tf.reduce_sum(tf.cast(tf.logical_and(valid, labels >= k), tf.int64))
        in_range = tf.logical_and(valid, labels < k)
        safe = tf.where(in_range, labels, tf.zeros_like(labels))
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
        loss_sum = tf.reduce_sum(tf.where(in_range, ce, tf.zeros_like(ce)))
        index = tf.boolean_mask(safe * k + predictions, in_range)
        matrix = tf.math.bincount(index, minlength=k * k, maxlength=k * k, dtype=tf.int64)
        return (tf.reshape(matrix, [k, k]), loss_sum, tf.shape(images, out_type=tf.int64)[0], out_of_range,
                predictions)

    def predict(self, images, labels=None) -> np.ndarray:
        """(B, H, W) int32 predicted classes of uint8 images (B, H, W, 3)."""
        images = tf.convert_to_tensor(images, tf.uint8)
        if labels is None:
            labels = tf.fill(tf.concat([tf.shape(images)[:3], [1]], 0), tf.constant(IGNORE_INDEX, tf.uint8))
        return self._batch(images, tf.convert_to_tensor(labels, tf.uint8))[4].numpy()

    def evaluate(self, dataset: tf.data.Dataset, max_batches: Optional[int] = None) -> EvalResult:
        """Streams `dataset` (images, labels) or (images, {'out': labels, ...}) once."""
        matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
        loss_sum, images_seen, bad = 0.0, 0, 0
        for i, (images, labels) in enumerate(dataset):
            if max_batches is not None and i >= max_batches:
                break
            if isinstance(labels, dict):
                labels = labels["out"]
            m, loss, n, out_of_range, _ = self._batch(images, labels)
            matrix += m.numpy()
            loss_sum += float(loss.numpy())
            images_seen += int(n.numpy())
            bad += int(out_of_range.numpy())
        if bad:
            raise ValueError(f"{bad} labelled pixels have classes >= num_classes {self.num_classes} "
                             f"(and are not the ignore index {IGNORE_INDEX}): wrong dataset for this model?")
        pixels = int(matrix.sum())
        return EvalResult(matrix, loss_sum / max(pixels, 1), images_seen, pixels)


def evaluate_saved_model(model_path: str, data_spec: str, split: str = "validation", *, data_dir: Optional[str] = None,
                         eval_size: int = 520, batch_size: int = 8):
    """Loads a `.keras` segmentation model (e.g. <stage>/model.keras) and streams one split of a dataset through it.

    Returns (EvalResult, SegmentationData). The dataset's classes must match the model's output channels."""
    import tfsynth.segmentation.optim  # noqa: F401 - registers the optimizer/schedule saved with train.segment models
    from tfsynth.segmentation import pipeline

    if not tf.io.gfile.exists(model_path):
        raise FileNotFoundError(f"no model at {model_path}")
    from tfsynth.models.files import load_keras_model

    model = load_keras_model(model_path, "model")  # ModelFileError (a ValueError) says what a bad file is
    data = pipeline.load_data(data_spec, split, data_dir=data_dir)
    outputs = model.output["out"] if isinstance(model.output, dict) else model.output
    if outputs.shape[-1] != data.num_classes:
        raise ValueError(f"{model_path} predicts {outputs.shape[-1]} classes, {data.spec} has {data.num_classes}")
    dataset = pipeline.eval_dataset(data, batch_size=batch_size, eval_size=eval_size)
    return Evaluator(model, data.num_classes).evaluate(dataset), data
