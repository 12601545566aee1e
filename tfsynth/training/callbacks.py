"""Keras callbacks and TensorBoard helpers of the training jobs."""
from __future__ import annotations

import csv
import os
from typing import Callable, Mapping, Optional

import keras
import tensorflow as tf

from tfsynth.input.augment import image_grid
from tfsynth.training.checkpoint import atomic_write


class EpochLearningRate(keras.callbacks.Callback):
    """Puts the learning rate *used during* the epoch into the logs as 'learning_rate' (History, CSV, TensorBoard).

    Keras's TensorBoard would otherwise log the optimizer's rate at the end of the epoch, i.e. the next epoch's.
    """

    def __init__(self, lr_at_epoch: Callable[[int], float]):
        super().__init__()
        self.lr_at_epoch = lr_at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.lr_at_epoch(epoch))


class TensorBoard(keras.callbacks.TensorBoard):
    """keras.callbacks.TensorBoard that keeps a 'learning_rate' already in the logs (see EpochLearningRate)."""

    def _collect_learning_rate(self, logs):
        return logs if "learning_rate" in logs else super()._collect_learning_rate(logs)


def write_image_grids(log_dir: str, grids: Mapping[str, tf.Tensor], step: int = 0, columns: int = 8) -> None:
    """Writes each (N, H, W, 3) uint8 batch as one grid image (tag = key) to an event file in `log_dir`."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for tag, images in grids.items():
            tf.summary.image(tag, image_grid(images, columns)[tf.newaxis], step=step, max_outputs=1)
    writer.flush()
    writer.close()


def flatten_hparams(config: Mapping) -> dict:
    """Config -> {name: bool|int|float|str} for the TensorBoard hparams plugin (sequences become strings)."""
    flat = {}
    for key, value in config.items():
        if value is None:
            value = ""
        elif not isinstance(value, (bool, int, float, str)):
            value = str(value)
        flat[key] = value
    return flat


def write_hparams(log_dir: str, config: Mapping, trial_id: Optional[str] = None, write_config: bool = True) -> None:
    """Records the run's config with the hparams plugin, with the per-epoch metrics the TensorBoard callback writes.

    `write_config=False` records only the session (a sweep writes one experiment summary above its trials)."""
    from tensorboard.plugins.hparams import api as hp

    hparams = flatten_hparams(config)
    metrics = [hp.Metric(f"epoch_{name}", group=group, display_name=f"{group} {name}")
               for group in ("train", "validation") for name in ("loss", "top1", "top5")]
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        if write_config:
            hp.hparams_config(hparams=[hp.HParam(k) for k in hparams], metrics=metrics)
        hp.hparams(hparams, trial_id=trial_id)
    writer.flush()
    writer.close()


def truncate_csv_history(path: str, initial_epoch: int) -> None:
    """Drops rows with epoch >= initial_epoch (written before a kill, redone after resume) from a CSVLogger file.

    The lines kept are kept byte for byte (CSVLogger ends lines with \\r\\n, and the rows appended after a resume
    do too), so a resumed run's history.csv is byte-identical to an uninterrupted one's."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    if not lines:
        return
    header = next(csv.reader([lines[0].decode("utf-8")]))
    if "epoch" not in header:
        return
    column = header.index("epoch")
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line.decode("utf-8")]), [])
        if len(row) > column and row[column].strip().lstrip("-").isdigit() and int(row[column]) < initial_epoch:
            kept.append(line)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"".join(kept))
    atomic_write(path, write)
